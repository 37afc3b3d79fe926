"""A database that cannot be reached is `Unavailable` (retryable), for reads as for commits."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from media_pub.db.engine import make_engine, make_session_factory
from media_pub.db.uow import UnitOfWork
from media_pub.errors import Unavailable
from tests.s3server import free_port


def test_an_unreachable_database_is_unavailable() -> None:
    engine = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none?connect_timeout=2")
    uow = UnitOfWork(make_session_factory(engine))
    with pytest.raises(Unavailable) as caught, uow:
        uow.session.execute(text("SELECT 1"))
    assert caught.value.retryable
    assert "database is unavailable" in caught.value.detail
    engine.dispose()
