"""Pose from compressed frames decoded in full against decoded at reduced size
(`triangulum capture --pose-decode reduced`): CPU and how far the poses move.

    python benchmarks/pose_decode.py [--json PATH]

The built-in sample's four videos are recorded in lock-step into an MJPEG session (as a
camera that sends JPEG would deliver them), then every frame set goes through the live
per-frame pipeline twice, from the session's JPEGs: decoded in full, and decoded at the
reduced size (1088x1920 -> 1/2). Printed: CPU seconds of each run (decoding included, one
thread) and their ratio; the main performer's per-view 2D between the runs (median / p95
px) and its unfiltered per-frame 3D (median / p95 mm).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.capture.frames import Frame, FrameSet  # noqa: E402
from app.capture.live import CaptureConfig, LiveCapture  # noqa: E402
from app.process.inputs import open_take  # noqa: E402
from app.process.pipeline import build_frame_pipeline, online_config, torch_threads  # noqa: E402
from app.sample import SAMPLE_DIR  # noqa: E402
from calibration.takes import TrackReader, open_session  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rig = open_take([]).rig  # the sample's rig, sized to its videos
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "session"
        specs = [f"video:{SAMPLE_DIR / c}.mp4?lockstep=1" for c in rig.names]
        capture = LiveCapture(CaptureConfig(sources=specs, mode="lockstep", record=folder))
        capture.start()
        while not capture.finished:
            time.sleep(0.1)
        capture.stop()
        session = open_session(folder)
        readers = [TrackReader(session.track(c)) for c in rig.names]
        frames = min(t.frames for t in session.tracks)
        with torch_threads(1):
            for decode in ("full", "reduced"):
                pipeline = build_frame_pipeline(rig, online_config("algebraic", "none", decode), "onnxruntime", 1)
                kp, joints = [], []
                t0 = time.process_time()
                for i in range(frames):
                    fs = FrameSet(i, tuple(Frame(c, i, i / 60, i / 60, encoded=r.read_encoded(i))
                                          for c, r in zip(rig.names, readers, strict=True)), 0.0)
                    pose = pipeline.process(fs)
                    kp.append(pose.keypoints2d)
                    joints.append(pose.joints3d)
                out[decode] = (time.process_time() - t0, np.array(kp), np.array(joints))
        for r in readers:
            r.close()
    (cpu_full, kp_full, j_full), (cpu_red, kp_red, j_red) = out["full"], out["reduced"]
    d2 = np.linalg.norm(kp_full - kp_red, axis=-1)
    d3 = np.linalg.norm(j_full - j_red, axis=-1) * 1000
    result = {"frame_sets": frames, "cpu_s_full": cpu_full, "cpu_s_reduced": cpu_red,
              "cpu_ratio_reduced_over_full": cpu_red / cpu_full,
              "px_median": float(np.nanmedian(d2)), "px_p95": float(np.nanpercentile(d2, 95)),
              "mm_median": float(np.nanmedian(d3)), "mm_p95": float(np.nanpercentile(d3, 95))}
    print(f"{frames} frame sets of 4 x 1088x1920 MJPEG, one thread")
    print(f"CPU: full {cpu_full:.1f} s, reduced {cpu_red:.1f} s (ratio {result['cpu_ratio_reduced_over_full']:.2f})")
    print(f"reduced vs full: 2D median {result['px_median']:.2f} px, p95 {result['px_p95']:.1f} px; "
          f"3D median {result['mm_median']:.1f} mm, p95 {result['mm_p95']:.1f} mm")
    if args.json:
        args.json.write_text(json.dumps({"benchmark": "pose_decode", "results": result}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
