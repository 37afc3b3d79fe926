"""Artwork: a generated placeholder cover (JPEG via PyAV's MJPEG encoder, no imaging library needed)."""

from __future__ import annotations

import hashlib
from fractions import Fraction

import av
import numpy as np


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
