"""Live capture with pose estimation: pose rate, latency, stage times, sync skew, drops.

    python benchmarks/capture_latency.py [--json PATH] [--seconds 30] [--fps 30]
                                         [--backend onnxruntime|torch|tensorrt] [--threads N]
                                         [--method algebraic] [--filter none|one-euro]
                                         [--codec mjpeg] [--pose-decode full|reduced]
                                         [--only norecord|record|lockstep|replay60|fill]

Four `video:` sources from ../shared/data/pose2sim-demo-single (1080/1088x1920, looping)
paced at --fps like live cameras, live sync, the pose worker running the pipeline that
`triangulum capture --calib` runs (app.process.pipeline.FramePipeline: multi-person
BlazePose in every view, cross-view association, left/right check, triangulation by
--method, optional One Euro) with the Qualisys calibration; once without and once with
recording (into a temporary folder). The first 3 s are warm-up and not counted. A third
run reads the same files in lock-step (no pacing, every set): the pipeline's own throughput
on this machine, without the cost of decoding four 30 fps streams in real time (its latency
is not meaningful: the files' timeline runs ahead of it).

A fourth run, replay60, stands in for four 1088x1920 cameras at 60 fps that send MJPEG (as
USB cameras do): the four studio videos are first recorded into a session in lock-step
(every frame, MJPEG), then that session is replayed at real speed (60 fps, looping) while
it is recorded again and pose runs. Its recorded/delivered ratio per camera says whether
recording lost anything; the recorder's CPU per frame what recording costs (the session's
JPEGs are stored as they come, without decoding or re-encoding). replay60-decode is the
baseline in the same run: the same replay with every frame decoded by its grabber and
re-encoded by the recorder, as before frames could stay compressed.

Reported per run: achieved pose rate (computed poses) and the rate of poses filled in for the
sets pose skipped (app.capture.worker; `fill` first prints how far filled-in 3D lies from
computed 3D on the studio take); median and 95th-percentile latency from capture
time (the set's mean capture time) to the PoseFrame being published; per-stage medians
(sync = capture -> set complete, i.e. delivery and matching; wait = set complete -> worker
starts; then the pipeline's own stages as it reports them: pose2d = 2D of everyone in every
view, associate = people across views, handedness = left/right check, triangulate, filter
(One Euro; near zero with --filter none); process = the whole pipeline call. Handedness,
triangulate and filter run only while a main performer is seen by two or more views: their
medians are over those poses); sync skew of the sets handed out;
frames per second each camera delivered; drop rates: frames the cameras dropped (no free
buffer; a video file short of CPU delivers late rather than dropping, which shows in
"sync"), frames the sync buffer discarded unused (stale in live mode: the worker takes only
the newest set), and frames the recorder could not keep.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.capture.frames import FrameSet, clock  # noqa: E402
from app.capture.live import CaptureConfig, LiveCapture  # noqa: E402
from app.capture.recorder import RecorderConfig  # noqa: E402
from app.capture.spec import open_sources  # noqa: E402
from app.process.pipeline import (  # noqa: E402
    ONLINE_FILTERS,
    PRECISIONS,
    FramePipeline,
    build_frame_pipeline,
    online_config,
    torch_threads,
)
from app.process.reconstruct import METHODS  # noqa: E402
from calibration.formats.detect import convert  # noqa: E402
from calibration.rig import Rig  # noqa: E402
from engines.runtimes.onnx_runtime import default_threads  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "pose2sim-demo-single"
WARMUP = 3.0
# The worker's stages around the pipeline's own; the pipeline's come from what it reports.
BEFORE, AFTER = ("sync", "wait"), ("process",)
NOT_STAGES = {"latency"}  # reported as latency


def scaled_videos(folder: Path, scale: float) -> tuple[list[Path], str]:
    """The four studio videos at `scale` (H.264 by ffmpeg where it is installed, else MPEG-4
    by OpenCV), or the originals at scale 1 -> paths, codec note."""
    originals = [DATA / "videos" / f"cam0{i}.mp4" for i in range(1, 5)]
    if scale == 1:
        return originals, "the original H.264"
    out = []
    ffmpeg = shutil.which("ffmpeg")
    for src in originals:
        dst = folder / src.name
        cap = cv2.VideoCapture(str(src))
        w, h = (round(cap.get(cv2.CAP_PROP_FRAME_WIDTH) * scale), round(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) * scale))
        if ffmpeg:
            subprocess.run([ffmpeg, "-v", "error", "-y", "-i", str(src), "-vf", f"scale={w}:{h}", "-c:v", "libx264",
                            "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p", str(dst)], check=True)
        else:
            writer = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"mp4v"), cap.get(cv2.CAP_PROP_FPS), (w, h))
            while (frame := cap.read()[1]) is not None:
                writer.write(cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA))
            writer.release()
        cap.release()
        out.append(dst)
    return out, "H.264, ffmpeg" if ffmpeg else "MPEG-4 part 2, OpenCV"


def camera_set(videos: list[Path], rig: Rig, scale: float, cameras: int, fps: float) -> tuple[list[str], Rig]:
    """Source specs and the rig (scaled to the videos) for `cameras` cameras: 2 (cam01, cam03:
    opposite sides), 4, or 8 (the four again, as cam05..cam08 with copies of their calibration)."""
    if cameras not in (2, 4, 8):
        sys.exit(f"error: --cameras {cameras}: choose 2, 4 or 8.")
    scaled = Rig([c.scaled(scale) if scale != 1 else c for c in rig.cameras], dict(rig.metadata))
    picks = {2: [0, 2], 4: [0, 1, 2, 3], 8: [0, 1, 2, 3] * 2}[cameras]
    names = [f"cam{k + 1:02d}" for k in range(cameras)] if cameras == 8 else [scaled.cameras[i].name for i in picks]
    specs = [f"video:{videos[i]}?fps={fps:g}&loop=1&name={n}" for i, n in zip(picks, names, strict=True)]
    cams = [dataclasses.replace(scaled.cameras[i], name=n) for i, n in zip(picks, names, strict=True)]
    return specs, Rig(cams, dict(rig.metadata))


def stage_names(poses: list) -> list[str]:
    """Every stage the poses report: the worker's, with the pipeline's in the order it ran them."""
    inner: dict[str, None] = {}
    for p in poses:
        inner.update(dict.fromkeys(k for k in p.timings if k not in {*BEFORE, *AFTER, *NOT_STAGES}))
    return [*BEFORE, *inner, *AFTER]


def warm_up(pipeline: FramePipeline, specs: list[str]) -> None:
    """One set through the pipeline so that lazy initialisation is not measured."""
    from app.capture.frames import Frame

    frames = []
    for source in open_sources([s.replace("&loop=1", "") + "&lockstep=1" for s in specs]):
        source.open()
        grabbed = source.read()
        frames.append(Frame(source.name, 0, 0.0, 0.0, grabbed.image))
        source.close()
    pipeline.process(FrameSet(0, tuple(frames), clock()))
    pipeline.reset()


def make_session(folder: Path, specs: list[str]) -> Path:
    """The videos recorded (MJPEG, every frame, in lock-step) into a session folder."""
    config = CaptureConfig(sources=[s.replace("&loop=1", "") + "&lockstep=1" for s in specs], mode="lockstep",
                           record=folder)
    capture = LiveCapture(config)
    capture.start()
    while not capture.finished:
        time.sleep(0.1)
    capture.stop()
    return folder


def run(
    pipeline: FramePipeline, specs: list[str], seconds: float, record: Path | None, codec: str, lockstep: bool = False,
    name: str | None = None, passthrough: bool = True,
) -> dict:
    if lockstep:
        specs = [s.replace("&loop=1", "") + "&lockstep=1&loop=1" for s in specs]
    config = CaptureConfig(
        sources=specs, mode="lockstep" if lockstep else "live", record=record, recorder=RecorderConfig(codec=codec)
    )
    capture = LiveCapture(config, pipeline)
    for source in capture.sources:
        if hasattr(source, "passthrough"):  # a session camera: hand on its JPEGs, or decode them
            source.passthrough = passthrough
    capture.open()
    box = capture.worker.subscribe(capacity=100_000, images=False)
    capture.start()
    time.sleep(WARMUP)
    start = capture.stats()
    t_start = clock()
    time.sleep(seconds)
    end = capture.stats()
    t_end = clock()
    capture.stop()
    final = capture.stats()  # after stop: everything queued has been written
    poses, filled = [], 0
    while (p := box.get(timeout=0)) is not None:
        if t_start <= p.t_published <= t_end:
            if p.filled:  # filled in between computed poses (app.capture.worker): counted apart
                filled += 1
            else:
                poses.append(p)
    window = t_end - t_start
    latency = np.array([p.latency for p in poses]) * 1000
    delivered = {c.camera: c.frames for c in end.cameras}
    cam_frames = {c.camera: end_c.frames - c.frames for c, end_c in zip(start.cameras, end.cameras, strict=True)}
    cam_drops = {c.camera: end_c.dropped - c.dropped for c, end_c in zip(start.cameras, end.cameras, strict=True)}
    unused = {cam: end.sync.dropped[cam] - start.sync.dropped[cam] for cam in delivered}
    if lockstep:
        latency = np.array([])
    result = {
        "run": name or ("lockstep" if lockstep else ("record" if record is not None else "norecord")),
        "record": record is not None,
        "seconds": round(window, 2),
        "poses": len(poses),
        "pose_rate": round(len(poses) / window, 2),
        "filled_rate": round(filled / window, 2),
        "latency_ms_median": round(float(np.median(latency)), 1) if len(latency) else None,
        "latency_ms_p95": round(float(np.percentile(latency, 95)), 1) if len(latency) else None,
        "stage_ms_median": {
            # In lock-step the capture times are the files' timeline: "sync" means nothing.
            s: round(float(np.median([p.timings[s] for p in poses if s in p.timings])) * 1000, 1)
            for s in stage_names(poses)
            if poses and not (lockstep and s == "sync")
        },
        "sync_sets": end.sync.sets - start.sync.sets,
        "sync_skew_ms_median": round(end.sync.skew_median * 1000, 2),
        "sync_skew_ms_p95": round(end.sync.skew_p95 * 1000, 2),
        "sync_skew_ms_max": round(end.sync.skew_max * 1000, 2),
        "camera_fps": {c: round(n / window, 2) for c, n in cam_frames.items()},
        "camera_drop_rate": {c: round(cam_drops[c] / max(1, cam_frames[c] + cam_drops[c]), 4) for c in cam_frames},
        "sync_unused_rate": {c: round(unused[c] / max(1, cam_frames[c]), 4) for c in cam_frames},
        "poses_without_joints": int(sum(1 for p in poses if not np.isfinite(p.joints3d).any())),
    }
    if record is not None:
        rec_start, rec_end = start.recorder, end.recorder
        written = {c: rec_end.written[c] - rec_start.written[c] for c in rec_end.written}
        dropped = {c: rec_end.dropped[c] - rec_start.dropped[c] for c in rec_end.dropped}
        passed = {c: rec_end.passed_through[c] - rec_start.passed_through[c] for c in rec_end.written}
        result.update(
            record_codec=codec,
            # Whole run (warm-up included), after the recorder drained its queue.
            record_over_delivered={c.camera: round(final.recorder.written[c.camera] / max(1, c.frames), 4)
                                   for c in final.cameras},
            record_total_written=dict(final.recorder.written),
            camera_total_delivered={c.camera: c.frames for c in final.cameras},
            record_cpu_ms_per_frame=round(1000 * (rec_end.cpu_s - rec_start.cpu_s) / max(1, sum(written.values())), 3),
            record_passed_through_share=round(sum(passed.values()) / max(1, sum(written.values())), 4),
            record_written_fps={c: round(n / window, 2) for c, n in written.items()},
            record_drop_rate={c: round(dropped[c] / max(1, written[c] + dropped[c]), 4) for c in written},
            record_mb_per_s=round((rec_end.bytes - rec_start.bytes) / window / 1e6, 2),
            record_error=rec_end.error,
        )
    return result


def fill_accuracy() -> list[dict]:
    """How far filled-in 3D lies from computed 3D: the studio take offline with every set
    computed and no filter, thinned to 30 fps; pose kept on every (k+1)-th set and the k
    between filled in as the live worker does (app.capture.worker.between); median and p90
    distance (mm) over the 12 limb joints from the computed 3D of those sets."""
    from app.capture.worker import between
    from app.process.inputs import open_take
    from app.process.take import ProcessConfig, TemporalConfig, process_take
    from engines.skeleton import BLAZEPOSE33, limb_joint_indices

    result = process_take(open_take([]), ProcessConfig(temporal=TemporalConfig(gap_fill=None, butterworth=None)))
    joints = result.people[0].raw.joints[::2][:, limb_joint_indices(BLAZEPOSE33)]  # 60 -> 30 fps
    rows = []
    for k in (1, 2, 3):
        errors = []
        for a in range(0, len(joints) - k - 1, k + 1):
            b = a + k + 1
            for m in range(a + 1, b):
                errors.append(np.linalg.norm(between(joints[a], a, joints[b], b, m) - joints[m], axis=-1))
        e = np.concatenate(errors) * 1000
        e = e[np.isfinite(e)]
        rows.append({"skipped_per_computed": k, "median_mm": round(float(np.median(e)), 1),
                     "p90_mm": round(float(np.percentile(e, 90)), 1)})
    return rows


def print_table(results: list[dict]) -> None:
    """One row per run; a column per stage any run reported (median ms)."""
    stages: dict[str, None] = {}
    for r in results:
        stages.update(dict.fromkeys(r["stage_ms_median"]))
    head = (f"{'run':<15}{'pose/s':>8}{'filled':>8}{'lat med':>9}{'lat p95':>9}" + "".join(f"{s[:11]:>12}" for s in stages)
            + f"{'skew':>7}{'cam fps':>9}{'cam drop':>10}{'unused':>8}{'rec drop':>10}{'rec/deliv':>10}{'rec ms/f':>9}")
    print("pose/s: computed poses; filled: poses filled in per second for the sets pose skipped;\n"
          "latency and stages: median milliseconds (computed poses); skew: median sync skew")
    print(head)
    print("-" * len(head))
    for r in results:
        st = r["stage_ms_median"]
        fps = np.mean(list(r["camera_fps"].values()))
        drop = np.mean(list(r["camera_drop_rate"].values())) * 100
        unused = np.mean(list(r["sync_unused_rate"].values())) * 100
        rec = f"{np.mean(list(r['record_drop_rate'].values())) * 100:.1f}%" if r["record"] else "-"
        ratio = f"{min(r['record_over_delivered'].values()):.3f}" if r["record"] else "-"
        rec_cpu = f"{r['record_cpu_ms_per_frame']:.2f}" if r["record"] else "-"
        lat = f"{'-':>9}{'-':>9}" if r["latency_ms_median"] is None else f"{r['latency_ms_median']:>9.0f}{r['latency_ms_p95']:>9.0f}"
        cells = "".join(f"{st[s]:>12.1f}" if s in st else f"{'-':>12}" for s in stages)
        print(
            f"{r['run']:<15}{r['pose_rate']:>8.2f}{r['filled_rate']:>8.2f}{lat}{cells}"
            f"{r['sync_skew_ms_median']:>7.1f}{fps:>9.1f}{drop:>9.1f}%{unused:>7.1f}%{rec:>10}{ratio:>10}{rec_cpu:>9}"
        )
    for r in results:
        if r["record"]:
            print(f"{r['run']}: recorded / delivered per camera " + ", ".join(
                f"{c} {r['record_over_delivered'][c]:.3f} ({r['record_written_fps'][c]:.1f} fps)"
                for c in r["record_over_delivered"])
                + f"; {100 * r['record_passed_through_share']:.0f} % stored as the camera's JPEG")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured seconds per run (after 3 s warm-up)")
    parser.add_argument("--fps", type=float, default=30.0, help="pace the videos at this rate")
    parser.add_argument("--backend", default="onnxruntime", choices=("onnxruntime", "torch", "tensorrt"),
                        help="BlazePose runtime (default onnxruntime, as `triangulum capture`)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for the 2D model (default: as `triangulum capture`, one per core up to 4; "
                        "0: the runtime's choice)")
    parser.add_argument("--method", choices=METHODS, default="algebraic", help="triangulation method")
    parser.add_argument("--filter", choices=ONLINE_FILTERS, default="none", help="live temporal filter")
    parser.add_argument("--codec", default="mjpeg", help="recording codec")
    parser.add_argument("--pose-decode", choices=("full", "reduced"), default="full",
                        help="decode compressed frames for pose in full or at reduced size (as capture --pose-decode)")
    parser.add_argument("--scale", type=float, default=0.5,
                        help="size of the paced videos against the studio's 1088x1920 (default 0.5: 544x960, the "
                        "size of issue 18's target; the calibration is scaled alike; replay60 stays full size)")
    parser.add_argument("--cameras", type=int, nargs="+", default=[4],
                        help="camera counts to run (2, 4 or 8; 8 repeats the four studio cameras under new names)")
    parser.add_argument("--precision", choices=PRECISIONS, default="float", help="landmark network precision")
    parser.add_argument("--only", choices=("norecord", "record", "lockstep", "replay60", "fill"),
                        help="run just one of them (replay60 runs its baseline too; fill: the accuracy of filled-in poses)")
    args = parser.parse_args(argv)
    fill = []
    if args.only in (None, "fill"):
        fill = fill_accuracy()
        print("filled-in 3D against computed (studio take at 30 fps, 12 limb joints): " + "; ".join(
            f"{r['skipped_per_computed']} skipped per computed: {r['median_mm']} mm median, {r['p90_mm']} p90"
            for r in fill))
        if args.only == "fill":
            return 0
    if not DATA.exists():
        sys.exit(f"error: {DATA} is missing; the benchmark needs the shared pose2sim recording.")
    originals = [f"video:{DATA / 'videos' / f'cam0{i}.mp4'}?fps={args.fps:g}&loop=1" for i in range(1, 5)]
    full_rig = convert(DATA / "calibration" / "Calib.qca.txt")
    args.threads = default_threads() if args.threads is None else args.threads
    results = []
    work = tempfile.TemporaryDirectory(prefix="triangulum-bench-")
    videos, codec_note = scaled_videos(Path(work.name), args.scale)
    for cameras in args.cameras:
        specs, rig = camera_set(videos, full_rig, args.scale, cameras, args.fps)
        pipeline = build_frame_pipeline(rig, online_config(args.method, args.filter, args.pose_decode), args.backend,
                                        args.threads or None, args.precision)
        tag = f" {cameras}c" if len(args.cameras) > 1 else ""
        # As `triangulum capture`: one torch thread for the geometry unless torch runs the model.
        with torch_threads(args.threads if args.backend == "torch" else 1):
            warm_up(pipeline, specs)
            if args.only in (None, "norecord"):
                results.append(run(pipeline, specs, args.seconds, None, args.codec, name="norecord" + tag))
                pipeline.reset()
            if args.only in (None, "record"):
                with tempfile.TemporaryDirectory(prefix="triangulum-bench-") as tmp:
                    results.append(run(pipeline, specs, args.seconds, Path(tmp) / "take", args.codec, name="record" + tag))
                pipeline.reset()
            if args.only in (None, "lockstep"):
                results.append(run(pipeline, specs, args.seconds, None, args.codec, lockstep=True, name="lockstep" + tag))
                pipeline.reset()
    work.cleanup()
    rig, specs = full_rig, originals
    with torch_threads(args.threads if args.backend == "torch" else 1):
        if args.only in (None, "replay60"):
            # The 60 fps MJPEG cameras of replay60 are full size, whatever --scale says.
            pipeline = build_frame_pipeline(rig, online_config(args.method, args.filter, args.pose_decode),
                                            args.backend, args.threads or None, args.precision)
            with tempfile.TemporaryDirectory(prefix="triangulum-bench-") as tmp:
                # The cameras' own rate: the studio videos were filmed at 60 fps.
                session = make_session(Path(tmp) / "cameras", [s.replace(f"fps={args.fps:g}", "fps=60") for s in specs])
                replay = [f"session:{session}?speed=1&loop=1"]
                results.append(run(pipeline, replay, args.seconds, Path(tmp) / "take", args.codec, name="replay60"))
                pipeline.reset()
                # Baseline in the same run: every frame decoded by its grabber and re-encoded.
                results.append(run(pipeline, replay, args.seconds, Path(tmp) / "take-decoded", args.codec,
                                   name="replay60-decode", passthrough=False))
        torch_threads_used = torch.get_num_threads()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    size = "x".join(str(round(v * args.scale)) for v in (1088, 1920))
    print(f"{'/'.join(map(str, args.cameras))} x video:pose2sim-demo-single at {size} ({codec_note}) paced at "
          f"{args.fps:g} fps, backend {args.backend} ({args.threads or 'auto'} thread(s), {args.precision}), "
          f"method {args.method}, filter {args.filter}, {os.cpu_count()} CPUs (load average {load}), "
          f"{args.seconds:g} s per run")
    print_table(results)
    if args.json:
        report = {
            "benchmark": "capture_latency",
            "machine": {
                "cpus": os.cpu_count(),
                "load_average_1_5_15min_at_end": [round(x, 2) for x in os.getloadavg()],
                "platform": platform.platform(),
                "processor": platform.processor(),
                "torch_threads": torch_threads_used,
                "cuda": torch.cuda.is_available(),
            },
            "config": {"fps": args.fps, "seconds": args.seconds, "backend": args.backend, "threads": args.threads,
                       "method": args.method, "filter": args.filter, "warmup_s": WARMUP, "cameras": 4},
            "results": results,
            "fill_accuracy": fill,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
