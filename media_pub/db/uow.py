"""Unit of work: one transaction, with callbacks that run only after it commits (job enqueueing)."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from media_pub.errors import Unavailable


class UnitOfWork:
    """`with uow:` opens a session; `commit()` commits and then runs the after-commit callbacks."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._factory = session_factory
        self._after_commit: list[Callable[[], None]] = []
        self.session: Session

    def __enter__(self) -> UnitOfWork:
        self.session = self._factory()
        self._after_commit = []
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.session.rollback()
        self.session.close()

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the transaction has committed (never if it rolls back)."""
        self._after_commit.append(callback)

    def commit(self) -> None:
        try:
            self.session.commit()
        except OperationalError as exc:
            self.session.rollback()
            raise Unavailable(f"the database is unavailable: {exc.orig}") from exc
        except DBAPIError:
            self.session.rollback()
            raise
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            callback()


UowFactory = Callable[[], UnitOfWork]
