"""Multi-view datasets with 3D ground truth, in one sample layout for every trainer.

    ds = open_dataset("h36m:/data/h36m", split="train")      # or panoptic:PATH, session:PATH
    s = ds[0]   # one frame set: crops (V, 256, 256, 3) uint8 RGB, roi (V, 3), cameras, joints

A sample is a dict of numpy arrays, every dataset alike:
  crops (V, 256, 256, 3) uint8 RGB: the landmark network's input, cut around the person as the
      backbone needs it (`person_roi`: MediaPipe's alignment ROI from the true joints);
  roi (V, 4): centre x, y, side (px) and rotation (rad) of each crop in its image;
  K (V, 3, 3), dist (V, 5) OpenCV k1 k2 p1 p2 k3, R (V, 3, 3), t (V, 3): world -> camera,
      metres, world Z up (each loader converts its dataset's convention once, here);
  joints (33, 3): the truth in our skeleton (BlazePose-33 order), metres, NaN where the
      dataset has no such joint (its `TO_OURS` map says which);
  native (Jn, 3): the truth in the dataset's own skeleton, metres, NaN where not valid;
  view_ok (V,) bool: the view has the person in it (a frame a camera missed is False).

Every loader declares its joint map to our skeleton in the module (`TO_OURS`): dataset joint
name -> BlazePose-33 joint name, only where the two mark the same anatomical point closely
enough to train on (hips are the exception every dataset shares: H36M's and Panoptic's hip
joints are joint centres, BlazePose's sit a little lower and wider; a supervised run learns the
dataset's definition, which is what training on a dataset means).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from calibration.camera import Camera
from calibration.errors import TriangulumError
from engines.blazepose.modules import LANDMARK_INPUT
from engines.blazepose.roi import Roi, crop, roi_from_points
from engines.skeleton import BLAZEPOSE33

OURS = BLAZEPOSE33.joints[:33]
_HIPS = (OURS.index("left_hip"), OURS.index("right_hip"))
_SHOULDERS = (OURS.index("left_shoulder"), OURS.index("right_shoulder"))


class MultiViewDataset(Protocol):
    """What every loader offers: len, samples by index, their truth alone, the cameras' names."""

    cameras: list[str]

    def __len__(self) -> int: ...

    def __getitem__(self, i: int) -> dict[str, np.ndarray]: ...

    def joints(self, i: int) -> np.ndarray:
        """Sample i's truth (33, 3) without reading its images (e.g. for PSS's clusters)."""
        ...


def to_ours(native: np.ndarray, names: tuple[str, ...], mapping: dict[str, str]) -> np.ndarray:
    """(..., Jn, 3) in the dataset's joint order `names` -> (..., 33, 3) in ours, NaN where the
    map has no joint."""
    out = np.full((*native.shape[:-2], len(OURS), 3), np.nan)
    for theirs, ours in mapping.items():
        out[..., OURS.index(ours), :] = native[..., names.index(theirs), :]
    return out


def person_roi(points: np.ndarray) -> Roi | None:
    """The crop the landmark network expects for a person whose joints project to `points`
    (33, 2) image px (NaN: unknown): MediaPipe's alignment ROI, centred on the hips' midpoint,
    turned so the hips -> shoulders line points up, side 2.5 x the farthest joint from the
    centre (its detector's enclosing circle with the 1.25 ROI scale). None without hips."""
    hips = points[list(_HIPS)]
    if not np.isfinite(hips).all():
        return None
    centre = hips.mean(0)
    up = points[list(_SHOULDERS)].mean(0) - centre
    if not np.isfinite(up).all() or np.hypot(*up) < 1e-6:
        up = np.array([0.0, -1.0])
    radius = np.nanmax(np.linalg.norm(points - centre, axis=-1))
    return roi_from_points(centre, centre + up / np.hypot(*up) * radius)


def roi_array(roi: Roi | None) -> np.ndarray:
    return np.array([*roi.centre, roi.size, roi.rotation]) if roi is not None else np.full(4, np.nan)


def array_roi(a: np.ndarray) -> Roi:
    return Roi(np.asarray(a[:2], np.float64), float(a[2]), float(a[3]))


def frame_sample(images: list[np.ndarray | None], cameras: list[Camera], joints: np.ndarray,
                 native: np.ndarray) -> dict[str, np.ndarray]:
    """One sample (module docstring) from the frame set's images (RGB uint8, None where a view
    is missing), its cameras (metres, Z up) and the truth (33, 3) / (Jn, 3) metres."""
    V = len(cameras)
    crops = np.zeros((V, LANDMARK_INPUT, LANDMARK_INPUT, 3), np.uint8)
    rois = np.full((V, 4), np.nan)
    ok = np.zeros(V, bool)
    for v, (image, cam) in enumerate(zip(images, cameras, strict=True)):
        if image is None:
            continue
        roi = person_roi(cam.project(joints))
        if roi is None:
            continue
        crops[v] = crop(image, roi, LANDMARK_INPUT)
        rois[v], ok[v] = roi_array(roi), True
    return {
        "crops": crops, "roi": rois, "view_ok": ok,
        "K": np.stack([c.K for c in cameras]), "dist": np.stack([c.dist for c in cameras]),
        "R": np.stack([c.R for c in cameras]), "t": np.stack([c.t for c in cameras]),
        "joints": joints.astype(np.float64), "native": native.astype(np.float64),
    }


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise TriangulumError(f"{path}: cannot read this image; is the dataset complete?")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def open_dataset(spec: str, split: str = "train", **options) -> MultiViewDataset:
    """A dataset by spec KIND:PATH: h36m (Learnable Triangulation's layout), panoptic (a CMU
    Panoptic root holding sequence folders) or session (our recorded sessions / a folder of
    takes, with their processed 3D). split: train or val."""
    kind, _, path = spec.partition(":")
    if not path:
        raise TriangulumError(f"dataset {spec!r}: give KIND:PATH, e.g. h36m:/data/human36m or panoptic:/data/panoptic.")
    if split not in ("train", "val"):
        raise TriangulumError(f"unknown split {split!r}; use train or val.")
    if kind == "h36m":
        from training.datasets.h36m import Human36M

        return Human36M(Path(path), split, **options)
    if kind == "panoptic":
        from training.datasets.panoptic import Panoptic

        return Panoptic(Path(path), split, **options)
    if kind == "session":
        from training.datasets.session import SessionDataset

        return SessionDataset(Path(path), split, **options)
    raise TriangulumError(f"unknown dataset kind {kind!r}; use h36m, panoptic or session.")
