"""`triangulum capture`: run cameras headless, print live statistics once a second.

    triangulum capture --source video:cam01.mp4?fps=30 --source video:cam02.mp4?fps=30 \\
        --calib rig.toml --record takes/take1 --duration 20 --stream 127.0.0.1:9000
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from app.capture.frames import clock
from app.capture.live import CaptureConfig, CaptureStats, LiveCapture
from app.capture.recorder import CODECS, RecorderConfig
from calibration.errors import TriangulumError

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
    p.add_argument("--record", type=Path, metavar="DIR", help="record every frame into this new folder")
    p.add_argument("--codec", choices=sorted(CODECS), default="mjpeg", help="recording codec (default mjpeg)")
    p.add_argument("--quality", type=int, default=90, help="JPEG quality for mjpeg, 1-100 (95+: full colour; 100: near-lossless)")
    p.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this long (default: until Ctrl-C or the sources end)")
    p.add_argument("--stream", metavar="HOST:PORT", help="send 3D joints as JSON over UDP (osc://HOST:PORT for OSC)")
    p.add_argument("--lockstep", action="store_true", help="read files as fast as they are processed and hand out every frame set (offline) instead of the newest")
    p.add_argument("--tolerance", type=float, metavar="MS", help="sync tolerance in ms (default: half the slowest frame period)")
    p.add_argument("--backend", default="torch", choices=("torch", "onnxruntime", "tensorrt"), help="2D pose backend")
    p.set_defaults(func=run)


def format_stats(s: CaptureStats) -> str:
    cams = "  ".join(f"{c.camera} {c.fps:4.1f}fps drop {c.dropped}" + ("" if c.state == "running" else f" [{c.state}]")
                     for c in s.cameras)
    sync = (f"sets {s.sync.sets_per_second:4.1f}/s skew {s.sync.skew_median * 1e3:.1f}/{s.sync.skew_p95 * 1e3:.1f}ms"
            f" unused {sum(s.sync.dropped.values())}")
    w = s.worker
    pose = f"pose {w.poses_per_second:4.1f}/s lat {w.latency_median * 1e3:.0f}/{w.latency_p95 * 1e3:.0f}ms"
    line = f"{s.t:6.1f}s  {cams} | {sync} | {pose}"
    if s.recorder is not None:
        r = s.recorder
        line += f" | rec {sum(r.written.values())} d{sum(r.dropped.values())} q{r.queued} {r.bytes / 1e6:.0f}MB"
        if r.error:
            line += " [STOPPED]"
    if s.streamed:
        line += f" | sent {s.streamed}"
    return line


def build_pipeline(args: argparse.Namespace):
    from app.capture.pipeline import TriangulationPipeline
    from calibration.formats.detect import convert
    from engines.blazepose.pipeline import BlazePoseEstimator

    rig = convert(args.calib)
    return rig, TriangulationPipeline(rig, BlazePoseEstimator(args.backend))


def run(args: argparse.Namespace) -> int:
    if args.duration is not None and args.duration <= 0:
        raise TriangulumError(f"--duration {args.duration} must be positive (seconds).")
    rig, pipeline = build_pipeline(args) if args.calib else (None, None)
    config = CaptureConfig(
        sources=args.source,
        mode="lockstep" if args.lockstep else "live",
        tolerance=args.tolerance / 1000 if args.tolerance else None,
        record=args.record,
        recorder=RecorderConfig(codec=args.codec, quality=args.quality),
        calibration=rig,
        stream=args.stream,
    )
    capture = LiveCapture(config, pipeline)
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
