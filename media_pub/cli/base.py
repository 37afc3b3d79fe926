"""What every CLI command shares: error rendering, settings and the wired container."""

from __future__ import annotations

import logging
from typing import Any

import typer
from typer.core import TyperGroup

from media_pub.bootstrap import Container, bootstrap
from media_pub.config import Settings, get_settings
from media_pub.errors import MediaPubError


class ErrorsAsOneLine(TyperGroup):
    """Domain errors end a command with one line on stderr and exit code 1 (2 stays for usage errors)."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MediaPubError as exc:
            typer.echo(f"error: {exc.title}: {exc.detail}", err=True)
            raise typer.Exit(1) from None


def new_app(help_text: str) -> typer.Typer:
    return typer.Typer(
        cls=ErrorsAsOneLine, help=help_text, no_args_is_help=True, pretty_exceptions_enable=False
    )


def setup_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )


def container() -> Container:
    settings = get_settings()
    return bootstrap(settings)
