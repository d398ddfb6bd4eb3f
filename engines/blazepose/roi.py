"""Rotated regions of interest: from a detection or from the previous landmarks, crop, back-project.

All in image pixels (y down). A rotation `theta` turns the crop's x axis to
(cos theta, sin theta) in the image, as MediaPipe's NormalizedRect.rotation does.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engines.blazepose import yuv
from engines.blazepose.yuv import Yuv420

ROI_SCALE = 1.25  # MediaPipe's RectTransformation scale for both pose ROIs
TARGET_ANGLE = np.pi / 2  # the hip -> scale-point vector is turned to point up


@dataclass
class Roi:
    """A rotated square in image pixels: centre (2,), size (side length), rotation (radians)."""

    centre: np.ndarray
    size: float
    rotation: float

    def corners(self) -> np.ndarray:
        """(4, 2) top-left, top-right, bottom-right, bottom-left of the crop, in image pixels."""
        half = self.size / 2
        local = np.array([[-half, -half], [half, -half], [half, half], [-half, half]])
        return local @ rotation_matrix(self.rotation).T + self.centre

    def bounding_box(self) -> np.ndarray:
        """(4,) axis-aligned x_min, y_min, x_max, y_max around the rotated square."""
        c = self.corners()
        return np.concatenate([c.min(0), c.max(0)])


def rotation_matrix(theta: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s], [s, c]])


def normalize_radians(angle: float) -> float:
    return float(angle - 2 * np.pi * np.floor((angle + np.pi) / (2 * np.pi)))


def roi_from_points(centre: np.ndarray, scale_point: np.ndarray, scale: float = ROI_SCALE) -> Roi:
    """MediaPipe's alignment-points ROI: centred on `centre`, side 2 |scale_point - centre| x scale,
    rotated so that centre -> scale_point points up in the crop. Points are (2,) pixels."""
    d = np.asarray(scale_point, np.float64) - np.asarray(centre, np.float64)
    rotation = normalize_radians(TARGET_ANGLE - np.arctan2(-d[1], d[0]))
    return Roi(np.asarray(centre, np.float64), float(2 * np.hypot(*d) * scale), rotation)


def crop_matrix(roi: Roi, out_size: int) -> np.ndarray:
    """(2, 3) affine map from crop pixels to image pixels (crop corner (0, 0) -> ROI corner)."""
    r = rotation_matrix(roi.rotation) * (roi.size / out_size)
    t = roi.centre - r @ np.array([out_size / 2, out_size / 2])
    return np.concatenate([r, t[:, None]], axis=1)


def crop(image: np.ndarray | Yuv420, roi: Roi, out_size: int, border: str = "replicate") -> np.ndarray:
    """Bilinear warp of the ROI of an (H, W, 3) uint8 image into (out_size, out_size, 3) uint8.

    `border` is "replicate" (landmark crops) or "zero" (the detector's letterbox), as MediaPipe.
    A Yuv420 frame is cut plane by plane and gives a BGR crop (engines.blazepose.yuv).
    """
    mode = cv2.BORDER_REPLICATE if border == "replicate" else cv2.BORDER_CONSTANT
    if isinstance(image, Yuv420):
        return yuv.crop(image, crop_matrix(roi, out_size), out_size, mode)
    return cv2.warpAffine(
        image, crop_matrix(roi, out_size), (out_size, out_size),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=mode, borderValue=0,
    )


def crop_to_image(points: np.ndarray, roi: Roi, crop_size: float) -> np.ndarray:
    """(..., 2) points in crop pixels -> image pixels."""
    m = crop_matrix(roi, 1)
    p = np.asarray(points, np.float64) / crop_size
    return p @ m[:, :2].T + m[:, 2]


def image_to_crop(points: np.ndarray, roi: Roi, crop_size: float) -> np.ndarray:
    """(..., 2) image pixels -> crop pixels (the inverse of crop_to_image)."""
    m = crop_matrix(roi, 1)
    p = (np.asarray(points, np.float64) - m[:, 2]) @ np.linalg.inv(m[:, :2]).T
    return p * crop_size


def full_image_roi(width: int, height: int) -> Roi:
    """The detector's letterbox: the square that holds the whole image, centred, unrotated."""
    return Roi(np.array([width / 2, height / 2], np.float64), float(max(width, height)), 0.0)
