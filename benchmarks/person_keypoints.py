"""Detect one person's 2D joints in synchronised videos with BlazePose and save them (npz).

    python benchmarks/person_keypoints.py VIDEO... -o keypoints.npz

The file holds keypoints (C, F, 33, 2) px, confidence (C, F, 33) (heatmap peak x
visibility), visibility (C, F, 33), cameras (C,) names from the file names and fps.
`triangulum calib from-person --keypoints` and the calibration benchmark read it; the
copy for the Pose2Sim demo lives in tests/data/ so tests need not run the network.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from engines.blazepose.pipeline import BODY_JOINTS, BlazePoseEstimator


def detect_videos(videos: list[Path], max_frames: int | None = None) -> dict[str, np.ndarray]:
    """Run the BlazePose pipeline over synchronised videos, frame i of all at once."""
    caps = [cv2.VideoCapture(str(v)) for v in videos]
    fps = caps[0].get(cv2.CAP_PROP_FPS) or 30.0
    est = BlazePoseEstimator()
    kps, conf, vis = [], [], []
    f = 0
    while max_frames is None or f < max_frames:
        frames = [cap.read() for cap in caps]
        if not all(ok for ok, _ in frames):
            break
        poses = est([cv2.cvtColor(im, cv2.COLOR_BGR2RGB) for _, im in frames], t=f / fps)
        k = np.full((len(videos), BODY_JOINTS, 2), np.nan, np.float32)
        c = np.zeros((len(videos), BODY_JOINTS), np.float32)
        v = np.zeros((len(videos), BODY_JOINTS), np.float32)
        for i, p in enumerate(poses):
            if p is not None:
                k[i] = p.keypoints[:BODY_JOINTS]
                v[i] = p.visibility[:BODY_JOINTS]
                c[i] = p.confidence[:BODY_JOINTS] * v[i]
        kps.append(k)
        conf.append(c)
        vis.append(v)
        f += 1
    for cap in caps:
        cap.release()
    return {
        "keypoints": np.stack(kps, 1),
        "confidence": np.stack(conf, 1),
        "visibility": np.stack(vis, 1),
        "cameras": np.array([v.stem for v in videos]),
        "fps": np.float64(fps),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", nargs="+", type=Path)
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--max-frames", type=int)
    args = parser.parse_args(argv)
    t = time.perf_counter()
    data = detect_videos(args.videos, args.max_frames)
    np.savez_compressed(args.output, **data)
    print(f"{data['keypoints'].shape[1]} frames x {len(args.videos)} views in {time.perf_counter() - t:.1f} s -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
