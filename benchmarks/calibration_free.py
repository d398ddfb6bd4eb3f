"""Calibration-free capture on the real studio take: each stage's cameras and pose, and its time.

    python benchmarks/calibration_free.py [--focal-ratios 0.866 0.7 1.0] [--synthetic [--takes 2]] [--no-studio] [--json PATH]

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

With --synthetic: takes made from the motion capture of the test subject (007, never used in
training) filmed by random studios of 2, 3, 4 and 8 cameras, with a second person (subject
003, doing something else) in view 1.5-2.5 m away (tracked in every view as a candidate; the same-person search must pick
the performer), 2D from the BlazePose error model fitted on real detections and per-view 3D
from the monocular error model (training.metapose.WorldError). Per stage: camera rotation and
centre errors and the pose error (P-MPJPE), each after ONE similarity that maps the stage's
joints onto the truth over the whole take, and the time. "BA to stage 2's error": the time
bundle adjustment from stage 1 needs to get its cameras as close as stage 2 gets them
(iterations doubled until it does).
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


def _errors(rig, points: np.ndarray, truth_rig, truth: np.ndarray) -> dict:
    """Cameras and pose after one similarity from the stage's joints onto the truth (take-wide)."""
    from calibration.alignment import rotation_angle_deg, umeyama
    from calibration.world_frame import transform_points, transform_rig

    ok = np.isfinite(points).all(-1) & np.isfinite(truth).all(-1)
    s, R, t = umeyama(points[ok], truth[ok])
    aligned = transform_rig(rig, s, R, t)
    err = np.linalg.norm(transform_points(points, s, R, t)[ok] - truth[ok], axis=-1)
    return {"rot_deg": float(np.mean([rotation_angle_deg(a.R, b.R) for a, b in zip(aligned.cameras, truth_rig.cameras, strict=True)])),
            "centre_cm": float(100 * np.mean([np.linalg.norm(a.center - b.center)
                                               for a, b in zip(aligned.cameras, truth_rig.cameras, strict=True)])),
            "p_mpjpe_mm": float(1000 * np.median(err))}


def synthetic_take(rng, clip: np.ndarray, other: np.ndarray, views: int, error2d, world_error):
    """One synthetic take (module docstring) -> truth rig, (performer, bystander) joints, Candidates per view
    (candidate id 0: the performer, 1: the bystander)."""
    from calibration.same_person import Candidates
    from training.metapose import synthesise_world
    from training.synthetic import random_studio
    from training.synthetic import synthetic_take as synthetic_take_2d

    F = len(clip)
    X = clip - clip[:, [23, 24]].mean(1).mean(0) * np.array([1, 1, 0])
    a = rng.uniform(0, 2 * np.pi)
    side = np.array([np.cos(a), np.sin(a), 0.0]) * rng.uniform(1.5, 2.5)
    Y = other[:F] - other[:F, [23, 24]].mean(1).mean(0) * np.array([1, 1, 0]) + side
    rig = random_studio(rng, views, np.array([0.0, 0.0, 1.0]))
    people = []
    for P in (X, Y):
        kp, cf = synthetic_take_2d(rng, error2d, P, rig, other=P, view_failure=0.0)  # (C, F, J, 2), (C, F, J)
        hip = P[:, [23, 24]].mean(1, keepdims=True)
        cam = np.stack([(P - hip) @ c.R.T for c in rig.cameras])  # (C, F, J, 3)
        world = np.full(cam.shape, np.nan)
        from engines.metapose import JOINTS

        world[:, :, list(JOINTS)] = synthesise_world(rng, world_error, cam[:, :, list(JOINTS)])
        rest = [j for j in range(33) if j not in JOINTS]
        world[:, :, rest] = cam[:, :, rest] + rng.normal(size=cam[:, :, rest].shape) * 0.05
        people.append((kp, cf, world))
    views_c = []
    for c in range(views):
        order = rng.permutation(2)  # the bystander is as likely to be listed first
        views_c.append(Candidates(np.stack([people[k][0][c] for k in order]), np.stack([people[k][1][c] for k in order]),
                                  np.array(order, np.int64), np.stack([people[k][2][c] for k in order])))
    return rig, (X, Y), views_c


def synthetic_rows(takes: int, counts: list[int]) -> list[dict]:
    from app.person_calibration import DEFAULT_HEIGHT, person_options
    from calibration.bundle_adjust import BundleOptions, Observations, bundle_adjust
    from calibration.same_person import same_person
    from calibration.uncalibrated import guess_intrinsics, initialise, solve_uncalibrated
    from engines.heads.algebraic import WEIGHTS as HEAD_WEIGHTS
    from engines.metapose import WEIGHTS, load_metapose, refine_take
    from training.error_model import ErrorModel
    from training.metapose import WorldError
    from training.mocap import MOCAP_DIR, TEST_SUBJECTS, VAL_SUBJECTS, load_clips

    error2d = ErrorModel.load(HEAD_WEIGHTS.with_name("error_model.toml"))
    world_error = WorldError.load(WEIGHTS.with_name("world_error.toml"))
    net = load_metapose()
    clips = load_clips(MOCAP_DIR, TEST_SUBJECTS, step=2)
    long = [c for c in sorted(clips) if len(clips[c]) >= 100]
    # The bystander does something else: subject 003's clips (another of the test subject's
    # walks, 2 m to the side, is a translated copy of the same motion, which no geometry can
    # tell from a camera moved by as much).
    others = load_clips(MOCAP_DIR, VAL_SUBJECTS, step=2)
    other_long = [c for c in sorted(others) if len(others[c]) >= 100]
    rng = np.random.default_rng(7)
    rows = []
    for views in counts:
        for k in range(takes):
            clip = clips[long[(2 * k) % len(long)]][:100].astype(np.float64)
            other = others[other_long[(views + k) % len(other_long)]][:100].astype(np.float64)
            rig, people, cands = synthetic_take(rng, clip, other, views, error2d, world_error)
            guess = guess_intrinsics(rig.names, [c.size for c in rig.cameras])
            chosen = same_person(cands, guess, intrinsics_known=False)
            # Both people are whole and moving, so either is a right choice if every view has it;
            # judged against the one chosen. A mix of people across views is a failure.
            who = {t for track in chosen.tracks for t in track}
            options = person_options(DEFAULT_HEIGHT, max_frames=100)
            row = {"views": views, "take": k, "chosen": "mixed" if len(who) > 1 else ("performer", "bystander")[who.pop()],
                   "stages": {}}
            if row["chosen"] == "mixed":
                row["error"] = f"different people chosen in different views: {chosen.tracks}"
                rows.append(row)
                continue
            X = people[0 if row["chosen"] == "performer" else 1]
            try:
                t0 = time.perf_counter()
                rig1, P1 = initialise(chosen.keypoints, chosen.confidence, chosen.world, guess)
                t1 = time.perf_counter() - t0
                row["stages"]["1 initialisation"] = {**_errors(rig1, P1, rig, X), "seconds": t1}
                t0 = time.perf_counter()
                rig2, P2 = refine_take(net, rig1, P1, chosen.keypoints, chosen.confidence, chosen.world)
                row["stages"]["2 learned refinement"] = {**_errors(rig2, P2, rig, X), "seconds": time.perf_counter() - t0}
                res = solve_uncalibrated(chosen.keypoints, chosen.confidence, chosen.world, guess, options,
                                         lambda *a: refine_take(net, *a))
                row["stages"]["3 bundle adjustment"] = {**_errors(res.rig, res.points, rig, X),
                                                        "seconds": res.stages[-1].seconds}
                # Bundle adjustment from stage 1 alone, to stage 2's camera error: iterations doubled.
                target = row["stages"]["2 learned refinement"]["rot_deg"]
                C, F, J = chosen.keypoints.shape[:3]
                valid = (chosen.confidence >= 0.5) & np.isfinite(chosen.keypoints).all(-1)
                tracks = np.where(np.isfinite(P1.reshape(-1, 3)).all(1))[0]
                cam_i, trk_i = np.nonzero(valid.reshape(C, -1)[:, tracks])
                obs = Observations(cam_i, trk_i, chosen.keypoints.reshape(C, -1, 2)[cam_i, tracks[trk_i]])
                reached = None
                for nfev in (1, 2, 4, 8, 16, 32, 64):
                    t0 = time.perf_counter()
                    ba = bundle_adjust(rig1, obs, P1.reshape(-1, 3)[tracks],
                                       BundleOptions(f_scale=2.0, max_nfev=nfev, warm_start_scale=0.0))
                    dt = time.perf_counter() - t0
                    pts = np.full((F * J, 3), np.nan)
                    pts[tracks] = ba.structure
                    if _errors(ba.rig, pts.reshape(F, J, 3), rig, X)["rot_deg"] <= target:
                        reached = {"nfev": nfev, "seconds": dt}
                        break
                row["ba_to_stage2"] = reached
            except Exception as e:  # a failed take is a row, not a crash
                row["error"] = str(e)
            rows.append(row)
    return rows


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
    p.add_argument("--synthetic", action="store_true", help="also the synthetic takes of 2, 3, 4 and 8 cameras")
    p.add_argument("--takes", type=int, default=2, help="synthetic takes per camera count (default 2)")
    p.add_argument("--no-studio", action="store_true", help="skip the studio take (synthetic only)")
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    runs = []
    if not a.no_studio:
        videos = sorted((TAKE / "videos").glob("cam*.mp4"))
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
    synthetic = synthetic_rows(a.takes, [2, 3, 4, 8]) if a.synthetic else []
    if synthetic:
        print("\nSynthetic takes (CMU test subject 007, random studios, a second person in view, fitted 2D and "
              "monocular 3D errors; 100 frames at 30 fps); errors after one similarity over the take\n")
        print("| cameras | take | person chosen | stage | camera rotation (deg, mean) | camera centre (cm, mean) | "
              "P-MPJPE (mm, median) | time (s) |")
        print("|---|---|---|---|---|---|---|---|")
        for r in synthetic:
            if "error" in r:
                print(f"| {r['views']} | {r['take']} | {r['chosen']} | failed: {r['error'][:100]} | | | | |")
                continue
            for name, e in r["stages"].items():
                print(f"| {r['views']} | {r['take']} | {r['chosen']} | {name} | "
                      f"{e['rot_deg']:.1f} | {e['centre_cm']:.1f} | {e['p_mpjpe_mm']:.0f} | {e['seconds']:.2f} |")
            b = r["ba_to_stage2"]
            print(f"| {r['views']} | {r['take']} | | BA from stage 1 to stage 2's camera error | | | | "
                  + (f"{b['seconds']:.2f} ({b['nfev']} evaluations) |" if b else "not within 64 evaluations |"))
        for views in sorted({r["views"] for r in synthetic}):
            ok_rows = [r for r in synthetic if r["views"] == views and "error" not in r]
            if not ok_rows:
                continue
            def mean(stage: str, key: str, rows: list[dict] = ok_rows) -> float:
                return float(np.mean([r["stages"][stage][key] for r in rows]))

            print(f"{views} cameras, mean over {len(ok_rows)} takes: rotation "
                  + ", ".join(f"{s[:1]}: {mean(s, 'rot_deg'):.1f} deg" for s in ok_rows[0]["stages"])
                  + "; P-MPJPE " + ", ".join(f"{s[:1]}: {mean(s, 'p_mpjpe_mm'):.0f} mm" for s in ok_rows[0]["stages"]))
    if a.json:
        a.json.write_text(json.dumps({"studio": runs, "synthetic": synthetic}, indent=2, default=str),
                          encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
