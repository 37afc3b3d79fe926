"""Unit of work: one transaction, with callbacks that run only after it commits (job enqueueing)."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from media_pub.errors import Unavailable

# session.info key: {show_id: (slug, reason)} of the shows whose feeds changed in this transaction.
FEEDS_CHANGED = "feeds_changed"
FeedsChanged = Callable[[list[tuple[str, str]]], None]


class UnitOfWork:
    """`with uow:` opens a session; `commit()` commits and then runs the after-commit callbacks.

    `on_feeds_changed`, when given, is told after each commit which shows' feeds changed (slug, reason).
    """

    def __init__(
        self, session_factory: sessionmaker[Session], on_feeds_changed: FeedsChanged | None = None
    ) -> None:
        self._factory = session_factory
        self._on_feeds_changed = on_feeds_changed
        self._after_commit: list[Callable[[], None]] = []
        self.session: Session

    def __enter__(self) -> UnitOfWork:
        self.session = self._factory()
        self._after_commit = []
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self.session.rollback()
            self.session.close()
        except DBAPIError as rollback_error:
            if exc is None:
                raise Unavailable(f"the database is unavailable: {rollback_error.orig}") from rollback_error
        if isinstance(exc, OperationalError):  # the server went away or refused us: worth retrying
            raise Unavailable(f"the database is unavailable: {exc.orig}") from exc

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the transaction has committed (never if it rolls back)."""
        self._after_commit.append(callback)

    def commit(self) -> None:
        try:
            self.session.commit()
        except OperationalError as exc:
            self.session.rollback()
            self.session.info.pop(FEEDS_CHANGED, None)
            raise Unavailable(f"the database is unavailable: {exc.orig}") from exc
        except DBAPIError:
            self.session.rollback()
            self.session.info.pop(FEEDS_CHANGED, None)
            raise
        callbacks, self._after_commit = self._after_commit, []
        changed = self.session.info.pop(FEEDS_CHANGED, None)
        for callback in callbacks:
            callback()
        if changed and self._on_feeds_changed is not None:
            self._on_feeds_changed(list(changed.values()))


UowFactory = Callable[[], UnitOfWork]
