"""Alembic environment: migrations run on a connection handed in by `hub.storage.migrate`."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from hub.storage.models import Base

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError(
        "Run migrations with `servicehub db upgrade`, which supplies the connection."
    )

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
