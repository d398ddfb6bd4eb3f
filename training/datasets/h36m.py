"""Human3.6M in Learnable Triangulation's preprocessed layout.

    ROOT/human36m-multiview-labels-GTbboxes.npy     labels (np.load(..., allow_pickle=True).item())
    ROOT/processed/S1/Directions-1/imageSequence/54138969/img_000001.jpg

The label file is a dict: `subject_names`, `camera_names`, `action_names` (lists of str);
`cameras`, a structured array (subjects x cameras) with fields R (3, 3), t (3, 1) = -R C in mm,
K (3, 3), dist (5,) OpenCV order; `table`, a structured array of frame sets with subject_idx,
action_idx, frame_idx, keypoints (17, 3) world mm in H36M order, bbox_by_camera_tlbr (C, 4)
top, left, bottom, right px (all zero: the view is missing). Image of frame f: img_{f+1:06d}.jpg
(the reference code's naming). The world is Z up in millimetres: converted to metres here,
once (cameras and joints).

Protocol (the reference's): train S1, S5, S6, S7, S8; validate on S9, S11, without S9's
Greeting-2, SittingDown-2 and Waiting-1, whose ground truth is known to be off (`EXCLUDED`).
`subjects=` overrides either list.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from calibration.camera import Camera
from calibration.errors import TriangulumError
from engines.skeleton import H36M17
from training.datasets import frame_sample, read_rgb, to_ours

LABELS = "human36m-multiview-labels-GTbboxes.npy"
TRAIN_SUBJECTS = ("S1", "S5", "S6", "S7", "S8")
VAL_SUBJECTS = ("S9", "S11")
EXCLUDED = {("S9", "Greeting-2"), ("S9", "SittingDown-2"), ("S9", "Waiting-1")}
JOINTS = H36M17.joints  # right_ankle, right_knee, right_hip, ... neck_nose (REFERENCE.md order)
# H36M joint -> ours. Pelvis, spine, thorax and head top have no BlazePose landmark; H36M's
# joint 16 is between the neck and the nose and is trained as the nose.
TO_OURS = {
    "right_ankle": "right_ankle", "right_knee": "right_knee", "right_hip": "right_hip",
    "left_hip": "left_hip", "left_knee": "left_knee", "left_ankle": "left_ankle",
    "right_wrist": "right_wrist", "right_elbow": "right_elbow", "right_shoulder": "right_shoulder",
    "left_shoulder": "left_shoulder", "left_elbow": "left_elbow", "left_wrist": "left_wrist",
    "neck_nose": "nose",
}
# Structured dtypes of the label file (the reference's generate-labels script).
CAMERA_DTYPE = np.dtype([("R", np.float32, (3, 3)), ("t", np.float32, (3, 1)), ("K", np.float32, (3, 3)),
                         ("dist", np.float32, 5)])


def table_dtype(cameras: int) -> np.dtype:
    return np.dtype([("subject_idx", np.int8), ("action_idx", np.int8), ("frame_idx", np.int16),
                     ("keypoints", np.float32, (17, 3)), ("bbox_by_camera_tlbr", np.int16, (cameras, 4))])


def image_path(root: Path, subject: str, action: str, camera: str, frame: int) -> Path:
    return root / "processed" / subject / action / "imageSequence" / camera / f"img_{frame + 1:06d}.jpg"


def read_labels(root: Path) -> dict:
    path = root / LABELS
    if not path.is_file():
        raise TriangulumError(f"{root}: no {LABELS}; give the folder of Learnable Triangulation's preprocessed "
                              "Human3.6M (labels file and processed/ images).")
    labels = np.load(path, allow_pickle=True).item()
    missing = {"subject_names", "camera_names", "action_names", "cameras", "table"} - set(labels)
    if missing:
        raise TriangulumError(f"{path}: not a Human3.6M label file (no {', '.join(sorted(missing))}).")
    return labels


class Human36M:
    """Frame sets of the protocol's subjects (module docstring) as samples (training.datasets)."""

    def __init__(self, root: Path, split: str = "train", subjects: tuple[str, ...] | None = None,
                 cameras: tuple[str, ...] | None = None, every: int = 1):
        self.root = Path(root)
        labels = read_labels(self.root)
        self.subjects_all = list(labels["subject_names"])
        self.actions = list(labels["action_names"])
        names = list(labels["camera_names"])
        self.cameras = list(cameras) if cameras else names
        unknown = [c for c in self.cameras if c not in names]
        if unknown:
            raise TriangulumError(f"{self.root}: no camera {', '.join(unknown)}; it has {', '.join(names)}.")
        self._cam_idx = [names.index(c) for c in self.cameras]
        self._cams = labels["cameras"]
        wanted = subjects or (TRAIN_SUBJECTS if split == "train" else VAL_SUBJECTS)
        table = labels["table"]
        keep = np.array([self.subjects_all[r["subject_idx"]] in wanted
                         and (self.subjects_all[r["subject_idx"]], self.actions[r["action_idx"]]) not in EXCLUDED
                         for r in table], bool)
        self.table = table[keep][::every]

    def __len__(self) -> int:
        return len(self.table)

    def camera(self, subject_idx: int, k: int) -> Camera:
        c = self._cams[subject_idx, self._cam_idx[k]]
        return Camera(self.cameras[k], (1000, 1000), c["K"], c["dist"], c["R"], np.asarray(c["t"]).ravel() / 1000.0)

    def joints(self, i: int) -> np.ndarray:
        return to_ours(self.table[i]["keypoints"].astype(np.float64) / 1000.0, JOINTS, TO_OURS)

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        row = self.table[i]
        subject, action = self.subjects_all[row["subject_idx"]], self.actions[row["action_idx"]]
        native = row["keypoints"].astype(np.float64) / 1000.0
        cams = [self.camera(row["subject_idx"], k) for k in range(len(self.cameras))]
        images = []
        for k, name in enumerate(self.cameras):
            present = np.any(row["bbox_by_camera_tlbr"][self._cam_idx[k]] != 0)
            images.append(read_rgb(image_path(self.root, subject, action, name, int(row["frame_idx"])))
                          if present else None)
        return frame_sample(images, cams, to_ours(native, JOINTS, TO_OURS), native)
