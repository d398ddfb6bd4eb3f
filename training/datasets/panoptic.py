"""CMU Panoptic Studio sequences: HD cameras, `hdPose3d_stage1_coco19` bodies.

    ROOT/SEQ/calibration_SEQ.json                         {"cameras": [{name, type, resolution,
                                                            panel, node, K, distCoef, R, t}, ...]}
    ROOT/SEQ/hdPose3d_stage1_coco19/body3DScene_00000042.json
                                                          {"bodies": [{"id", "joints19": 19 x [x, y, z, c]}]}
    ROOT/SEQ/hdImgs/00_03/00_03_00000042.jpg              frames as the toolbox extracts them, or
    ROOT/SEQ/hdVideos/hd_00_03.mp4                        the HD video itself (frame 42 decoded)

Panoptic's world is in centimetres with Y pointing down (gravity +Y); t is in centimetres. Here
it becomes ours once: metres, Z up, by the proper rotation (x, y, z) -> (x, z, -y) applied to
the joints and to every camera (R' = R M^T, t' = t / 100). A joint is valid when its
confidence c > 0.1 (the toolbox's convention; -1 marks a missing joint). One body per sample:
every body of a frame is a sample (multi-person frames give several). Every sample has the same
views: `cameras=`, or the HD cameras every sequence has.

Split: by time range by default (the last `val_share` of each sequence's frames validates);
`sequences=` with `val_share=None` takes every frame of the given sequences (a split by
sequence: give each split its own list).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from calibration.camera import Camera
from calibration.errors import TriangulumError
from training.datasets import frame_sample, read_rgb, to_ours

# COCO-19 order of Panoptic's joints19.
JOINTS = ("neck", "nose", "body_centre", "left_shoulder", "left_elbow", "left_wrist", "left_hip", "left_knee",
          "left_ankle", "right_shoulder", "right_elbow", "right_wrist", "right_hip", "right_knee", "right_ankle",
          "left_eye", "left_ear", "right_eye", "right_ear")
# Every joint but the neck and the body centre (between the hips) is a BlazePose landmark.
TO_OURS = {j: j for j in JOINTS if j not in ("neck", "body_centre")}
TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # ours = M @ panoptic
BODIES = "hdPose3d_stage1_coco19"


def to_world(points_cm: np.ndarray) -> np.ndarray:
    """Panoptic (..., 3) cm, Y down -> ours, metres, Z up."""
    return points_cm @ TO_Z_UP.T / 100.0


def read_cameras(sequence: Path) -> dict[str, Camera]:
    """The HD cameras of a sequence, by name ("00_03"), converted to metres and Z up."""
    path = sequence / f"calibration_{sequence.name}.json"
    if not path.is_file():
        raise TriangulumError(f"{sequence}: no {path.name}; is this a Panoptic sequence folder?")
    cams = {}
    for c in json.loads(path.read_text())["cameras"]:
        if c.get("type") != "hd":
            continue
        R = np.asarray(c["R"], np.float64) @ TO_Z_UP.T
        t = np.asarray(c["t"], np.float64).ravel() / 100.0
        cams[c["name"]] = Camera(c["name"], tuple(c.get("resolution", (1920, 1080))), c["K"], c["distCoef"], R, t)
    return cams


def read_bodies(path: Path) -> list[tuple[int, np.ndarray]]:
    """(id, (19, 3) metres Z up, NaN where not valid) for every body of one frame file."""
    out = []
    for b in json.loads(path.read_text()).get("bodies", []):
        j = np.asarray(b["joints19"], np.float64).reshape(-1, 4)
        p = to_world(j[:, :3])
        p[j[:, 3] <= 0.1] = np.nan
        out.append((int(b["id"]), p))
    return out


class _Frames:
    """HD frame f of one camera: the extracted JPEG when there is one, else from the video."""

    def __init__(self, sequence: Path, camera: str):
        self.folder = sequence / "hdImgs" / camera
        self.video = sequence / "hdVideos" / f"hd_{camera}.mp4"
        self._cap, self._next = None, -1

    def __call__(self, f: int) -> np.ndarray | None:
        jpg = self.folder / f"{self.folder.name}_{f:08d}.jpg"
        if jpg.is_file():
            return read_rgb(jpg)
        if not self.video.is_file():
            return None
        if self._cap is None or f != self._next:
            self._cap = self._cap or cv2.VideoCapture(str(self.video))
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, f)
        ok, image = self._cap.read()
        self._next = f + 1
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if ok else None


class Panoptic:
    """Bodies of Panoptic frames as samples (module docstring)."""

    def __init__(self, root: Path, split: str = "train", sequences: tuple[str, ...] | None = None,
                 cameras: tuple[str, ...] | None = None, val_share: float | None = 0.3, every: int = 1):
        root = Path(root)
        seqs = [root / s for s in sequences] if sequences else sorted(
            p for p in root.iterdir() if p.is_dir() and (p / BODIES).is_dir())
        if not seqs:
            raise TriangulumError(f"{root}: no Panoptic sequence (a folder with {BODIES}/) in it.")
        self.items: list[tuple[Path, int, int]] = []  # (sequence, frame, body index)
        self._cams: dict[Path, list[Camera]] = {}
        self._frames: dict[tuple[Path, str], _Frames] = {}
        calibrations = {seq: read_cameras(seq) for seq in seqs}
        # Every sample has the same views: the given cameras, else the HD cameras all sequences have.
        names = list(cameras) if cameras else sorted(set.intersection(*(set(c) for c in calibrations.values())))
        if not names:
            raise TriangulumError(f"{root}: the sequences share no HD camera; give cameras= (or fewer sequences).")
        self.cameras = names
        for seq in seqs:
            all_cams = calibrations[seq]
            unknown = [c for c in names if c not in all_cams]
            if unknown:
                raise TriangulumError(f"{seq}: no HD camera {', '.join(unknown)}.")
            self._cams[seq] = [all_cams[c] for c in names]
            files = sorted((seq / BODIES).glob("body3DScene_*.json"))
            frames = [int(f.stem.split("_")[-1]) for f in files]
            if val_share is None:  # a split by sequence: all of these sequences' frames
                chosen = frames
            else:
                cut = int(round(len(frames) * (1 - val_share)))
                chosen = frames[:cut] if split == "train" else frames[cut:]
            for f in chosen[::every]:
                for b in range(len(read_bodies(seq / BODIES / f"body3DScene_{f:08d}.json"))):
                    self.items.append((seq, f, b))

    def __len__(self) -> int:
        return len(self.items)

    def _native(self, i: int) -> np.ndarray:
        seq, f, b = self.items[i]
        return read_bodies(seq / BODIES / f"body3DScene_{f:08d}.json")[b][1]

    def joints(self, i: int) -> np.ndarray:
        return to_ours(self._native(i), JOINTS, TO_OURS)

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        seq, f, _ = self.items[i]
        native = self._native(i)
        images = []
        for cam in self._cams[seq]:
            reader = self._frames.setdefault((seq, cam.name), _Frames(seq, cam.name))
            images.append(reader(f))
        return frame_sample(images, self._cams[seq], to_ours(native, JOINTS, TO_OURS), native)
