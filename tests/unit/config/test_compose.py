"""deploy/compose.yaml: its MEDIA_PUB_* variables are real settings, its commands real CLI commands."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
import typer

from media_pub.cli.main import app
from media_pub.config import Settings
from tests.unit.config.test_settings import env_variables

yaml = pytest.importorskip("yaml", reason="PyYAML (installed with moto[server]) reads the compose file")

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = ROOT / "deploy" / "compose.yaml"
SHARED = ("MEDIA_PUB_DATABASE_URL", "MEDIA_PUB_BROKER_URL")


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):  # the KEY=value form
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _invocations(service: dict[str, Any]) -> list[list[str]]:
    """The media-pub command lines a service runs (through `sh -c "a && b"` too)."""
    command = service["command"]
    words = shlex.split(command) if isinstance(command, str) else list(command)
    if words[:2] == ["sh", "-c"]:
        return [shlex.split(part) for part in words[2].split("&&")]
    return [words]


def test_services_are_there(services: dict[str, Any]) -> None:
    assert {"postgres", "redis", "minio", "createbucket", "api", "worker"} <= set(services)
    assert "healthcheck" in services["postgres"]
    assert services["api"]["image"] == services["worker"]["image"]
    assert "container_name" not in services["worker"], "workers scale with --scale worker=N"


def test_every_variable_is_a_setting(services: dict[str, Any]) -> None:
    known = env_variables(Settings, "MEDIA_PUB_")
    for name, service in services.items():
        unknown = sorted(v for v in _environment(service) if v.startswith("MEDIA_PUB_") and v not in known)
        assert not unknown, f"{name} sets variables media_pub does not read: {unknown}"


def test_environment_builds_settings(services: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    for variable, value in _environment(services["api"]).items():
        monkeypatch.setenv(variable, value)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.database_url is not None
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert settings.broker_url is not None
    assert settings.broker_url.startswith("redis://")
    assert settings.storage.backend == "s3"
    assert settings.storage.endpoint_url == "http://minio:9000"


def test_api_and_worker_share_database_broker_and_storage(services: dict[str, Any]) -> None:
    api, worker = _environment(services["api"]), _environment(services["worker"])
    shared = [v for v in api if v in SHARED or v.startswith("MEDIA_PUB_STORAGE__")]
    assert set(SHARED) <= set(shared)
    assert "MEDIA_PUB_STORAGE__BACKEND" in shared
    assert {v: api[v] for v in shared} == {v: worker.get(v) for v in shared}


def _resolve(words: list[str]) -> None:
    """Parse a media-pub command line with the real CLI, without running it."""
    assert words[0] == "media-pub", words
    command: Any = typer.main.get_command(app)  # a click command of typer's own (vendored) click
    rest = words[1:]
    while hasattr(command, "commands"):  # a group: descend by name
        name, rest = rest[0], rest[1:]
        command = command.commands.get(name)
        assert command is not None, f"no command {name!r} in {words}"
    command.make_context(words[-1], rest)  # raises a UsageError on an unknown option


def test_commands_exist_in_the_cli(services: dict[str, Any]) -> None:
    api = _invocations(services["api"])
    assert [w[:3] for w in api] == [["media-pub", "db", "upgrade"], ["media-pub", "serve", "--host"]]
    worker = _invocations(services["worker"])
    assert [w[:2] for w in worker] == [["media-pub", "worker"]]
    for words in api + worker:
        _resolve(words)


def test_unknown_commands_are_caught() -> None:
    with pytest.raises(AssertionError):
        _resolve(["media-pub", "db", "downgrade-everything"])
    with pytest.raises(Exception, match="no-such-option"):
        _resolve(["media-pub", "worker", "--no-such-option"])


def test_image_is_the_package_on_python_311(services: dict[str, Any]) -> None:
    build = services["api"]["build"]
    dockerfile = (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve()
    text = dockerfile.read_text()
    assert "FROM python:3.11-slim" in text
    assert "pip install ." in text
    assert services["worker"]["build"] == build
