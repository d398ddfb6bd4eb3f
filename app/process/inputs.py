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

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from calibration.errors import TriangulumError
from calibration.formats.detect import convert
from calibration.rig import CROP_TOLERANCE_PX, Rig, fit_source_size  # noqa: F401 (re-exported)
from calibration.takes import (  # noqa: F401 (VideoInfo re-exported)
    Session,
    VideoInfo,
    open_session,
    probe_video,
    session_index,
    video_index,
)

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm")
CALIBRATION_NAMES = ("calibration.toml", "rig.toml", "Calib.toml", "Calib.qca.txt", "camera_array.toml")
SLOWER = 0.98  # a camera under this fraction of the set rate is slower: its 2D is interpolated


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
    frame_times: np.ndarray
    camera_fps: list[float]
    interpolated: list[str]
    warnings: list[str] = field(default_factory=list)

    @property
    def cameras(self) -> list[str]:
        return self.rig.names

    @property
    def frames(self) -> int:
        return len(self.times)


def fit_camera_size(rig: Rig, video: VideoInfo, warnings: list[str]) -> Rig:
    """The rig with `video.camera` resized to the video if it is a small right/bottom crop."""
    return fit_source_size(rig, video.camera, video.size, f"the video {video.path.name}", warnings)


def match_videos(videos: list[Path], names: list[str], calibration: str, kind: str = "video") -> dict[str, Path]:
    """Camera name (one of the calibration's `names`) -> video (or keypoint file or folder:
    `kind`), by file name (equal to, else containing, the camera's name)."""
    out: dict[str, Path] = {}
    for path in videos:
        stem = path.stem
        exact = [n for n in names if n == stem]
        inside = exact or sorted((n for n in names if n in stem), key=len, reverse=True)[:1]
        if not inside:
            example = f"{names[0]}.mp4" if kind == "video" else f"{names[0]}_json"
            raise TriangulumError(
                f"{kind} {path.name} matches no camera of the calibration {calibration} (it has "
                f"{', '.join(names)}); name each after its camera, e.g. {example}."
            )
        name = inside[0]
        if name in out:
            raise TriangulumError(f"camera '{name}' has two {kind}s, {out[name].name} and {path.name}; "
                                  f"give one {kind} per camera.")
        out[name] = path
    if len(out) < 2:
        raise TriangulumError(f"only {len(out)} {kind} input(s) given; triangulation needs at least two cameras.")
    return out


def folder_videos(folder: Path) -> list[Path]:
    """The videos of a folder of videos, one per camera, in name order."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)


def _find_calibration(folder: Path) -> Path:
    for name in CALIBRATION_NAMES:
        if (folder / name).is_file():
            return folder / name
    tomls = sorted(folder.glob("*.toml"))
    if len(tomls) == 1:
        return tomls[0]
    raise TriangulumError(f"no calibration found in {folder} (looked for {', '.join(CALIBRATION_NAMES)}); "
                          "pass one with --calib, or --calib none to estimate the cameras from the person.")


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
            videos = folder_videos(folder)
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
            raise TriangulumError("videos given without a calibration; pass the rig with --calib rig.toml, or "
                                  "--calib none to estimate the cameras from the person.")
    rig = convert(calib, units=calib_units, notes=warnings)
    if session is not None:
        by_camera = {t.name: t.video for t in session.tracks}
        unknown = [n for n in by_camera if n not in rig.names]
        if unknown:
            raise TriangulumError(f"session camera(s) {unknown} are not in the calibration {calib} (it has "
                                  f"{rig.names}); pass the calibration of this rig with --calib.")
    else:
        by_camera = match_videos(videos, rig.names, str(calib))
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
    return Take(rig, infos, frame_index, times, fps, source, Path(calib), used, rates, slower, warnings)
