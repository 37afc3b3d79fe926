"""Uploads over S3: resumable (tus) uploads in multipart parts and direct presigned uploads.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "resumable_uploads",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("length", sa.BigInteger(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("part_size", sa.BigInteger(), nullable=False),
        sa.Column("upload_metadata", sa.JSON(), nullable=False),
        sa.Column("storage_key", sa.String(500), nullable=False),
        sa.Column("s3_upload_id", sa.String(1024), nullable=True),
        sa.Column("parts", sa.JSON(), nullable=False),
        sa.Column("tail_size", sa.BigInteger(), nullable=False),
        sa.Column("completed", sa.Boolean(), nullable=False),
        sa.Column("lock_token", sa.String(32), nullable=True),
        sa.Column("lock_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_resumable_uploads_user_id", "resumable_uploads", ["user_id"])
    op.create_index("ix_resumable_uploads_expires_at", "resumable_uploads", ["expires_at"])
    op.create_table(
        "direct_uploads",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "episode_id", sa.String(32), sa.ForeignKey("episodes.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("storage_key", sa.String(500), nullable=False),
        sa.Column("s3_upload_id", sa.String(1024), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("part_size", sa.BigInteger(), nullable=False),
        sa.Column("filename", sa.String(500), nullable=True),
        sa.Column("content_type", sa.String(100), nullable=True),
        sa.Column("trim_start", sa.String(32), nullable=True),
        sa.Column("trim_end", sa.String(32), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_direct_uploads_episode_id", "direct_uploads", ["episode_id"])
    op.create_index("ix_direct_uploads_expires_at", "direct_uploads", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_direct_uploads_expires_at", "direct_uploads")
    op.drop_index("ix_direct_uploads_episode_id", "direct_uploads")
    op.drop_table("direct_uploads")
    op.drop_index("ix_resumable_uploads_expires_at", "resumable_uploads")
    op.drop_index("ix_resumable_uploads_user_id", "resumable_uploads")
    op.drop_table("resumable_uploads")
