"""Artwork: a generated placeholder cover (JPEG via PyAV's MJPEG encoder, no imaging library needed)."""

from __future__ import annotations

import hashlib
from fractions import Fraction

import av
import numpy as np

from media_pub.errors import InvalidMedia, UnsupportedMedia


def placeholder_artwork(title: str, size: int = 1400) -> bytes:
    """A square JPEG cover with a gradient and rings whose colours derive from `title` (deterministic)."""
    seed = hashlib.sha256(title.encode()).digest()
    c1 = np.array(list(seed[0:3]), dtype=np.float32)
    c2 = np.array(list(seed[3:6]), dtype=np.float32)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
    t = ((x + y) / 2)[..., None]
    img = c1 * (1 - t) + c2 * t
    r = np.hypot(x - 0.5, y - 0.5)
    rings = (np.sin(r * (20 + seed[6] % 20) * np.pi) > 0.6)[..., None]
    img = np.where(rings, 255 - img, img)
    frame = av.VideoFrame.from_ndarray(img.astype(np.uint8), format="rgb24").reformat(format="yuvj420p")
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width = codec.height = size
    codec.pix_fmt = "yuvj420p"
    codec.time_base = Fraction(1, 25)
    packets = [*codec.encode(frame), *codec.encode(None)]
    return b"".join(bytes(p) for p in packets)


MIN_SIDE, MAX_SIDE = 1400, 3000  # Apple Podcasts: square, 1400 to 3000 pixels


def inspect_artwork(data: bytes) -> tuple[str, int, int]:
    """(MIME type, width, height) of a JPEG or PNG from its header only (no decoding, so no image bombs).

    Raises:
        UnsupportedMedia: neither JPEG nor PNG.
        InvalidMedia: damaged, not square, or outside 1400 to 3000 pixels (code artwork-size).
    """
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise InvalidMedia("the PNG image is damaged", code="artwork-damaged")
        mime, width, height = "image/png", int.from_bytes(data[16:20]), int.from_bytes(data[20:24])
    elif data[:3] == b"\xff\xd8\xff":
        mime, (width, height) = "image/jpeg", _jpeg_size(data)
    else:
        raise UnsupportedMedia("artwork must be a JPEG or PNG image")
    if width != height or not MIN_SIDE <= width <= MAX_SIDE:
        raise InvalidMedia(
            f"artwork must be square, {MIN_SIDE} to {MAX_SIDE} pixels; this is {width}x{height}",
            code="artwork-size",
        )
    return mime, width, height


def _jpeg_size(data: bytes) -> tuple[int, int]:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            break
        marker = data[i + 1]
        length = int.from_bytes(data[i + 2 : i + 4])
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            return int.from_bytes(data[i + 7 : i + 9]), int.from_bytes(data[i + 5 : i + 7])
        i += 2 + length
    raise InvalidMedia("the JPEG image is damaged (no frame header)", code="artwork-damaged")
