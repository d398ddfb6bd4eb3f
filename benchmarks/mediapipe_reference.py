"""Reference side of the BlazePose benchmarks; runs INSIDE the mediapipe environment.

Standalone on purpose (numpy < 2, mediapipe, opencv; no triangulum import), started as a
subprocess by blazepose_parity.py and backbone_speed.py with the interpreter given by
--mp-python / $TRIANGULUM_MP_PYTHON (default /opt/mpref/bin/python):

    python mediapipe_reference.py pose OUT.npz VIDEO...      # mp.solutions.pose on every frame
    python mediapipe_reference.py pose OUT.npz --stdin N     # the same on frames piped in
    python mediapipe_reference.py speed OUT.json --threads 2  # tflite interpreter timings

With --stdin the caller sends the frames of N views interleaved (frame 0 of views 0..N-1, then
frame 1, ...), each as an int32 (height, width) header and then height x width x 3 RGB bytes:
the caller's own decoder then defines the pixels (OpenCV builds decode some H.264 files
differently). `pose` writes, per video index i: landmarks_i (F, 33, 5) x, y in pixels, z, visibility,
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


def _video_frames(video: str):
    import cv2

    cap = cv2.VideoCapture(video)
    if not cap.isOpened():
        raise SystemExit(f"cannot open {video}")
    while True:
        ok, frame = cap.read()
        if not ok:
            return
        yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def _stdin_frames(views: int):
    """Yield lists of `views` RGB frames read from stdin until it closes."""
    stream = sys.stdin.buffer
    while True:
        frames = []
        for _ in range(views):
            header = stream.read(8)
            if len(header) < 8:
                return
            h, w = np.frombuffer(header, np.int32)
            frames.append(np.frombuffer(stream.read(int(h) * int(w) * 3), np.uint8).reshape(h, w, 3))
        yield frames


def run_pose(out: Path, videos: list[str], stdin_views: int) -> None:
    import mediapipe as mp

    views = stdin_views or len(videos)
    # smooth_landmarks=False: our pipeline has no temporal filter on its output (MediaPipe
    # still smooths the two ROI landmarks internally, as we do); everything else is the
    # default model_complexity=1 graph.
    poses = [mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1,
                                    smooth_landmarks=False, enable_segmentation=False,
                                    min_detection_confidence=0.5, min_tracking_confidence=0.5)
             for _ in range(views)]
    # Videos of different lengths stop at the shortest, like the caller's lock-step reading.
    frames = _stdin_frames(views) if stdin_views else zip(*(_video_frames(v) for v in videos), strict=False)
    lms, worlds, found = [[] for _ in range(views)], [[] for _ in range(views)], [[] for _ in range(views)]
    for frame_set in frames:
        for i, (pose, image) in enumerate(zip(poses, frame_set, strict=True)):
            h, w = image.shape[:2]
            res = pose.process(image)
            lm = np.full((33, 5), np.nan, np.float32)
            wl = np.full((33, 3), np.nan, np.float32)
            if res.pose_landmarks is not None:
                lm[:] = [(p.x * w, p.y * h, p.z * w, p.visibility, p.presence)
                         for p in res.pose_landmarks.landmark]
                wl[:] = [(p.x, p.y, p.z) for p in res.pose_world_landmarks.landmark]
            lms[i].append(lm)
            worlds[i].append(wl)
            found[i].append(res.pose_landmarks is not None)
    arrays = {}
    for i in range(views):
        arrays[f"landmarks_{i}"] = np.stack(lms[i])
        arrays[f"world_{i}"] = np.stack(worlds[i])
        arrays[f"found_{i}"] = np.array(found[i])
        print(f"view {i}: {len(found[i])} frames, person in {sum(found[i])}", file=sys.stderr)
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
            # Best of the repeats: on a shared CPU the minimum is the least disturbed figure.
            result[f"{name}_b{batch}"] = 1000.0 * float(np.min(times))
    Path(out).write_text(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pose")
    p.add_argument("out", type=Path)
    p.add_argument("videos", nargs="*")
    p.add_argument("--stdin", type=int, default=0, metavar="N",
                   help="read the frames of N views from stdin instead of decoding videos")
    s = sub.add_parser("speed")
    s.add_argument("out", type=Path)
    s.add_argument("--threads", type=int, default=2)
    s.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    if args.cmd == "pose":
        run_pose(args.out, args.videos, args.stdin)
    else:
        run_speed(args.out, args.threads, args.repeats)


if __name__ == "__main__":
    main()
