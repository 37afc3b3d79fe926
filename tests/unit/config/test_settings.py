"""Settings: defaults, nesting, and .env.example documenting every variable."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from media_pub.config import Settings

ROOT = Path(__file__).resolve().parents[3]


def env_variables(model: type[BaseModel], prefix: str) -> set[str]:
    """Every environment variable a settings model reads (nested models with `__`)."""
    names: set[str] = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names |= env_variables(annotation, f"{prefix}{name.upper()}__")
        else:
            names.add(f"{prefix}{name.upper()}")
    return names


def test_env_example_documents_every_variable() -> None:
    documented = set(re.findall(r"^#?\s*(MEDIA_PUB_[A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert documented == env_variables(Settings, "MEDIA_PUB_")


def test_readme_names_every_variable() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = sorted(v for v in env_variables(Settings, "MEDIA_PUB_") if v not in readme)
    assert not missing


def test_nested_storage_from_environment(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MEDIA_PUB_STORAGE__BACKEND", "s3")
    monkeypatch.setenv("MEDIA_PUB_STORAGE__BUCKET", "shows")
    monkeypatch.setenv("MEDIA_PUB_DATA_DIR", "/srv/mp")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.storage.backend == "s3"
    assert settings.storage.bucket == "shows"
    assert settings.storage.root == Path("/srv/mp/media")
    assert settings.effective_database_url == "sqlite:////srv/mp/media_pub.db"
