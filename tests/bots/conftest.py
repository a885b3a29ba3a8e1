"""Fixtures for the bot tests: one real KB (SQLite + search engine) and one embedded bot per run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from bots.embedded import EmbeddedBot
from bots.intents import IntentClassifier
from bots.project import RasaProject, load_project
from hub.domain import CustomerContext, Source
from hub.storage.database import Database
from hub.storage.migrate import upgrade_database
from hub.storage.models import Conversation, Customer, Identity
from knowledge.embedding import Embedder
from knowledge.importer import read_articles
from knowledge.search import SearchEngine
from knowledge.service import KnowledgeBase
from tests.conftest import SHARED_KB

REPO = Path(__file__).resolve().parents[2]
HOLDOUT = Path(__file__).with_name("data") / "intent-holdout.yml"


@dataclass
class BotWorld:
    bot: EmbeddedBot
    kb: KnowledgeBase
    database: Database
    project: RasaProject
    customer_id: int
    identity_id: int

    async def context(
        self,
        language: str = "zh",
        *,
        verified: bool = False,
        previous: tuple[tuple[str, str], ...] = (),
        misses: int = 0,
        articles_shown: tuple[Source, ...] = (),
        topic: str | None = None,
    ) -> CustomerContext:
        """Open a real conversation and describe it as the router does."""
        async with self.database.write() as session:
            conversation = Conversation(
                customer_id=self.customer_id,
                identity_id=self.identity_id,
                channel="webchat",
                language=language,
                verified=verified,
            )
            session.add(conversation)
            await session.flush()
            conversation_id = conversation.id
        return CustomerContext(
            customer_id=self.customer_id,
            conversation_id=conversation_id,
            channel="webchat",
            verified=verified,
            language=language,
            previous_messages=previous,
            consecutive_misses=misses,
            articles_shown=articles_shown,
            topic=topic,
        )


@pytest.fixture(scope="session")
def project() -> RasaProject:
    return load_project()


@pytest.fixture(scope="session")
def intent_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One feature cache for the run: the NLU examples are embedded once."""
    return tmp_path_factory.mktemp("intent-cache")


@pytest.fixture(scope="session")
def classifier(
    project: RasaProject, embedders: list[Embedder], intent_cache: Path
) -> IntentClassifier:
    return IntentClassifier.train(project.examples, embedders, intent_cache)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def world(
    embedders: list[Embedder],
    intent_cache: Path,
    classifier: IntentClassifier,  # trains first, so the bot reuses the cached features
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[BotWorld]:
    """The embedded bot over a real KB seeded with the 40 dev-set articles."""
    root = tmp_path_factory.mktemp("bot-world")
    executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="bot-test")
    database = Database(f"sqlite+aiosqlite:///{root / 'hub.db'}")
    await upgrade_database(database)
    kb = KnowledgeBase(database, SearchEngine(embedders, root / "index"), executor)
    await kb.import_articles(read_articles(SHARED_KB), actor="test")
    bot = EmbeddedBot(kb=kb, embedders=embedders, executor=executor, cache_dir=intent_cache)
    await bot.warm_up()
    async with database.write() as session:
        person = Customer(display_name="Test Customer")
        session.add(person)
        await session.flush()
        identity = Identity(customer_id=person.id, channel="webchat", address="visitor-1")
        session.add(identity)
        await session.flush()
        ids = (person.id, identity.id)
    try:
        yield BotWorld(bot, kb, database, load_project(), *ids)
    finally:
        await database.dispose()
        executor.shutdown(wait=True)
