"""Object storage: a local folder or an S3-compatible bucket behind one `Storage` protocol."""

from media_pub.storage.base import (
    ObjectInfo,
    ObjectNotFound,
    Storage,
    StorageError,
    content_disposition,
    validate_key,
    validate_prefix,
)

__all__ = [
    "ObjectInfo",
    "ObjectNotFound",
    "Storage",
    "StorageError",
    "content_disposition",
    "validate_key",
    "validate_prefix",
]
