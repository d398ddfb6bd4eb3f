"""`triangulum detect2d VIDEO... -o out.npz`: BlazePose 2D keypoints of every frame of each video.

The videos are read in lock-step as the views of one rig, so all views of a frame go through
the landmark network as one batch (a video that ends early simply stops). Per video `NAME`
(the file stem) the .npz holds:
  NAME/keypoints (F, 33, 3): x, y in pixels and the heatmap confidence; NaN x, y and 0
    confidence where no person was found
  NAME/visibility (F, 33), NAME/world (F, 33, 3) metres (single-view 3D, hip-centred),
  NAME/pose_score (F,), NAME/redetected (F,) bool: the detector placed this frame's crop
plus `joint_names` (33,) and `videos` (V,).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from app.commands import add_backbone_argument
from calibration.errors import TriangulumError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("detect2d", help="2D BlazePose keypoints of videos into an .npz")
    parser.add_argument("videos", nargs="+", type=Path, metavar="VIDEO")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output .npz file")
    parser.add_argument("--backend", choices=["torch", "onnxruntime"], default="torch")
    parser.add_argument("--subject", choices=["largest", "score"], default="largest",
                        help="who to follow when several people are found: the largest, most "
                             "central person, or the detector's best score (MediaPipe)")
    parser.add_argument("--max-frames", type=int, default=0, help="stop after this many frames")
    add_backbone_argument(parser)
    parser.set_defaults(func=run)


def _names(videos: list[Path]) -> list[str]:
    stems = [v.stem for v in videos]
    if len(set(stems)) == len(stems):
        return stems
    return [f"{i}_{s}" for i, s in enumerate(stems)]


def run(args: argparse.Namespace) -> int:
    import cv2
    from tqdm import tqdm

    from engines.blazepose.pipeline import (
        BODY_JOINTS,
        LANDMARK_NAMES,
        BlazePoseEstimator,
        EstimatorConfig,
    )

    if args.output.suffix != ".npz":
        raise TriangulumError(f"Output {args.output} must be an .npz file; give -o NAME.npz.")
    caps = []
    for video in args.videos:
        cap = cv2.VideoCapture(str(video))
        if not video.is_file() or not cap.isOpened():
            raise TriangulumError(f"Cannot read video {video}; check the path and that OpenCV can decode it.")
        caps.append(cap)
    counts = [int(c.get(cv2.CAP_PROP_FRAME_COUNT)) for c in caps]
    total = max(counts) if args.max_frames <= 0 else min(max(counts), args.max_frames)
    from engines.blazepose.backbone import resolve_backbone

    backbone = resolve_backbone(args.backbone)
    estimator = BlazePoseEstimator(args.backend, EstimatorConfig(subject=args.subject),
                                   **({"backbone": backbone} if backbone else {}))
    rows: list[list[tuple]] = [[] for _ in caps]
    live = list(range(len(caps)))
    with tqdm(total=total, unit="frame", desc="detect2d") as bar:
        while live and (args.max_frames <= 0 or bar.n < args.max_frames):
            frames = {}
            for v in list(live):
                ok, frame = caps[v].read()
                if ok:
                    frames[v] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                else:
                    live.remove(v)
            if not frames:
                break
            views = sorted(frames)
            for v, pose in zip(views, estimator([frames[v] for v in views], views=views), strict=True):
                rows[v].append(_row(pose, BODY_JOINTS))
            bar.update(1)
    out = {"joint_names": np.array(LANDMARK_NAMES[:BODY_JOINTS]),
           "videos": np.array([str(v) for v in args.videos])}
    for name, video_rows in zip(_names(args.videos), rows, strict=True):
        fields = list(zip(*video_rows, strict=True)) if video_rows else [[]] * 5
        keys = ("keypoints", "visibility", "world", "pose_score", "redetected")
        shapes = ((0, BODY_JOINTS, 3), (0, BODY_JOINTS), (0, BODY_JOINTS, 3), (0,), (0,))
        for key, values, shape in zip(keys, fields, shapes, strict=True):
            out[f"{name}/{key}"] = np.stack(values) if len(values) else np.zeros(shape, np.float32)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.output, **out)
    found = {n: int(np.isfinite(out[f"{n}/keypoints"][:, 0, 0]).sum()) for n in _names(args.videos)}
    print(f"wrote {args.output}: " + ", ".join(f"{n} person in {k}/{len(r)} frames"
                                               for (n, k), r in zip(found.items(), rows, strict=True)))
    return 0


def _row(pose, joints: int) -> tuple:
    if pose is None:
        kp = np.full((joints, 3), np.nan, np.float32)
        kp[:, 2] = 0.0
        return (kp, np.zeros(joints, np.float32), np.full((joints, 3), np.nan, np.float32),
                np.float32(0.0), False)
    kp = np.concatenate([pose.keypoints[:joints], pose.confidence[:joints, None]], axis=1)
    return (kp.astype(np.float32), pose.visibility[:joints].astype(np.float32),
            pose.world[:joints].astype(np.float32), np.float32(pose.pose_score), pose.redetected)
