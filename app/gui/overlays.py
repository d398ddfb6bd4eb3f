"""What a camera tile draws over its video, as plain arrays (no Qt): 2D detections, bones,
3D joints reprojected into the view coloured by reprojection error, and the person ROI."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.capture.frames import PoseFrame
from engines.skeleton import Skeleton, all_skeletons

# Reprojection error classes: upper bounds in px. A marker is green up to the first bound and
# turns through yellow to red above the last; the final colour is for an unknown error.
ERROR_LEVELS_PX = (5.0, 10.0, 15.0, 20.0)
LEVEL_COLOURS = np.array(
    [[40, 220, 60], [170, 230, 30], [255, 220, 0], [255, 140, 0], [255, 40, 40], [150, 150, 150]], np.uint8
)
UNKNOWN_LEVEL = len(LEVEL_COLOURS) - 1


def error_levels(error: np.ndarray) -> np.ndarray:
    """Reprojection error (N,) px -> (N,) class index into LEVEL_COLOURS (UNKNOWN_LEVEL for NaN)."""
    error = np.asarray(error, np.float64).reshape(-1)
    levels = np.searchsorted(np.array(ERROR_LEVELS_PX), np.nan_to_num(error, nan=0.0), side="left")
    return np.where(np.isnan(error), UNKNOWN_LEVEL, levels)


def error_colours(error: np.ndarray) -> np.ndarray:
    """Reprojection error (N,) px -> (N, 3) uint8 RGB of its class."""
    return LEVEL_COLOURS[error_levels(error)]


def segments(points: np.ndarray, pairs: tuple[tuple[int, int], ...]) -> np.ndarray:
    """Line segments between point pairs where both ends are finite: (N, D) -> (2S, D)."""
    points = np.asarray(points, np.float64)
    if not pairs:
        return np.zeros((0, points.shape[-1]))
    idx = np.asarray(pairs, np.int64).reshape(-1, 2)
    idx = idx[(idx < len(points)).all(axis=1)]
    ends = points[idx]  # (B, 2, D)
    keep = np.isfinite(ends).all(axis=(1, 2))
    return ends[keep].reshape(-1, points.shape[-1])


def skeleton_for(joint_names: tuple[str, ...]) -> Skeleton | None:
    """The known skeleton whose real joints are exactly these names, in order, or None."""
    for skeleton in all_skeletons().values():
        if skeleton.joints == tuple(joint_names):
            return skeleton
    return None


@dataclass
class TileOverlay:
    """One view's overlay. keypoints (J, 2) px and confidence (J,) from the 2D detector;
    reprojected (J, 2) px of the 3D joints; error (J,) px between the two; roi (4, 2) corners
    of the person's crop or None; bones: (parent, child) pairs for drawing."""

    keypoints: np.ndarray
    confidence: np.ndarray
    reprojected: np.ndarray
    error: np.ndarray
    roi: np.ndarray | None
    bones: tuple[tuple[int, int], ...]

    @property
    def mean_error(self) -> float:
        """Mean reprojection error over joints seen in this view (px), NaN if none."""
        finite = self.error[np.isfinite(self.error)]
        return float(finite.mean()) if finite.size else float("nan")


def overlay_for(pose: PoseFrame, camera: str, min_confidence: float = 0.3) -> TileOverlay | None:
    """The overlay of `camera` in a pose, or None when the pose does not cover that camera.

    2D points under `min_confidence` are dropped (NaN) so that guessed joints do not clutter
    the view; reprojections are kept, their error says how well they agree with the detection.
    """
    if camera not in pose.cameras:
        return None
    c = pose.cameras.index(camera)
    keypoints = np.array(pose.keypoints2d[c], np.float64)
    confidence = np.asarray(pose.confidences[c], np.float64)
    keypoints[~(confidence >= min_confidence)] = np.nan
    reprojected = np.asarray(pose.reprojections[c], np.float64)
    error = np.linalg.norm(reprojected - keypoints, axis=-1)
    skeleton = skeleton_for(pose.joint_names)
    rois = getattr(pose, "rois", None)  # PersonPoseFrame (app.gui.pipelines) carries them
    roi = None if rois is None else np.asarray(rois[c], np.float64).reshape(4, 2)
    return TileOverlay(keypoints, confidence, reprojected, error, roi, skeleton.bones if skeleton else ())
