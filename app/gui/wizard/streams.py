"""Board detections frame by frame, for pages that show them while they arrive (no Qt here).

`calibration.intrinsics.detect_views` and `calibration.extrinsics.detect_synchronised`
return only when every frame is read; the wizard wants each frame and its detection as it
comes, to draw them. These generators read the same frames with the same detector, so the
detections they collect are the ones the headless commands get (the wizard's tests check
that the saved rig matches `triangulum calib extrinsics`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from calibration.boards import Board, BoardDetector, Detection
from calibration.frames import (
    FrameSource,
    find_sync_table,
    iter_frames,
    load_sync_table,
    session_sync,
)

PREVIEW_SIDE = 960  # px on the long side of images sent to the screen


def shrink(image: np.ndarray, side: int = PREVIEW_SIDE) -> np.ndarray:
    """The image scaled down (never up) so its long side is at most `side` px."""
    scale = side / max(image.shape[:2])
    if scale >= 1.0:
        return image
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def live_views(source: FrameSource, board: Board, step: int = 1) -> Iterator[tuple[int, np.ndarray, Detection | None]]:
    """(frame index, BGR image (H, W, 3), detection or None) for every `step`-th frame."""
    detector = BoardDetector(board)
    for index, image in iter_frames(source, step):
        yield index, image, detector.detect(image)


def resolve_sync(sources: list[FrameSource]) -> dict[int, dict[str, int]] | None:
    """The synchronisation `detect_synchronised` would use by default: a recorded session's
    capture times, else a timestamps.csv beside the videos, else None (frame i = instant i).
    -> {instant: {camera: frame index}} or None"""
    folders = {Path(s.path).parent for s in sources if s.kind == "video"}
    sync = session_sync(folders.pop()) if len(folders) == 1 else None
    if sync is None:
        table = find_sync_table(sources)
        sync = load_sync_table(table, [s.name for s in sources]) if table else None
    return sync


@dataclass
class SyncedFrame:
    """One camera's frame at one instant. image: (H, W, 3) BGR; detection: None if not found."""

    camera: str
    instant: int
    frame: int
    image: np.ndarray
    detection: Detection | None


def _camera_frames(source: FrameSource, detector: BoardDetector, sync: dict[int, dict[str, int]] | None,
                   step: int) -> Iterator[SyncedFrame]:
    if sync is None:
        for index, image in iter_frames(source, step):
            yield SyncedFrame(source.name, index, index, image, detector.detect(image))
        return
    frame_to_instant = {f: s for s, cams in sync.items() for c, f in cams.items() if c == source.name}
    wanted = {f for f, s in frame_to_instant.items() if s % step == 0}
    for index, image in iter_frames(source, 1, indices=wanted):
        yield SyncedFrame(source.name, frame_to_instant[index], index, image, detector.detect(image))


def live_synchronised(sources: list[FrameSource], board: Board, sync: dict[int, dict[str, int]] | None,
                      step: int = 1) -> Iterator[SyncedFrame]:
    """Every camera's frames at the instants `detect_synchronised` uses (same `sync`, same
    `step`), taking one frame from each camera in turn so all cameras advance together."""
    streams = [_camera_frames(s, BoardDetector(board), sync, step) for s in sources]
    while streams:
        alive = []
        for stream in streams:
            item = next(stream, None)
            if item is not None:
                alive.append(stream)
                yield item
        streams = alive
