"""Calibration-free capture on the real studio take: each stage's cameras and pose, and its time.

    python benchmarks/calibration_free.py [--focal-ratios 0.866 0.7 1.0] [--json PATH]

The 4-camera Pose2Sim take (../shared/data/pose2sim-demo-single) is processed as a user
without a calibration would: `triangulum process VIDEOS --calib none` (everyone tracked,
the person who is the same across views chosen with guessed intrinsics, the stages of
calibration.uncalibrated, left/right repair with the estimated cameras and a second
adjustment). Per stage: its time, the reprojection error of the 2D it used, and its cameras
against the Qualisys calibration after a similarity alignment (target: within 5 deg and 10 cm).
Then the whole take is processed with the estimated rig and with the Qualisys rig, and each
result is compared with the peer reconstruction (Pose2Sim's TRC; NOT ground truth) by
P-MPJPE with ONE similarity for the whole take (target <= 6 cm median), so a rig that is
wrong by more than a similarity shows. The starting focal length is a stated average
(calibration.uncalibrated.FOCAL_RATIO); other starts show how much the result depends on it.
The person's height is taken as 1.70 m (the default; only the scale depends on it).
Stage 2 (the learned refinement) is not built yet, so it has no row.
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

TAKE = ROOT.parent / "shared" / "data" / "pose2sim-demo-single"
PEER = TAKE / "reference" / "pose2sim_body25b_0-100.trc"


def take_p_mpjpe(pred_npz: Path) -> tuple[float, float]:
    """Median and mean joint error (m) after one similarity over the whole take, against the peer."""
    from app.evaluate import load_people, pair_joints
    from calibration.alignment import umeyama

    pred, ref = load_people(pred_npz), load_people(PEER)
    pairs = pair_joints(pred, ref)
    # the peer's hips are defined differently from BlazePose's (see ../shared/data/README.md)
    pairs = [(i, j, n) for i, j, n in pairs if "hip" not in n]
    P = pred.joints[0][:, [i for i, _, _ in pairs]]
    R = ref.joints[0][:, [j for _, j, _ in pairs]]
    n = min(len(P), len(R))
    P, R = P[:n].reshape(-1, 3), R[:n].reshape(-1, 3)
    ok = np.isfinite(P).all(1) & np.isfinite(R).all(1)
    s, Rot, t = umeyama(P[ok], R[ok])
    err = np.linalg.norm(s * P[ok] @ Rot.T + t - R[ok], axis=1)
    return float(np.median(err)), float(np.mean(err))


def run_free(videos: list[Path], focal_ratio: float) -> tuple[dict, object]:
    from app.person_calibration import calibrate_free
    from calibration.alignment import compare_rigs
    from calibration.formats import convert
    from calibration.frames import FrameSource
    from calibration.takes import probe_video

    ref = convert(TAKE / "calibration" / "Calib.qca.txt")
    infos = [probe_video(p.stem, p) for p in videos]
    t0 = time.perf_counter()
    result, chosen, relabelled = calibrate_free([FrameSource(i.camera, "video", str(i.path)) for i in infos],
                                                [i.size for i in infos], None, focal_ratio)
    total = time.perf_counter() - t0
    stages = []
    for s in result.stages:
        cmp = compare_rigs(s.rig, ref)
        stages.append({"stage": s.name, "seconds": s.seconds, "median_px": s.median_px, "p95_px": s.p95_px,
                       "max_angle_deg": cmp.max_angle_error(), "max_centre_cm": 100 * cmp.max_centre_error()})
    return {"focal_ratio": focal_ratio, "total_s": total, "relabelled": relabelled, "stages": stages,
            "focal_px": {c.name: float(c.K[0, 0]) for c in result.rig.cameras},
            "reference_focal_px": {c.name: float(c.K[0, 0]) for c in ref.cameras}}, result.rig


def process(videos: list[Path], calib: Path, out: Path) -> Path:
    import subprocess

    subprocess.run([sys.executable, "-m", "app.cli", "process", *map(str, videos), "--calib", str(calib),
                    "--no-overlays", "--formats", "trc", "-o", str(out)], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return out / "poses3d.npz"


def main(argv: list[str] | None = None) -> int:
    from calibration.rig_io import save_rig

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--focal-ratios", type=float, nargs="+", default=[0.866, 0.7, 1.0],
                   help="starting focal lengths, as a fraction of the image's long side (first: the default)")
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    videos = sorted((TAKE / "videos").glob("cam*.mp4"))
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, ratio in enumerate(a.focal_ratios):
            row, rig = run_free(videos, ratio)
            if k == 0:
                calib = save_rig(rig, Path(tmp) / "free.toml")
                row["p_mpjpe_take_m"] = take_p_mpjpe(process(videos, calib, Path(tmp) / "free"))
                row["qualisys_p_mpjpe_take_m"] = take_p_mpjpe(
                    process(videos, TAKE / "calibration" / "Calib.qca.txt", Path(tmp) / "qualisys"))
            runs.append(row)
    first = runs[0]
    print("Calibration-free on the studio take (4 cameras, 100 frames, height 1.70 m), cameras vs Qualisys "
          "after a similarity (target: 5 deg, 10 cm)\n")
    print("| start focal (x long side) | stage | time (s) | reprojection median / p95 (px) | worst angle (deg) | "
          "worst centre (cm) |")
    print("|---|---|---|---|---|---|")
    for r in runs:
        for s in r["stages"]:
            print(f"| {r['focal_ratio']:g} | {s['stage']} | {s['seconds']:.1f} | {s['median_px']:.1f} / "
                  f"{s['p95_px']:.1f} | {s['max_angle_deg']:.1f} | {s['max_centre_cm']:.1f} |")
    print("\n| start focal | estimated focal (px) | total time incl. 2D (s) | left/right repaired frames |")
    print("|---|---|---|---|")
    for r in runs:
        print(f"| {r['focal_ratio']:g} | " + ", ".join(f"{k} {v:.0f}" for k, v in r["focal_px"].items())
              + f" | {r['total_s']:.0f} | {r['relabelled']} |")
    print("Qualisys focal (px): " + ", ".join(f"{k} {v:.0f}" for k, v in first["reference_focal_px"].items()))
    med, mean = first["p_mpjpe_take_m"]
    qmed, qmean = first["qualisys_p_mpjpe_take_m"]
    print(f"\nwhole take against Pose2Sim's reconstruction (one similarity for the take, hips left out): "
          f"calibration-free {100 * med:.1f} cm median ({100 * mean:.1f} mean); Qualisys rig {100 * qmed:.1f} cm "
          f"median ({100 * qmean:.1f} mean); target <= 6 cm median")
    last = first["stages"][-1]
    ok = last["max_angle_deg"] <= 5 and last["max_centre_cm"] <= 10 and med <= 0.06
    print(f"targets {'met' if ok else 'NOT met'} at the default start")
    if a.json:
        a.json.write_text(json.dumps(runs, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
