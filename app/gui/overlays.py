"""What a camera tile draws over its video, as plain arrays (no Qt): 2D detections, bones,
3D joints reprojected into the view coloured by reprojection error, and the person ROI."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.capture.frames import PoseFrame
from engines.skeleton import SKELETONS, Skeleton

# Reprojection error (px) shown green up to GOOD, red from BAD, yellow halfway.
ERROR_GOOD_PX = 5.0
ERROR_BAD_PX = 20.0
_GREEN = np.array([40, 220, 60], np.float64)
_YELLOW = np.array([255, 220, 0], np.float64)
_RED = np.array([255, 40, 40], np.float64)
_GREY = np.array([150, 150, 150], np.float64)


def error_colours(error: np.ndarray, good: float = ERROR_GOOD_PX, bad: float = ERROR_BAD_PX) -> np.ndarray:
    """Reprojection error (N,) px -> (N, 4) uint8 RGBA: green <= good, yellow, red >= bad; grey if NaN."""
    error = np.asarray(error, np.float64).reshape(-1)
    s = np.clip((error - good) / (bad - good), 0.0, 1.0)[:, None]
    first = _GREEN + (_YELLOW - _GREEN) * np.clip(2 * s, 0, 1)
    rgb = np.where(s <= 0.5, first, _YELLOW + (_RED - _YELLOW) * np.clip(2 * s - 1, 0, 1))
    rgb = np.where(np.isnan(error)[:, None], _GREY, rgb)
    return np.concatenate([rgb, np.full((len(error), 1), 255.0)], axis=1).astype(np.uint8)


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
    for skeleton in SKELETONS.values():
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
    rois = getattr(pose, "rois", None)
    roi = None if rois is None or rois[c] is None else np.asarray(rois[c], np.float64).reshape(4, 2)
    return TileOverlay(keypoints, confidence, reprojected, error, roi, skeleton.bones if skeleton else ())
