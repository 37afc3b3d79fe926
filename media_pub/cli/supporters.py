"""Supporters (private feeds) from the command line, on the local database."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

import typer

from media_pub.cli.base import container, new_app
from media_pub.errors import InvalidInput
from media_pub.services import auth
from media_pub.services import supporters as svc

supporter_app = new_app("Supporters and their private feeds.")


def parse_expiry(value: str) -> datetime:
    """A date (expiring at 00:00 UTC that day) or an ISO 8601 time (UTC when it has no zone)."""
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"--expires takes a date (2027-01-01) or an ISO 8601 time, not {value!r}", code="invalid-expiry"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else "-"


@supporter_app.command("add")
def supporter_add(
    show: str,
    name: str,
    email: Annotated[str | None, typer.Option(help="Their e-mail (kept here, never published)")] = None,
    expires: Annotated[
        str | None, typer.Option(help="Expiry: a date (00:00 UTC that day) or an ISO 8601 time")
    ] = None,
) -> None:
    """Add a supporter to SHOW and print their private feed URL (shown only this once)."""
    expires_at = parse_expiry(expires) if expires else None
    c = container()
    try:
        with c.uow() as uow:
            supporter, token = svc.add_supporter(
                uow, auth.system_user(uow), show, name, email=email, expires_at=expires_at
            )
            uow.commit()
        typer.echo(
            f"added supporter {supporter.name!r} (id {supporter.id}); their private feed URL (shown once):",
            err=True,
        )
        typer.echo(c.urls.private_feed(show, token))
    finally:
        c.close()


@supporter_app.command("list")
def supporter_list(show: str) -> None:
    """List SHOW's supporters (tab-separated; no tokens, only their first characters)."""
    c = container()
    try:
        with c.uow() as uow:
            rows = svc.list_supporters(uow, auth.system_user(uow), show)
            uow.commit()  # the CLI's system user, made on first use
            typer.echo("id\tname\temail\tprefix\tstatus\tcreated\texpires")
            for s in rows:
                typer.echo(
                    f"{s.id}\t{s.name}\t{s.email or '-'}\t{s.prefix}\t{svc.supporter_status(s)}"
                    f"\t{_when(s.created_at)}\t{_when(s.expires_at)}"
                )
    finally:
        c.close()


@supporter_app.command("revoke")
def supporter_revoke(supporter_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Revoke a supporter's private feed for good (its URL answers 410 from now on)."""
    c = container()
    try:
        with c.uow() as uow:
            supporter = svc.get_supporter(uow, auth.system_user(uow), supporter_id)
            already = supporter.revoked_at is not None
            svc.revoke_supporter(uow, auth.system_user(uow), supporter_id)
            uow.commit()
        typer.echo(
            f"{'already revoked' if already else 'revoked'}: supporter {supporter_id} ({supporter.name})"
        )
    finally:
        c.close()
