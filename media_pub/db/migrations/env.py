"""Alembic environment: the URL comes from the config set by media_pub.db.engine."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text

from media_pub.db.models import Base

config = context.config
target_metadata = Base.metadata
MIGRATION_LOCK = 0x6D656469  # PostgreSQL advisory lock: processes starting at once migrate one at a time


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url
    engine = create_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=url.startswith("sqlite")
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":  # the others wait here, then find nothing to do
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
