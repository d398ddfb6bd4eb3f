"""`triangulum calib board | intrinsics | extrinsics | from-person`: calibrating cameras headless.

    triangulum calib board board.toml -o board.pdf
    triangulum calib intrinsics --board board.toml --source video:cam_0.mp4 ... -o rig.toml
    triangulum calib extrinsics --board board.toml [--intrinsics rig.toml] --source video:cam_0.mp4 ... -o rig.toml
    triangulum calib from-person --intrinsics rig.toml (--keypoints kp.npz | --source video:cam01.mp4 ...) --height 1.75 -o rig.toml

Each step writes our rig TOML; extrinsics and from-person also write a quality report
(rig.report.json, rig.report.png) beside it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from app.progress import ConsoleProgress
from calibration.board_print import save_board_page
from calibration.boards import Board, load_board, save_board
from calibration.errors import TriangulumError
from calibration.extrinsics import (
    ExtrinsicsOptions,
    calibrate_extrinsics,
    detect_synchronised,
    set_world_frame,
)
from calibration.formats import convert
from calibration.frames import FrameSource, expand_sources, iter_frames, load_sync_table
from calibration.from_person import PersonOptions, calibrate_from_person
from calibration.intrinsics import (
    IntrinsicsOptions,
    IntrinsicsResult,
    ViewDetections,
    calibrate_intrinsics,
    detect_views,
    draw_coverage,
    undistort_preview,
)
from calibration.report import build_report, jsonable, save_report
from calibration.rig import Rig
from calibration.rig_io import load_rig, save_rig


def register(subparsers: argparse._SubParsersAction) -> None:
    b = subparsers.add_parser("board", help="make a print-ready page (PDF at true scale, or PNG) of a calibration board")
    b.add_argument("board", type=Path, help="board TOML (ours or caliscope's charuco.toml); created with --create")
    b.add_argument("-o", "--output", type=Path, required=True, help="board.pdf (true scale) or an image (.png)")
    b.add_argument("--dpi", type=float, default=300.0)
    b.add_argument("--paper", help="a4, a3, letter, legal or WIDTHxHEIGHT in mm (default: the board's, else the smallest that fits)")
    b.add_argument("--create", choices=("charuco", "checkerboard"), help="write a new board TOML first")
    b.add_argument("--columns", type=int, default=5, help="squares across (with --create)")
    b.add_argument("--rows", type=int, default=7, help="squares down (with --create)")
    b.add_argument("--square", type=float, default=0.035, help="square side in metres (with --create)")
    b.add_argument("--marker", type=float, help="marker side in metres (with --create; default 0.75 x square)")
    b.add_argument("--dictionary", default="DICT_4X4_250", help="ArUco dictionary (with --create)")
    b.add_argument("--inverted", action="store_true", help="white markers on black (with --create)")
    b.add_argument("--legacy", action="store_true", help="OpenCV < 4.6 ChArUco layout (with --create)")
    b.set_defaults(func=run_board)

    i = subparsers.add_parser("intrinsics", help="calibrate each camera's lens from views of a board")
    _board_options(i)
    i.add_argument("--source", action="append", required=True, metavar="SOURCE",
                   help="video:PATH, images:DIR, camera:INDEX or a path; one per camera (repeat), or one session folder")
    i.add_argument("--name", action="append", help="camera name for each --source, in order (default: from the file names)")
    i.add_argument("-o", "--output", type=Path, required=True, help="rig TOML; cameras already in it are kept unless recalibrated")
    i.add_argument("--fisheye", action="store_true", help="fit OpenCV's fisheye model (stored in the standard model)")
    i.add_argument("--max-views", type=int, default=40, help="diverse views kept for calibration (default 40)")
    i.add_argument("--fix-k3", action="store_true", help="hold k3 at 0 (few views or a narrow lens)")
    i.add_argument("--zero-tangent", action="store_true", help="hold p1, p2 at 0")
    i.add_argument("--frames", type=int, default=300, help="frames to grab from a live camera (default 300)")
    i.add_argument("--preview", type=Path, help="folder for coverage maps and undistorted previews")
    i.set_defaults(func=run_intrinsics)

    e = subparsers.add_parser("extrinsics", help="pose the cameras from a board seen by several cameras at once")
    _board_options(e)
    e.add_argument("--intrinsics", type=Path, help="rig file with the cameras' intrinsics (any format); "
                   "default: calibrate them from the same videos")
    e.add_argument("--source", action="append", required=True, metavar="SOURCE",
                   help="video:PATH per camera in order (repeat), or one session folder")
    e.add_argument("-o", "--output", type=Path, required=True, help="rig TOML to write")
    e.add_argument("--sync", type=Path, help="timestamps.csv (sync_index, cam_id, frame_time[, frame_index]); "
                   "default: the one beside the videos, else frame i = instant i")
    e.add_argument("--world", default=None, help="camera:NAME (default: the first camera), board:INSTANT or board:first "
                   "(the board lies on the floor then: Z up)")
    e.add_argument("--refine-intrinsics", action="store_true", help="adjust focal lengths and principal points too")
    e.add_argument("--min-shared", type=int, default=3, help="views two cameras must share to be linked directly")
    e.set_defaults(func=run_extrinsics)

    p = subparsers.add_parser("from-person", help="pose the cameras from a person moving through the volume (no board)")
    p.add_argument("--intrinsics", type=Path, required=True, help="rig file with the cameras' intrinsics (any format)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--keypoints", type=Path, help="npz with keypoints (C, F, J, 2), confidence (C, F, J), cameras (C,)")
    src.add_argument("--source", action="append", metavar="SOURCE", help="synchronised video:PATH per camera (runs BlazePose)")
    p.add_argument("--height", type=float, help="the person's height in metres (sets the scale)")
    p.add_argument("--skeleton", default="blazepose33", help="joint layout of --keypoints (default blazepose33)")
    p.add_argument("--min-confidence", type=float, default=0.5)
    p.add_argument("--max-frames", type=int, help="read only the first N frames of the videos (with --source)")
    p.add_argument("-o", "--output", type=Path, required=True, help="rig TOML to write")
    p.set_defaults(func=run_from_person)


def _board_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--board", type=Path, required=True, help="board TOML (ours or caliscope's charuco.toml)")
    p.add_argument("--inverted", action="store_true", help="the board is printed white-on-black (overrides the file)")
    p.add_argument("--step", type=int, default=1, help="use every STEP-th frame (default 1)")


def _load_board(args: argparse.Namespace) -> Board:
    board = load_board(args.board)
    if getattr(args, "inverted", False):
        board.inverted = True
    return board


def _paper(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    from calibration.board_print import PAPERS

    if text.lower() in PAPERS:
        return PAPERS[text.lower()]
    try:
        w, h = (float(v) / 1000 for v in text.lower().split("x"))
    except ValueError:
        raise TriangulumError(f"--paper '{text}': use a4, a3, letter, legal or WIDTHxHEIGHT in mm, e.g. 300x400.") from None
    return w, h


def run_board(args: argparse.Namespace) -> int:
    if args.create:
        marker = args.marker if args.marker is not None else 0.75 * args.square
        board = Board(args.create, args.columns, args.rows, args.square, marker if args.create == "charuco" else 0.0,
                      args.dictionary, args.legacy, args.inverted, name=args.board.stem)
        save_board(board, args.board)
        print(f"wrote {args.board}")
    board = _load_board(args)
    path = save_board_page(board, args.output, args.dpi, _paper(args.paper))
    w, h = board.size_m
    print(f"{board.describe()}: grid {w * 100:.1f} x {h * 100:.1f} cm")
    print(f"wrote {path}: print at 100 % (no 'fit to page') and measure the 100 mm bar")
    return 0


def _sources(specs: list[str], names: list[str] | None = None, frames: int = 300) -> list[FrameSource]:
    sources = expand_sources(specs)
    if names:
        if len(names) != len(sources):
            raise TriangulumError(f"--name given {len(names)} times for {len(sources)} sources; give one per source.")
        for s, n in zip(sources, names, strict=True):
            s.name = n
    for s in sources:
        s.max_frames = frames
    return sources


def _merge(existing: Path, cameras: list) -> Rig:
    """Cameras of an existing rig file, with these replaced or added."""
    rig = load_rig(existing) if existing.exists() else Rig([])
    by_name = {c.name: c for c in rig.cameras}
    for c in cameras:
        by_name[c.name] = c
    return Rig(list(by_name.values()), rig.metadata)


def _write_preview(folder: Path, source: FrameSource, result: IntrinsicsResult, views: ViewDetections) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    frame = result.used[len(result.used) // 2]
    for _, image in iter_frames(source, indices={frame}):
        cov = draw_coverage(image, result.coverage, [views.detections[f] for f in result.used])
        cv2.imwrite(str(folder / f"{source.name}_coverage.png"), cov)
        und = undistort_preview(result.camera, image)
        cv2.imwrite(str(folder / f"{source.name}_undistorted.png"), np.concatenate([image, und], 1))


def run_intrinsics(args: argparse.Namespace) -> int:
    board = _load_board(args)
    sources = _sources(args.source, args.name, args.frames)
    progress = ConsoleProgress()
    opts = IntrinsicsOptions(model="fisheye" if args.fisheye else "standard", max_views=args.max_views,
                             fix_k3=args.fix_k3, zero_tangent=args.zero_tangent)
    cameras, figures = [], {}
    for src in sources:
        t = time.perf_counter()
        views = detect_views(src, board, args.step, progress)
        progress.done()
        result = calibrate_intrinsics(views, board, opts)
        cameras.append(result.camera)
        print(result.summary())
        print(f"  ({time.perf_counter() - t:.1f} s)")
        figures[src.name] = {
            "rms_px": result.rms, "views_used": result.used, "views_rejected": result.rejected,
            "view_rms_px": result.view_errors, "std": result.std, "jackknife": result.spread,
            "coverage_fraction": result.coverage_fraction, "model": result.model,
            "fisheye_fit_px": result.fisheye_fit_px, "warnings": result.warnings, "seconds": time.perf_counter() - t,
        }
        if args.preview:
            _write_preview(args.preview, src, result, views)
    rig = _merge(args.output, cameras)
    rig.metadata.setdefault("source", "intrinsics")
    save_rig(rig, args.output)
    js = args.output.with_suffix("").with_name(args.output.stem + ".intrinsics.json")
    old = json.loads(js.read_text(encoding="utf-8")) if js.is_file() else {}
    js.write_text(json.dumps(jsonable(old | figures), indent=2), encoding="utf-8")
    print(f"wrote {args.output} and {js} (intrinsics only; run 'triangulum calib extrinsics' next)")
    return 0


def _match_intrinsics(intr: Rig, names: list[str]) -> Rig:
    """The intrinsics rig ordered like the sources (by name, else in order if counts match)."""
    if all(n in intr.names for n in names):
        return intr.subset(names)
    if len(intr) == len(names):
        print(f"note: cameras {intr.names} of the intrinsics file are taken for sources {names} in order")
        return Rig([type(c)(n, c.size, c.K, c.dist, c.R, c.t, c.rmse) for c, n in zip(intr.cameras, names, strict=True)], intr.metadata)
    missing = [n for n in names if n not in intr.names]
    raise TriangulumError(f"the intrinsics file has no camera(s) {missing} (it has {intr.names}); name the videos after its cameras.")


def run_extrinsics(args: argparse.Namespace) -> int:
    board = _load_board(args)
    sources = _sources(args.source)
    if len(sources) < 2:
        raise TriangulumError("extrinsic calibration needs one --source per camera (at least two), or a session folder.")
    names = [s.name for s in sources]
    progress = ConsoleProgress()
    timings: dict[str, float] = {}
    t = time.perf_counter()
    sync = load_sync_table(args.sync, names) if args.sync else None
    dets, sizes = detect_synchronised(sources, board, sync, args.step, progress)
    progress.done()
    timings["detection"] = time.perf_counter() - t
    if args.intrinsics:
        intr = _match_intrinsics(convert(args.intrinsics), names)
        for cam in intr.cameras:
            if tuple(cam.size) != tuple(sizes[cam.name]):
                raise TriangulumError(f"camera '{cam.name}': the video is {sizes[cam.name][0]}x{sizes[cam.name][1]} but its intrinsics "
                                      f"are for {cam.size[0]}x{cam.size[1]}; calibrate the intrinsics at this resolution.")
    else:
        t = time.perf_counter()
        cams = []
        for n in names:
            res = calibrate_intrinsics(ViewDetections(n, sizes[n], dets[n], len(dets[n])), board)
            print(res.summary())
            cams.append(res.camera)
        intr = Rig(cams)
        timings["intrinsics"] = time.perf_counter() - t
    t = time.perf_counter()
    opts = ExtrinsicsOptions(min_shared=args.min_shared, intrinsics=("fx", "fy", "cx", "cy") if args.refine_intrinsics else ())
    result = calibrate_extrinsics(dets, intr, board, opts, progress)
    progress.done()
    set_world_frame(result, args.world or f"camera:{names[0]}")
    timings["extrinsics"] = time.perf_counter() - t
    print(result.summary())
    save_rig(result.rig, args.output)
    tracks, frames, world = result.tracks()
    errors = {n: result.errors[result.obs.camera == c] for c, n in enumerate(result.rig.names)}
    report = build_report(result.rig, tracks, frames, errors, result.warnings, {"timings_s": timings, "board": board.describe()})
    js, png = save_report(report, result.rig, args.output, world)
    print(f"wrote {args.output}, {js}, {png}")
    return 0


def detect_person_2d(sources: list[FrameSource], progress=None, max_frames: int | None = None) -> dict[str, np.ndarray]:
    """One person's BlazePose joints in synchronised videos (frame i of each = one instant).

    -> {"keypoints": (C, F, 33, 2) px, "confidence": (C, F, 33) heatmap peak x visibility,
    "visibility": (C, F, 33), "cameras": (C,) names}
    """
    from engines.blazepose.pipeline import BODY_JOINTS, BlazePoseEstimator

    est = BlazePoseEstimator()
    iters = [iter_frames(s) for s in sources]
    kps, conf, vis = [], [], []
    f = 0
    while max_frames is None or f < max_frames:
        frames = [next(it, None) for it in iters]
        if any(fr is None for fr in frames):
            break
        poses = est([cv2.cvtColor(im, cv2.COLOR_BGR2RGB) for _, im in frames])
        k = np.full((len(sources), BODY_JOINTS, 2), np.nan, np.float32)
        c = np.zeros((len(sources), BODY_JOINTS), np.float32)
        v = np.zeros((len(sources), BODY_JOINTS), np.float32)
        for i, pose in enumerate(poses):
            if pose is not None:
                k[i] = pose.keypoints[:BODY_JOINTS]
                v[i] = pose.visibility[:BODY_JOINTS]
                c[i] = pose.confidence[:BODY_JOINTS] * v[i]
        kps.append(k)
        conf.append(c)
        vis.append(v)
        f += 1
        if progress is not None:
            progress("BlazePose", f, 0)
    if not kps:
        raise TriangulumError("the videos yield no frames; check the --source paths.")
    return {"keypoints": np.stack(kps, 1), "confidence": np.stack(conf, 1), "visibility": np.stack(vis, 1),
            "cameras": np.array([s.name for s in sources])}


def load_keypoints(path: Path) -> dict[str, np.ndarray]:
    """A keypoints npz (keypoints, confidence, cameras) as written by detect_person_2d."""
    try:
        data = dict(np.load(path, allow_pickle=False))
    except FileNotFoundError:
        raise TriangulumError(f"keypoints file {path} does not exist.") from None
    except (ValueError, OSError) as exc:
        raise TriangulumError(f"{path}: not a keypoints .npz file ({exc}).") from None
    for key in ("keypoints", "confidence"):
        if key not in data:
            raise TriangulumError(f"{path}: field '{key}' is missing; expected keypoints (C, F, J, 2) and confidence (C, F, J).")
    return data


def run_from_person(args: argparse.Namespace) -> int:
    from app.person_calibration import choose_person, person_options, person_report
    from engines.skeleton import get_skeleton

    progress = ConsoleProgress()
    timings: dict[str, float] = {}
    t = time.perf_counter()
    intr = convert(args.intrinsics)
    if args.keypoints:
        data = load_keypoints(args.keypoints)
        names = [str(n) for n in data.get("cameras", [])]
        intr = _match_intrinsics(intr, names) if names else intr
        skeleton = args.skeleton
    else:
        sources = _sources(args.source)
        intr = _match_intrinsics(intr, [s.name for s in sources])
        # Everyone tracked in every view; the person who is the same across views is the one
        # calibrated from (a bystander followed in one view no longer spoils the rig).
        chosen = choose_person(sources, intr, args.min_confidence, progress, args.max_frames)
        progress.done()
        for note in chosen.notes:
            print(f"note: {note}")
        data = {"keypoints": chosen.keypoints, "confidence": chosen.confidence}
        skeleton = "blazepose33"
        timings["keypoints"] = time.perf_counter() - t
    if data["keypoints"].shape[2] != len(get_skeleton(skeleton).joints):
        raise TriangulumError(f"{args.keypoints}: {data['keypoints'].shape[2]} joints per frame but skeleton {args.skeleton} has "
                              f"{len(get_skeleton(skeleton).joints)}; give --skeleton.")
    opts = person_options(args.height, args.min_confidence, skeleton, max_frames=PersonOptions().max_frames)
    t = time.perf_counter()
    result = calibrate_from_person(data["keypoints"], data["confidence"], intr, opts, progress)
    progress.done()
    timings["solve"] = time.perf_counter() - t
    print(result.summary())
    save_rig(result.rig, args.output)
    report, world = person_report(result, {"timings_s": timings, "people": [] if args.keypoints else chosen.notes})
    js, png = save_report(report, result.rig, args.output, world)
    print(f"wrote {args.output}, {js}, {png}")
    return 0
