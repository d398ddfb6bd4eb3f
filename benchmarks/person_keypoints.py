"""Detect one person's 2D joints in synchronised videos with BlazePose and save them (npz).

    python benchmarks/person_keypoints.py VIDEO... -o keypoints.npz

The file holds keypoints (C, F, 33, 2) px, confidence (C, F, 33) (heatmap peak x
visibility), visibility (C, F, 33) and cameras (C,) named after the files; it is what
`triangulum calib from-person --keypoints` reads. The copy for the Pose2Sim demo,
tests/data/pose2sim_blazepose_2d.npz, was made with this script so that tests and the
calibration benchmark need not run the network.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from app.commands.calib_solve import detect_person_2d
from calibration.frames import FrameSource


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", nargs="+", type=Path)
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args(argv)
    t = time.perf_counter()
    data = detect_person_2d([FrameSource(v.stem, "video", str(v)) for v in args.videos])
    np.savez_compressed(args.output, **data)
    print(f"{data['keypoints'].shape[1]} frames x {len(args.videos)} views in {time.perf_counter() - t:.1f} s -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
