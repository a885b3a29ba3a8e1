"""The router: the message pipeline every channel feeds.

accept():  validate → commit the message once (idempotent per channel message id) together
           with the customer, identity and conversation → answer the channel at once.
process(): bot or human → replies committed → then delivered through the channel gateway.
A message is committed before anything else happens to it; `resume_unhandled` picks up
messages whose processing a crash interrupted.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

from sqlalchemy import CursorResult, Row, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bots.base import Bot, BotReply
from hub.clock import utcnow
from hub.domain import (
    Author,
    ConversationStatus,
    CustomerAddress,
    CustomerContext,
    DeliveryStatus,
    Direction,
    HandoffContext,
    InboundMessage,
    OutboundMessage,
    Receipt,
    Skill,
    Source,
)
from hub.errors import InvalidInput, PayloadTooLarge
from hub.language import detect_language
from hub.outbound import ChannelGateway
from hub.phones import normalise_address
from hub.storage.database import Database
from hub.storage.models import Conversation, ConversationEvent, Customer, Identity, Message
from hub.tasks import BackgroundTasks
from routing import conversations, identity, queues, turn_sql
from routing.continuing import continue_conversation
from routing.delivery_records import DeliveryRecords
from routing.locks import KeyedLocks
from routing.transcripts import to_outbound

log = logging.getLogger(__name__)

MAX_CHANNEL_MESSAGE_ID = 200
SMALL_TALK = {None, "greet", "goodbye", "thanks", "affirm"}
RESUME_WINDOW = timedelta(hours=1)

# Said when the bot itself failed; the customer must still reach a person.
BOT_FAILURE_TEXT = {
    "zh": "抱歉，系统繁忙，正在为您转接人工客服，您前面还有 {position} 位客户。",
    "en": "Sorry, something went wrong on our side. Connecting you to a colleague; "
    "you are number {position} in the queue.",
}


class RouterHooks(Protocol):
    """What the router tells routing after a commit (the console and the queues react)."""

    async def messages_stored(self, conversation_id: int, message_ids: Sequence[int]) -> None:
        """Messages were committed (a customer's, or the bot's after delivery)."""
        ...

    async def handed_off(self, conversation_id: int) -> None:
        """The conversation has just entered a human queue."""
        ...


@dataclass(frozen=True)
class _Work:
    """What processing one inbound message needs, read in one short transaction."""

    message_id: int
    text: str
    address: CustomerAddress
    context: CustomerContext
    customer_id: int


class Router:
    """Accept inbound messages from any channel and carry each through to its replies."""

    def __init__(
        self,
        database: Database,
        bot: Bot,
        gateway: ChannelGateway,
        tasks: BackgroundTasks,
        *,
        max_message_chars: int = 2000,
        default_region: str = "CN",
        hooks: RouterHooks | None = None,
    ) -> None:
        self.database = database
        self.hooks = hooks  # routing's reactions to commits; None in tools without routing
        self.default_region = default_region  # how phone numbers without +country are read
        self.bot = bot
        self.gateway = gateway
        self.tasks = tasks
        self.max_message_chars = max_message_chars
        # Messages of one conversation are processed one after another, so replies keep order.
        self.conversation_locks = KeyedLocks()
        # Delivery outcomes of concurrent turns share write transactions.
        self.delivery_records = DeliveryRecords(database)

    # -- accept ---------------------------------------------------------------------------

    async def accept(self, inbound: InboundMessage) -> Receipt:
        """Commit the message (once) and schedule its processing; return the receipt."""
        self._validate(inbound)
        receipt = await self._commit(inbound)
        if not receipt.duplicate:
            self.tasks.spawn(
                self.process(receipt.message_id, receipt.conversation_id),
                name=f"process-{receipt.message_id}",
            )
        return receipt

    def _validate(self, inbound: InboundMessage) -> None:
        if not inbound.text.strip() and not inbound.media_urls:
            raise InvalidInput("The message is empty; send some text.")
        if len(inbound.text) > self.max_message_chars:
            raise PayloadTooLarge(
                f"The message has {len(inbound.text)} characters; the limit is "
                f"{self.max_message_chars}. Please send it in shorter parts."
            )
        if (
            not inbound.channel_message_id
            or len(inbound.channel_message_id) > MAX_CHANNEL_MESSAGE_ID
        ):
            raise InvalidInput(
                f"A message id of 1-{MAX_CHANNEL_MESSAGE_ID} characters is required."
            )
        if not inbound.address.address or len(inbound.address.address) > 200:
            raise InvalidInput("The sender address must be 1-200 characters.")

    async def _commit(self, inbound: InboundMessage) -> Receipt:
        try:
            # No look-up first: the unique (channel, channel message id) index refuses a
            # re-delivered message, and the transaction, identity work included, rolls back.
            # Re-deliveries are rare; a look-up in every write transaction held the hub's one
            # SQLite writer lock for a statement longer on every message.
            async with self.database.write() as session:
                return await self._store_inbound(session, inbound)
        except IntegrityError:
            # Stored before (a re-delivery, or another process a moment ago): its receipt.
            async with self.database.read() as session:
                existing = await self._find_inbound(session, inbound)
            if existing is None:
                raise
            return existing

    @staticmethod
    async def _find_inbound(session: AsyncSession, inbound: InboundMessage) -> Receipt | None:
        row = (
            await session.execute(
                select(Message.id, Message.conversation_id, Conversation.customer_id)
                .join(Conversation, Conversation.id == Message.conversation_id)
                .where(
                    Message.channel == inbound.address.channel,
                    Message.channel_message_id == inbound.channel_message_id,
                )
            )
        ).first()
        if row is None:
            return None
        return Receipt(
            message_id=row[0], conversation_id=row[1], customer_id=row[2], duplicate=True
        )

    async def _store_inbound(self, session: AsyncSession, inbound: InboundMessage) -> Receipt:
        channel = inbound.address.channel
        address = normalise_address(channel, inbound.address.address, self.default_region)
        # Most messages come from a known contact whose conversation goes on: the short path.
        continued = await continue_conversation(
            session, inbound, CustomerAddress(channel, address), utcnow()
        )
        if continued is not None:
            return continued
        language = inbound.language or detect_language(inbound.text)
        customer, ident = await identity.identify(
            session,
            inbound.address,
            inbound.verified,
            inbound.display_name,
            region=self.default_region,
        )
        if customer.language is None:
            customer.language = language
        conversation = await conversations.open_or_continue(session, customer, ident, language)
        conversation.verified = ident.verified
        message = Message(
            conversation_id=conversation.id,
            channel=inbound.address.channel,
            channel_message_id=inbound.channel_message_id,
            direction=Direction.INBOUND,
            author=Author.CUSTOMER,
            text=inbound.text,
            media_urls=list(inbound.media_urls),
            sources=[],
            meta={},
            delivery_status=DeliveryStatus.RECEIVED,
            created_at=inbound.received_at or utcnow(),
        )
        session.add(message)
        await session.flush()
        return Receipt(
            message_id=message.id,
            conversation_id=conversation.id,
            customer_id=customer.id,
            duplicate=False,
        )

    # -- process --------------------------------------------------------------------------

    async def process(self, message_id: int, conversation_id: int) -> None:
        """Take one committed inbound message through the bot or to its human queue."""
        async with self.conversation_locks.hold(conversation_id):
            if self.hooks is not None:
                # The customer's words reach an agent who holds the conversation at once.
                await self.hooks.messages_stored(conversation_id, [message_id])
            await self._process_locked(message_id)

    async def _process_locked(self, message_id: int) -> None:
        work = await self._read_work(message_id)
        if work is None:
            return
        # "typing: false" goes out after the replies, so a client knows the turn is complete.
        await self.gateway.typing(work.address, work.context.conversation_id, Author.BOT, True)
        try:
            reply = await self._ask_bot(work)
            outbound = await self._store_reply(work, reply)
            await self._deliver(outbound)
            await self._after_reply(work.context.conversation_id, outbound)
        finally:
            await self.gateway.typing(work.address, work.context.conversation_id, Author.BOT, False)

    async def _after_reply(self, conversation_id: int, outbound: Sequence[OutboundMessage]) -> None:
        """Tell routing about the turn's committed replies, and about a handoff to route."""
        if self.hooks is None or not outbound:
            return
        await self.hooks.messages_stored(conversation_id, [m.message_id for m in outbound])
        if any(m.handoff for m in outbound):
            await self.hooks.handed_off(conversation_id)

    async def _read_work(self, message_id: int) -> _Work | None:
        """Load what the bot needs; hand over to a human conversation right away."""
        # A read, not a write: on SQLite a write transaction holds the hub's one writer lock,
        # and most turns only read here. Core rows: nothing read here is changed.
        async with self.database.read() as session:
            turn = (await session.execute(turn_sql.TURN, {"message_id": message_id})).first()
            if turn is None or turn.handled_at is not None:
                return None
            if turn.status == ConversationStatus.BOT:
                return _Work(
                    message_id=turn.message_id,
                    text=turn.text,
                    address=CustomerAddress(turn.identity_channel, turn.address),
                    context=await self._context(session, turn),
                    customer_id=turn.customer_id,
                )
        # Queued or with an agent: the agent's console shows it; the bot keeps out.
        async with self.database.write() as session:
            await session.execute(
                turn_sql.MARK_HANDLED, {"message_id": message_id, "now": utcnow()}
            )
        return None

    async def _context(self, session: AsyncSession, turn: Row[*tuple[Any, ...]]) -> CustomerContext:
        """What the bot may know: the turn's row (`turn_sql.TURN`) and the conversation so far."""
        history = await session.execute(
            turn_sql.HISTORY,
            {"conversation_id": turn.conversation_id, "before_id": turn.message_id},
        )
        previous = list(reversed(list(history)))
        shown: dict[str, Source] = {}
        for earlier in previous:
            for source in earlier.sources or []:
                shown[str(source["id"])] = Source(id=str(source["id"]), title=str(source["title"]))
        return CustomerContext(
            customer_id=turn.customer_id,
            conversation_id=turn.conversation_id,
            channel=turn.channel,
            verified=turn.verified,
            language=detect_language(turn.text, fallback=turn.language or "zh"),
            display_name=turn.display_name if turn.verified else None,
            segment=turn.segment,
            external_id=turn.external_id if turn.verified else None,
            previous_messages=tuple((m.author, m.text) for m in previous),
            consecutive_misses=turn.bot_misses,
            articles_shown=tuple(shown.values()),
            topic=turn.topic,
        )

    async def _ask_bot(self, work: _Work) -> BotReply:
        try:
            return await self.bot.respond(work.text, work.context)
        except Exception:
            # A broken bot must never strand a customer: hand off and say so.
            log.exception(
                "bot %s failed on message %s; handing off", self.bot.name, work.message_id
            )
            language = work.context.language if work.context.language in BOT_FAILURE_TEXT else "en"
            return BotReply(
                texts=(),
                language=language,
                handoff=HandoffContext(
                    reason="bot_error",
                    skill=Skill.GENERAL,
                    summary=work.text[:200],
                    bot=self.bot.name,
                ),
                handoff_text=BOT_FAILURE_TEXT[language],
                bot=self.bot.name,
            )

    async def _store_reply(self, work: _Work, reply: BotReply) -> list[OutboundMessage]:
        """Commit the bot's replies (and the handoff) with the inbound message marked handled."""
        if reply.handoff is None:
            return await self._store_answer(work, reply)
        now = utcnow()
        async with self.database.write() as session:
            row = await _turn_rows(session, work.message_id)
            assert row is not None  # messages are never deleted while the hub runs
            message, conversation, customer, ident = row
            if message.handled_at is not None:
                return []  # processed elsewhere meanwhile (a resumed duplicate run)
            message.handled_at = now
            stored: list[Message] = []
            meta = {"bot": reply.bot, "intent": reply.intent, "confidence": reply.confidence}
            sources = [{"id": s.id, "title": s.title} for s in reply.sources]
            for text in reply.texts:
                stored.append(self._outbound(conversation, Author.BOT, text, sources, meta, now))
            topic = reply.topic or (reply.intent if reply.intent not in SMALL_TALK else None)
            if topic:
                conversation.topic = topic
            conversation.bot_misses = conversation.bot_misses + 1 if reply.missed else 0
            if reply.handoff is not None and conversation.status == ConversationStatus.BOT:
                await queues.enqueue(session, conversation, customer, reply.handoff)
                session.add(
                    ConversationEvent(
                        conversation_id=conversation.id,
                        kind="handoff",
                        at=now,
                        data={
                            "reason": reply.handoff.reason,
                            "skill": reply.handoff.skill,
                            "bot": reply.handoff.bot,
                            "priority": conversation.priority,
                        },
                    )
                )
                position = await queues.queue_position(session, conversation)
                text = (reply.handoff_text or "").replace("{position}", str(position))
                notice = self._outbound(
                    conversation, Author.SYSTEM, text, [], {"queue_position": position}, now
                )
                notice.handoff = True
                stored.append(notice)
            for item in stored:
                session.add(item)
            if stored and conversation.first_response_at is None:
                conversation.first_response_at = now
            conversation.last_message_at = now
            await session.flush()
            address = CustomerAddress(ident.channel, ident.address)
            return [to_outbound(m, address) for m in stored]

    async def _store_answer(self, work: _Work, reply: BotReply) -> list[OutboundMessage]:
        """Commit a reply that hands nothing off, with the inbound message marked handled.

        Every answered turn ends here, so it is written with prebuilt Core statements that
        change rows by condition instead of loading them into the ORM first (about 0.8 ms of
        the event loop's CPU less per turn; docs/benchmarks.md). Same outcome as the ORM path
        of `_store_reply`, which handoffs take: the message is marked handled only if nothing
        handled it meanwhile, the replies are inserted, and the conversation's topic, miss
        count, first response and last message are updated from their current values.
        """
        now = utcnow()
        conversation_id = work.context.conversation_id
        meta = {"bot": reply.bot, "intent": reply.intent, "confidence": reply.confidence}
        meta = {k: v for k, v in meta.items() if v is not None}
        sources = [{"id": s.id, "title": s.title} for s in reply.sources]
        outbound: list[OutboundMessage] = []
        async with self.database.write() as session:
            marked = cast(
                CursorResult[Any],
                await session.execute(
                    turn_sql.MARK_HANDLED, {"message_id": work.message_id, "now": now}
                ),
            )
            if marked.rowcount == 0:
                return []  # processed elsewhere meanwhile (a resumed duplicate run)
            for text in reply.texts:
                row = {
                    "conversation_id": conversation_id,
                    "channel": work.context.channel,
                    "direction": Direction.OUTBOUND,
                    "author": Author.BOT,
                    "text": text,
                    "sources": sources,
                    "handoff": False,
                    "internal": False,
                    "media_urls": [],
                    "meta": meta,
                    "delivery_status": DeliveryStatus.PENDING,
                    "created_at": now,
                }
                message_id = (await session.execute(turn_sql.INSERT_MESSAGE, row)).scalar_one()
                outbound.append(
                    OutboundMessage(
                        message_id=message_id,
                        conversation_id=conversation_id,
                        address=work.address,
                        author=Author.BOT,
                        text=text,
                        sources=reply.sources,
                        created_at=now,
                    )
                )
            topic = reply.topic or (reply.intent if reply.intent not in SMALL_TALK else None)
            await session.execute(
                turn_sql.TOUCH_AFTER_ANSWER,
                {
                    "conversation_id": conversation_id,
                    "new_topic": topic,
                    "missed": reply.missed,
                    "answered_at": now if outbound else None,
                    "now": now,
                },
            )
        return outbound

    @staticmethod
    def _outbound(
        conversation: Conversation,
        author: Author,
        text: str,
        sources: list[dict[str, str]],
        meta: Mapping[str, object],
        now: datetime,
    ) -> Message:
        return Message(
            conversation_id=conversation.id,
            channel=conversation.channel,
            direction=Direction.OUTBOUND,
            author=author,
            text=text,
            sources=sources,
            media_urls=[],
            meta={k: v for k, v in meta.items() if v is not None},
            delivery_status=DeliveryStatus.PENDING,
            created_at=now,
        )

    async def _deliver(self, outbound: Sequence[OutboundMessage]) -> None:
        """Hand committed messages to the channel, then record how that went."""
        if not outbound:
            return
        results = [await self.gateway.deliver(m) for m in outbound]
        # In the outbox, the runner records how delivery went; the rest is recorded here.
        await self.delivery_records.record(
            [
                (item.message_id, result)
                for item, result in zip(outbound, results, strict=True)
                if not result.queued
            ]
        )

    # -- recovery -------------------------------------------------------------------------

    async def resume_unhandled(self) -> int:
        """Process inbound messages a crash left unhandled (received within the last hour)."""
        since = utcnow() - RESUME_WINDOW
        async with self.database.read() as session:
            rows = list(
                await session.execute(
                    select(Message.id, Message.conversation_id)
                    .where(
                        Message.direction == Direction.INBOUND,
                        Message.handled_at.is_(None),
                        Message.created_at >= since,
                    )
                    .order_by(Message.id)
                )
            )
        for message_id, conversation_id in rows:
            self.tasks.spawn(self.process(message_id, conversation_id), name=f"resume-{message_id}")
        if rows:
            log.info("resuming %d unhandled inbound messages", len(rows))
        return len(rows)


async def _turn_rows(
    session: AsyncSession, message_id: int
) -> tuple[Message, Conversation, Customer, Identity] | None:
    """The message with its conversation, customer and identity, in one query."""
    row = (await session.execute(turn_sql.TURN_ROWS, {"message_id": message_id})).first()
    if row is None:
        return None
    return row[0], row[1], row[2], row[3]
