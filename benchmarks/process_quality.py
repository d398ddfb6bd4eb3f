"""Quality and speed of `triangulum process` against the MediaPipe + plain DLT baseline.

    python benchmarks/process_quality.py [SESSION | VIDEO... --calib RIG] [--json PATH]
                                         [--mp-python PATH] [--no-baseline] [--repeats N]

Default input: the built-in sample (Pose2Sim's demo). In one run it measures

- ours: `process_take` with the default configuration (BlazePose per view on ONNX Runtime,
  association, left/right correction, confidence-weighted DLT, 6 Hz Butterworth), and the
  other triangulation methods and an ablation without left/right correction on the same 2D;
- baseline: MediaPipe Pose (mediapipe 0.10.21, model_complexity 1, tracking mode) per view
  through benchmarks/mediapipe_reference.py in the mediapipe environment, then plain DLT of
  all views (the FreeMoCap pipeline);

and for each: reprojection error over all views that saw each of the 12 limb joints (mean,
median, p95, share above 20 px; ours against its left/right-corrected 2D), coefficient of
variation of the 8 limb bone lengths, wrist/ankle jitter (mean acceleration), views used per
limb joint, and, for the sample, 3D distance to the Pose2Sim reconstruction in
shared/data/pose2sim-demo-single/reference over the 10 limb joints it shares (shoulders,
elbows, wrists, knees, ankles; its hips are defined differently).

Timing (ms per frame set of all cameras, model loading excluded, video decoding included):
ours from the wall clock of the per-frame loop plus the whole-take passes (videos are decoded
on a second thread while the networks run; "decode" in the stage list is the time spent
waiting for frames); the baseline from the wall time of the reference
subprocess on the full videos minus its wall time on one-frame copies of them (start-up and
model loading cancel out), divided by the extra frames, plus the DLT. CPU time (all threads,
user + system) is measured the same way, as it depends less on what else the machine runs.
With --repeats N every measurement is taken N times, alternating which side goes first, and
the fastest kept (the machine may be shared).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.process.inputs import Take, open_take  # noqa: E402
from app.process.reconstruct import TriangulationConfig, triangulate_joints  # noqa: E402
from app.process.take import ProcessConfig, TakeResult, process_take, reconstruct_person, smooth  # noqa: E402
from calibration.rig import Rig  # noqa: E402
from engines.blazepose.quantize import CALIBRATION_FRAMES  # noqa: E402
from engines.skeleton import BLAZEPOSE33, LIMB_JOINTS, indices, limb_bone_indices  # noqa: E402
from training.metrics import bone_length_stats, jitter, reprojection_stats  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
REFERENCE_TRC = DATA / "pose2sim-demo-single" / "reference" / "pose2sim_body25b_0-100.trc"
REFERENCE_SCRIPT = Path(__file__).resolve().parent / "mediapipe_reference.py"
# OpenPose BODY_25B marker -> our joint, for the 10 limb joints both define alike.
REFERENCE_JOINTS = {
    "LShoulder": "left_shoulder", "RShoulder": "right_shoulder", "LElbow": "left_elbow",
    "RElbow": "right_elbow", "LWrist": "left_wrist", "RWrist": "right_wrist",
    "LKnee": "left_knee", "RKnee": "right_knee", "LAnkle": "left_ankle", "RAnkle": "right_ankle",
}
JITTER_JOINTS = ("left_wrist", "right_wrist", "left_ankle", "right_ankle")
TARGETS = {"p95_px": 40.0, "bone_cv": 0.05, "reference_median_m": 0.04, "reference_p90_m": 0.10}


def default_mp_python() -> str:
    return os.environ.get("TRIANGULUM_MP_PYTHON", "/opt/mpref/bin/python")


def quality(rig: Rig, joints: np.ndarray, keypoints: np.ndarray, used: np.ndarray, fps: float,
            reference: np.ndarray | None) -> dict:
    """The metrics of one reconstruction: joints (F, J, 3), keypoints (C, F, J, 2) it is
    compared with, used (C, F, J) views used; reference (F, 10, 3) or None."""
    sk = BLAZEPOSE33
    limbs = indices(sk, LIMB_JOINTS)
    err = rig.reprojection_error(joints, keypoints)[:, :, limbs]
    rep = reprojection_stats(err, 20.0)
    cv = bone_length_stats(joints, np.array(list(limb_bone_indices(sk).values()))).cv
    tri = np.isfinite(joints[:, limbs]).all(-1)
    n_used = used[:, :, limbs].sum(0)
    out = {
        "reprojection_px": {"mean": rep.mean, "median": rep.median, "p95": rep.p95,
                            "share_above_20px": rep.share_above,
                            "per_camera": dict(zip(rig.names, rep.per_camera.tolist(), strict=True))},
        "bone_cv": float(np.nanmean(cv)),
        "bone_cv_per_bone": dict(zip(limb_bone_indices(sk), cv.tolist(), strict=True)),
        "jitter_m_s2": jitter(joints[:, indices(sk, JITTER_JOINTS)], fps),
        "views_used_per_limb_joint": float(n_used[tri].mean()) if tri.any() else float("nan"),
        "limb_joints_triangulated": float(tri.mean()),
    }
    if reference is not None:
        ours = joints[:, indices(sk, list(REFERENCE_JOINTS.values()))]
        d = np.linalg.norm(ours - reference, axis=-1)
        d = d[np.isfinite(d)]
        out["reference_m"] = {"median": float(np.median(d)), "p90": float(np.percentile(d, 90)), "count": int(d.size)}
        # Informational: the alignment of the reference's rows with our frames is assumed
        # (row i = frame i); report how a one- or two-frame shift would change the agreement.
        shifts = {}
        for lag in (-2, -1, 1, 2):
            a, b = (ours[lag:], reference[:len(reference) - lag]) if lag > 0 else (ours[:lag], reference[-lag:])
            e = np.linalg.norm(a - b, axis=-1)
            e = e[np.isfinite(e)]
            shifts[str(lag)] = {"median": float(np.median(e)), "p90": float(np.percentile(e, 90))}
        out["reference_m"]["if_shifted_by_frames"] = shifts
    return out


def load_reference(frames: int) -> np.ndarray | None:
    """Pose2Sim's 10 limb joints (F, 10, 3) in world metres, or None without the data."""
    if not REFERENCE_TRC.is_file():
        return None
    from app.export.trc import read_trc

    trc = read_trc(REFERENCE_TRC)
    ref = np.stack([trc.world[:, trc.names.index(k)] for k in REFERENCE_JOINTS], 1)
    return ref[:frames] if len(ref) >= frames else None


WHOLE_TAKE = ("handedness", "triangulate", "filter")


def run_ours(take: Take) -> tuple[TakeResult, float, float, dict[str, float]]:
    """Our default run -> result, wall and CPU ms per frame set, per-stage ms per frame set."""
    result = process_take(take, ProcessConfig())
    F, t = len(result.frames), result.timings
    stages = {k: 1000.0 * v / F for k, v in t.items() if k not in ("load_models", "frames_wall", "frames_cpu")}
    passes = sum(t[k] for k in WHOLE_TAKE)  # single-threaded, so wall = CPU
    return result, 1000.0 * (t["frames_wall"] + passes) / F, 1000.0 * (t["frames_cpu"] + passes) / F, stages


def variants(result: TakeResult, reference) -> dict[str, dict]:
    """Other methods and a no-left/right-correction ablation on the same 2D as the default run."""
    take, out = result.take, {}
    main = result.main
    for method in ("algebraic", "robust", "ransac", "dlt"):
        cfg = ProcessConfig(pipeline=type(result.config.pipeline)(triangulation=TriangulationConfig(method)))
        p = reconstruct_person(take, result.frames, main, cfg, result.skeleton, cfg.pipeline.handedness, {})
        out[method] = quality(take.rig, p.final.joints, p.keypoints, np.moveaxis(p.final.views_used, -1, 0),
                              take.fps, reference)
        out[method + " (unfiltered)"] = quality(take.rig, p.raw.joints, p.keypoints,
                                                np.moveaxis(p.raw.views_used, -1, 0), take.fps, reference)
    from app.process.take import gather

    kp, cf, _ = gather(result.frames, main, len(take.rig), result.skeleton.num_joints)
    cfg = result.config
    X, used = triangulate_joints(take.rig, kp, cf, cfg.pipeline.triangulation)
    X = smooth(X, result.times, take.fps, cfg.temporal)
    out["algebraic, no left/right correction"] = quality(take.rig, X, kp, used, take.fps, reference)
    return out


def _one_frame_copies(take: Take, folder: Path) -> list[Path]:
    paths = []
    for v in take.videos:
        cap = cv2.VideoCapture(str(v.path))
        ok, image = cap.read()
        cap.release()
        path = folder / f"{v.camera}.mp4"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), v.fps or 30.0,
                                 (image.shape[1], image.shape[0]))
        writer.write(image)
        writer.release()
        paths.append(path)
    return paths


def _run_reference(mp_python: str, out: Path, videos: list[Path]) -> tuple[float, float]:
    """Wall and CPU seconds (the child's user + system time) of one reference run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([mp_python, str(REFERENCE_SCRIPT), "pose", str(out), *map(str, videos)],
                   check=True, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def run_baseline(take: Take, mp_python: str, workdir: Path) -> tuple[np.ndarray, float, float, dict[str, float]]:
    """MediaPipe per view -> keypoints (C, F, 33, 2) NaN where no person, wall and CPU ms per
    frame set, stages."""
    full_wall, full_cpu = _run_reference(mp_python, workdir / "mp_full.npz", [v.path for v in take.videos])
    short_wall, short_cpu = _run_reference(mp_python, workdir / "mp_one.npz", _one_frame_copies(take, workdir))
    data = np.load(workdir / "mp_full.npz")
    F = take.frames
    kp = np.stack([data[f"landmarks_{i}"][:F, :, :2] for i in range(len(take.videos))]).astype(np.float64)
    t0 = time.perf_counter()
    take.rig.triangulate(kp, method="dlt")
    dlt = 1000.0 * (time.perf_counter() - t0) / F
    per = 1000.0 / max(F - 1, 1)
    stages = {"mediapipe (decode + detect + landmarks)": (full_wall - short_wall) * per, "triangulate": dlt}
    return kp, sum(stages.values()), (full_cpu - short_cpu) * per + dlt, stages


def fmt_row(name: str, q: dict, ms: float | None) -> str:
    r = q["reprojection_px"]
    ref = q.get("reference_m")
    refs = f"{100 * ref['median']:6.1f} {100 * ref['p90']:6.1f}" if ref else "     -      -"
    t = f"{ms:8.0f}" if ms is not None else "       -"
    return (f"{name:42s} {r['mean']:6.1f} {r['median']:6.1f} {r['p95']:6.1f} {100 * r['share_above_20px']:6.1f} "
            f"{100 * q['bone_cv']:6.1f} {q['jitter_m_s2']:7.1f} {q['views_used_per_limb_joint']:5.2f} {refs} {t}")


# Speed options against the default (float, one model thread per core up to 4, every frame
# set, crops from the decoder's YUV planes): name -> config; "reader": "opencv" reads the
# videos as before the planes (OpenCV, whole frames in BGR), to show what the planes cost in 3D.
DEFAULT_OPTION = "default (float, threads per core)"
SPEED_OPTIONS = {
    DEFAULT_OPTION: {},
    "float, whole BGR frames (OpenCV)": {"reader": "opencv"},
    "float, 1 thread": {"threads": 1},
    "float, ORT thread pool": {"threads": None},
    "int8": {"precision": "int8"},
    "int8, 1 thread": {"precision": "int8", "threads": 1},
}


class OpenCvVideo:
    """The offline video reader before the YUV planes: OpenCV's decoder (one thread), whole
    frames in BGR (the interface of app.process.video_file.VideoReader)."""

    def __init__(self, camera: str, path: Path) -> None:
        self.cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
        self.pos = -1

    def read(self, i: int) -> np.ndarray:
        while self.pos < i:
            ok, image = self.cap.read()
            if not ok:
                raise RuntimeError(f"frame {self.pos + 1} cannot be read")
            self.pos += 1
        return image

    def close(self) -> None:
        self.cap.release()


@contextlib.contextmanager
def video_reader(kind: str | None):
    """Plain videos read by OpenCV instead of the default reader within the block."""
    import app.process.reader as reader

    default = reader.VideoReader
    if kind == "opencv":
        reader.VideoReader = OpenCvVideo
    try:
        yield
    finally:
        reader.VideoReader = default


def real_takes() -> dict[str, tuple[list[Path], Path, int]]:
    """Every real multi-view take the repository reaches -> videos, calibration, first frame
    not used to calibrate the int8 model: the studio sample (its first 60 frames calibrate
    it) and the caliscope webcams (another room, 720p, 6 fps; never used)."""
    from app.sample import sample_calibration, sample_videos

    takes = {"studio (sample)": (sample_videos(), sample_calibration(), CALIBRATION_FRAMES)}
    for root in (DATA, ROOT / "tests" / "data" / "real"):
        cal = root / "caliscope-charuco-4cam"
        if (cal / "reference_camera_array.toml").is_file():
            takes["caliscope webcams"] = (sorted((cal / "extrinsic").glob("cam_*.mp4")),
                                          cal / "reference_camera_array.toml", 0)
            break
    return takes


def speed_options(repeats: int) -> list[dict]:
    """Each speed option on each real take, against the default run on the same frames: ms and
    CPU-ms per frame set (best of `repeats`), the main performer's 2D (px) and final 3D (mm)
    distance from the default's, and the default's own quality measures for the option."""
    rows = []
    for name, (videos, calib, first) in real_takes().items():
        take = open_take(videos, calib)
        results, times = {}, {}
        for _ in range(max(repeats, 1)):
            for option, kwargs in SPEED_OPTIONS.items():
                kwargs = dict(kwargs)
                with video_reader(kwargs.pop("reader", None)):
                    r = process_take(take, ProcessConfig(**kwargs))
                F = len(r.frames)
                wall, cpu = 1000 * r.timings["frames_wall"] / F, 1000 * r.timings["frames_cpu"] / F
                best = times.get(option)
                if best is None or wall < best[0]:
                    times[option], results[option] = (wall, cpu), r
        base = results[DEFAULT_OPTION]
        ref = base.person(base.main)
        for option, r in results.items():
            p = r.person(r.main) if r.main is not None else None
            row = {"take": name, "option": option, "ms": times[option][0], "cpu_ms": times[option][1],
                   "frames_compared": f"{first}-{len(r.frames) - 1}"}
            if p is not None:
                kp, joints = p.keypoints[:, first:], p.final.joints[first:]
                d2 = np.linalg.norm(kp - ref.keypoints[:, first:], axis=-1)
                d3 = np.linalg.norm(joints - ref.final.joints[first:], axis=-1) * 1000
                q = quality(take.rig, joints, kp, np.moveaxis(p.final.views_used[first:], -1, 0), take.fps, None)
                row.update(px_median=float(np.nanmedian(d2)), px_p95=float(np.nanpercentile(d2, 95)),
                           mm_median=float(np.nanmedian(d3)), mm_p95=float(np.nanpercentile(d3, 95)),
                           reproj_p95=q["reprojection_px"]["p95"], bone_cv=q["bone_cv"])
            rows.append(row)
    print(f"speed options on every real take (best of {max(repeats, 1)}); 2D, 3D and quality on the frames the int8 "
          f"model was not calibrated on (studio {CALIBRATION_FRAMES}-, caliscope all); 2D and 3D: the main "
          "performer's distance from the default run")
    print(f"{'take':18s} {'option':34s} {'ms/set':>7s} {'CPU ms':>7s} {'2D px med':>9s} {'p95':>6s} "
          f"{'3D mm med':>9s} {'p95':>6s} {'reproj p95':>10s} {'bone CV%':>8s}")
    for r in rows:
        print(f"{r['take']:18s} {r['option']:34s} {r['ms']:7.1f} {r['cpu_ms']:7.1f} {r.get('px_median', np.nan):9.2f} "
              f"{r.get('px_p95', np.nan):6.1f} {r.get('mm_median', np.nan):9.1f} {r.get('mm_p95', np.nan):6.1f} "
              f"{r.get('reproj_p95', np.nan):10.1f} {100 * r.get('bone_cv', np.nan):8.1f}")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="*", type=Path, help="session folder or videos (default: the sample)")
    parser.add_argument("--calib", type=Path)
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--mp-python", default=default_mp_python(), help="python with mediapipe==0.10.21")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats per side (default 3)")
    parser.add_argument("--speed-options", action="store_true",
                        help="instead: every speed option (int8, threads) on every real take against the default")
    args = parser.parse_args(argv)
    if args.speed_options:
        rows = speed_options(args.repeats)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"speed_options": rows}, indent=2))
        return 0

    take = open_take(args.inputs, args.calib)
    sample = not args.inputs
    reference = load_reference(take.frames) if sample else None
    if not args.no_baseline and not Path(args.mp_python).exists():
        sys.exit(f"error: {args.mp_python} does not exist; pass --mp-python (a python with "
                 "mediapipe==0.10.21) or --no-baseline.")
    ours_ms, ours_cpu, ours_stages, base_ms, base_cpu, base_stages = [], [], [], [], [], []
    result, base_kp = None, None
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(max(args.repeats, 1)):
            # Alternate which side goes first: load on a shared machine drifts.
            order = ("ours", "baseline") if k % 2 == 0 else ("baseline", "ours")
            for side in order:
                if side == "ours":
                    result, ms, cpu, stages = run_ours(take)
                    ours_ms.append(ms)
                    ours_cpu.append(cpu)
                    ours_stages.append(stages)
                elif not args.no_baseline:
                    base_kp, ms, cpu, stages = run_baseline(take, args.mp_python, Path(tmp))
                    base_ms.append(ms)
                    base_cpu.append(cpu)
                    base_stages.append(stages)
    if result.main is None:
        sys.exit("error: nobody was reconstructed.")
    person = result.person(result.main)
    rig = take.rig
    report = {
        "input": take.source,
        "frames": take.frames,
        "cameras": take.cameras,
        "targets": TARGETS,
        "ours": quality(rig, person.final.joints, person.keypoints, np.moveaxis(person.final.views_used, -1, 0),
                        take.fps, reference),
        "ours_unfiltered": quality(rig, person.raw.joints, person.keypoints,
                                   np.moveaxis(person.raw.views_used, -1, 0), take.fps, reference),
        "ours_ms_per_frame": min(ours_ms),
        "ours_cpu_ms_per_frame": min(ours_cpu),
        "ours_ms_per_frame_all_repeats": ours_ms,
        "ours_stages_ms_per_frame": ours_stages[int(np.argmin(ours_ms))],
        "left_right_corrected_frames": {c: int(np.any([f[:, k] for f in person.flips.values()], axis=0).sum())
                                        for k, c in enumerate(take.cameras)},
        "variants": variants(result, reference),
    }
    if base_kp is not None:
        X = rig.triangulate(base_kp, method="dlt")
        seen = np.isfinite(base_kp).all(-1)
        report["baseline"] = quality(rig, X, base_kp, seen, take.fps, reference)
        report["baseline_ms_per_frame"] = min(base_ms)
        report["baseline_cpu_ms_per_frame"] = min(base_cpu)
        report["baseline_ms_per_frame_all_repeats"] = base_ms
        report["baseline_stages_ms_per_frame"] = base_stages[int(np.argmin(base_ms))]
    ours = report["ours"]
    checks = {
        "p95_px": ours["reprojection_px"]["p95"] <= TARGETS["p95_px"],
        "bone_cv": ours["bone_cv"] <= TARGETS["bone_cv"],
    }
    if "reference_m" in ours:
        checks["reference_median_m"] = ours["reference_m"]["median"] <= TARGETS["reference_median_m"]
        checks["reference_p90_m"] = ours["reference_m"]["p90"] <= TARGETS["reference_p90_m"]
    if base_kp is not None:
        checks["as_fast_as_baseline"] = report["ours_ms_per_frame"] <= report["baseline_ms_per_frame"]
        checks["as_little_cpu_as_baseline"] = report["ours_cpu_ms_per_frame"] <= report["baseline_cpu_ms_per_frame"]
    report["targets_met"] = checks

    print(f"{take.source}: {take.frames} frame sets, cameras {', '.join(take.cameras)}")
    print(f"{'':42s} {'reprojection px (12 limb joints)':>27s}  {'bone':>5s} {'jitter':>7s} {'views':>5s} "
          f"{'vs Pose2Sim cm':>13s} {'ms/frame':>8s}")
    print(f"{'':42s} {'mean':>6s} {'median':>6s} {'p95':>6s} {'>20px%':>6s} {'CV %':>6s} {'m/s2':>7s} {'used':>5s} "
          f"{'median':>6s} {'p90':>6s} {'':>8s}")
    print(fmt_row("ours (default: algebraic + Butterworth)", ours, report["ours_ms_per_frame"]))
    print(fmt_row("ours, unfiltered", report["ours_unfiltered"], None))
    for name, q in report["variants"].items():
        print(fmt_row(f"  {name}", q, None))
    if base_kp is not None:
        print(fmt_row("baseline: MediaPipe + plain DLT", report["baseline"], report["baseline_ms_per_frame"]))
    print(f"time per frame set (best of {max(args.repeats, 1)}): ours {report['ours_ms_per_frame']:.0f} ms wall, "
          f"{report['ours_cpu_ms_per_frame']:.0f} ms CPU" + (
              f"; baseline {report['baseline_ms_per_frame']:.0f} ms wall, {report['baseline_cpu_ms_per_frame']:.0f} ms CPU"
              if base_kp is not None else ""))
    if base_kp is not None:
        print(f"speed-up over the baseline: {report['baseline_ms_per_frame'] / report['ours_ms_per_frame']:.2f}x wall, "
              f"{report['baseline_cpu_ms_per_frame'] / report['ours_cpu_ms_per_frame']:.2f}x CPU")
    print("stages, ms per frame set: ours " + ", ".join(f"{k} {v:.1f}" for k, v in report["ours_stages_ms_per_frame"].items()))
    if base_kp is not None:
        print("                          baseline " + ", ".join(f"{k} {v:.1f}" for k, v in report["baseline_stages_ms_per_frame"].items()))
    print("frames with left/right labels corrected: " + ", ".join(
        f"{c} {n}" for c, n in report["left_right_corrected_frames"].items()))
    print("targets met: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in checks.items()))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=float), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
