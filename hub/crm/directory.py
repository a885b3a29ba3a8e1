"""Where the console reads a customer's profile, holdings, transactions, alerts and cases.

`DatabaseDirectory` (the embedded default) reads the copy the import keeps in the hub's
database. `HttpCrmDirectory` asks the firm's live CRM over HTTP —
`GET {SERVICEHUB_CRM_URL}/customers/{external_id}` answering one `CustomerRecord` as JSON —
with a short timeout and a TTL cache; when the CRM is slow, down or answers nonsense, the
console still works from the database copy and says so (`degraded`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp
from pydantic import ValidationError
from sqlalchemy import select

from hub.clock import utcnow
from hub.crm.records import CustomerRecord, customer_profile
from hub.storage.database import Database
from hub.storage.models import Customer, CustomerAlert, CustomerCase, CustomerTransaction, Holding

log = logging.getLogger(__name__)

RECENT_TRANSACTIONS = 20
CACHE_ENTRIES = 1000
# After a failure, skip the CRM this long: a down CRM must not add its timeout to every view.
RETRY_AFTER_FAILURE = 10.0


@dataclass(frozen=True)
class HoldingEntry:
    id: str  # our row id, or the CRM's id: what a reveal names
    kind: str
    product_name: str
    account_number: str | None
    amount: Decimal | None
    currency: str
    maturity_date: date | None
    status: str
    details: dict[str, Any]


@dataclass(frozen=True)
class TransactionEntry:
    at: datetime
    description: str
    amount: Decimal
    currency: str
    channel: str | None
    reference: str | None


@dataclass(frozen=True)
class AlertEntry:
    kind: str
    text: str
    at: datetime | None
    active: bool


@dataclass(frozen=True)
class CaseEntry:
    id: str | None
    subject: str
    status: str
    opened_at: datetime | None
    closed_at: datetime | None


@dataclass(frozen=True)
class DirectoryEntry:
    """What the firm knows about one customer, and where it came from."""

    display_name: str | None
    segment: str | None
    language: str | None
    risk_tags: tuple[str, ...]
    profile: dict[str, Any]
    holdings: tuple[HoldingEntry, ...] = ()
    transactions: tuple[TransactionEntry, ...] = ()  # newest first, at most 20
    alerts: tuple[AlertEntry, ...] = ()
    cases: tuple[CaseEntry, ...] = ()
    source: str = "database"  # "database" or "crm"
    degraded: bool = False  # a CRM is configured but did not answer: this is the local copy
    fetched_at: datetime | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def risk_preference(self) -> str | None:
        value = self.profile.get("risk_preference")
        return str(value) if value is not None else None


class CustomerDirectory(Protocol):
    """Looks up what the firm knows about a customer."""

    async def lookup(self, customer: Customer) -> DirectoryEntry:
        """Return the customer's profile and products; never raise for a CRM outage."""


class DatabaseDirectory:
    """The directory kept in the hub's own database (filled by `servicehub crm import`)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def close(self) -> None:
        """Nothing to close; here so both directories tear down alike."""

    async def lookup(self, customer: Customer) -> DirectoryEntry:
        async with self.database.read() as session:
            holdings = await session.scalars(
                select(Holding).where(Holding.customer_id == customer.id).order_by(Holding.id)
            )
            transactions = await session.scalars(
                select(CustomerTransaction)
                .where(CustomerTransaction.customer_id == customer.id)
                .order_by(CustomerTransaction.at.desc(), CustomerTransaction.id.desc())
                .limit(RECENT_TRANSACTIONS)
            )
            alerts = await session.scalars(
                select(CustomerAlert)
                .where(CustomerAlert.customer_id == customer.id)
                .order_by(CustomerAlert.active.desc(), CustomerAlert.at.desc())
            )
            cases = await session.scalars(
                select(CustomerCase)
                .where(CustomerCase.customer_id == customer.id)
                .order_by(CustomerCase.opened_at.desc())
            )
            return DirectoryEntry(
                display_name=customer.display_name,
                segment=customer.segment,
                language=customer.language,
                risk_tags=tuple(str(t) for t in customer.risk_tags or ()),
                profile=dict(customer.profile or {}),
                holdings=tuple(
                    HoldingEntry(
                        id=str(h.id),
                        kind=h.kind,
                        product_name=h.product_name,
                        account_number=h.account_number,
                        amount=h.amount,
                        currency=h.currency,
                        maturity_date=h.maturity_date,
                        status=h.status,
                        details=dict(h.details or {}),
                    )
                    for h in holdings
                ),
                transactions=tuple(
                    TransactionEntry(
                        t.at, t.description, t.amount, t.currency, t.channel, t.reference
                    )
                    for t in transactions
                ),
                alerts=tuple(AlertEntry(a.kind, a.text, a.at, a.active) for a in alerts),
                cases=tuple(
                    CaseEntry(c.external_ref, c.subject, c.status, c.opened_at, c.closed_at)
                    for c in cases
                ),
            )


class HttpCrmDirectory:
    """A live CRM over HTTP, cached, falling back to the database copy when it fails."""

    def __init__(
        self,
        fallback: DatabaseDirectory,
        base_url: str,
        *,
        token: str | None = None,
        timeout_seconds: float = 2.0,
        cache_seconds: float = 60.0,
    ) -> None:
        self.fallback = fallback
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self.cache_seconds = cache_seconds
        self._cache: OrderedDict[str, tuple[float, DirectoryEntry]] = OrderedDict()
        self._http: aiohttp.ClientSession | None = None
        self._down_until = 0.0
        self._lock = asyncio.Lock()

    async def close(self) -> None:
        """Close the HTTP client (the app's cleanup calls this)."""
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def lookup(self, customer: Customer) -> DirectoryEntry:
        external_id = customer.external_id
        if external_id is None:
            # Not the firm's customer (an anonymous contact): the CRM cannot know them.
            return await self.fallback.lookup(customer)
        cached = self._cache.get(external_id)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            self._cache.move_to_end(external_id)
            return cached[1]
        if now < self._down_until:
            return _degraded(await self.fallback.lookup(customer), "the CRM failed just now")
        try:
            record = await self._fetch(external_id)
        except _CrmFailure as failure:
            log.warning("CRM lookup for a customer failed: %s", failure)
            self._down_until = time.monotonic() + RETRY_AFTER_FAILURE
            return _degraded(await self.fallback.lookup(customer), str(failure))
        if record is None:
            # The CRM does not know this id: the imported copy is all there is.
            return await self.fallback.lookup(customer)
        entry = _entry_from_record(record)
        self._remember(external_id, entry)
        return entry

    async def _fetch(self, external_id: str) -> CustomerRecord | None:
        url = f"{self.base_url}/customers/{quote(external_id, safe='')}"
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        http = await self._client()
        try:
            async with http.get(url, headers=headers, timeout=self.timeout) as response:
                if response.status == 404:
                    return None
                if response.status != 200:
                    raise _CrmFailure(f"the CRM answered HTTP {response.status}")
                body = await response.json(content_type=None)
        except TimeoutError as error:
            raise _CrmFailure("the CRM did not answer in time") from error
        except (aiohttp.ClientError, ValueError) as error:
            raise _CrmFailure(f"the CRM could not be read ({type(error).__name__})") from error
        try:
            record = CustomerRecord.model_validate(body)
        except ValidationError as error:
            raise _CrmFailure(f"the CRM's answer is not a customer record: {error}") from error
        if record.external_id != external_id:
            raise _CrmFailure("the CRM answered for a different customer")
        return record

    async def _client(self) -> aiohttp.ClientSession:
        async with self._lock:
            if self._http is None or self._http.closed:
                self._http = aiohttp.ClientSession(timeout=self.timeout)
            return self._http

    def _remember(self, external_id: str, entry: DirectoryEntry) -> None:
        self._cache[external_id] = (time.monotonic() + self.cache_seconds, entry)
        self._cache.move_to_end(external_id)
        while len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)


def directory_for(
    database: Database,
    crm_url: str | None,
    *,
    token: str | None = None,
    timeout_seconds: float = 2.0,
    cache_seconds: float = 60.0,
) -> DatabaseDirectory | HttpCrmDirectory:
    """The live CRM when one is configured, else the database copy."""
    local = DatabaseDirectory(database)
    if not crm_url:
        return local
    return HttpCrmDirectory(
        local, crm_url, token=token, timeout_seconds=timeout_seconds, cache_seconds=cache_seconds
    )


class _CrmFailure(Exception):
    """The CRM could not give a usable answer."""


def _degraded(entry: DirectoryEntry, why: str) -> DirectoryEntry:
    return DirectoryEntry(
        display_name=entry.display_name,
        segment=entry.segment,
        language=entry.language,
        risk_tags=entry.risk_tags,
        profile=entry.profile,
        holdings=entry.holdings,
        transactions=entry.transactions,
        alerts=entry.alerts,
        cases=entry.cases,
        source="database",
        degraded=True,
        notes=(f"The CRM is unavailable ({why}); showing the hub's last imported copy.",),
    )


def _entry_from_record(record: CustomerRecord) -> DirectoryEntry:
    transactions = sorted(record.transactions or [], key=lambda t: t.at, reverse=True)
    return DirectoryEntry(
        display_name=record.name,
        segment=record.segment,
        language=record.language,
        risk_tags=tuple(record.risk_tags),
        profile=customer_profile(record),
        holdings=tuple(
            HoldingEntry(
                id=h.id or f"crm-{index}",
                kind=h.kind,
                product_name=h.product_name,
                account_number=h.account_number,
                amount=h.amount,
                currency=h.currency,
                maturity_date=h.maturity_date,
                status=h.status,
                details=dict(h.details),
            )
            for index, h in enumerate(record.holdings or [])
        ),
        transactions=tuple(
            TransactionEntry(t.at, t.description, t.amount, t.currency, t.channel, t.reference)
            for t in transactions[:RECENT_TRANSACTIONS]
        ),
        alerts=tuple(AlertEntry(a.kind, a.text, a.at, a.active) for a in record.alerts or []),
        cases=tuple(
            CaseEntry(c.id, c.subject, c.status, c.opened_at, c.closed_at)
            for c in record.cases or []
        ),
        source="crm",
        fetched_at=utcnow(),
    )
