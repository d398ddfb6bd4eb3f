"""The pose pipeline the GUI runs, built from the user's choices: none (camera preview) without
a calibration, else BlazePose in every view + triangulation by the chosen method, optionally
smoothed live by a One Euro filter."""

from __future__ import annotations

from dataclasses import dataclass

from app.capture.frames import FrameSet, PoseFrame, clock
from app.capture.pipeline import TriangulationPipeline
from app.capture.worker import PosePipeline, PreviewPipeline
from calibration.errors import TriangulumError
from calibration.rig import METHODS, Rig
from engines.temporal import OneEuroConfig, OneEuroFilter

FILTERS = {"none": "None", "one-euro": "One Euro (live smoothing)"}
METHOD_LABELS = {
    "dlt": "Weighted DLT (fast)",
    "svd": "DLT by SVD",
    "robust": "Robust (GeoMed / WSS)",
    "ransac": "RANSAC",
}


@dataclass
class PipelineChoice:
    """method: a triangulation method of calibration.rig.METHODS; smoothing: a key of FILTERS;
    backend: the 2D pose runtime ("torch", "onnxruntime", "tensorrt")."""

    method: str = "dlt"
    smoothing: str = "none"
    backend: str = "torch"

    def validate(self) -> None:
        if self.method not in METHODS:
            raise TriangulumError(f"unknown triangulation method '{self.method}'; choose one of {METHODS}.")
        if self.smoothing not in FILTERS:
            raise TriangulumError(f"unknown filter '{self.smoothing}'; choose one of {tuple(FILTERS)}.")


class SmoothedPipeline:
    """Runs `inner` and smooths its joints with a One Euro filter over capture time, then
    reprojects the smoothed joints so the tiles show what is exported. The filter restarts
    when time runs back (a seek) or the cameras change."""

    def __init__(self, inner: PosePipeline, rig: Rig, config: OneEuroConfig | None = None) -> None:
        self.inner = inner
        self.rig = rig
        self.config = config or OneEuroConfig()
        self.filter = OneEuroFilter(self.config)
        self._last: tuple[float, tuple[str, ...]] | None = None

    def process(self, frameset: FrameSet) -> PoseFrame:
        pose = self.inner.process(frameset)
        t0 = clock()
        if self._last is None or pose.t_capture <= self._last[0] or pose.cameras != self._last[1]:
            self.filter.reset()
        self._last = (pose.t_capture, pose.cameras)
        pose.joints3d = self.filter(pose.joints3d, pose.t_capture)
        pose.reprojections = self.rig.subset(list(pose.cameras)).project(pose.joints3d)
        pose.timings["filter"] = clock() - t0
        return pose


def build_pipeline(rig: Rig | None, choice: PipelineChoice) -> PosePipeline:
    """The pipeline for a calibration (None: camera preview without poses). Loads the 2D
    model, which takes a moment: call it off the UI thread."""
    choice.validate()
    if rig is None:
        return PreviewPipeline()
    from engines.blazepose.pipeline import BlazePoseEstimator

    pipeline: PosePipeline = TriangulationPipeline(rig, BlazePoseEstimator(choice.backend), method=choice.method)
    if choice.smoothing == "one-euro":
        pipeline = SmoothedPipeline(pipeline, rig)
    return pipeline
