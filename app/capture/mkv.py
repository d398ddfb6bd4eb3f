"""A Matroska (.mkv) writer for a single Motion-JPEG video track, written frame by frame.

Written as a live stream: the Segment and its Clusters have "unknown size", so nothing is
ever patched after the fact and every frame is on disk (in the kernel's hands) as soon as
`write` returns. A file cut short at any byte (process killed, disk full) stays playable up
to its last complete frame. Block timestamps are the real capture times (milliseconds), so
the file plays back with the original timing. `write` returns where the JPEG data lies in
the file, which lets our own reader seek to any frame exactly.
"""

from __future__ import annotations

import errno
import os
import struct
from pathlib import Path

_UNKNOWN_SIZE = b"\x01\xff\xff\xff\xff\xff\xff\xff"
CLUSTER_SPAN_MS = 1000  # start a new cluster every second: bounded resync distance for players


def _vint(n: int) -> bytes:
    """EBML variable-length size: the shortest encoding whose all-ones pattern is not n."""
    for length in range(1, 9):
        if n < (1 << (7 * length)) - 1:
            return (n | (1 << (7 * length))).to_bytes(length, "big")
    raise ValueError(f"EBML size {n} too large")


def _element(element_id: int, payload: bytes) -> bytes:
    return element_id.to_bytes((element_id.bit_length() + 7) // 8, "big") + _vint(len(payload)) + payload


def _uint(element_id: int, value: int) -> bytes:
    return _element(element_id, value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def _text(element_id: int, value: str) -> bytes:
    return _element(element_id, value.encode("utf-8"))


def header(width: int, height: int, fps: float, writing_app: str) -> bytes:
    """EBML header, the opening of an unknown-size Segment, Info and Tracks."""
    ebml = _element(
        0x1A45DFA3,
        _uint(0x4286, 1)
        + _uint(0x42F7, 1)
        + _uint(0x42F2, 4)
        + _uint(0x42F3, 8)
        + _text(0x4282, "matroska")
        + _uint(0x4287, 4)
        + _uint(0x4285, 2),
    )
    info = _element(0x1549A966, _uint(0x2AD7B1, 1_000_000) + _text(0x4D80, writing_app) + _text(0x5741, writing_app))
    video = _element(0xE0, _uint(0xB0, width) + _uint(0xBA, height))
    track = _element(
        0xAE,
        _uint(0xD7, 1)
        + _uint(0x73C5, 1)
        + _uint(0x83, 1)
        + _uint(0x9C, 0)
        + _text(0x86, "V_MJPEG")
        + (_uint(0x23E383, round(1e9 / fps)) if fps > 0 else b"")
        + video,
    )
    tracks = _element(0x1654AE6B, track)
    return ebml + b"\x18\x53\x80\x67" + _UNKNOWN_SIZE + info + tracks


class MjpegMkvWriter:
    """Appends JPEG frames with their timestamps to `path`.

    Every `write` is one `writev` system call straight to the file descriptor, so a
    SIGKILL loses at most the frame being written. Disk full raises OSError(ENOSPC).
    """

    def __init__(self, path: str | Path, width: int, height: int, fps: float, writing_app: str) -> None:
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self._pos = 0
        self._cluster_ms: int | None = None
        self._write([header(width, height, fps, writing_app)])

    def _write(self, parts: list[bytes | memoryview]) -> None:
        total = sum(len(p) for p in parts)
        written = os.writev(self._fd, parts)
        if written != total:
            # A short write only happens when the device is full; the tail of this frame
            # is missing and readers stop at the previous one.
            raise OSError(errno.ENOSPC, f"{self.path}: disk full (wrote {written} of {total} bytes)")
        self._pos += total

    def write(self, jpeg: bytes | memoryview, t_ms: int) -> tuple[int, int]:
        """Append one JPEG taken at `t_ms` milliseconds; returns (offset, size) of its data."""
        jpeg = memoryview(jpeg).cast("B")
        parts: list[bytes | memoryview] = []
        if self._cluster_ms is None or not (0 <= t_ms - self._cluster_ms < CLUSTER_SPAN_MS):
            self._cluster_ms = t_ms
            parts.append(b"\x1f\x43\xb6\x75" + _UNKNOWN_SIZE + _uint(0xE7, max(0, t_ms)))
        block_head = b"\x81" + struct.pack(">hB", t_ms - self._cluster_ms, 0x80)
        parts.append(b"\xa3" + _vint(len(block_head) + len(jpeg)) + block_head)
        offset = self._pos + sum(len(p) for p in parts)
        parts.append(jpeg)
        self._write(parts)
        return offset, len(jpeg)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
