"""Read a take in lock-step: one FrameSet per frame, the same objects live capture hands out.

Offline processing runs the live per-frame pipeline on these sets, so a recording processed
afterwards goes through exactly the code that ran during capture.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

from app.capture.frames import Frame, FrameSet
from app.capture.sources import SourceFailure
from app.process.inputs import Take
from app.process.video_file import VideoReader
from calibration.errors import TriangulumError
from calibration.takes import DamagedFrame, TrackReader, open_session
from engines.blazepose.yuv import Yuv420


def frame_sets(take: Take, start: int = 0, stop: int | None = None) -> Iterator[FrameSet]:
    """FrameSets for frame sets start..stop-1 of the take (BGR images, cameras in rig order).

    A camera without a frame in a set (a dropped frame of a recorded session) is absent from
    that set. Capture times are the take's times (seconds from its start).
    """
    stop = take.frames if stop is None else min(stop, take.frames)
    if take.source.startswith("session "):
        session = open_session(take.videos[0].path.parent)
        readers = [TrackReader(session.track(v.camera)) for v in take.videos]
    else:
        readers = [VideoReader(v.camera, v.path) for v in take.videos]
    try:
        for k in range(start, stop):
            frames = []
            for c, reader in enumerate(readers):
                i = int(take.frame_index[k, c])
                if i < 0:
                    continue
                t = float(take.times[k])
                try:
                    image = reader.read(i)
                except (SourceFailure, DamagedFrame) as exc:
                    raise TriangulumError(f"camera '{take.cameras[c]}': {exc}; the recording is damaged there "
                                          f"(process up to it with --frames 0:{k}).") from None
                if isinstance(image, Yuv420):
                    frames.append(Frame(take.cameras[c], i, t, t, planes=image))
                else:
                    frames.append(Frame(take.cameras[c], i, t, t, image))
            yield FrameSet(k, tuple(frames), float(take.times[k]))
    finally:
        for r in readers:
            r.close()


def prefetch(sets: Iterator[FrameSet], depth: int = 4) -> Iterator[FrameSet]:
    """Decode ahead on a background thread: the same sets, in order, while the caller works.

    Decoding (OpenCV) and the networks release the GIL, so on two cores the next frames are
    decoded while the current one is processed. An error while reading is raised here, in the
    caller's thread; leaving the loop early stops the reader.
    """
    q: queue.Queue = queue.Queue(maxsize=max(depth, 1))
    stop = threading.Event()
    done = object()

    def work() -> None:
        try:
            for fs in sets:
                while not stop.is_set():
                    try:
                        q.put(fs, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as exc:  # handed to the caller
            q.put(exc)

    thread = threading.Thread(target=work, name="take-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(0.05)
        if hasattr(sets, "close"):
            sets.close()
