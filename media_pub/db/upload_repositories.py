"""Queries on resumable uploads kept in the database (tus on S3): a lock taken by a conditional UPDATE.

Every write of a PATCH's progress is conditional on its lock token, so a writer that lost its lock (it
stalled past the lease and another request took over) can never overwrite the newer state.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from media_pub.db.models import ResumableUpload


def take_lock(session: Session, upload_id: str, token: str, now: datetime, lease: timedelta) -> bool:
    """Lock the upload for `token` unless another live lock holds it; True if taken (not yet committed)."""
    result = session.execute(
        update(ResumableUpload)
        .where(
            ResumableUpload.id == upload_id,
            or_(ResumableUpload.lock_token.is_(None), ResumableUpload.lock_expires_at <= now),
        )
        .values(lock_token=token, lock_expires_at=now + lease)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def save_locked(session: Session, upload_id: str, token: str, **values: Any) -> bool:
    """Write `values` if `token` still holds the lock; False if it was lost (not yet committed)."""
    result = session.execute(
        update(ResumableUpload)
        .where(ResumableUpload.id == upload_id, ResumableUpload.lock_token == token)
        .values(**values)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def release_lock(session: Session, upload_id: str, token: str) -> None:
    session.execute(
        update(ResumableUpload)
        .where(ResumableUpload.id == upload_id, ResumableUpload.lock_token == token)
        .values(lock_token=None, lock_expires_at=None)
    )


def delete_upload(session: Session, upload_id: str) -> None:
    session.execute(delete(ResumableUpload).where(ResumableUpload.id == upload_id))


def expired_uploads(session: Session, now: datetime) -> list[ResumableUpload]:
    """Uploads past their expiry that no live request is writing."""
    return list(
        session.scalars(
            select(ResumableUpload).where(
                ResumableUpload.expires_at <= now,
                or_(ResumableUpload.lock_token.is_(None), ResumableUpload.lock_expires_at <= now),
            )
        )
    )
