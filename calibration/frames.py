"""Where calibration images come from: videos, image folders, live cameras, sessions.

A source is written ``video:PATH``, ``images:DIR``, ``camera:INDEX`` or as a bare
path (a video file, a folder of images, or a session folder holding one video per
camera). The camera's name is the file or folder name without extension.

Synchronisation: frame i of every video is taken as the same instant unless the
folder is a recorded session (manifest.toml and <cam>_timestamps.csv with capture
times: nearest frames form an instant) or a ``timestamps.csv`` (columns sync_index,
cam_id, frame_time[, frame_index]; as written by caliscope) sits beside the videos;
then frames sharing a sync_index are one instant. Frames are read with OpenCV directly, sessions with `calibration.takes` (the one take
reader): calibration does not depend on the capture code in app/.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from calibration.errors import TriangulumError
from calibration.takes import MANIFEST, open_session
from calibration.timing import match_instants

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
KINDS = ("video", "images", "camera")

Progress = Callable[[str, int, int], None]
"""progress(stage, done, total): called while long steps run (total 0 if unknown)."""


@dataclass
class FrameSource:
    """One camera's frames. kind: "video" | "images" | "camera"; path: file, folder or device index."""

    name: str
    kind: str
    path: str
    max_frames: int = 300  # live cameras only: how many frames to grab

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise TriangulumError(f"source '{self.path}': kind '{self.kind}' is unknown; use video:, images: or camera:.")


def parse_source(spec: str) -> FrameSource:
    """'video:PATH' | 'images:DIR' | 'camera:INDEX' | PATH -> FrameSource."""
    kind, sep, rest = spec.partition(":")
    if sep and kind in KINDS and not (len(kind) == 1 and rest.startswith(("\\", "/"))):
        if kind == "camera":
            if not rest.isdigit():
                raise TriangulumError(f"source '{spec}': a live camera is given as camera:INDEX, e.g. camera:0.")
            return FrameSource(f"camera{rest}", "camera", rest)
        path = Path(rest)
        if not path.exists():
            raise TriangulumError(f"source '{spec}': {path} does not exist.")
        if kind == "images" and not path.is_dir():
            raise TriangulumError(f"source '{spec}': {path} is not a folder of images.")
        return FrameSource(path.stem if path.is_file() else path.name, kind, str(path))
    path = Path(spec)
    if not path.exists():
        raise TriangulumError(f"source '{spec}' does not exist; give video:PATH, images:DIR or camera:INDEX.")
    if path.is_file():
        if path.suffix.lower() not in VIDEO_EXTENSIONS:
            raise TriangulumError(f"source '{spec}' is not a video ({', '.join(VIDEO_EXTENSIONS)}); give images:DIR for a folder of photos.")
        return FrameSource(path.stem, "video", str(path))
    return FrameSource(path.name, "images", str(path))


def session_sources(folder: str | Path) -> list[FrameSource]:
    """One video source per camera of a session folder.

    A recorded session (manifest.toml, read by `calibration.takes.open_session`) gives its
    cameras in the manifest's order; any other folder, its videos sorted by file name.
    """
    folder = Path(folder)
    if (folder / MANIFEST).is_file():
        return [FrameSource(t.name, "video", str(t.video)) for t in open_session(folder).tracks if t.frames]
    videos = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS)
    if not videos:
        raise TriangulumError(f"session folder {folder} holds no videos ({', '.join(VIDEO_EXTENSIONS)}).")
    return [FrameSource(p.stem, "video", str(p)) for p in videos]


def expand_sources(specs: list[str]) -> list[FrameSource]:
    """Sources from the command line: a single session folder expands to its videos."""
    if len(specs) == 1:
        path = Path(specs[0].removeprefix("session:"))
        if path.is_dir() and any(p.suffix.lower() in VIDEO_EXTENSIONS for p in path.iterdir()):
            return session_sources(path)
    sources = [parse_source(s) for s in specs]
    names = [s.name for s in sources]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise TriangulumError(f"sources {dupes} give the same camera name twice; camera names come from the file names, so rename the files.")
    return sources


def _image_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise TriangulumError(f"{folder} holds no images ({', '.join(IMAGE_EXTENSIONS)}).")
    return files


def _open_capture(source: FrameSource) -> cv2.VideoCapture:
    cap = cv2.VideoCapture(int(source.path)) if source.kind == "camera" else cv2.VideoCapture(source.path)
    if not cap.isOpened():
        what = f"camera {source.path}" if source.kind == "camera" else source.path
        raise TriangulumError(f"cannot open {what} for camera '{source.name}'; check the path and that the codec is supported.")
    return cap


def frame_count(source: FrameSource) -> int:
    """Number of frames the source will yield (an estimate for videos)."""
    if source.kind == "images":
        return len(_image_files(Path(source.path)))
    if source.kind == "camera":
        return source.max_frames
    cap = _open_capture(source)
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    return n


def iter_frames(source: FrameSource, step: int = 1, indices: set[int] | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (frame index, BGR image) for every `step`-th frame, or just `indices`.

    Video frames are decoded in order (seeking is unreliable in many codecs).
    """
    step = max(1, int(step))
    if source.kind == "images":
        for i, path in enumerate(_image_files(Path(source.path))):
            if (indices is None and i % step == 0) or (indices is not None and i in indices):
                image = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if image is None:
                    raise TriangulumError(f"cannot read image {path}; is it corrupt?")
                yield i, image
        return
    cap = _open_capture(source)
    last = max(indices) if indices else None
    try:
        i = 0
        while source.kind != "camera" or i < source.max_frames:
            ok, image = cap.read()
            if not ok or (last is not None and i > last):
                break
            if (indices is None and i % step == 0) or (indices is not None and i in indices):
                yield i, image
            i += 1
    finally:
        cap.release()


def image_size(source: FrameSource) -> tuple[int, int]:
    """(width, height) of the source's frames."""
    for _, image in iter_frames(source):
        return image.shape[1], image.shape[0]
    raise TriangulumError(f"camera '{source.name}': {source.path} yields no frames.")


def image_names(source: FrameSource) -> list[str]:
    """File names of an image-folder source, by frame index (empty for videos)."""
    return [p.name for p in _image_files(Path(source.path))] if source.kind == "images" else []


# --- synchronisation ----------------------------------------------------------------
def _camera_id(name: str) -> str | None:
    m = re.search(r"(\d+)$", name)
    return str(int(m.group(1))) if m else None


def load_sync_table(path: str | Path, camera_names: list[str]) -> dict[int, dict[str, int]]:
    """Synchronised frame sets from a caliscope-style timestamps.csv.

    -> {sync_index: {camera name: frame index}}. Cameras are matched by the number at
    the end of their name (cam_2 <-> cam_id 2). Without a frame_index column the
    frame index is the rank of frame_time within the camera.
    """
    path = Path(path)
    try:
        rows = list(csv.DictReader(path.read_text(encoding="utf-8").splitlines()))
    except FileNotFoundError:
        raise TriangulumError(f"timestamps file {path} does not exist.") from None
    if not rows or not {"sync_index", "cam_id"} <= set(rows[0]):
        raise TriangulumError(f"{path}: expected columns sync_index, cam_id, frame_time[, frame_index].")
    by_id = {_camera_id(n): n for n in camera_names}
    if None in by_id or len(by_id) != len(camera_names):
        raise TriangulumError(f"{path}: cannot match cameras {camera_names} to cam_id numbers; name the videos cam_0, cam_1, ...")
    per_cam: dict[str, list[tuple[float, int, int | None]]] = {}
    for row in rows:
        name = by_id.get(str(int(row["cam_id"])))
        if name is None:
            continue
        frame = int(row["frame_index"]) if row.get("frame_index") not in (None, "") else None
        per_cam.setdefault(name, []).append((float(row.get("frame_time") or 0.0), int(row["sync_index"]), frame))
    table: dict[int, dict[str, int]] = {}
    for name, entries in per_cam.items():
        entries.sort()
        for rank, (_, sync, frame) in enumerate(entries):
            table.setdefault(sync, {})[name] = rank if frame is None else frame
    missing = sorted(set(camera_names) - set(per_cam))
    if missing:
        raise TriangulumError(f"{path}: no rows for camera(s) {missing}; is this the session's timestamps file?")
    return table


def find_sync_table(sources: list[FrameSource]) -> Path | None:
    """The caliscope timestamps.csv beside the videos, if there is one."""
    folders = {Path(s.path).parent for s in sources if s.kind == "video"}
    for folder in folders:
        if (folder / "timestamps.csv").exists():
            return folder / "timestamps.csv"
    return None


def sync_from_capture_times(times: dict[str, np.ndarray], tolerance: float | None = None) -> dict[int, dict[str, int]]:
    """Synchronised frame sets from per-camera capture times.

    times: {camera: (N_c,) seconds of each frame on a common clock}. The first camera
    sets the instants; another camera's frame joins an instant when it is the nearest
    one and closer than `tolerance` (default: half the first camera's median frame
    interval). -> {instant (first camera's frame index): {camera: frame index}}
    """
    names = list(times)
    ref = np.asarray(times[names[0]], np.float64)
    if tolerance is None:
        tolerance = 0.5 * float(np.median(np.diff(ref))) if len(ref) > 1 else np.inf
    table = {i: {names[0]: i} for i in range(len(ref))}
    for name in names[1:]:
        t = np.asarray(times[name], np.float64)
        if t.size == 0:
            continue
        order = np.argsort(t)
        # The one nearest-in-time rule (calibration.timing), "closer than or at" the tolerance.
        j = match_instants(ref, t[order], np.nextafter(tolerance, np.inf))
        for i in np.flatnonzero(j >= 0):
            table[int(i)][name] = int(order[j[i]])
    return table


def session_sync(folder: str | Path) -> dict[int, dict[str, int]] | None:
    """Frame sets of a recorded session from its capture times (None: not a session)."""
    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        return None
    return sync_from_capture_times({t.name: t.times for t in open_session(folder).tracks})
