"""The typed input of every `/agent` and `/supervisor` client event (docs/console-contract.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from routing.agent_actions import Resolution

Id = Annotated[int, Field(strict=True, gt=0)]
ClientId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-.:]{1,100}$")]
# Skill names are configurable; this keeps them to what a queue name can be.
SkillName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,49}$")]
Note = Annotated[str, Field(max_length=2000)]


class EventInput(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class NoInput(EventInput):
    """`heartbeat` and other events that carry nothing."""


class PresenceInput(EventInput):
    status: Literal["available", "away", "offline"]


class ConversationInput(EventInput):
    conversation_id: Id


class SendInput(ConversationInput):
    text: str
    client_id: ClientId


class TypingInput(ConversationInput):
    typing: StrictBool


class ReadInput(ConversationInput):
    message_id: Id


class TransferInput(ConversationInput):
    to_agent_id: Id | None = None
    to_skill: SkillName | None = None
    note: Note = ""


class WrapUpInput(ConversationInput):
    resolution: Resolution
    topic: Annotated[str, Field(min_length=1, max_length=100)]
    note: Note | None = None
