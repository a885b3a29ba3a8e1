"""Demo data for the embedded default: customers with holdings, staff, and the KB files.

Seeded once, on the first start of an empty database, so a newcomer has a working bank
help desk to try. The demo token endpoints exist only while demo data is enabled.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import func, select

from hub.crm.importer import read_customers
from hub.crm.upsert import store_customers
from hub.errors import InvalidInput, NotFound
from hub.identity_tokens import issue_identity_token
from hub.passwords import hash_password
from hub.phones import DEFAULT_REGION
from hub.settings import Settings
from hub.storage.database import Database
from hub.storage.models import Agent, CannedReply, Customer

log = logging.getLogger(__name__)

DEMO_DIR = Path(__file__).with_name("demo_data")
KB_FILES = (DEMO_DIR / "kb-core.jsonl", DEMO_DIR / "kb-en.jsonl")
DEMO_TOKEN_LIFETIME = timedelta(hours=1)


@dataclass(frozen=True)
class SeedReport:
    customers: int
    agents: int


def _lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]


async def seed_people(database: Database, region: str = DEFAULT_REGION) -> SeedReport:
    """Insert the demo customers, staff and canned replies where there are none yet.

    Customers go through the CRM importer (`hub/crm/`), exactly as a firm's own file would,
    so the demo shows holdings, transactions, risk alerts and open cases.
    """
    customers = read_customers(DEMO_DIR / "customers.jsonl", region)
    async with database.write() as session:
        seeded_customers = 0
        if not await session.scalar(select(func.count()).select_from(Customer)):
            await store_customers(session, customers, actor="demo-seed")
            seeded_customers = len(customers)
        staff = _lines(DEMO_DIR / "agents.jsonl")
        seeded_staff = 0
        if not await session.scalar(select(func.count()).select_from(Agent)):
            for record in staff:
                session.add(
                    Agent(
                        username=record["username"],
                        display_name=record["display_name"],
                        role=record["role"],
                        password_hash=hash_password(record["password"]),
                        skills=list(record.get("skills", [])),
                        languages=list(record.get("languages", [])),
                        max_concurrent=int(record.get("max_concurrent", 3)),
                        locale=record.get("locale", "zh"),
                    )
                )
            seeded_staff = len(staff)
        if not await session.scalar(select(func.count()).select_from(CannedReply)):
            for reply in _lines(DEMO_DIR / "canned_replies.jsonl"):
                session.add(
                    CannedReply(
                        language=reply["language"],
                        shortcut=reply["shortcut"],
                        title=reply["title"],
                        text=reply["text"],
                        skill=reply.get("skill"),
                    )
                )
    if seeded_customers or seeded_staff:
        log.info("seeded %d demo customers and %d staff", seeded_customers, seeded_staff)
    return SeedReport(seeded_customers, seeded_staff)


class DemoRoutes:
    """`/demo/customers` and `/demo/token`: let the demo page sign in as a demo customer."""

    def __init__(self, database: Database, settings: Settings) -> None:
        self.database = database
        self.settings = settings

    def register(self, app: web.Application) -> None:
        app.router.add_get("/demo/customers", self.customers)
        app.router.add_get("/demo/token", self.token)

    async def customers(self, _: web.Request) -> web.Response:
        async with self.database.read() as session:
            rows = await session.scalars(
                select(Customer)
                .where(Customer.external_id.is_not(None))
                .order_by(Customer.external_id)
            )
            body = [
                {"external_id": c.external_id, "name": c.display_name, "segment": c.segment}
                for c in rows
            ]
        return web.json_response(body)

    async def token(self, request: web.Request) -> web.Response:
        external_id = request.query.get("customer", "").strip()
        if not external_id:
            raise InvalidInput("Say which demo customer: ?customer=C1001")
        async with self.database.read() as session:
            customer = await session.scalar(
                select(Customer).where(Customer.external_id == external_id)
            )
        if customer is None or customer.external_id is None:
            raise NotFound(f"There is no demo customer {external_id!r}.")
        token = issue_identity_token(
            self.settings.identity_secret,
            customer.external_id,
            DEMO_TOKEN_LIFETIME,
            name=customer.display_name,
        )
        return web.json_response(
            {
                "token": token,
                "customer": {"external_id": customer.external_id, "name": customer.display_name},
            }
        )
