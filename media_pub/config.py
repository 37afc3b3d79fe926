"""Settings, read from MEDIA_PUB_* environment variables (and .env). Imports nothing from media_pub."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class StorageSettings(BaseModel):
    """Where media objects live."""

    backend: Literal["local", "s3"] = "local"
    root: Path = Path("data/media")
    bucket: str = "media-pub"
    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    key_prefix: str = ""
    public_base_url: str | None = None
    presign_seconds: int = Field(default=3600, ge=60, le=604800)
    multipart_threshold_mb: int = Field(default=16, ge=5)
    multipart_chunk_mb: int = Field(default=16, ge=5)


class Settings(BaseSettings):
    """All configuration of a media_pub process."""

    model_config = SettingsConfigDict(
        env_prefix="MEDIA_PUB_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="forbid",
    )

    env: Literal["development", "production", "test"] = "development"
    data_dir: Path = Path("data")
    database_url: str | None = None
    broker_url: str | None = None
    base_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = 8000
    max_upload_bytes: int = Field(default=8 * 1024**3, ge=1)
    probe_timeout_seconds: float = Field(default=120.0, gt=0)
    probe_memory_mb: int = Field(default=1024, ge=64)
    job_timeout_seconds: float = Field(default=4 * 3600.0, gt=0)
    scheduler_interval_seconds: float = Field(default=15.0, gt=0)
    job_threads: int = Field(default=2, ge=1)
    log_level: str = "INFO"
    token: SecretStr | None = None  # the API token the CLI's remote commands send (episode upload)
    websub_hubs: list[str] = []  # WebSub hubs told of every feed change (and named in the feeds)
    podping_url: str | None = None  # e.g. https://podping.cloud/ : told of every feed change
    podping_token: SecretStr | None = None  # sent as its Authorization header
    notify_attempts: int = Field(default=6, ge=1, le=20)  # per notification, with exponential backoff
    # Jobs: a running job holds a lease that its heartbeat renews every third of it; a job whose lease ran
    # out (its worker died) is sent again. The broker redelivers unacknowledged messages after the timeout.
    job_lease_seconds: float = Field(default=60.0, ge=2.0)
    broker_visibility_timeout: int = Field(default=3600, ge=1)
    # The sweeper deletes stored objects no row refers to once they are older than the grace period.
    sweep_grace_seconds: float = Field(default=24 * 3600.0, ge=0)
    sweep_interval_seconds: float = Field(default=3600.0, gt=0)
    # --- uploads over S3 (resumable and direct) ---
    direct_upload_url_seconds: int = Field(default=3600, ge=60, le=3600)  # presigned part URLs: short-lived
    direct_upload_expires_seconds: float = Field(default=6 * 3600.0, gt=0)  # then unfinished ones are aborted
    upload_lock_seconds: float = Field(
        default=30.0, ge=1.0
    )  # tus on S3: a PATCH's lock, renewed as it writes
    storage: StorageSettings = StorageSettings()

    @model_validator(mode="after")
    def _defaults_under_data_dir(self) -> Settings:
        if "root" not in self.storage.model_fields_set:
            self.storage.root = self.data_dir / "media"
        self.base_url = self.base_url.rstrip("/")
        return self

    @property
    def effective_database_url(self) -> str:
        """The configured database, or a SQLite file under data_dir."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'media_pub.db').as_posix()}"


@cache
def get_settings() -> Settings:
    """Settings from the environment; called only by entry points."""
    return Settings()
