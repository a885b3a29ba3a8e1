"""The SQL of an answered bot turn, built once at import.

Every customer message runs these, so they are kept lean (docs/benchmarks.md, "the hot
path"): built once with `bindparam`, because building a statement and its cache key costs
SQLAlchemy about as much CPU as executing it; and Core statements on the tables, because
loading and flushing ORM objects cost more than the statements themselves. A turn that
answers from a known contact runs ten statements (`tests/routing/test_statement_budget.py`):

* accept (`routing/continuing.py`): `CONTACT`, `TOUCH_CONVERSATION`, `INSERT_MESSAGE`
  (and `TOUCH_IDENTITY` at most once a minute);
* the bot's read (`routing/router.py`): `TURN`, `HISTORY` (and the quoted article,
  `knowledge/service.py`);
* the answer: `MARK_HANDLED`, `INSERT_MESSAGE`, `TOUCH_AFTER_ANSWER`;
* the delivery status, shared by concurrent turns (`routing/delivery_records.py`).

First contacts, verification changes, idle conversations and handoffs take the general path
(ORM, `routing/identity.py`, `routing/conversations.py`, `routing/queues.py`); a new
statement every message runs belongs here.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import Boolean, Table, bindparam, case, func, insert, select, update

from hub.domain import ConversationStatus
from hub.storage.models import Conversation, Customer, Identity, Message

# The bot's context: this many messages before the one it answers.
CONTEXT_MESSAGES = 8

_messages = cast(Table, Message.__table__)
_conversations = cast(Table, Conversation.__table__)
_customers = cast(Table, Customer.__table__)
_identities = cast(Table, Identity.__table__)
m, v, c, i = _messages.c, _conversations.c, _customers.c, _identities.c

# -- accept: a known contact's message ------------------------------------------------------

# The identity's newest conversation that is not closed (as routing.conversations finds it).
_OPEN_CONVERSATION_ID = (
    select(func.max(v.id))
    .where(v.identity_id == i.id, v.status != ConversationStatus.CLOSED)
    .correlate(_identities)
    .scalar_subquery()
)
# The contact at (channel, address) with its customer and open conversation, in one row.
CONTACT = (
    select(
        i.id.label("identity_id"),
        i.customer_id,
        i.verified,
        i.last_seen_at,
        c.language,
        c.external_id,
        v.id.label("conversation_id"),
        v.status,
        v.last_message_at,
    )
    .join(_customers, c.id == i.customer_id)
    .outerjoin(_conversations, v.id == _OPEN_CONVERSATION_ID)
    .where(i.channel == bindparam("channel"), i.address == bindparam("address"))
)
TOUCH_CONVERSATION = (
    update(_conversations)
    .where(v.id == bindparam("conversation_id"))
    .values(
        last_message_at=bindparam("now", type_=v.last_message_at.type),
        verified=bindparam("identity_verified", type_=v.verified.type),
    )
)
TOUCH_IDENTITY = (
    update(_identities)
    .where(i.id == bindparam("identity_id"))
    .values(last_seen_at=bindparam("now", type_=i.last_seen_at.type))
)
# Inserts one message (columns from the parameters' keys) and returns its id.
INSERT_MESSAGE = insert(_messages).returning(m.id)

# -- the bot's read ---------------------------------------------------------------------------

# What the bot's turn needs to know, in one row.
TURN = (
    select(
        m.id.label("message_id"),
        m.text,
        m.handled_at,
        v.id.label("conversation_id"),
        v.status,
        v.channel,
        v.language,
        v.bot_misses,
        v.topic,
        c.id.label("customer_id"),
        c.display_name,
        c.segment,
        c.external_id,
        i.channel.label("identity_channel"),
        i.address,
        i.verified,
    )
    .join(_conversations, v.id == m.conversation_id)
    .join(_customers, c.id == v.customer_id)
    .join(_identities, i.id == v.identity_id)
    .where(m.id == bindparam("message_id"))
)
# The conversation's messages before this one, newest first.
HISTORY = (
    select(m.author, m.text, m.sources)
    .where(
        m.conversation_id == bindparam("conversation_id"),
        m.id < bindparam("before_id"),
        m.internal.is_(False),
    )
    .order_by(m.id.desc())
    .limit(CONTEXT_MESSAGES)
)

# -- the answer -----------------------------------------------------------------------------

# Marks an inbound message handled unless something did already (the row count says which).
MARK_HANDLED = (
    update(_messages)
    .where(m.id == bindparam("message_id"), m.handled_at.is_(None))
    .values(handled_at=bindparam("now", type_=m.handled_at.type))
)
# The conversation after an answer; a NULL `new_topic` or `answered_at` keeps the column.
TOUCH_AFTER_ANSWER = (
    update(_conversations)
    .where(v.id == bindparam("conversation_id"))
    .values(
        topic=func.coalesce(bindparam("new_topic", type_=v.topic.type), v.topic),
        bot_misses=case((bindparam("missed", type_=Boolean), v.bot_misses + 1), else_=0),
        first_response_at=func.coalesce(
            v.first_response_at, bindparam("answered_at", type_=v.first_response_at.type)
        ),
        last_message_at=bindparam("now", type_=v.last_message_at.type),
    )
)

# -- the handoff path (ORM: it changes the rows it reads) -----------------------------------------

# The message with its conversation, customer and identity, as ORM objects.
TURN_ROWS = (
    select(Message, Conversation, Customer, Identity)
    .join(Conversation, Conversation.id == Message.conversation_id)
    .join(Customer, Customer.id == Conversation.customer_id)
    .join(Identity, Identity.id == Conversation.identity_id)
    .where(Message.id == bindparam("message_id"))
)
