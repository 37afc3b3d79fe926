"""Persistence: SQLAlchemy 2 models, unit of work, Alembic migrations."""
