"""Domain errors. They never mention HTTP: each edge (API, CLI, jobs) renders them its own way."""

from __future__ import annotations


class MediaPubError(Exception):
    """Base of every error media_pub raises on purpose."""

    code: str = "media-pub-error"
    title: str = "media_pub error"
    retryable: bool = False

    def __init__(self, detail: str = "", *, code: str | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.detail


class NotFound(MediaPubError):
    code = "not-found"
    title = "Not found"


class Gone(NotFound):
    """Something that existed and was withdrawn for good (a revoked or expired supporter token)."""

    code = "gone"
    title = "Gone"


class Conflict(MediaPubError):
    code = "conflict"
    title = "Conflict"


class InvalidInput(MediaPubError):
    code = "invalid-input"
    title = "Invalid input"


class InvalidMedia(MediaPubError):
    code = "invalid-media"
    title = "Invalid media"


class UnsupportedMedia(InvalidMedia):
    """Content that is not audio or video at all (text, random bytes, an image...)."""

    code = "unsupported-media-type"
    title = "Unsupported media type"


class TooLarge(InvalidInput):
    code = "payload-too-large"
    title = "Payload too large"


class Unauthenticated(MediaPubError):
    code = "unauthenticated"
    title = "Authentication required"


class Forbidden(MediaPubError):
    code = "forbidden"
    title = "Forbidden"


class Cancelled(MediaPubError):
    """A job was cancelled while it ran; raised inside the job to stop it."""

    code = "job-cancelled"
    title = "Cancelled"


class Unavailable(MediaPubError):
    """A transient failure (storage or database unreachable): retrying may succeed."""

    code = "unavailable"
    title = "Service unavailable"
    retryable = True
