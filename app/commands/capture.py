"""`triangulum capture`: run cameras headless, print live statistics once a second.

    triangulum capture --source video:cam01.mp4?fps=30 --source video:cam02.mp4?fps=30 \\
        --calib rig.toml --record takes/take1 --duration 20 --stream 127.0.0.1:9000

With --calib every frame set goes through the per-frame pipeline `triangulum process` and
the GUI run (app.process.pipeline.FramePipeline: everyone in every view, cross-view
association, left/right check, triangulation by --method, optional One Euro), so live and
offline poses agree frame for frame; the stream carries the main performer.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from app.capture.frames import clock
from app.capture.live import CaptureConfig, CaptureStats, LiveCapture
from app.capture.recorder import CODECS, RecorderConfig
from app.commands import add_method_arguments, add_precision_argument, resolve_threads
from calibration.errors import TriangulumError
from calibration.units import CHOICES as UNIT_CHOICES

if TYPE_CHECKING:
    from app.process.pipeline import FramePipeline
    from calibration.rig import Rig

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:

    p = subparsers.add_parser(
        "capture",
        help="capture from cameras or files: sync, pose, record, stream (headless)",
        description="Capture from several sources at once, match frames into synchronised sets, "
        "estimate 3D poses (with --calib), record (with --record) and stream joints (with --stream). "
        "Prints statistics once a second.",
    )
    p.add_argument(
        "--source",
        action="append",
        required=True,
        metavar="SPEC",
        help="a camera: webcam:0, video:PATH, images:DIR, session:DIR or test:NAME, with options "
        "after '?', e.g. video:cam01.mp4?fps=30&loop=1 (repeat for each camera)",
    )
    p.add_argument("--calib", type=Path, help="rig calibration (any supported format): turns on 3D pose estimation")
    p.add_argument("--calib-units", choices=UNIT_CHOICES, default="auto",
                   help="length unit of the calibration (default auto: told from the rig's geometry)")
    p.add_argument("--record", type=Path, metavar="DIR", help="record every frame into this new folder")
    p.add_argument("--codec", choices=sorted(CODECS), default="mjpeg", help="recording codec (default mjpeg)")
    p.add_argument("--quality", type=int, default=90, help="JPEG quality for mjpeg, 1-100 (95+: full colour; 100: near-lossless)")
    p.add_argument("--min-free", type=float, default=256, metavar="MB",
                   help="stop recording when the disk has less free space than this (default 256 MB)")
    p.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this long (default: until Ctrl-C or the sources end)")
    p.add_argument("--stream", metavar="HOST:PORT", help="send 3D joints as JSON over UDP (osc://HOST:PORT for OSC)")
    p.add_argument("--lockstep", action="store_true", help="read files as fast as they are processed and hand out every frame set (offline) instead of the newest")
    p.add_argument("--no-fill", action="store_true",
                   help="live, when pose cannot run on every frame set: do not fill in the skipped sets' 3D "
                        "(by default they are interpolated between computed poses and marked \"filled\" in the stream)")
    p.add_argument("--tolerance", type=float, metavar="MS", help="sync tolerance in ms (default: half the slowest frame period)")
    add_method_arguments(p)
    # No `choices`: the list is app.process.pipeline.ONLINE_FILTERS, whose import (the whole
    # pipeline) would slow every command's start by a second; online_config checks the name.
    p.add_argument("--filter", default="none", metavar="none|one-euro",
                   help="live temporal filter of the 3D joints: none (default) or one-euro (causal smoothing)")
    p.add_argument("--pose-decode", default="full", metavar="full|reduced",
                   help="compressed frames (MJPEG webcams, replayed sessions) are decoded for pose in full "
                   "(default) or reduced: at 1/2-1/8 size, at least 480 px on the short side (less CPU, "
                   "2D within a few px)")
    p.add_argument("--backend", default="onnxruntime", choices=("onnxruntime", "torch", "tensorrt"),
                   help="2D pose runtime (default onnxruntime)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for the 2D model (default: one per core, up to 4; each runs a share of the "
                   "views' crops at once; 0: ONNX Runtime's own thread pool)")
    add_precision_argument(p)
    p.set_defaults(func=run)


def format_stats(s: CaptureStats) -> str:
    cams = "  ".join(f"{c.camera} {c.fps:4.1f}fps drop {c.dropped}" + ("" if c.state == "running" else f" [{c.state}]")
                     for c in s.cameras)
    sync = (f"sets {s.sync.sets_per_second:4.1f}/s skew {s.sync.skew_median * 1e3:.1f}/{s.sync.skew_p95 * 1e3:.1f}ms"
            f" unused {sum(s.sync.dropped.values())}")
    w = s.worker
    pose = f"pose {w.poses_per_second:4.1f}/s lat {w.latency_median * 1e3:.0f}/{w.latency_p95 * 1e3:.0f}ms"
    if w.filled_per_second:
        pose += f" +{w.filled_per_second:.1f}/s filled"
    line = f"{s.t:6.1f}s  {cams} | {sync} | {pose}"
    if s.recorder is not None:
        r = s.recorder
        line += f" | rec {sum(r.written.values())} d{sum(r.dropped.values())} q{r.queued} {r.bytes / 1e6:.0f}MB"
        if r.error:
            line += " [STOPPED]"
    if s.streamed:
        line += f" | sent {s.streamed}"
    return line


def build_pipeline(args: argparse.Namespace) -> tuple[Rig, FramePipeline]:
    """The rig from --calib and the FramePipeline for it (loads the 2D models)."""
    from app.process.pipeline import build_frame_pipeline, online_config
    from calibration.formats.detect import convert

    args.threads = resolve_threads(args.threads)
    config = online_config(args.method, args.filter, getattr(args, "pose_decode", "full"),
                           str(args.weights) if getattr(args, "weights", None) else None)
    rig = convert(args.calib, units=getattr(args, "calib_units", "auto"))
    return rig, build_frame_pipeline(rig, config, args.backend, args.threads, args.precision,
                                     getattr(args, "backbone", None))


def check_cameras(cameras: list[str], rig: Rig) -> None:
    """Every source must be a camera of the calibration (the pipeline finds them by name)."""
    unknown = [c for c in cameras if c not in rig.names]
    if unknown:
        raise TriangulumError(f"camera(s) {unknown} are not in the calibration (it has {', '.join(rig.names)}); "
                              "name each source after its calibrated camera with ?name=, e.g. "
                              f"video:cam.mp4?name={rig.names[0]}.")


def run(args: argparse.Namespace) -> int:
    if args.duration is not None and args.duration <= 0:
        raise TriangulumError(f"--duration {args.duration} must be positive (seconds).")
    if not args.calib:
        return run_capture(args, None, None)
    from app.process.pipeline import torch_threads

    rig, pipeline = build_pipeline(args)
    # Torch runs the pipeline's geometry (many tiny operations: one thread) and, with
    # --backend torch, the 2D model (--threads).
    with torch_threads(args.threads if args.backend == "torch" else 1):
        return run_capture(args, rig, pipeline)


def run_capture(args: argparse.Namespace, rig: Rig | None, pipeline: FramePipeline | None) -> int:
    if getattr(args, "min_free", 0) < 0:
        raise TriangulumError(f"--min-free {args.min_free} must be 0 MB or more.")
    config = CaptureConfig(
        sources=args.source,
        mode="lockstep" if args.lockstep else "live",
        tolerance=args.tolerance / 1000 if args.tolerance else None,
        record=args.record,
        recorder=RecorderConfig(codec=args.codec, quality=args.quality,
                                min_free_bytes=int(getattr(args, "min_free", 256) * 2**20)),
        calibration=rig,
        stream=args.stream,
        fill=not getattr(args, "no_fill", False),
    )
    capture = LiveCapture(config, pipeline)
    if rig is not None:
        check_cameras(capture.cameras, rig)
    capture.start()
    reported_error = ""
    try:
        next_report = clock() + 1.0
        while not capture.finished:
            if args.duration is not None and clock() - capture.epoch >= args.duration:
                break
            time.sleep(max(0.0, min(0.1, next_report - clock())))
            if clock() >= next_report:
                stats = capture.stats()
                print(format_stats(stats), flush=True)
                if stats.recorder is not None and stats.recorder.error and stats.recorder.error != reported_error:
                    reported_error = stats.recorder.error
                    print(f"recording: {reported_error}", flush=True)
                next_report += 1.0
    except KeyboardInterrupt:
        pass
    finally:
        capture.stop()
    stats = capture.stats()
    print(format_stats(stats))
    print(f"done: {stats.sync.sets} sets, {stats.worker.poses} poses" + (f", recorded into {args.record}" if args.record else ""))
    return 0
