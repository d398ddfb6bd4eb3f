"""Decode the detector's SSD outputs into people: boxes, 4 keypoints and a score, in image pixels.

Follows MediaPipe's pose_detection graph: letterbox the whole image into 224 x 224, decode the
2254 anchors (offsets in 224-pixel units, sigmoid scores clipped at +-100), keep scores >= 0.5,
weighted non-maximum suppression at IoU 0.3, then undo the letterbox.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engines.blazepose.anchors import ssd_anchors

_ANCHORS = ssd_anchors()


@dataclass
class Detection:
    """One person found by the detector, in image pixels.

    box: (4,) x_min, y_min, x_max, y_max; keypoints: (4, 2) x, y (0 = hip centre, 1 = a point
    on the circle that encloses the body, 2 and 3 = the same for the upper body); score in [0, 1].
    """

    box: np.ndarray
    keypoints: np.ndarray
    score: float

    @property
    def area(self) -> float:
        return float(max(self.box[2] - self.box[0], 0) * max(self.box[3] - self.box[1], 0))

    @property
    def centre(self) -> np.ndarray:
        return (self.box[:2] + self.box[2:]) / 2


def decode_boxes(regressors: np.ndarray, input_size: int = 224) -> np.ndarray:
    """(N, 12) raw regressors -> (N, 12): box x_min, y_min, x_max, y_max, then 4 keypoints (x, y).

    Normalised to the detector input ([0, 1] over the 224 square).
    """
    raw = regressors / input_size
    cx = raw[:, 0] + _ANCHORS[:, 0]
    cy = raw[:, 1] + _ANCHORS[:, 1]
    w, h = raw[:, 2], raw[:, 3]
    out = np.empty_like(raw)
    out[:, 0], out[:, 1] = cx - w / 2, cy - h / 2
    out[:, 2], out[:, 3] = cx + w / 2, cy + h / 2
    out[:, 4::2] = raw[:, 4::2] + _ANCHORS[:, :1]
    out[:, 5::2] = raw[:, 5::2] + _ANCHORS[:, 1:]
    return out


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (4,) box with (N, 4) boxes, all x_min, y_min, x_max, y_max -> (N,)."""
    lo = np.maximum(box[:2], boxes[:, :2])
    hi = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    area = np.prod(box[2:] - box[:2])
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    union = area + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def weighted_nms(decoded: np.ndarray, scores: np.ndarray, threshold: float = 0.3) -> list[tuple]:
    """MediaPipe's weighted NMS: each kept detection is the score-weighted mean of its cluster.

    decoded: (N, 12) boxes + keypoints; scores: (N,). Returns [(values (12,), score)], best
    first; the score is that of the cluster's best member.
    """
    order = np.argsort(-scores, kind="stable")
    out = []
    while len(order):
        overlap = iou(decoded[order[0], :4], decoded[order, :4])
        members = order[overlap > threshold]
        if len(members) == 0:  # degenerate box: keep it alone
            members = order[:1]
        weights = scores[members][:, None]
        out.append(((decoded[members] * weights).sum(0) / weights.sum(), float(scores[order[0]])))
        order = order[~np.isin(order, members)]
    return out


def letterbox(width: int, height: int) -> tuple[float, float, float]:
    """Square that holds the whole image, centred: (side, x offset, y offset) in pixels."""
    side = float(max(width, height))
    return side, (side - width) / 2, (side - height) / 2


def decode_detections(regressors: np.ndarray, logits: np.ndarray, width: int, height: int,
                      min_score: float = 0.5, nms_threshold: float = 0.3) -> list[Detection]:
    """Raw detector outputs for one image -> people in image pixels, best score first.

    regressors: (2254, 12); logits: (2254,) or (2254, 1); width, height: the original image.
    """
    logits = np.clip(logits.reshape(-1).astype(np.float64), -100.0, 100.0)
    scores = 1.0 / (1.0 + np.exp(-logits))
    keep = scores >= min_score
    if not keep.any():
        return []
    decoded = decode_boxes(regressors.astype(np.float64))[keep]
    side, dx, dy = letterbox(width, height)
    people = []
    for values, score in weighted_nms(decoded, scores[keep].astype(np.float64), nms_threshold):
        px = values * side
        px[0::2] -= dx
        px[1::2] -= dy
        people.append(Detection(box=px[:4].astype(np.float32),
                                keypoints=px[4:].reshape(4, 2).astype(np.float32), score=score))
    return people
