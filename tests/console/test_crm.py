"""Customer context from the firm: the import (JSONL, CSV, the CLI) and the live-CRM directory.

The live CRM is the internet edge: a small local aiohttp server answers like a CRM would,
and can be made slow or broken.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from sqlalchemy import func, select

from hub.crm.directory import DatabaseDirectory, HttpCrmDirectory
from hub.crm.importer import read_customers
from hub.crm.upsert import store_customers
from hub.demo import DEMO_DIR
from hub.errors import ImportFailed
from hub.storage.database import Database
from hub.storage.models import (
    AuditLog,
    Customer,
    CustomerAlert,
    CustomerCase,
    CustomerTransaction,
    Holding,
    Identity,
)
from knowledge.embedding import Embedder
from tests.conftest import REPO, RunningHub, copy_template, free_port, hub_settings, run_hub
from tests.console.helpers import agent_id, call, login, seed_conversation

DEMO_FILE = DEMO_DIR / "customers.jsonl"


def demo_lines() -> list[dict[str, Any]]:
    return [json.loads(line) for line in DEMO_FILE.read_text(encoding="utf-8").splitlines()]


async def count(database: Database, model: Any, **where: Any) -> int:
    async with database.read() as session:
        query = select(func.count()).select_from(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return int(await session.scalar(query) or 0)


async def import_file(database: Database, path: Path) -> None:
    batch = read_customers(path)
    async with database.write() as session:
        await store_customers(session, batch, actor="test")


# -- import -------------------------------------------------------------------------------------


async def test_jsonl_import_then_reimport_updates_in_place(
    database: Database, tmp_path: Path
) -> None:
    await import_file(database, DEMO_FILE)
    assert await count(database, Customer) == 10
    lines = demo_lines()
    assert await count(database, CustomerTransaction) == sum(len(r["transactions"]) for r in lines)
    assert await count(database, CustomerAlert) == sum(len(r["alerts"] or []) for r in lines)
    assert await count(database, CustomerCase) == sum(len(r["cases"] or []) for r in lines)
    async with database.read() as session:
        before = {h.account_number: h.id for h in await session.scalars(select(Holding))}

    # The CRM's next export: C1001 closed a product and moved; others unchanged.
    first = lines[0]
    closed = first["holdings"].pop()
    first["profile"]["city"] = "杭州"
    edited = tmp_path / "customers.jsonl"
    edited.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in lines), "utf-8")
    await import_file(database, edited)

    assert await count(database, Customer) == 10
    async with database.read() as session:
        after = {h.account_number: h.id for h in await session.scalars(select(Holding))}
        c1001 = await session.scalar(select(Customer).where(Customer.external_id == "C1001"))
        imports = await session.scalar(
            select(func.count()).select_from(AuditLog).where(AuditLog.action == "crm.import")
        )
    assert closed["account_number"] not in after
    assert {k: v for k, v in before.items() if k != closed["account_number"]} == after
    assert c1001 is not None and c1001.profile["city"] == "杭州"
    assert c1001.profile["risk_preference"] == "R4"
    assert imports == 2


async def test_csv_folder_import(database: Database, tmp_path: Path) -> None:
    folder = tmp_path / "crm"
    folder.mkdir()
    (folder / "customers.csv").write_text(
        "external_id,name,segment,language,risk_tags,risk_preference,phone,email,national_id\n"
        "K1,林晓,affluent,zh,vulnerable|elderly,R2,138 0013 8000,lin@example.com,"
        "110105199007080730\n",
        "utf-8",
    )
    (folder / "identities.csv").write_text(
        "external_id,channel,address\nK1,sms,13800138000\nK1,wechat,o_lin\n", "utf-8"
    )
    (folder / "holdings.csv").write_text(
        "external_id,kind,product_name,account_number,amount,currency,maturity_date,details\n"
        'K1,deposit,定期存款,6217000000000001,50000.00,CNY,2027-01-01,"{""rate"": ""1.5%""}"\n',
        "utf-8",
    )
    (folder / "transactions.csv").write_text(
        "external_id,at,description,amount,channel,reference\n"
        "K1,2026-11-20T09:00:00+08:00,工资,8000.00,transfer,T1\n",
        "utf-8",
    )
    (folder / "alerts.csv").write_text(
        "external_id,kind,text,at\nK1,vulnerable,老年客户,2026-10-01T10:00:00+08:00\n", "utf-8"
    )
    (folder / "cases.csv").write_text(
        "external_id,id,subject,status,opened_at\n"
        "K1,CASE-1,挂失补卡,open,2026-11-01T10:00:00+08:00\n",
        "utf-8",
    )
    await import_file(database, folder)
    async with database.read() as session:
        customer = await session.scalar(select(Customer).where(Customer.external_id == "K1"))
        assert customer is not None
        assert customer.risk_tags == ["vulnerable", "elderly"]
        assert customer.profile == {
            "phone": "+8613800138000",
            "email": "lin@example.com",
            "national_id": "110105199007080730",
            "risk_preference": "R2",
        }
        identities = set(
            await session.execute(
                select(Identity.channel, Identity.address).where(
                    Identity.customer_id == customer.id
                )
            )
        )
        holding = await session.scalar(select(Holding).where(Holding.customer_id == customer.id))
    assert identities == {("sms", "+8613800138000"), ("wechat", "o_lin")}
    assert holding is not None and holding.details == {"rate": "1.5%"}
    assert await count(database, CustomerCase, external_ref="CASE-1") == 1


def test_bad_lines_fail_the_whole_import_with_their_line_numbers(tmp_path: Path) -> None:
    lines = [json.dumps(r, ensure_ascii=False) for r in demo_lines()[:3]]
    broken = json.loads(lines[1])
    broken["transactions"][0]["at"] = "2026-11-20 09:41"  # no timezone
    lines[1] = json.dumps(broken, ensure_ascii=False)
    lines.insert(2, "{not json")
    lines.append(lines[0])  # C1001 twice
    path = tmp_path / "customers.jsonl"
    path.write_text("\n".join(lines), "utf-8")
    with pytest.raises(ImportFailed) as error:
        read_customers(path)
    message = error.value.message
    assert "customers.jsonl:2: " in message and "transactions.0.at" in message
    assert "customers.jsonl:3: not valid JSON" in message
    assert "customers.jsonl:5: customer 'C1001' appears again (first at customers.jsonl:1)" in (
        message
    )


def test_a_csv_with_a_bad_phone_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "identities.csv"
    path.write_text("external_id,channel,address\nC1,sms,+8613800001001\nC1,sms,12\n", "utf-8")
    with pytest.raises(ImportFailed) as error:
        read_customers(path)
    assert "identities.csv:3: sms address" in error.value.message


async def test_a_kind_file_for_an_unknown_customer_stores_nothing(
    database: Database, tmp_path: Path
) -> None:
    path = tmp_path / "alerts.csv"
    path.write_text("external_id,kind,text\nNOPE,fraud,watch\n", "utf-8")
    with pytest.raises(ImportFailed) as error:
        await import_file(database, path)
    assert "alerts.csv:2" in error.value.message and "NOPE" in error.value.message
    assert await count(database, CustomerAlert) == 0


def test_the_cli_imports_and_reports(tmp_path: Path) -> None:
    env = {**os.environ, "SERVICEHUB_DATA_DIR": str(tmp_path)}
    env.pop("SERVICEHUB_DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "-m", "hub", "crm", "import", str(DEMO_FILE)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Imported 10 customers" in result.stdout and "10 customers created" in result.stdout
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"external_id": ""}\n', "utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "hub", "crm", "import", str(bad)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 1 and "bad.jsonl:1" in result.stderr


# -- the live CRM -------------------------------------------------------------------------------


@dataclass
class FakeCrm:
    """A CRM over HTTP that serves the demo records, and can be slowed down or broken."""

    records: dict[str, dict[str, Any]]
    delay: float = 0.0
    status: int = 200
    hits: list[str] = field(default_factory=list)
    url: str = ""

    async def customer(self, request: web.Request) -> web.Response:
        external_id = request.match_info["id"]
        self.hits.append(external_id)
        if request.headers.get("Authorization") != "Bearer crm-secret":
            return web.json_response({"error": "unauthorised"}, status=401)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.status != 200:
            return web.json_response({"error": "boom"}, status=self.status)
        record = self.records.get(external_id)
        if record is None:
            return web.json_response({"error": "not found"}, status=404)
        return web.json_response(record)


@pytest_asyncio.fixture
async def fake_crm() -> AsyncIterator[FakeCrm]:
    records = {r["external_id"]: r for r in demo_lines()}
    records["C1001"]["segment"] = "private"  # the CRM knows better than the imported copy
    crm = FakeCrm(records)
    app = web.Application()
    app.router.add_get("/crm/customers/{id}", crm.customer)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    crm.url = f"http://127.0.0.1:{port}/crm"
    yield crm
    await runner.cleanup()


async def imported(database: Database) -> Customer:
    await import_file(database, DEMO_FILE)
    async with database.read() as session:
        customer = await session.scalar(select(Customer).where(Customer.external_id == "C1001"))
    assert customer is not None
    return customer


async def test_the_crm_answers_and_is_cached(database: Database, fake_crm: FakeCrm) -> None:
    customer = await imported(database)
    directory = HttpCrmDirectory(
        DatabaseDirectory(database), fake_crm.url, token="crm-secret", cache_seconds=300
    )
    try:
        first = await directory.lookup(customer)
        second = await directory.lookup(customer)
    finally:
        await directory.close()
    assert first.source == "crm" and not first.degraded and first.segment == "private"
    assert second == first
    assert fake_crm.hits == ["C1001"]
    assert len(first.holdings) == 6 and first.transactions[0].at >= first.transactions[-1].at


@pytest.mark.parametrize("failure", ["slow", "error", "down"])
async def test_a_failing_crm_degrades_to_the_database_copy(
    database: Database, fake_crm: FakeCrm, failure: str
) -> None:
    customer = await imported(database)
    url = fake_crm.url
    if failure == "slow":
        fake_crm.delay = 1.0
    elif failure == "error":
        fake_crm.status = 503
    else:
        url = f"http://127.0.0.1:{free_port()}/crm"  # nothing listens there
    directory = HttpCrmDirectory(
        DatabaseDirectory(database), url, token="crm-secret", timeout_seconds=0.2
    )
    try:
        entry = await directory.lookup(customer)
        again = await directory.lookup(customer)
    finally:
        await directory.close()
    assert entry.source == "database" and entry.degraded and entry.notes
    assert entry.segment == "hnw"  # the imported copy
    assert len(entry.holdings) == 6
    # Right after a failure the CRM is not asked again, so each view does not wait on it.
    assert again.degraded and len(fake_crm.hits) <= 1


async def test_a_customer_the_crm_does_not_know_uses_the_database_copy(
    database: Database, fake_crm: FakeCrm
) -> None:
    customer = await imported(database)
    del fake_crm.records["C1001"]
    directory = HttpCrmDirectory(DatabaseDirectory(database), fake_crm.url, token="crm-secret")
    try:
        entry = await directory.lookup(customer)
    finally:
        await directory.close()
    assert entry.source == "database" and not entry.degraded


@pytest_asyncio.fixture
async def hub_with_crm(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder], fake_crm: FakeCrm
) -> AsyncIterator[RunningHub]:
    data_dir = copy_template(demo_template, tmp_path / "data")
    settings = hub_settings(data_dir, crm_url=fake_crm.url, crm_token="crm-secret")
    async with run_hub(settings, embedders) as running:
        yield running


async def test_the_console_reads_the_live_crm(hub_with_crm: RunningHub, fake_crm: FakeCrm) -> None:
    database = hub_with_crm.hub.database
    li = await agent_id(database, "agent.li")
    seeded = await seed_conversation(
        database, external_id="C1001", channel="sms", address="+8613800001001", assigned_to=li
    )
    path = f"/api/customers/{seeded.customer_id}/context?conversation_id={seeded.conversation_id}"
    token = await login(hub_with_crm, "agent.li")
    status, body = await call(hub_with_crm, "GET", path, token=token)
    assert status == 200
    assert body["customer"]["segment"] == "private"
    assert body["source"] == {"kind": "crm", "degraded": False, "notes": []}
    fake_crm.status = 500
    fake_crm.hits.clear()
    supervisor = await login(hub_with_crm, "supervisor.sun")
    status, body = await call(hub_with_crm, "GET", path + "&reason=check", token=supervisor)
    # Still cached from the first view: the CRM is not asked again within the TTL.
    assert status == 200 and body["source"]["kind"] == "crm" and fake_crm.hits == []
