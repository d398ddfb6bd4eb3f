"""Camera sources: live webcams, video files, image folders and a synthetic test pattern.

Every source answers the same small interface (`CameraSource`): `open()` says what it
delivers, `read(out)` returns the next image (decoded into `out` where it can), `close()`.
Paced sources deliver in real time like a camera: frame k is due at `epoch + k / fps`,
where `epoch` is shared by all sources of one capture so that files filmed in sync stay in
sync. Lock-step sources deliver as fast as they are read, stamped with their own timeline
(`epoch + k / fps`), for offline processing. Recorded sessions are in `session.py`; the
spec strings that name sources are parsed in `spec.py`.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from app.capture.frames import clock
from calibration.jpeg import into_buffer, is_jpeg


class SourceEnded(Exception):
    """The source has no more frames (end of a file that does not loop)."""


class SourceFailure(Exception):
    """The source stopped working (camera unplugged, file gone); the grabber retries."""


@dataclass(frozen=True)
class SourceInfo:
    """What a source actually delivers once open.

    width, height: pixels. fps: frames per second it delivers (the camera's own answer for
    webcams, the pacing rate for files). frames: frames in a file, None for live sources.
    detail: a human-readable note (codec, requested vs. delivered settings).
    """

    width: int
    height: int
    fps: float
    frames: int | None = None
    detail: str = ""


class Grabbed(NamedTuple):
    """One read: image (H, W, 3) uint8, or None when the source hands over `encoded`, the
    frame's JPEG bytes as they came (an MJPEG camera, a recorded session), undecoded;
    index: the source's frame number; t_capture: seconds on `clock` when the source knows it
    (None: the grabber stamps it); skipped: frames the source passed over since the previous
    read (counted as drops)."""

    image: np.ndarray | None
    index: int
    t_capture: float | None
    skipped: int = 0
    encoded: bytes | None = None


class CameraSource:
    """Base class: a named source of frames. Subclasses implement `_open`, `_read`, `_close`.

    `paced` is True for sources that deliver in real time (cameras, paced files) and False
    for lock-step ones. `epoch` is the shared time origin on `clock`; it is set by whoever
    starts the capture, or by the first read. `passthrough`: a source whose frames come
    compressed as JPEG (a recorded MJPEG session, an MJPEG webcam) hands them on undecoded
    (`Grabbed.encoded`, image None) instead of decoding them; live capture turns it on.
    """

    kind = "source"
    passthrough = False

    def __init__(self, name: str, description: str, paced: bool) -> None:
        self.name = name
        self.description = description
        self.spec = ""  # the spec string it was made from, where there was one
        self.paced = paced
        self.epoch: float | None = None
        self._interrupted = threading.Event()

    def open(self) -> SourceInfo:
        self._interrupted.clear()
        return self._open()

    def read(self, out: np.ndarray | None = None) -> Grabbed:
        """The next frame, decoded into `out` when its shape fits. Raises SourceEnded or SourceFailure."""
        if self.epoch is None:
            self.epoch = clock()
        return self._read(out)

    def close(self) -> None:
        self._close()

    def interrupt(self) -> None:
        """Wake a read that is waiting for its frame's due time (used when stopping)."""
        self._interrupted.set()

    def _sleep_until(self, t: float) -> None:
        delay = t - clock()
        if delay > 0:
            self._interrupted.wait(delay)

    def _wait_for(self, schedule: Schedule, k: int) -> int:
        """Sleep until frame k is due; then how many later frames are already due too
        (the source is behind: like a camera, it drops those)."""
        self._sleep_until(schedule.due(self.epoch, k))
        return max(0, schedule.latest_due(self.epoch, clock()) - k)

    def _open(self) -> SourceInfo:
        raise NotImplementedError

    def _read(self, out: np.ndarray | None) -> Grabbed:
        raise NotImplementedError

    def _close(self) -> None:
        pass


class Schedule:
    """Frame k of a paced source is due at epoch + k / fps (seconds on `clock`)."""

    def __init__(self, fps: float) -> None:
        self.fps = fps

    def due(self, epoch: float, k: int) -> float:
        return epoch + k / self.fps

    def latest_due(self, epoch: float, now: float) -> int:
        """Index of the newest frame whose due time has passed."""
        return math.floor((now - epoch) * self.fps + 1e-9)


class FileSequenceSource(CameraSource):
    """Shared pacing and looping for sources that read frame after frame from storage.

    Subclasses provide `_rewind()` (back to the first frame), `_advance()` (step past one
    frame, False at the end) and `_decode(out)` (the frame just advanced to).

    A paced source that falls behind skips the frames already overdue, as a camera drops
    frames nobody read, where skipping is cheap (`skip_when_behind`). Where stepping past a
    frame costs as much as decoding it (compressed video), skipping would only slow it
    further, and a source short of CPU would deliver ever fewer frames: such a source
    delivers every frame, late, stamped with its due time, and catches up by reading as fast
    as it can; its lag shows as latency.
    """

    skip_when_behind = True

    def __init__(self, name: str, description: str, fps: float, paced: bool, loop: bool) -> None:
        super().__init__(name, description, paced)
        self.schedule = Schedule(fps)
        self.loop = loop
        self._next = 0

    def _step(self) -> None:
        if self._advance():
            return
        if not self.loop:
            raise SourceEnded(f"{self.description}: end of file")
        self._rewind()
        if not self._advance():
            raise SourceFailure(f"{self.description}: no readable frame after rewinding")

    def _read(self, out: np.ndarray | None) -> Grabbed:
        k = self._next
        skipped = 0
        if self.paced and self.skip_when_behind:
            skipped = self._wait_for(self.schedule, k)
            for _ in range(skipped):
                if self._interrupted.is_set():
                    raise SourceEnded(f"{self.description}: stopped")
                self._step()
            k += skipped
        elif self.paced:
            self._sleep_until(self.schedule.due(self.epoch, k))
        self._step()
        image = self._decode(out)
        self._next = k + 1
        return Grabbed(image, k, self.schedule.due(self.epoch, k), skipped)

    def _rewind(self) -> None:
        raise NotImplementedError

    def _advance(self) -> bool:
        raise NotImplementedError

    def _decode(self, out: np.ndarray | None) -> np.ndarray:
        raise NotImplementedError


class VideoSource(FileSequenceSource):
    """A video file, paced at its own frame rate (or `fps`), or read in lock-step."""

    kind = "video"
    skip_when_behind = False  # skipping an H.264 frame means decoding it

    def __init__(self, name: str, path: Path, fps: float | None, paced: bool, loop: bool) -> None:
        self.path = Path(path)
        super().__init__(name, f"video {self.path}", fps or 0.0, paced, loop)
        self._fps_option = fps
        self._cap: cv2.VideoCapture | None = None

    def _open(self) -> SourceInfo:
        cap = self._capture()
        if not cap.isOpened():
            raise SourceFailure(f"{self.description}: cannot be opened as a video")
        self._cap = cap
        file_fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
        self.schedule = Schedule(self._fps_option or file_fps)
        frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        fourcc = int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode("ascii", "replace")
        return SourceInfo(
            width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            fps=self.schedule.fps,
            frames=frames,
            detail=f"{fourcc} file at {file_fps:g} fps, {'paced' if self.paced else 'lock-step'}",
        )

    def _capture(self) -> cv2.VideoCapture:
        # One decoding thread per file: the cameras already decode in parallel, one grabber
        # thread each, and FFmpeg's frame threads would add a frame of latency per thread.
        return cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])

    def _rewind(self) -> None:
        self._cap.release()
        self._cap = self._capture()

    def _advance(self) -> bool:
        return bool(self._cap.grab())

    def _decode(self, out: np.ndarray | None) -> np.ndarray:
        ok, image = self._cap.retrieve(out)
        if not ok or image is None:
            raise SourceFailure(f"{self.description}: a frame could not be decoded")
        return image

    def _close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


class ImagesSource(FileSequenceSource):
    """The image files of a folder in name order, paced at `fps` or read in lock-step."""

    kind = "images"

    def __init__(self, name: str, folder: Path, fps: float, paced: bool, loop: bool) -> None:
        self.folder = Path(folder)
        super().__init__(name, f"image folder {self.folder}", fps, paced, loop)
        self._files: list[Path] = []
        self._pos = -1

    def _list(self) -> list[Path]:
        try:
            files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        except OSError as exc:
            raise SourceFailure(f"{self.description}: cannot be listed ({exc.strerror})") from exc
        if not files:
            raise SourceFailure(f"{self.description}: holds no images")
        return files

    def _open(self) -> SourceInfo:
        self._files = self._list()
        self._pos = -1
        first = self._imread(self._files[0])
        return SourceInfo(
            width=first.shape[1],
            height=first.shape[0],
            fps=self.schedule.fps,
            frames=len(self._files),
            detail=f"{len(self._files)} images, {'paced' if self.paced else 'lock-step'}",
        )

    def _imread(self, path: Path) -> np.ndarray:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise SourceFailure(f"{self.description}: {path.name} cannot be read")
        return image

    def _rewind(self) -> None:
        self._pos = -1

    def _advance(self) -> bool:
        if self._pos + 1 >= len(self._files):
            return False
        self._pos += 1
        return True

    def _decode(self, out: np.ndarray | None) -> np.ndarray:
        return into_buffer(out, self._imread(self._files[self._pos]))


class WebcamSource(CameraSource):
    """A live camera through OpenCV's VideoCapture (index or device path).

    Requests a size, frame rate and MJPG compression (many USB cameras reach their full
    frame rate only compressed); `open()` reports what the camera actually delivers. A
    camera that stops delivering raises SourceFailure so the grabber can reopen it.
    """

    kind = "webcam"

    def __init__(
        self,
        name: str,
        device: int | str,
        width: int | None,
        height: int | None,
        fps: float | None,
        mjpg: bool,
    ) -> None:
        super().__init__(name, f"webcam {device}", paced=True)
        self.device = device
        self.requested = (width, height, fps, mjpg)
        self._cap: cv2.VideoCapture | None = None
        self._count = 0
        self._raw = False  # reading the camera's JPEGs undecoded

    def _open(self) -> SourceInfo:
        width, height, fps, mjpg = self.requested
        cap = cv2.VideoCapture(self.device)
        if not cap.isOpened():
            raise SourceFailure(f"{self.description} cannot be opened (unplugged, or in use by another program?)")
        if mjpg:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"MJPG"))
        if width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        if height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        if fps:
            cap.set(cv2.CAP_PROP_FPS, fps)
        ok, first = cap.read()
        if not ok or first is None:
            cap.release()
            raise SourceFailure(f"{self.description} opened but delivers no frames")
        self._raw = False
        if mjpg and self.passthrough and cap.set(cv2.CAP_PROP_CONVERT_RGB, 0):
            # The camera's own JPEGs, undecoded, where the backend hands them over (V4L2 does).
            ok, raw = cap.read()
            data = raw.tobytes() if ok and raw is not None and raw.dtype == np.uint8 and min(raw.shape[:2]) == 1 else b""
            decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if is_jpeg(data) else None
            if decoded is not None:
                self._raw, first = True, decoded
            else:
                cap.set(cv2.CAP_PROP_CONVERT_RGB, 1)
        self._cap = cap
        fourcc = int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode("ascii", "replace")
        actual_fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        asked = f"asked {width or '-'}x{height or '-'} @ {fps or '-'} fps{' MJPG' if mjpg else ''}"
        return SourceInfo(
            width=first.shape[1],
            height=first.shape[0],
            fps=actual_fps,
            frames=None,
            detail=f"{fourcc} {first.shape[1]}x{first.shape[0]} @ {actual_fps:g} fps ({asked})"
            + (", JPEG passed through" if self._raw else ""),
        )

    def _read(self, out: np.ndarray | None) -> Grabbed:
        if self._raw:
            ok, raw = self._cap.read()
            data = raw.tobytes() if ok and raw is not None else b""
            if not is_jpeg(data):
                raise SourceFailure(f"{self.description} stopped delivering whole JPEG frames")
            self._count += 1
            return Grabbed(None, self._count - 1, None, 0, data)
        ok, image = self._cap.read(out)
        if not ok or image is None:
            raise SourceFailure(f"{self.description} stopped delivering frames")
        self._count += 1
        # The frame was delivered when read() returned; the grabber stamps that moment.
        return Grabbed(image, self._count - 1, None, 0)

    def _close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
