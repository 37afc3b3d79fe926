"""Per-show processing settings: mono loudness target, silence threshold and minimum length.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("shows") as batch:
        batch.add_column(sa.Column("loudness_target_mono", sa.Float(), nullable=False, server_default="-19"))
        batch.add_column(sa.Column("silence_threshold_db", sa.Float(), nullable=False, server_default="-50"))
        batch.add_column(sa.Column("silence_min_seconds", sa.Float(), nullable=False, server_default="0.5"))


def downgrade() -> None:
    with op.batch_alter_table("shows") as batch:
        batch.drop_column("silence_min_seconds")
        batch.drop_column("silence_threshold_db")
        batch.drop_column("loudness_target_mono")
