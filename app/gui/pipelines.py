"""The pose pipeline the GUI runs, built from the user's choices.

Without a calibration: the capture core's PreviewPipeline (cameras shown, no poses). With one:
the per-frame reconstruction `app.process.pipeline.FramePipeline` that `triangulum process`
runs (multi-person BlazePose in every view, cross-view association, left/right check,
triangulation by the chosen method, optional One Euro smoothing), wrapped so that each pose
also carries the main performer's box in every view for the tiles.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from app.capture.frames import FrameSet, PoseFrame
from app.capture.worker import PosePipeline, PreviewPipeline
from app.process.pipeline import FramePipeline, build_frame_pipeline, online_config
from calibration.errors import TriangulumError
from calibration.rig import Rig
from engines.heads import METHODS
from engines.runtimes.onnx_runtime import default_threads

FILTERS = {"none": "None", "one-euro": "One Euro (live smoothing)"}  # labels of app.process.pipeline.ONLINE_FILTERS
# Labels of app.process.pipeline.PRECISIONS; the int8 figures are process_quality --speed-options'.
PRECISION_LABELS = {"float": "Float (default)", "int8": "int8 (faster: 3D 9-21 mm from float)"}
METHOD_LABELS = METHODS  # the one registry's labels, in its order


@dataclass
class PipelineChoice:
    """method: a triangulation method of app.process.reconstruct.METHODS; smoothing: a key of
    FILTERS; backend: the BlazePose runtime ("onnxruntime", "torch", "tensorrt"); precision:
    the landmark network's, a key of PRECISION_LABELS (int8 runs on ONNX Runtime only);
    backbone: an adapted landmark network's folder (Tools > Adapt to this studio; None: the
    shipped network)."""

    method: str = "algebraic"
    smoothing: str = "none"
    backend: str = "onnxruntime"
    precision: str = "float"
    backbone: str | None = None

    def validate(self) -> None:
        if self.method not in METHODS:
            raise TriangulumError(f"unknown triangulation method '{self.method}'; choose one of {', '.join(METHODS)}.")
        if self.smoothing not in FILTERS:
            raise TriangulumError(f"unknown filter '{self.smoothing}'; choose one of {', '.join(FILTERS)}.")
        if self.precision not in PRECISION_LABELS:
            raise TriangulumError(f"unknown precision '{self.precision}'; choose one of {', '.join(PRECISION_LABELS)}.")
        if self.backbone and self.precision != "float":
            raise TriangulumError("an adapted 2D model runs in float; choose Float, or the shipped model (Tools menu).")


@dataclass(eq=False)
class PersonPoseFrame(PoseFrame):
    """A PoseFrame with the main performer's box in every view: rois (C, 4, 2) corners in
    pixels (top-left, top-right, bottom-right, bottom-left), NaN where a view did not see them."""

    rois: np.ndarray | None = None


class PersonBoxPipeline:
    """Runs a FramePipeline and adds the performer's per-view boxes from its last result."""

    def __init__(self, inner: FramePipeline) -> None:
        self.inner = inner

    def use_rig(self, rig: Rig) -> None:
        self.inner.use_rig(rig)

    def process(self, frameset: FrameSet) -> PersonPoseFrame:
        return self._with_boxes(self.inner.process(frameset))

    def split(self):
        """The inner pipeline's two stages (PoseWorker pipelining), boxes added by the second."""
        first, second = self.inner.split()
        return first, lambda frameset, found: self._with_boxes(second(frameset, found))

    def _with_boxes(self, pose: PoseFrame) -> PersonPoseFrame:
        rois = np.full((len(pose.cameras), 4, 2), np.nan)
        result, main = self.inner.last, self.inner.main
        k = None if result is None or main is None else result.association.person(main)
        if k is not None:
            for v, person in enumerate(result.association.members[k]):
                if person >= 0:
                    x0, y0, x1, y1 = result.views[v].boxes[person]
                    rois[v] = [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]
        fields = {f.name: getattr(pose, f.name) for f in dataclasses.fields(pose)}
        return PersonPoseFrame(**fields, rois=rois)


def configure_threads() -> None:
    """One torch thread: the pipeline's geometry is many tiny tensor operations, for which
    thread hand-offs cost more than they save, and the GUI needs the other core."""
    torch.set_num_threads(1)


def build_pipeline(rig: Rig | None, choice: PipelineChoice) -> PosePipeline:
    """The pipeline for a calibration (None: camera preview without poses). Loads the 2D
    models, which takes a moment: call it off the UI thread."""
    choice.validate()
    if rig is None:
        return PreviewPipeline()
    config = online_config(choice.method, choice.smoothing)
    return PersonBoxPipeline(build_frame_pipeline(rig, config, choice.backend, default_threads(), choice.precision,
                                                  choice.backbone))
