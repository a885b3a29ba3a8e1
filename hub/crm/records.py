"""The shape of customer data coming from the firm: one record per customer.

The same shape is a line of an import file (`servicehub crm import`, as in
`hub/demo_data/customers.jsonl`) and the body a live CRM answers for one customer
(`HttpCrmDirectory`). A list given (even empty) replaces what the hub holds of that kind;
a list left out (or null) leaves it as it is.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from hub.domain import Channel

Text200 = Annotated[str, Field(min_length=1, max_length=200)]
Code = Annotated[str, Field(min_length=1, max_length=30)]


class _Record(BaseModel):
    # A CRM may send more than we use; unknown keys are ignored rather than refused.
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class IdentityRecord(_Record):
    channel: str
    address: Text200

    @field_validator("channel")
    @classmethod
    def _known_channel(cls, value: str) -> str:
        known = {c.value for c in Channel}
        if value not in known:
            raise ValueError(f"channel must be one of {sorted(known)}")
        return value


class HoldingRecord(_Record):
    id: str | None = Field(default=None, max_length=64)  # the CRM's own id, if it has one
    kind: Annotated[str, Field(min_length=1, max_length=20)]
    product_name: Text200
    account_number: str | None = Field(default=None, max_length=64)
    amount: Decimal | None = None
    currency: Annotated[str, Field(min_length=3, max_length=3)] = "CNY"
    maturity_date: date | None = None
    status: Annotated[str, Field(min_length=1, max_length=20)] = "active"
    details: dict[str, Any] = Field(default_factory=dict)


class TransactionRecord(_Record):
    at: AwareDatetime
    description: Annotated[str, Field(min_length=1, max_length=300)]
    amount: Decimal
    currency: Annotated[str, Field(min_length=3, max_length=3)] = "CNY"
    channel: str | None = Field(default=None, max_length=30)
    reference: str | None = Field(default=None, max_length=64)


class AlertRecord(_Record):
    kind: Code
    text: Annotated[str, Field(min_length=1, max_length=2000)]
    at: AwareDatetime | None = None
    active: bool = True


class CaseRecord(_Record):
    id: str | None = Field(default=None, max_length=64)  # the case system's reference
    subject: Annotated[str, Field(min_length=1, max_length=300)]
    status: Annotated[str, Field(min_length=1, max_length=20)] = "open"
    opened_at: AwareDatetime | None = None
    closed_at: AwareDatetime | None = None


class CustomerRecord(_Record):
    """One of the firm's customers with everything the console shows about them."""

    external_id: Annotated[str, Field(min_length=1, max_length=64)]
    name: str | None = Field(default=None, max_length=200)
    segment: str | None = Field(default=None, max_length=50)
    language: str | None = Field(default=None, max_length=8)
    risk_tags: list[str] = Field(default_factory=list)
    risk_preference: str | None = Field(default=None, max_length=20)
    profile: dict[str, Any] = Field(default_factory=dict)
    identities: list[IdentityRecord] | None = None
    holdings: list[HoldingRecord] | None = None
    transactions: list[TransactionRecord] | None = None
    alerts: list[AlertRecord] | None = None
    cases: list[CaseRecord] | None = None


def customer_profile(record: CustomerRecord) -> dict[str, Any]:
    """The profile as the hub stores it: the CRM's fields plus the risk preference."""
    profile = dict(record.profile)
    if record.risk_preference is not None:
        profile["risk_preference"] = record.risk_preference
    return profile
