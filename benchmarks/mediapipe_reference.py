"""Reference side of the BlazePose benchmarks; runs INSIDE the mediapipe environment.

Standalone on purpose (numpy < 2, mediapipe, opencv; no triangulum import), started as a
subprocess by blazepose_parity.py and backbone_speed.py with the interpreter given by
--mp-python / $TRIANGULUM_MP_PYTHON (default /opt/mpref/bin/python):

    python mediapipe_reference.py pose OUT.npz VIDEO...      # mp.solutions.pose on every frame
    python mediapipe_reference.py speed OUT.json --threads 2  # tflite interpreter timings

`pose` writes, per video index i: landmarks_i (F, 33, 5) x, y in pixels, z, visibility,
presence (NaN where no person), world_i (F, 33, 3), found_i (F,) bool.
`speed` times the two .tflite files of the installed mediapipe with the LiteRT / TFLite
interpreter (ai-edge-litert or tflite-runtime) at batch 1 and, by running 4 invocations, 4.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def run_pose(out: Path, videos: list[str]) -> None:
    import cv2
    import mediapipe as mp

    arrays = {}
    for i, video in enumerate(videos):
        cap = cv2.VideoCapture(video)
        if not cap.isOpened():
            raise SystemExit(f"cannot open {video}")
        lms, worlds, found = [], [], []
        # smooth_landmarks=False: our pipeline has no temporal filter, and MediaPipe's smoothing
        # also feeds the next frame's ROI; everything else is the default model_complexity=1 graph.
        with mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1,
                                    smooth_landmarks=False, enable_segmentation=False,
                                    min_detection_confidence=0.5,
                                    min_tracking_confidence=0.5) as pose:
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                h, w = frame.shape[:2]
                res = pose.process(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
                lm = np.full((33, 5), np.nan, np.float32)
                wl = np.full((33, 3), np.nan, np.float32)
                if res.pose_landmarks is not None:
                    lm[:] = [(p.x * w, p.y * h, p.z * w, p.visibility, p.presence)
                             for p in res.pose_landmarks.landmark]
                    wl[:] = [(p.x, p.y, p.z) for p in res.pose_world_landmarks.landmark]
                lms.append(lm)
                worlds.append(wl)
                found.append(res.pose_landmarks is not None)
        arrays[f"landmarks_{i}"] = np.stack(lms)
        arrays[f"world_{i}"] = np.stack(worlds)
        arrays[f"found_{i}"] = np.array(found)
        print(f"{video}: {len(found)} frames, person in {sum(found)}", file=sys.stderr)
    np.savez(out, **arrays)


def _interpreter(path: str, threads: int):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        from tflite_runtime.interpreter import Interpreter
    return Interpreter(model_path=path, num_threads=threads)


def run_speed(out: Path, threads: int, repeats: int) -> None:
    import mediapipe

    base = Path(mediapipe.__file__).parent / "modules"
    models = {
        "detector": str(base / "pose_detection" / "pose_detection.tflite"),
        "landmark": str(base / "pose_landmark" / "pose_landmark_full.tflite"),
    }
    result = {}
    rng = np.random.default_rng(0)
    for name, path in models.items():
        interp = _interpreter(path, threads)
        interp.allocate_tensors()
        inp = interp.get_input_details()[0]
        x = rng.uniform(0, 1, inp["shape"]).astype(np.float32)
        for _ in range(5):
            interp.set_tensor(inp["index"], x)
            interp.invoke()
        for batch in (1, 4):
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                for _ in range(batch):  # the .tflite graphs have a fixed batch of 1
                    interp.set_tensor(inp["index"], x)
                    interp.invoke()
                times.append((time.perf_counter() - t0) / batch)
            result[f"{name}_b{batch}"] = 1000.0 * float(np.median(times))
    Path(out).write_text(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pose")
    p.add_argument("out", type=Path)
    p.add_argument("videos", nargs="+")
    s = sub.add_parser("speed")
    s.add_argument("out", type=Path)
    s.add_argument("--threads", type=int, default=2)
    s.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    if args.cmd == "pose":
        run_pose(args.out, args.videos)
    else:
        run_speed(args.out, args.threads, args.repeats)


if __name__ == "__main__":
    main()
