"""Small datasets in Human3.6M's and CMU Panoptic's exact layouts, made from a real take.

    triangulum train example-data h36m OUT [--every 4] [--scale 0.5]
    triangulum train example-data panoptic OUT

Neither dataset can be downloaded here, so the loaders are tested, and the training commands
can be tried, on these: the built-in sample's four real cameras and real frames (resized by
`scale`, intrinsics with them), its Qualisys calibration, and as "ground truth" Pose2Sim's own
reconstruction of the take (its BODY_25B markers mapped to each dataset's joints: a peer's
answer, not truth; H36M's pelvis is the hips' midpoint, its spine halfway to the neck; the
eyes and ears Panoptic has are missing from it, so they are written as not valid).

H36M: frames 0-69 are subject S1 (train), 70-89 S9 "Walking-1" (validation), 90-99 S9
"Greeting-2" (one of the protocol's excluded actions: a loader must leave it out). Panoptic:
one sequence whose last 30 % validates (the loader's time split).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from app.export.trc import read_trc
from app.sample import CAMERAS, sample_videos
from calibration.camera import Camera
from calibration.errors import TriangulumError
from calibration.rig_io import load_rig
from calibration.takes import TrackReader, video_track
from training.datasets import h36m, panoptic

ROOT = Path(__file__).resolve().parents[1]
REFERENCES = (ROOT.parent / "shared" / "data", ROOT / "tests" / "data" / "real")
REFERENCE = Path("pose2sim-demo-single") / "reference" / "pose2sim_body25b_0-100.trc"
H36M_ACTIONS = (("S1", "Directions-1", 0, 70), ("S9", "Walking-1", 70, 90), ("S9", "Greeting-2", 90, 100))


def reference_trc() -> Path:
    for root in REFERENCES:
        if (root / REFERENCE).is_file():
            return root / REFERENCE
    raise TriangulumError(f"Pose2Sim's reference of the sample ({REFERENCE}) is in neither ../shared/data nor "
                          "tests/data/real; run from a clone of the repository.")


def studio(scale: float) -> tuple[list[Camera], np.ndarray, dict[str, int]]:
    """The sample's cameras for images resized by `scale`, Pose2Sim's markers (F, M, 3) metres
    Z up, and marker name -> index."""
    from app.sample import sample_calibration

    rig = load_rig(sample_calibration())
    trc = read_trc(reference_trc())
    cams = [rig[c].scaled(scale) for c in CAMERAS]
    return cams, trc.world, {n: i for i, n in enumerate(trc.names)}


def _m(markers: np.ndarray, idx: dict[str, int], *names: str) -> np.ndarray:
    return np.mean([markers[:, idx[n]] for n in names], axis=0)


def h36m_joints(markers: np.ndarray, idx: dict[str, int]) -> np.ndarray:
    """(F, 17, 3) H36M joints from Pose2Sim's BODY_25B markers."""
    pelvis, neck = _m(markers, idx, "LHip", "RHip"), _m(markers, idx, "Neck")
    by_name = {
        "right_ankle": _m(markers, idx, "RAnkle"), "right_knee": _m(markers, idx, "RKnee"),
        "right_hip": _m(markers, idx, "RHip"), "left_hip": _m(markers, idx, "LHip"),
        "left_knee": _m(markers, idx, "LKnee"), "left_ankle": _m(markers, idx, "LAnkle"), "pelvis": pelvis,
        "spine": (pelvis + neck) / 2, "thorax": neck, "head_top": _m(markers, idx, "Head"),
        "right_wrist": _m(markers, idx, "RWrist"), "right_elbow": _m(markers, idx, "RElbow"),
        "right_shoulder": _m(markers, idx, "RShoulder"), "left_shoulder": _m(markers, idx, "LShoulder"),
        "left_elbow": _m(markers, idx, "LElbow"), "left_wrist": _m(markers, idx, "LWrist"),
        "neck_nose": _m(markers, idx, "Nose"),
    }
    return np.stack([by_name[j] for j in h36m.JOINTS], 1)


def coco19_joints(markers: np.ndarray, idx: dict[str, int]) -> np.ndarray:
    """(F, 19, 3) Panoptic joints from the markers, NaN for the eyes and ears (not in BODY_25B's TRC)."""
    F = len(markers)
    by_name = {"neck": _m(markers, idx, "Neck"), "nose": _m(markers, idx, "Nose"),
               "body_centre": _m(markers, idx, "LHip", "RHip")}
    for side, s in (("left", "L"), ("right", "R")):
        for j, m in (("shoulder", "Shoulder"), ("elbow", "Elbow"), ("wrist", "Wrist"), ("hip", "Hip"),
                     ("knee", "Knee"), ("ankle", "Ankle")):
            by_name[f"{side}_{j}"] = _m(markers, idx, s + m)
    return np.stack([by_name.get(j, np.full((F, 3), np.nan)) for j in panoptic.JOINTS], 1)


def _frames(scale: float, last: int):
    """(frame, [BGR image of each camera, resized]) for frames 0..last of the sample."""
    readers = [TrackReader(video_track(c, v)) for c, v in zip(CAMERAS, sample_videos(), strict=True)]
    try:
        for f in range(last + 1):
            yield f, [cv2.resize(r.read(f), None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) for r in readers]
    finally:
        for r in readers:
            r.close()


def write_h36m(out: Path, every: int = 4, scale: float = 0.5) -> Path:
    """The fixture in Learnable Triangulation's Human3.6M layout (module docstring) -> out."""
    out = Path(out)
    cams, markers, idx = studio(scale)
    joints = h36m_joints(markers, idx)
    subjects = sorted({s for s, *_ in H36M_ACTIONS})
    actions = [a for _, a, *_ in H36M_ACTIONS]
    cameras = np.zeros((len(subjects), len(cams)), h36m.CAMERA_DTYPE)
    for s in range(len(subjects)):
        for k, c in enumerate(cams):
            cameras[s, k] = (c.R, (c.t * 1000.0)[:, None], c.K, c.dist)
    rows = []
    wanted = set(range(0, 100, every))
    for f, images in _frames(scale, 99):
        if f not in wanted:
            continue
        subject, action, first, _ = next(a for a in H36M_ACTIONS if a[2] <= f < a[3])
        bbox = np.zeros((len(cams), 4), np.int16)
        for k, (c, im) in enumerate(zip(cams, images, strict=True)):
            path = h36m.image_path(out, subject, action, c.name, f - first)
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), im, [cv2.IMWRITE_JPEG_QUALITY, 90])
            uv = c.project(joints[f])
            lo, hi = np.nanmin(uv, 0), np.nanmax(uv, 0)
            bbox[k] = (lo[1], lo[0], hi[1], hi[0])  # top, left, bottom, right
        rows.append((subjects.index(subject), actions.index(action), f - first, joints[f] * 1000.0, bbox))
    table = np.array(rows, h36m.table_dtype(len(cams)))
    labels = {"subject_names": subjects, "camera_names": [c.name for c in cams], "action_names": actions,
              "cameras": cameras, "table": table}
    np.save(out / h36m.LABELS, labels, allow_pickle=True)
    return out


def write_panoptic(out: Path, every: int = 4, scale: float = 0.5, sequence: str = "studio_sample") -> Path:
    """The fixture as one CMU Panoptic sequence (module docstring) -> out/sequence."""
    seq = Path(out) / sequence
    cams, markers, idx = studio(scale)
    joints = coco19_joints(markers, idx)
    names = [f"00_{k:02d}" for k in range(len(cams))]
    M = panoptic.TO_Z_UP  # ours = M @ panoptic, so panoptic = M^T @ ours
    calib = {"calibDataSource": sequence, "cameras": [
        {"name": n, "type": "hd", "resolution": list(c.size), "panel": 0, "node": k,
         "K": c.K.tolist(), "distCoef": c.dist.tolist(), "R": (c.R @ M).tolist(),
         "t": (c.t * 100.0)[:, None].tolist()}
        for k, (n, c) in enumerate(zip(names, cams, strict=True))]}
    seq.mkdir(parents=True, exist_ok=True)
    (seq / f"calibration_{sequence}.json").write_text(json.dumps(calib, indent=1))
    (seq / panoptic.BODIES).mkdir(exist_ok=True)
    (seq / "hdVideos").mkdir(exist_ok=True)
    writers = []
    for f, images in _frames(scale, 99):
        if not writers:
            writers = [cv2.VideoWriter(str(seq / "hdVideos" / f"hd_{n}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 30.0,
                                       (im.shape[1], im.shape[0])) for n, im in zip(names, images, strict=True)]
        for w, im in zip(writers, images, strict=True):
            w.write(im)
        if f % every:
            continue
        p = joints[f] @ M * 100.0  # ours (Z up, m) -> Panoptic (Y down, cm): row-vector form of M^T x
        c = np.where(np.isfinite(p).all(-1), 1.0, -1.0)
        body = np.concatenate([np.nan_to_num(p), c[:, None]], 1)
        (seq / panoptic.BODIES / f"body3DScene_{f:08d}.json").write_text(json.dumps(
            {"version": 0.7, "univTime": f * 1000.0 / 29.97, "fpsType": "hd_29_97",
             "bodies": [{"id": 0, "joints19": body.ravel().round(4).tolist()}]}))
    for w in writers:
        w.release()
    return seq


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("format", choices=("h36m", "panoptic"))
    p.add_argument("out", type=Path)
    p.add_argument("--every", type=int, default=4, help="keep every Nth frame of the 100 (default 4)")
    p.add_argument("--scale", type=float, default=0.5, help="image scale (default 0.5: 540x960)")


def run(args: argparse.Namespace) -> int:
    path = (write_h36m if args.format == "h36m" else write_panoptic)(args.out, args.every, args.scale)
    print(f"wrote {path}; train on it with --dataset {args.format}:{args.out}")
    return 0
