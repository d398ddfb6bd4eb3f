"""Frames as bytes: a JPEG's size without decoding it, whether bytes are one whole JPEG, and
copying decoded images into pooled buffers. Used by the take reader, camera sources and the
recorder (which keeps a camera's own JPEG when it already has the recorded size).
"""

from __future__ import annotations

import numpy as np


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's frame header, without decoding (None if there is none)."""
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            return int.from_bytes(data[i + 7:i + 9], "big"), int.from_bytes(data[i + 5:i + 7], "big")
        i += 2 + length
    return None


def is_jpeg(data: bytes) -> bool:
    """Whether `data` looks like one whole JPEG image (start and end markers)."""
    return len(data) > 4 and data[:2] == b"\xff\xd8" and data.rstrip(b"\x00")[-2:] == b"\xff\xd9"


def into_buffer(out: np.ndarray | None, image: np.ndarray) -> np.ndarray:
    """Copy `image` into the pooled buffer when shapes agree, else hand `image` back."""
    if out is not None and out.shape == image.shape and out.dtype == image.dtype:
        np.copyto(out, image)
        return out
    return image
