"""app devices: the mobile app's push tokens

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "app_devices",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("customer_ref", sa.String(length=64), nullable=False),
        sa.Column("platform", sa.String(length=20), nullable=False),
        sa.Column("push_token", sa.String(length=512), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_devices")),
        sa.UniqueConstraint("push_token", name=op.f("uq_app_devices_push_token")),
    )
    with op.batch_alter_table("app_devices", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_app_devices_customer_ref"), ["customer_ref"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("app_devices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_app_devices_customer_ref"))
    op.drop_table("app_devices")
