"""`triangulum process`: recorded multi-view video -> 3D skeletons, files, overlays, report.

    triangulum process                                   # the built-in sample -> ./sample-results
    triangulum process takes/take1                       # a recorded session -> takes/take1/results
    triangulum process cam1.mp4 cam2.mp4 --calib rig.toml -o out --people all
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from app.commands import add_method_arguments, add_precision_argument, resolve_threads
from calibration.errors import TriangulumError

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    from app.export import FORMATS
    from app.export.trc import MARKER_NAMES
    from calibration.units import CHOICES as UNIT_CHOICES

    p = subparsers.add_parser(
        "process",
        help="3D skeletons from recorded videos (a session folder, video files, or the built-in sample)",
        description="Detect everyone in every view, match people across views, fix left/right swaps, "
        "triangulate, filter, and write poses3d.npz, TRC, BVH, C3D, CSV, overlay videos and a quality "
        "report. With no input it processes the built-in sample.",
    )
    p.add_argument("inputs", nargs="*", type=Path, metavar="SESSION | VIDEO",
                   help="a session folder (as recorded by `triangulum capture --record`), a folder of "
                   "videos, or one video per camera named after the camera; none: the built-in sample")
    p.add_argument("--calib", type=Path, help="rig calibration, any format `triangulum calib convert` reads "
                   "(default: the session's calibration.toml); `none`, or videos given without it: "
                   "calibration-free, the cameras are estimated from the person (written as calibration.toml)")
    p.add_argument("--calib-units", choices=UNIT_CHOICES, default="auto",
                   help="length unit of the calibration (default auto: told from the rig's geometry; "
                   "FreeMoCap and Anipose write millimetres)")
    p.add_argument("-o", "--output", type=Path, help="output folder (default: SESSION/results, "
                   "./sample-results for the sample, ./results otherwise)")
    add_method_arguments(p)
    p.add_argument("--people", choices=("1", "all"), default="1",
                   help="1: the main performer (default); all: everyone seen by two or more cameras")
    p.add_argument("--person", type=int, metavar="ID", help="with --people 1: reconstruct this person ID "
                   "(IDs are shown in the overlay videos and report.json)")
    p.add_argument("--filter", choices=("butterworth", "one-euro", "none"), default="butterworth",
                   help="temporal filter after gap filling (default: zero-phase Butterworth)")
    p.add_argument("--cutoff", type=float, metavar="HZ", help="Butterworth cutoff (default 6 Hz, or 0.8 x half "
                   "the frame rate for takes under 15 fps)")
    p.add_argument("--max-gap", type=int, default=10, metavar="FRAMES",
                   help="fill gaps up to this many frames by interpolation (0: none; default 10)")
    p.add_argument("--frames", metavar="START:STOP", help="process only these frame sets, e.g. 0:50")
    p.add_argument("--formats", default=",".join(FORMATS), metavar="LIST",
                   help=f"export formats, comma separated (default {','.join(FORMATS)}; also blend: a Blender "
                   "scene written by Blender, needs its bpy module)")
    p.add_argument("--keypoints", type=Path, nargs="+", metavar="PATH",
                   help="reconstruct 2D keypoints from another detector instead of videos: one OpenPose JSON "
                   "folder, MMPose/RTMLib file or DeepLabCut CSV per camera (named after its camera), or our detect2d .npz; "
                   "needs --calib and --fps")
    p.add_argument("--keypoint-format", choices=("openpose", "mmpose", "dlc", "npz"), default="openpose",
                   help="format of --keypoints (default openpose)")
    p.add_argument("--skeleton", metavar="NAME", help="with --keypoints: the keypoints' skeleton (body25, body25b, "
                   "coco18, coco17, halpe26, blazepose33; default: told from the joint count, 25 = body25)")
    p.add_argument("--fps", type=float, help="with --keypoints: the frame rate of the keypoint files")
    p.add_argument("--trc-names", choices=MARKER_NAMES, default="opensim",
                   help="TRC marker names: opensim (default; Pose2Sim's marker set: LHip, LBigToe...) or "
                   "triangulum (left_hip, left_foot_index...)")
    p.add_argument("--kinematics", action="store_true",
                   help="scale an OpenSim model to each person and run inverse kinematics: writes "
                   "kinematics/<person>.osim, joint angles (.mot), marker errors and a joint-angle plot "
                   "(needs OpenSim and Pose2Sim's model files: pip install 'triangulum[opensim]' && pip install --no-deps pose2sim)")
    p.add_argument("--height", type=float, metavar="M", help="the participant's height in m: without a calibration "
                   "it sets the scale (default 1.70); with --kinematics it is recorded in the scaled model "
                   "(OpenSim scales the segments by the markers, not by height)")
    p.add_argument("--mass", type=float, default=70.0, metavar="KG",
                   help="with --kinematics: the participant's mass in kg (default 70)")
    p.add_argument("--no-overlays", action="store_true", help="skip the overlay videos")
    p.add_argument("--overlay-scale", type=float, default=0.5, help="overlay video size relative to the input")
    p.add_argument("--backend", choices=("onnxruntime", "torch"), default="onnxruntime", help="2D pose runtime")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for the 2D model (default: one per core, up to 4; each runs a share of the "
                   "views' crops at once; 0: ONNX Runtime's own thread pool)")
    add_precision_argument(p)
    p.set_defaults(func=run)


def _frame_range(text: str | None) -> tuple[int, int | None]:
    if not text:
        return 0, None
    try:
        a, _, b = text.partition(":")
        return int(a or 0), (int(b) if b else None)
    except ValueError:
        raise TriangulumError(f"--frames {text!r} is not START:STOP (e.g. 0:50).") from None


def default_output(inputs: list[Path]) -> Path:
    if not inputs:
        return Path("sample-results")
    if len(inputs) == 1 and inputs[0].is_dir() and (inputs[0] / "manifest.toml").is_file():
        return inputs[0] / "results"
    return Path("results")


def build_config(args: argparse.Namespace):
    from app.process.pipeline import PipelineConfig
    from app.process.reconstruct import TriangulationConfig
    from app.process.take import ProcessConfig, TemporalConfig
    from engines.temporal import ButterworthConfig, GapFillConfig, OneEuroConfig

    if args.max_gap < 0:
        raise TriangulumError(f"--max-gap {args.max_gap} must be 0 or more frames.")
    if args.person is not None and args.people != "1":
        raise TriangulumError("--person picks one person; use it with --people 1.")
    start, stop = _frame_range(args.frames)
    temporal = TemporalConfig(
        gap_fill=GapFillConfig(args.max_gap) if args.max_gap > 0 else None,
        butterworth=ButterworthConfig(cutoff_hz=args.cutoff) if args.filter == "butterworth" else None,
        one_euro=OneEuroConfig() if args.filter == "one-euro" else None,
    )
    weights = str(args.weights) if args.weights else None
    return ProcessConfig(
        pipeline=PipelineConfig(triangulation=TriangulationConfig(method=args.method, weights=weights)),
        temporal=temporal, people=args.people, person=args.person, start=start, stop=stop,
        backend=args.backend, threads=resolve_threads(args.threads), precision=args.precision,
        backbone=str(args.backbone) if args.backbone else None,
    )


def summary(result, quality: dict, files: list[Path], outdir: Path, seconds: float) -> str:
    lines = [f"{result.take.source}: {quality['frames']} frame sets from {len(result.take.cameras)} cameras "
             f"({', '.join(result.take.cameras)}), {seconds:.1f} s "
             f"({quality['timings']['per_frame_wall_ms']:.0f} ms per frame set)."]
    tracked = quality["people_tracked"]
    lines.append(f"People found: {len(tracked)} (IDs {', '.join(tracked) or 'none'}); reconstructed: "
                 + (", ".join(f"{p['id']}" + (" (main performer)" if p["id"] == result.main else "")
                              for p in quality["people"]) or "nobody"))
    for p in quality["people"]:
        r = p["reprojection_px"]
        lines.append(
            f"  person {p['id']}: reprojection mean {r['mean']:.1f} px, p95 {r['p95']:.1f} px; bone-length CV "
            f"{100 * (p['bone_length_cv_mean'] or 0):.1f} %; {p['views_used']['mean_per_limb_joint'] or 0:.1f} views "
            f"per limb joint; left/right fixed in "
            + (", ".join(f"{c} ({v['any']} frames)" for c, v in p["left_right_corrected_frames"].items()
                         if v["any"]) or "no view"))
    for w in result.take.warnings:
        lines.append(f"  note: {w}")
    lines.append(f"Results in {outdir}/: " + ", ".join(sorted(f.name for f in files)))
    return "\n".join(lines)


def calibration_free(args: argparse.Namespace) -> bool:
    """`--calib none`, or video files given with no calibration: estimate the cameras."""
    if args.calib is not None and str(args.calib).lower() == "none":
        if args.keypoints:
            raise TriangulumError("--keypoints needs a calibration; calibration-free capture works from the videos.")
        if not args.inputs:
            raise TriangulumError("--calib none needs the videos (one per camera) or a folder of them.")
        return True
    return bool(args.calib is None and not args.keypoints and args.inputs
                and all(p.is_file() for p in args.inputs))


def free_summary(figures: dict, path: Path) -> str:
    lines = [f"No calibration: cameras estimated from the person ({figures['frames_used']} frames, height "
             f"{figures['height_m']:.2f} m{'' if figures['height_given'] else ', the default; give --height'}), "
             f"written to {path} (reuse it with --calib)"]
    lines += [f"  {s['stage']}: reprojection {s['median_px']:.1f} px median, {s['p95_px']:.1f} px p95, "
              f"{s['seconds']:.1f} s" for s in figures["stages"]]
    lines.append("  focal lengths: " + ", ".join(f"{k} {v:.0f} px" for k, v in figures["focal_px"].items()))
    if figures["left_right_relabelled_frames"]:
        lines.append(f"  left/right repaired in {figures['left_right_relabelled_frames']} frames, then adjusted again")
    lines += [f"  note: {n}" for n in figures["people"]] + [f"  warning: {w}" for w in figures["warnings"]]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from app.export import check_formats
    from app.process.inputs import open_take
    from app.process.outputs import NPZ, write_exports, write_npz
    from app.process.overlay import write_overlays
    from app.process.report import write_report
    from app.process.take import fit_to_take, process_take
    from app.progress import stage_bar

    formats = tuple(f.strip().lower() for f in args.formats.split(",") if f.strip())
    if args.kinematics:
        from app.kinematics import check_available

        check_available()  # before the 2D, not after it
    free = calibration_free(args)
    if args.height is not None and not (args.kinematics or free):
        raise TriangulumError("--height is for --kinematics or a calibration-free run (--calib none); add one of "
                              "them or leave it out.")
    if args.height is not None and not 0.5 <= args.height <= 2.6:
        raise TriangulumError(f"--height {args.height} is not a person's height in metres (e.g. 1.75).")
    check_formats(formats)
    if not 0 < args.overlay_scale <= 2:
        raise TriangulumError(f"--overlay-scale {args.overlay_scale} must be in (0, 2].")
    config = build_config(args)
    outdir = args.output or default_output(list(args.inputs))
    t0 = time.perf_counter()
    if args.keypoints:
        from app.process.keypoints import keypoint_take
        from app.process.take import process_views

        if args.inputs:
            raise TriangulumError("give either videos or --keypoints, not both.")
        if args.calib is None or args.fps is None:
            raise TriangulumError("--keypoints needs the rig (--calib rig.toml) and the frame rate (--fps 60).")
        take, views, skeleton = keypoint_take(list(args.keypoints), args.keypoint_format, args.calib, args.fps,
                                              args.skeleton, args.calib_units)
        args.no_overlays = True  # no images to draw on
    else:
        if args.skeleton or args.fps:
            raise TriangulumError("--skeleton and --fps are for --keypoints (videos carry their own).")
        if free:
            from app.person_calibration import calibrate_videos_free

            with stage_bar("calibration-free (everyone tracked)", 0) as update:
                args.calib, figures = calibrate_videos_free(list(args.inputs), outdir, args.height,
                                                            progress=lambda _stage, done, _total: update(done))
            args.calib_units = "m"
            print(free_summary(figures, args.calib))
        take = open_take(list(args.inputs), args.calib, args.calib_units)
    config = fit_to_take(config, take)  # options that cannot work on this take fail here, before the 2D
    outdir.mkdir(parents=True, exist_ok=True)
    total = (config.stop or take.frames) - config.start
    with stage_bar("3D poses", total) as update:
        if args.keypoints:
            result = process_views(take, views, skeleton, config, progress=update)
        else:
            result = process_take(take, config, progress=update)
    files = [write_npz(result, outdir / NPZ)]
    t_export = time.perf_counter()
    exports = write_exports(result, outdir, formats, trc_names=args.trc_names)
    for paths in exports.values():
        files += list(paths.values())
    result.timings["export"] = time.perf_counter() - t_export
    kinematics = None
    if args.kinematics:
        from app.kinematics import KinematicsConfig, run_people

        t_ik = time.perf_counter()
        kinematics = run_people(result, outdir / "kinematics", KinematicsConfig(height=args.height, mass=args.mass))
        files += [f for k in kinematics.values() for f in k.files]
        result.timings["kinematics"] = time.perf_counter() - t_ik
    if not args.no_overlays:
        t_overlay = time.perf_counter()
        with stage_bar("overlays", len(result.frames)) as update:
            files += write_overlays(result, outdir, args.overlay_scale, progress=update)
        result.timings["overlays"] = time.perf_counter() - t_overlay
    report, pngs = write_report(result, outdir, kinematics=kinematics)
    files += [report, *pngs]
    import json

    quality = json.loads(report.read_text(encoding="utf-8"))
    print(summary(result, quality, files, outdir, time.perf_counter() - t0))
    if quality["outcome"]["reason"]:
        print(f"error: nothing reconstructed: {quality['outcome']['reason']}", file=sys.stderr)
    return quality["outcome"]["exit_code"]
