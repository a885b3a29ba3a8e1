"""`servicehub crm import`: the firm's customers from JSONL or CSV — all or nothing.

Accepted layouts (docs/console.md, "CRM import and directory"):

* a `.jsonl` file, one customer per line in the shape of `hub/demo_data/customers.jsonl`
  (`CustomerRecord`: external_id, name, segment, …, identities, holdings, transactions,
  alerts, cases);
* a folder with `customers.csv` and any of `identities.csv`, `holdings.csv`,
  `transactions.csv`, `alerts.csv`, `cases.csv`; or one such file on its own (rows of a
  kind file for customers not in the import must name customers the hub already has).

Every line is validated before anything is written, and the whole import is one
transaction: one bad line fails it, naming the file and line. Customers are upserted by
the firm's id (`external_id`); a kind given for a customer replaces what the hub held of
that kind, keeping the row ids of items that are still there (matched by account number,
reference or case id), so reveals and merge records keep pointing at the same rows.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from hub.crm.records import (
    AlertRecord,
    CaseRecord,
    CustomerRecord,
    HoldingRecord,
    IdentityRecord,
    TransactionRecord,
)
from hub.errors import ImportFailed, InvalidInput
from hub.http import describe_validation_error
from hub.phones import DEFAULT_REGION, is_phone_channel, normalise_phone

MAX_REPORTED_ERRORS = 10
LIST_SEPARATOR = "|"
KINDS = ("identities", "holdings", "transactions", "alerts", "cases")
CSV_FILES = ("customers", *KINDS)
_KIND_MODELS: dict[str, type[BaseModel]] = {
    "identities": IdentityRecord,
    "holdings": HoldingRecord,
    "transactions": TransactionRecord,
    "alerts": AlertRecord,
    "cases": CaseRecord,
}
# customers.csv columns that are customer fields; every other column goes into the profile.
_CUSTOMER_COLUMNS = {"external_id", "name", "segment", "language", "risk_tags", "risk_preference"}
ModelT = TypeVar("ModelT", bound=BaseModel)


@dataclass
class PendingCustomer:
    """One customer's part of an import, with where each piece came from (for errors)."""

    external_id: str
    where: str
    record: CustomerRecord | None = None  # None: the customer's own fields stay as they are
    items: dict[str, list[tuple[str, BaseModel]]] = field(default_factory=dict)


def read_customers(path: Path, region: str = DEFAULT_REGION) -> list[PendingCustomer]:
    """Parse and validate every customer at `path`; raise `ImportFailed` listing bad lines."""
    if not path.exists():
        raise ImportFailed(f"{path} does not exist.")
    errors: list[str] = []
    batch: dict[str, PendingCustomer] = {}
    if path.is_dir():
        files = [path / f"{name}.csv" for name in CSV_FILES if (path / f"{name}.csv").exists()]
        if not files:
            raise ImportFailed(f"{path} holds none of {', '.join(n + '.csv' for n in CSV_FILES)}.")
        for file in files:
            _read_csv(file, batch, errors)
    elif path.suffix.lower() in {".jsonl", ".ndjson"}:
        _read_jsonl(path, batch, errors)
    elif path.suffix.lower() == ".csv":
        if path.stem not in CSV_FILES:
            raise ImportFailed(
                f"{path.name}: name a CSV file for what it holds: "
                f"{', '.join(n + '.csv' for n in CSV_FILES)}."
            )
        _read_csv(path, batch, errors)
    else:
        raise ImportFailed(f"{path.name}: crm import reads .jsonl, .csv or a folder of CSV files.")
    for pending in batch.values():
        _normalise_phones(pending, region, errors)
    if errors:
        shown = "\n".join(errors[:MAX_REPORTED_ERRORS])
        more = len(errors) - MAX_REPORTED_ERRORS
        raise ImportFailed(
            f"Nothing was imported: {len(errors)} problem(s) in {path}:\n{shown}"
            + (f"\n… and {more} more" if more > 0 else ""),
            errors=errors[:MAX_REPORTED_ERRORS],
        )
    return list(batch.values())


# -- JSONL ------------------------------------------------------------------------------------


def _read_jsonl(path: Path, batch: dict[str, PendingCustomer], errors: list[str]) -> None:
    for number, line in _text_lines(path):
        where = f"{path.name}:{number}"
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            errors.append(f"{where}: not valid JSON ({error.msg})")
            continue
        if not isinstance(data, dict):
            errors.append(f"{where}: a line must be a JSON object (one customer)")
            continue
        record = _validate(CustomerRecord, data, where, errors)
        if record is None:
            continue
        pending = _pending(batch, record.external_id, where, errors, with_fields=True)
        if pending is None:
            continue
        pending.record = record
        for kind in KINDS:
            items = getattr(record, kind)
            if items is not None:
                pending.items[kind] = [(where, item) for item in items]


# -- CSV --------------------------------------------------------------------------------------


def _read_csv(path: Path, batch: dict[str, PendingCustomer], errors: list[str]) -> None:
    kind = path.stem
    rows = _csv_rows(path)
    header = next(rows, None)
    if header is None:
        return
    _, columns = header
    if "external_id" not in columns:
        errors.append(f"{path.name}:1: the header needs an external_id column")
        return
    for number, row in rows:
        where = f"{path.name}:{number}"
        if not any((v or "").strip() for v in row.values()):
            continue
        external_id = (row.get("external_id") or "").strip()
        if not external_id:
            errors.append(f"{where}: external_id is empty")
            continue
        if kind == "customers":
            record = _validate(CustomerRecord, _customer_fields(row), where, errors)
            pending = _pending(batch, external_id, where, errors, with_fields=True)
            if record is not None and pending is not None:
                pending.record = record
            continue
        item = _validate(_KIND_MODELS[kind], _item_fields(kind, row), where, errors)
        pending = _pending(batch, external_id, where, errors, with_fields=False)
        if item is not None and pending is not None:
            pending.items.setdefault(kind, []).append((where, item))


def _csv_rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (1, header as a dict of names) then (line number, row) for each data row."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise ImportFailed(f"{path.name} is not UTF-8 text: {error}.") from error
    reader = csv.DictReader(io.StringIO(text))
    names = [n.strip() for n in reader.fieldnames or []]
    if not names:
        return
    reader.fieldnames = names
    yield 1, {n: n for n in names}
    for row in reader:
        yield reader.line_num, {k: v for k, v in row.items() if k is not None}


def _customer_fields(row: dict[str, str]) -> dict[str, Any]:
    data: dict[str, Any] = {k: (row.get(k) or "").strip() or None for k in _CUSTOMER_COLUMNS}
    data["risk_tags"] = _split(row.get("risk_tags"))
    data["profile"] = {
        k: v.strip() for k, v in row.items() if k not in _CUSTOMER_COLUMNS and (v or "").strip()
    }
    return data


def _item_fields(kind: str, row: dict[str, str]) -> dict[str, Any]:
    data: dict[str, Any] = {
        k: v.strip() for k, v in row.items() if k != "external_id" and (v or "").strip()
    }
    if kind == "holdings" and "details" in data:
        try:
            data["details"] = json.loads(data["details"])
        except json.JSONDecodeError:
            data["details"] = "not JSON"  # pydantic then says details must be an object
    return data


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(LIST_SEPARATOR) if part.strip()]


# -- shared -----------------------------------------------------------------------------------


def _text_lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise ImportFailed(f"{path.name} is not UTF-8 text: {error}.") from error
    yield from enumerate(text.splitlines(), start=1)


def _validate(
    model: type[ModelT], data: dict[str, Any], where: str, errors: list[str]
) -> ModelT | None:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        errors.append(f"{where}: {describe_validation_error(error)}")
        return None


def _pending(
    batch: dict[str, PendingCustomer],
    external_id: str,
    where: str,
    errors: list[str],
    *,
    with_fields: bool,
) -> PendingCustomer | None:
    pending = batch.get(external_id)
    if pending is None:
        pending = batch[external_id] = PendingCustomer(external_id, where)
    elif with_fields and pending.record is not None:
        errors.append(f"{where}: customer {external_id!r} appears again (first at {pending.where})")
        return None
    if with_fields:
        pending.where = where
    return pending


def _normalise_phones(pending: PendingCustomer, region: str, errors: list[str]) -> None:
    """Store phone numbers as E.164, so they match what the phone channels receive."""
    if pending.record is not None and isinstance(pending.record.profile.get("phone"), str):
        try:
            pending.record.profile["phone"] = normalise_phone(
                pending.record.profile["phone"], region
            )
        except InvalidInput as error:
            errors.append(f"{pending.where}: profile phone: {error.message}")
    for where, item in pending.items.get("identities", []):
        assert isinstance(item, IdentityRecord)
        if is_phone_channel(item.channel):
            try:
                item.address = normalise_phone(item.address, region)
            except InvalidInput as error:
                errors.append(f"{where}: {item.channel} address: {error.message}")
