"""FastAPI dependencies: the container, a unit of work, and the caller."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, Request

from media_pub.bootstrap import Container
from media_pub.db.models import User
from media_pub.db.uow import UnitOfWork
from media_pub.services.auth import authenticate


def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(get_container)]


def get_uow(container: ContainerDep) -> Iterator[UnitOfWork]:
    with container.uow() as uow:
        yield uow


UowDep = Annotated[UnitOfWork, Depends(get_uow)]


def bearer_token(authorization: Annotated[str | None, Header()] = None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def current_user(uow: UowDep, token: Annotated[str | None, Depends(bearer_token)]) -> User:
    return authenticate(uow, token)


UserDep = Annotated[User, Depends(current_user)]
