"""Parity of our BlazePose pipeline with MediaPipe's own (mp.solutions.pose, model_complexity=1).

    python benchmarks/blazepose_parity.py [--json PATH] [--backend torch|onnxruntime]
                                          [--mp-python PATH] [--videos VIDEO...]

Runs MediaPipe in its own environment (--mp-python, $TRIANGULUM_MP_PYTHON, default
/opt/mpref/bin/python) through benchmarks/mediapipe_reference.py on the frames we decode (piped,
since OpenCV builds decode some of these H.264 files differently), caching its answer under
out/reference/ (git-ignored), then runs BlazePoseEstimator over the same frames with all views
of a frame in one batch. Prints per-camera and overall median / 95th-percentile pixel distance
over the 33 body landmarks and the frames where either side found no person.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
DEFAULT_VIDEOS = sorted((DATA / "pose2sim-demo-single" / "videos").glob("cam*.mp4"))
REFERENCE_SCRIPT = Path(__file__).resolve().parent / "mediapipe_reference.py"
CACHE = ROOT / "out" / "reference"


def default_mp_python() -> str:
    return os.environ.get("TRIANGULUM_MP_PYTHON", "/opt/mpref/bin/python")


def read_frames(videos: list[Path]):
    """Yield lists of RGB frames, one per video, until the shortest video ends."""
    caps = [cv2.VideoCapture(str(v)) for v in videos]
    for v, cap in zip(videos, caps, strict=True):
        if not cap.isOpened():
            sys.exit(f"error: cannot open {v}")
    while True:
        frames = [c.read() for c in caps]
        if not all(ok for ok, _ in frames):
            return
        yield [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for _, f in frames]


def reference(videos: list[Path], mp_python: str) -> dict[str, np.ndarray]:
    """MediaPipe's landmarks on exactly our decoded frames (piped; cached by content)."""
    h = hashlib.sha256(REFERENCE_SCRIPT.read_bytes() + cv2.__version__.encode())
    for v in videos:
        h.update(v.read_bytes())
    path = CACHE / f"mp_pose_{h.hexdigest()[:16]}.npz"
    if not path.is_file():
        if not Path(mp_python).exists():
            sys.exit(f"error: the mediapipe python {mp_python} does not exist; pass --mp-python "
                     "or set TRIANGULUM_MP_PYTHON to a python with mediapipe==0.10.21.")
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        proc = subprocess.Popen(
            [mp_python, str(REFERENCE_SCRIPT), "pose", str(tmp), "--stdin", str(len(videos))],
            stdin=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )
        for frames in read_frames(videos):
            for f in frames:
                proc.stdin.write(np.array(f.shape[:2], np.int32).tobytes() + f.tobytes())
        proc.stdin.close()
        if proc.wait() != 0:
            sys.exit(f"error: the MediaPipe reference failed (exit {proc.returncode}).")
        os.replace(tmp, path)
    return dict(np.load(path))


def ours(videos: list[Path], backend: str) -> list[np.ndarray]:
    """Our (F, 33, 2) keypoints per video (NaN where no person), all views batched per frame."""
    from engines.blazepose.pipeline import BODY_JOINTS, BlazePoseEstimator

    estimator = BlazePoseEstimator(backend)
    out: list[list[np.ndarray]] = [[] for _ in videos]
    for frames in read_frames(videos):
        for i, pose in enumerate(estimator(frames)):
            kp = np.full((BODY_JOINTS, 2), np.nan, np.float32)
            if pose is not None:
                kp[:] = pose.keypoints[:BODY_JOINTS]
            out[i].append(kp)
    return [np.stack(o) for o in out]


def compare(ref: dict[str, np.ndarray], mine: list[np.ndarray], names: list[str]) -> dict:
    per_camera, all_d = {}, []
    for i, name in enumerate(names):
        theirs = ref[f"landmarks_{i}"][..., :2]
        n = min(len(theirs), len(mine[i]))
        theirs, me = theirs[:n], mine[i][:n]
        found_ref = ~np.isnan(theirs).any(axis=(1, 2))
        found_me = ~np.isnan(me).any(axis=(1, 2))
        both = found_ref & found_me
        d = np.linalg.norm(theirs[both] - me[both], axis=-1).ravel()
        all_d.append(d)
        per_camera[name] = {
            "frames": int(n),
            "median_px": float(np.median(d)) if d.size else None,
            "p95_px": float(np.percentile(d, 95)) if d.size else None,
            "max_px": float(d.max()) if d.size else None,
            "missed_by_mediapipe": np.flatnonzero(~found_ref).tolist(),
            "missed_by_ours": np.flatnonzero(~found_me).tolist(),
        }
    d = np.concatenate(all_d)
    return {"overall": {"median_px": float(np.median(d)), "p95_px": float(np.percentile(d, 95)),
                        "max_px": float(d.max()), "points": int(d.size)},
            "per_camera": per_camera}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=None, help="write the result here")
    parser.add_argument("--backend", default="torch", choices=["torch", "onnxruntime"])
    parser.add_argument("--mp-python", default=default_mp_python())
    parser.add_argument("--videos", nargs="+", type=Path, default=DEFAULT_VIDEOS)
    args = parser.parse_args(argv)
    if not args.videos:
        sys.exit(f"error: no videos given and {DATA} has none; pass --videos.")
    ref = reference(args.videos, args.mp_python)
    mine = ours(args.videos, args.backend)
    names = [v.stem for v in args.videos]
    result = compare(ref, mine, names)
    result["backend"] = args.backend
    print(f"{'camera':8s} {'frames':>6s} {'median px':>10s} {'p95 px':>8s} {'max px':>8s}  missed (mediapipe / ours)")
    for name, r in result["per_camera"].items():
        print(f"{name:8s} {r['frames']:6d} {r['median_px']:10.2f} {r['p95_px']:8.2f} {r['max_px']:8.1f}  "
              f"{r['missed_by_mediapipe']} / {r['missed_by_ours']}")
    o = result["overall"]
    print(f"{'overall':8s} {o['points']:6d} {o['median_px']:10.2f} {o['p95_px']:8.2f} {o['max_px']:8.1f}  (points)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
