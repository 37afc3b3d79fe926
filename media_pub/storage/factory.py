"""Build the configured storage backend."""

from __future__ import annotations

from media_pub.config import StorageSettings
from media_pub.storage.base import Storage


def build_storage(settings: StorageSettings) -> Storage:
    """A LocalStorage or S3Storage from settings; boto3 is imported only for the S3 backend."""
    if settings.backend == "s3":
        from media_pub.storage.s3 import S3Storage

        return S3Storage(settings)
    from media_pub.storage.local import LocalStorage

    return LocalStorage(settings.root)
