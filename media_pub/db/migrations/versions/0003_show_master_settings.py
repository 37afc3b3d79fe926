"""Per-show mastering settings: leveler, inner-silence shortening, renditions, video height, intro/outro.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("shows") as batch:
        batch.add_column(sa.Column("level", sa.Boolean(), nullable=False, server_default=sa.true()))
        batch.add_column(sa.Column("max_silence", sa.Float(), nullable=True))
        batch.add_column(sa.Column("renditions", sa.JSON(), nullable=False, server_default='["mp3", "aac"]'))
        batch.add_column(sa.Column("video_height", sa.Integer(), nullable=False, server_default="720"))
        batch.add_column(sa.Column("intro_key", sa.String(length=500), nullable=True))
        batch.add_column(sa.Column("outro_key", sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("shows") as batch:
        batch.drop_column("outro_key")
        batch.drop_column("intro_key")
        batch.drop_column("video_height")
        batch.drop_column("renditions")
        batch.drop_column("max_silence")
        batch.drop_column("level")
