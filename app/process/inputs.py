"""What a `triangulum process` run reads: videos matched to calibrated cameras, checked.

    take = open_take([Path("session/")])                 # a recorded session folder
    take = open_take([Path("cam01.mp4"), ...], calib)    # videos + a calibration
    take = open_take([])                                 # the built-in sample

A take is a set of synchronised videos, one per camera, plus the rig. Videos are matched to
cameras by name (a video's file name must equal, or contain, a camera's name). Each video's
size is checked against its camera's calibrated size: a video up to `CROP_TOLERANCE_PX`
pixels narrower or shorter is taken as cropped on the right/bottom (pixel coordinates, and so
the intrinsics, are unchanged; the camera's size is set to the video's) with a warning;
anything else is an error naming the camera and what differs.

Frames are matched across cameras in time (`calibration.timing`): a plain video's frame i
was taken i/fps after the video's start (videos start together), a recorded session's at the
capture time in its timestamp file. Frame sets are the fastest camera's instants; every camera
gives the frame nearest each instant within half the fastest frame period, and is missing from
a set it has no frame for (a dropped frame, or a slower camera between two of its frames).
A camera slower than the set rate (a 30 fps view in a 60 fps rig) is listed in
`Take.interpolated`: offline processing brings its 2D to every instant by interpolating
between its neighbouring frames (`app.process.take`).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from app.capture.session import Session, open_session
from calibration.errors import TriangulumError
from calibration.formats.detect import convert
from calibration.rig import Rig
from calibration.timing import common_instants, frame_times, match_instants

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm")
CALIBRATION_NAMES = ("calibration.toml", "rig.toml", "Calib.toml", "Calib.qca.txt", "camera_array.toml")
CROP_TOLERANCE_PX = 16
LENGTH_TOLERANCE = 2  # frames a plain video may be longer than the others before a warning
SLOWER = 0.98  # a camera under this fraction of the set rate is slower: its 2D is interpolated
DEFAULT_FPS = 30.0


@dataclass
class VideoInfo:
    """One camera's video: path, size (width, height) px, frames, fps as the file says."""

    camera: str
    path: Path
    size: tuple[int, int]
    frames: int
    fps: float


@dataclass
class Take:
    """Everything needed to read a take in lock-step.

    rig: the calibrated cameras that have a video, in processing order (sizes set to the
    videos'). videos: one per rig camera, same order. frame_index: (F, C) frame of each
    camera's video in each frame set, -1 where that camera has no frame. times: (F,) seconds
    of each frame set from the start. fps: the set rate (the fastest camera's).
    frame_times: (F, C) seconds at which the frame used was taken (NaN where none).
    camera_fps: (C,) each camera's own rate. interpolated: cameras slower than the set rate,
    whose 2D is interpolated in time to the sets they have no frame for. warnings: what was
    adjusted, in sentences.
    """

    rig: Rig
    videos: list[VideoInfo]
    frame_index: np.ndarray
    times: np.ndarray
    fps: float
    source: str
    calibration: Path | None
    warnings: list[str] = field(default_factory=list)
    frame_times: np.ndarray | None = None
    camera_fps: list[float] = field(default_factory=list)
    interpolated: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.frame_times is None:  # frames taken exactly at the set instants
            self.frame_times = np.where(self.frame_index >= 0, self.times[:, None], np.nan)
        if not self.camera_fps:
            self.camera_fps = [self.fps] * len(self.videos)

    @property
    def cameras(self) -> list[str]:
        return self.rig.names

    @property
    def frames(self) -> int:
        return len(self.times)


def probe_video(camera: str, path: Path) -> VideoInfo:
    """Size, frame count and rate of a video file (TriangulumError if it cannot be read)."""
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise TriangulumError(f"camera '{camera}': video {path} cannot be opened; is it a video file "
                                  "(mp4, avi, mkv, mov) and not damaged?")
        ok, image = cap.read()
        if not ok or image is None:
            raise TriangulumError(f"camera '{camera}': video {path} has no readable frame.")
        frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    finally:
        cap.release()
    h, w = image.shape[:2]
    return VideoInfo(camera, path, (w, h), frames, fps)


def fit_camera_size(rig: Rig, video: VideoInfo, warnings: list[str]) -> Rig:
    """The rig with `video.camera` resized to the video if it is a small right/bottom crop."""
    cam = rig[video.camera]
    (cw, ch), (vw, vh) = cam.size, video.size
    if (vw, vh) == (cw, ch):
        return rig
    if vw <= cw and vh <= ch and cw - vw <= CROP_TOLERANCE_PX and ch - vh <= CROP_TOLERANCE_PX:
        warnings.append(
            f"camera '{video.camera}': the video is {vw}x{vh} but was calibrated at {cw}x{ch}; treating it as "
            f"cropped by {cw - vw} px on the right and {ch - vh} px at the bottom (intrinsics unchanged)."
        )
        cameras = [dataclasses.replace(c, size=(vw, vh)) if c.name == cam.name else c for c in rig.cameras]
        return Rig(cameras, dict(rig.metadata))
    raise TriangulumError(
        f"camera '{video.camera}': the video {video.path.name} is {vw}x{vh} px but the calibration is for "
        f"{cw}x{ch} px; record at the calibrated size or recalibrate the camera at {vw}x{vh}."
    )


def match_videos(videos: list[Path], rig: Rig, calibration: str) -> dict[str, Path]:
    """Camera name -> video, by file name (equal to, else containing, the camera's name)."""
    out: dict[str, Path] = {}
    for path in videos:
        stem = path.stem
        exact = [n for n in rig.names if n == stem]
        inside = exact or sorted((n for n in rig.names if n in stem), key=len, reverse=True)[:1]
        if not inside:
            raise TriangulumError(
                f"video {path.name} matches no camera of the calibration {calibration} (it has "
                f"{', '.join(rig.names)}); name each video after its camera, e.g. {rig.names[0]}.mp4."
            )
        name = inside[0]
        if name in out:
            raise TriangulumError(f"camera '{name}' has two videos, {out[name].name} and {path.name}; "
                                  "give one video per camera.")
        out[name] = path
    if len(out) < 2:
        raise TriangulumError(f"only {len(out)} video(s) given; triangulation needs at least two cameras.")
    return out


def _find_calibration(folder: Path) -> Path:
    for name in CALIBRATION_NAMES:
        if (folder / name).is_file():
            return folder / name
    tomls = sorted(folder.glob("*.toml"))
    if len(tomls) == 1:
        return tomls[0]
    raise TriangulumError(f"no calibration found in {folder} (looked for {', '.join(CALIBRATION_NAMES)}); "
                          "pass one with --calib.")


def _video_fps(videos: list[VideoInfo], warnings: list[str]) -> list[float]:
    unknown = [v.camera for v in videos if not v.fps > 0]
    known = [v.fps for v in videos if v.fps > 0]
    if unknown:
        fallback = max(known) if known else DEFAULT_FPS
        warnings.append(f"camera(s) {', '.join(unknown)}: the video does not say its frame rate; taking "
                        f"{fallback:g} fps.")
        return [v.fps if v.fps > 0 else fallback for v in videos]
    return [float(v.fps) for v in videos]


def video_index(videos: list[VideoInfo], warnings: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[float]]:
    """Frame sets of plain videos by time (frame i at i/fps from each video's start) ->
    frame_index (F, C) (-1 missing), set times (F,) s, frame times (F, C) s, fps per camera.

    The sets are the fastest camera's frames over the time every video covers."""
    lengths = np.array([v.frames for v in videos])
    if (lengths <= 0).any():
        bad = [v.camera for v in videos if v.frames <= 0]
        raise TriangulumError(f"camera(s) {bad}: the video reports no frames; re-encode it (e.g. with ffmpeg).")
    fps = _video_fps(videos, warnings)
    times = [frame_times(v.frames, r) for v, r in zip(videos, fps, strict=True)]
    durations = lengths / np.array(fps)
    instants, ref = common_instants(times, [1.0 / r for r in fps])
    if len({round(r, 3) for r in fps}) == 1:
        shortest = int(lengths.min())
        if lengths.max() - shortest > 0:
            detail = ", ".join(f"{v.camera} {v.frames}" for v in videos)
            msg = (f"the videos have different lengths ({detail} frames); processing the first {shortest} "
                   "frames of each.")
            if lengths.max() - shortest > LENGTH_TOLERANCE:
                msg += " Check that the videos start together: plain videos are matched by time from their start."
            warnings.append(msg)
    elif durations.max() - durations.min() > LENGTH_TOLERANCE / max(fps):
        detail = ", ".join(f"{v.camera} {d:.2f} s" for v, d in zip(videos, durations, strict=True))
        warnings.append(f"the videos last different times ({detail}); processing the {durations.min():.2f} s "
                        "they all cover. Check that the videos start together.")
    tol = 0.5 / fps[ref]
    index = np.stack([match_instants(instants, t, tol) for t in times], axis=1)
    used = np.where(index >= 0, np.stack([t[np.maximum(index[:, c], 0)] for c, t in enumerate(times)], 1), np.nan)
    return index, instants, used, fps


def session_index(session: Session, cameras: list[str], warnings: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[float]]:
    """Frame sets of a recorded session by capture time -> frame_index (F, C) (-1 missing),
    set times (F,) s from the start, frame times (F, C) s from the start, fps per camera.

    The camera with the most frames sets the timeline; every other camera contributes its
    frame nearest in time, if within half a frame period (else it is missing from that set).
    """
    tracks = [session.track(c) for c in cameras]
    ref = max(range(len(tracks)), key=lambda k: tracks[k].frames)
    times = tracks[ref].times
    index = np.full((len(times), len(tracks)), -1, np.int64)
    used = np.full((len(times), len(tracks)), np.nan)
    for k, tr in enumerate(tracks):
        if not tr.frames:
            warnings.append(f"camera '{tr.name}': the session has no readable frames for it; it is left out.")
            continue
        tol = 0.5 / max(tr.fps, tracks[ref].fps)
        j = match_instants(times, tr.times, tol)
        ok = j >= 0
        index[:, k] = j
        used[ok, k] = tr.times[j[ok]]
        missing = int((~ok).sum())
        gaps = int((np.diff(tr.source_index) > 1).sum()) if tr.frames > 1 else 0
        if missing:
            warnings.append(f"camera '{tr.name}': no frame within {tol * 1e3:.0f} ms in {missing} of "
                            f"{len(times)} frame sets (dropped frames: {gaps}); those sets go without it.")
    return index, times - times[0], used - times[0], [t.fps for t in tracks]


def open_take(inputs: list[Path], calib: Path | None = None, calib_units: str = "auto") -> Take:
    """Resolve the inputs of `triangulum process` (see the module docstring). calib_units:
    the calibration's length unit ("m", "cm", "mm"; "auto" tells it from the rig)."""
    from app.sample import sample_calibration, sample_videos

    warnings: list[str] = []
    session: Session | None = None
    if not inputs:
        source, videos, calib = "built-in sample", sample_videos(), calib or sample_calibration()
    elif len(inputs) == 1 and inputs[0].is_dir():
        folder = inputs[0]
        if (folder / "manifest.toml").is_file():
            session = open_session(folder)
            source = f"session {folder}"
            videos = [t.video for t in session.tracks]
            calib = calib or session.calibration
            if calib is None:
                raise TriangulumError(f"session {folder} has no calibration.toml; pass the rig with --calib.")
        else:
            source = f"folder {folder}"
            videos = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
            if not videos:
                raise TriangulumError(f"{folder} holds no videos ({', '.join(VIDEO_SUFFIXES)}) and no manifest.toml; "
                                      "give a session folder or the video files.")
            calib = calib or _find_calibration(folder)
    else:
        for p in inputs:
            if not p.is_file():
                raise TriangulumError(f"{p} does not exist; give a session folder or video files.")
        source, videos = f"{len(inputs)} videos", list(inputs)
        if calib is None:
            raise TriangulumError("videos given without a calibration; pass the rig with --calib rig.toml.")
    rig = convert(calib, units=calib_units, notes=warnings)
    if session is not None:
        by_camera = {t.name: t.video for t in session.tracks}
        unknown = [n for n in by_camera if n not in rig.names]
        if unknown:
            raise TriangulumError(f"session camera(s) {unknown} are not in the calibration {calib} (it has "
                                  f"{rig.names}); pass the calibration of this rig with --calib.")
    else:
        by_camera = match_videos(videos, rig, str(calib))
    cameras = [n for n in rig.names if n in by_camera]
    if len(cameras) < 2:
        raise TriangulumError(f"{source}: only {len(cameras)} camera(s) with video ({', '.join(cameras) or 'none'}); "
                              "triangulation needs at least two calibrated cameras.")
    unused = [n for n in rig.names if n not in by_camera]
    if unused:
        warnings.append(f"calibrated camera(s) {', '.join(unused)} have no video and are not used.")
    rig = rig.subset(cameras)
    infos = []
    for name in cameras:
        info = probe_video(name, by_camera[name])
        rig = fit_camera_size(rig, info, warnings)
        infos.append(info)
    if session is not None:
        frame_index, times, used, rates = session_index(session, cameras, warnings)
    else:
        frame_index, times, used, rates = video_index(infos, warnings)
    if len(frame_index) == 0:
        raise TriangulumError(f"{source}: no frames to process.")
    fps = max(rates)
    slower = [c for c, r in zip(cameras, rates, strict=True) if r < SLOWER * fps]
    if slower:
        detail = ", ".join(f"{c} at {r:g} fps" for c, r in zip(cameras, rates, strict=True) if c in slower)
        warnings.append(f"camera(s) {detail} run slower than the others ({fps:g} fps): frame sets follow the "
                        f"{fps:g} fps cameras, and the slower camera's 2D is interpolated in time between its "
                        "neighbouring frames for the sets it has no frame of its own.")
    for w in warnings:
        log.warning(w)
    return Take(rig, infos, frame_index, times, fps, source, Path(calib), warnings, used, rates, slower)
