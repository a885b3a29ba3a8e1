"""index messages by the provider's message id, for delivery receipts

Status callbacks (Twilio, Meta) name the message by the id the provider gave it when we
sent it; without this index every receipt scanned the messages table.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_messages_channel_provider_message_id",
        "messages",
        ["channel", "provider_message_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_messages_channel_provider_message_id", table_name="messages")
