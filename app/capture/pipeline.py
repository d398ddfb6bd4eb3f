"""The live pose pipeline: BlazePose 2D in every view, then triangulation with the rig.

    pipeline = TriangulationPipeline(rig, BlazePoseEstimator())
    pose = pipeline.process(frameset)        # a PoseFrame (see frames.py)

Stages timed in `PoseFrame.timings`: "prepare" (BGR -> RGB), "pose2d" (detector when a
view lost its track, plus one batched landmark pass), "triangulate" (rig DLT weighted by
the per-view confidences, and reprojection).
"""

from __future__ import annotations

import cv2
import numpy as np

from app.capture.frames import FrameSet, PoseFrame, clock
from calibration.errors import TriangulumError
from calibration.rig import Rig
from engines.blazepose.pipeline import BODY_JOINTS, LANDMARK_NAMES, BlazePoseEstimator


class TriangulationPipeline:
    """Per-view BlazePose landmarks triangulated with `rig` (cameras matched by name).

    Keypoints whose confidence is under `min_confidence` do not take part in the
    triangulation; joints seen by fewer than two views are NaN.
    """

    def __init__(
        self,
        rig: Rig,
        estimator: BlazePoseEstimator,
        min_confidence: float = 0.3,
        method: str = "dlt",
    ) -> None:
        self.rig = rig
        self.estimator = estimator
        self.min_confidence = min_confidence
        self.method = method
        self.joint_names = LANDMARK_NAMES[:BODY_JOINTS]
        self._cameras: tuple[str, ...] = ()
        self._subrig: Rig | None = None

    def _rig_for(self, cameras: tuple[str, ...]) -> Rig:
        if cameras != self._cameras:
            missing = [c for c in cameras if c not in self.rig.names]
            if missing:
                raise TriangulumError(f"camera(s) {missing} are not in the calibration (it has {self.rig.names}); name the sources after the calibrated cameras with ?name=.")
            self._subrig = self.rig.subset(list(cameras))
            # The estimator tracks people per view position: a different camera set
            # (a camera dropped out or came back) must start from fresh detections.
            self.estimator.reset()
            self._cameras = cameras
        return self._subrig

    def process(self, frameset: FrameSet) -> PoseFrame:
        t0 = clock()
        rig = self._rig_for(frameset.cameras)
        images = [cv2.cvtColor(f.image, cv2.COLOR_BGR2RGB) for f in frameset.frames]
        t1 = clock()
        poses = self.estimator(images)
        t2 = clock()
        views, joints = len(images), BODY_JOINTS
        keypoints = np.full((views, joints, 2), np.nan)
        confidences = np.zeros((views, joints))
        for v, pose in enumerate(poses):
            if pose is not None:
                keypoints[v] = pose.keypoints[:joints]
                confidences[v] = pose.confidence[:joints]
        observed = np.where((confidences >= self.min_confidence)[..., None], keypoints, np.nan)
        joints3d = rig.triangulate(observed, weights=confidences, method=self.method)
        reprojections = rig.project(joints3d)
        t3 = clock()
        return PoseFrame(
            index=frameset.index,
            t_capture=frameset.t,
            cameras=frameset.cameras,
            joints3d=joints3d,
            keypoints2d=keypoints,
            confidences=confidences,
            reprojections=reprojections,
            timings={"prepare": t1 - t0, "pose2d": t2 - t1, "triangulate": t3 - t2},
            joint_names=self.joint_names,
        )
