"""Complete feeds: Podcasting 2.0 values, feed guids and moves, transcripts, livestreams, supporters.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("shows") as batch:
        batch.add_column(sa.Column("medium", sa.String(16), nullable=False, server_default="podcast"))
        batch.add_column(sa.Column("feed_guids", sa.JSON(), nullable=False, server_default="{}"))
        batch.add_column(sa.Column("location", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("license", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("txt", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("update_frequency", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("moved_to", sa.String(2000), nullable=True))
        batch.add_column(sa.Column("feed_page_size", sa.Integer(), nullable=True))
    with op.batch_alter_table("episodes") as batch:
        batch.add_column(sa.Column("supporter_only", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("audio_feed", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("persons", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("funding", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("location", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("license", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("txt", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("soundbites", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("season_name", sa.String(128), nullable=True))
        batch.add_column(sa.Column("episode_display", sa.String(32), nullable=True))
        batch.add_column(sa.Column("livestream_id", sa.String(32), nullable=True))
        batch.create_index("ix_episodes_livestream_id", ["livestream_id"])
    op.create_table(
        "show_aliases",
        sa.Column("slug", sa.String(64), primary_key=True),
        sa.Column("show_id", sa.String(32), sa.ForeignKey("shows.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_show_aliases_show_id", "show_aliases", ["show_id"])
    op.create_table(
        "transcripts",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "episode_id", sa.String(32), sa.ForeignKey("episodes.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("language", sa.String(35), nullable=False),
        sa.Column("source_format", sa.String(8), nullable=False),
        sa.Column("source_key", sa.String(500), nullable=False),
        sa.Column("vtt_key", sa.String(500), nullable=False),
        sa.Column("json_key", sa.String(500), nullable=False),
        sa.Column("cues", sa.Integer(), nullable=False),
        sa.Column("captions", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("episode_id", "language"),
    )
    op.create_index("ix_transcripts_episode_id", "transcripts", ["episode_id"])
    op.create_table(
        "livestreams",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("show_id", sa.String(32), sa.ForeignKey("shows.id", ondelete="CASCADE"), nullable=False),
        sa.Column("guid", sa.String(500), nullable=False, unique=True),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("notes_html", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("content_link", sa.String(2000), nullable=False),
        sa.Column("stream_url", sa.String(2000), nullable=True),
        sa.Column("stream_type", sa.String(100), nullable=True),
        sa.Column("publish_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("audio_feed", sa.Boolean(), nullable=False),
        sa.Column("persons", sa.JSON(), nullable=True),
        sa.Column("chapters", sa.JSON(), nullable=False),
        sa.Column("went_live_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("episode_id", sa.String(32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_livestreams_show_id", "livestreams", ["show_id"])
    op.create_index("ix_livestreams_status", "livestreams", ["status"])
    op.create_table(
        "supporters",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("show_id", sa.String(32), sa.ForeignKey("shows.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_supporters_show_id", "supporters", ["show_id"])
    # A show has several feeds now (audio, video, live, pages): the cache is keyed by show and feed name.
    op.drop_table("feed_cache")
    _feed_cache(with_name=True)


def _feed_cache(*, with_name: bool) -> None:
    columns = [
        sa.Column("show_id", sa.String(32), sa.ForeignKey("shows.id", ondelete="CASCADE"), primary_key=True),
        *([sa.Column("name", sa.String(32), primary_key=True)] if with_name else []),
        sa.Column("feed_version", sa.Integer(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("body_gzip", sa.LargeBinary(), nullable=False),
        sa.Column("etag", sa.String(80), nullable=False),
        sa.Column("last_modified", sa.DateTime(timezone=True), nullable=False),
    ]
    op.create_table("feed_cache", *columns)


def downgrade() -> None:
    op.drop_table("feed_cache")
    _feed_cache(with_name=False)
    op.drop_table("supporters")
    op.drop_table("livestreams")
    op.drop_table("transcripts")
    op.drop_table("show_aliases")
    with op.batch_alter_table("episodes") as batch:
        batch.drop_index("ix_episodes_livestream_id")
        for name in (
            "livestream_id", "episode_display", "season_name", "soundbites", "txt", "license",
            "location", "funding", "persons", "audio_feed", "supporter_only",
        ):  # fmt: skip
            batch.drop_column(name)
    with op.batch_alter_table("shows") as batch:
        for name in (
            "feed_page_size", "moved_to", "update_frequency", "txt", "license", "location",
            "feed_guids", "medium",
        ):  # fmt: skip
            batch.drop_column(name)
