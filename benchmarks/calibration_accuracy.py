"""Calibration accuracy on the real recordings, and the time each step takes.

    python benchmarks/calibration_accuracy.py [--json PATH] [--threads N] [--redetect]

1. Intrinsics from the Pose2Sim checkerboard photos (4 x 7 inner corners, 60 mm)
   against the Qualisys calibration: fx, fy within 2 %, cx, cy within 50 px; every
   parameter's uncertainty (OpenCV's formal 1-sigma and a jackknife over the views).
2. Extrinsics of the caliscope 4-webcam session (inverted ChArUco) against caliscope's
   own calibration after a similarity alignment: centres within 3 cm, orientations
   within 1.5 deg, median reprojection error <= 1 px; with caliscope's intrinsics
   ("given") and with intrinsics calibrated here from the same footage ("own").
3. Calibration from the person in the Pose2Sim videos (no board, Qualisys
   intrinsics) against the Qualisys rig after a similarity alignment: orientations
   within 5 deg, centres within 10 cm. The 2D joints are BlazePose's, cached in
   tests/data/pose2sim_blazepose_2d.npz (--redetect runs the network on the videos
   again as `calib from-person --source` does: everyone tracked in every view, the person
   who is the same across views chosen). The person's height is taken as 1.70 m: Pose2Sim's reconstruction puts the
   top-of-head marker at 1.70 m at most (the true stature is not published), so the
   scale figure is indicative; the criteria are scale-free.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
POSE2SIM = DATA / "pose2sim-demo-single"
CALISCOPE = DATA / "caliscope-charuco-4cam"
KEYPOINTS = ROOT / "tests" / "data" / "pose2sim_blazepose_2d.npz"
HEIGHT_M = 1.70


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", type=Path, help="write the figures here")
    p.add_argument("--threads", type=int, help="BLAS/torch threads (default: the libraries' own)")
    p.add_argument("--redetect", action="store_true", help="run BlazePose on the Pose2Sim videos instead of the cached joints")
    return p.parse_args(argv)


def intrinsics_step() -> dict:
    from calibration.boards import board_from_dict
    from calibration.formats import convert
    from calibration.frames import FrameSource
    from calibration.intrinsics import PARAMS, calibrate_intrinsics, detect_views

    board = board_from_dict({"kind": "checkerboard", "inner_corners": [4, 7], "square_size": 0.06})
    ref = convert(POSE2SIM / "calibration" / "Calib.qca.txt")
    out = {}
    for cam in ref.names:
        t0 = time.perf_counter()
        views = detect_views(FrameSource(cam, "images", str(POSE2SIM / "calibration" / "intrinsics" / f"int_{cam}_img")), board)
        t1 = time.perf_counter()
        r = calibrate_intrinsics(views, board)
        t2 = time.perf_counter()
        K, Kr = r.camera.K, ref[cam].K
        row = {
            "views": len(r.used), "rms_px": r.rms,
            "fx_pct": 100 * (K[0, 0] / Kr[0, 0] - 1), "fy_pct": 100 * (K[1, 1] / Kr[1, 1] - 1),
            "cx_px": K[0, 2] - Kr[0, 2], "cy_px": K[1, 2] - Kr[1, 2],
            "std": r.std, "jackknife": r.spread,
            "uncertainty": {p: r.uncertainty(p) for p in PARAMS},
            "warnings": r.warnings, "detect_s": t1 - t0, "calibrate_s": t2 - t1,
        }
        row["pass"] = abs(row["fx_pct"]) <= 2 and abs(row["fy_pct"]) <= 2 and abs(row["cx_px"]) <= 50 and abs(row["cy_px"]) <= 50
        out[cam] = row
    return out


def extrinsics_step() -> dict:
    import numpy as np

    from calibration.alignment import compare_rigs
    from calibration.boards import load_board
    from calibration.extrinsics import calibrate_extrinsics, detect_synchronised
    from calibration.formats import convert
    from calibration.frames import session_sources
    from calibration.intrinsics import ViewDetections, calibrate_intrinsics
    from calibration.rig import Rig

    board = load_board(CALISCOPE / "charuco.toml")
    ref = convert(CALISCOPE / "reference_camera_array.toml")
    t0 = time.perf_counter()
    dets, sizes = detect_synchronised(session_sources(CALISCOPE / "extrinsic"), board)
    detect_s = time.perf_counter() - t0
    out: dict = {"detect_s": detect_s, "instants_with_board": {n: len(d) for n, d in dets.items()}}
    t0 = time.perf_counter()
    own = Rig([calibrate_intrinsics(ViewDetections(n, sizes[n], dets[n], len(dets[n])), board).camera for n in ref.names])
    own_intr_s = time.perf_counter() - t0
    for label, intr in (("given", ref.subset(ref.names)), ("own", own)):
        t0 = time.perf_counter()
        res = calibrate_extrinsics(dets, intr, board)
        solve_s = time.perf_counter() - t0
        cmp = compare_rigs(res.rig, ref)
        row = {
            "median_reprojection_px": float(sorted(res.errors)[len(res.errors) // 2]),
            "max_centre_cm": 100 * cmp.max_centre_error(), "max_angle_deg": cmp.max_angle_error(),
            "centre_cm": {n: 100 * v for n, v in cmp.centre_error.items()}, "angle_deg": cmp.angle_error,
            "scale": cmp.scale, "corners": len(res.errors), "dropped": res.dropped, "solve_s": solve_s,
        }
        if label == "own":
            row["intrinsics_s"] = own_intr_s
            row["fx_pct"] = {n: 100 * (own[n].K[0, 0] / ref[n].K[0, 0] - 1) for n in ref.names}
            # A principal point moved by d px turns the camera by about atan(d / f): the
            # part of the orientation difference the two sets of intrinsics imply alone.
            row["principal_point_turn_deg"] = {
                n: float(np.degrees(np.arctan(np.hypot(*(own[n].K[:2, 2] - ref[n].K[:2, 2])) / ref[n].K[0, 0]))) for n in ref.names}
        row["pass"] = row["max_centre_cm"] <= 3 and row["max_angle_deg"] <= 1.5 and row["median_reprojection_px"] <= 1
        out[label] = row
    return out


def from_person_step(redetect: bool) -> dict:
    import numpy as np

    from calibration.alignment import compare_rigs
    from calibration.formats import convert
    from calibration.from_person import PersonOptions, calibrate_from_person

    ref = convert(POSE2SIM / "calibration" / "Calib.qca.txt")
    out: dict = {"height_m": HEIGHT_M}
    t0 = time.perf_counter()
    if redetect:  # as `calib from-person --source`: everyone tracked, the same person chosen
        from app.person_calibration import choose_person
        from calibration.frames import FrameSource

        chosen = choose_person([FrameSource(n, "video", str(POSE2SIM / "videos" / f"{n}.mp4")) for n in ref.names], ref)
        data = {"keypoints": chosen.keypoints, "confidence": chosen.confidence}
        out["keypoints"] = (f"BlazePose, everyone tracked now (tracks per view {[len(t) for t in chosen.tracks]}, "
                            f"least pair agreement {np.nanmin(chosen.agreement):.0%})")
    else:
        data = dict(np.load(KEYPOINTS))
        out["keypoints"] = f"BlazePose, cached {KEYPOINTS.relative_to(ROOT)}"
    out["keypoints_s"] = time.perf_counter() - t0
    # BlazePose-33: eyes 2, 5; heels 29, 30; foot tips 31, 32; hips 23, 24; shoulders 11, 12.
    opts = PersonOptions(height=HEIGHT_M, top=(2, 5), feet=((29, 30), (31, 32)), trunk=(11, 12, 23, 24))
    t0 = time.perf_counter()
    res = calibrate_from_person(data["keypoints"], data["confidence"], ref, opts)
    out["solve_s"] = time.perf_counter() - t0
    cmp = compare_rigs(res.rig, ref)
    out |= {
        "frames": len(res.frames), "median_reprojection_px": float(np.median(res.errors)),
        "max_centre_cm": 100 * cmp.max_centre_error(), "max_angle_deg": cmp.max_angle_error(),
        "centre_cm": {n: 100 * v for n, v in cmp.centre_error.items()}, "angle_deg": cmp.angle_error,
        "scale_to_reference": cmp.scale, "floor_tilt_deg": cmp.up_angle_deg(), "warnings": res.warnings,
    }
    out["pass"] = out["max_angle_deg"] <= 5 and out["max_centre_cm"] <= 10
    return out


def _table(results: dict) -> str:
    lines = ["1. intrinsics, Pose2Sim photos vs Qualisys (fx, fy %; cx, cy px; +- = larger of formal and jackknife 1-sigma)",
             "   cam    views  RMS px   fx %    fy %    cx px (+-)     cy px (+-)    time s  pass"]
    for cam, r in results["intrinsics"].items():
        u = r["uncertainty"]
        lines.append(f"   {cam}  {r['views']:5d}  {r['rms_px']:6.3f}  {r['fx_pct']:+6.2f}  {r['fy_pct']:+6.2f}  "
                     f"{r['cx_px']:+6.1f} ({u['cx']:4.1f})  {r['cy_px']:+6.1f} ({u['cy']:4.1f})  "
                     f"{r['detect_s'] + r['calibrate_s']:6.2f}  {'yes' if r['pass'] else 'NO'}")
    e = results["extrinsics"]
    lines += ["", f"2. extrinsics, caliscope session vs caliscope (detection {e['detect_s']:.1f} s)",
              "   intrinsics  median px  max centre cm  max angle deg  scale   solve s  pass"]
    for label in ("given", "own"):
        r = e[label]
        lines.append(f"   {label:10s}  {r['median_reprojection_px']:9.3f}  {r['max_centre_cm']:13.2f}  {r['max_angle_deg']:13.2f}  "
                     f"{r['scale']:.4f}  {r['solve_s'] + r.get('intrinsics_s', 0):7.2f}  {'yes' if r['pass'] else 'NO'}")
    own = e["own"]
    lines.append("   own: orientation differences vs the turn their principal-point shifts alone imply (deg): "
                 + ", ".join(f"{n} {own['angle_deg'][n]:.2f}/{own['principal_point_turn_deg'][n]:.2f}" for n in own["angle_deg"]))
    p = results["from_person"]
    lines += ["", f"3. from a person, Pose2Sim videos vs Qualisys ({p['keypoints']}, {p['frames']} frames)",
              f"   median reprojection {p['median_reprojection_px']:.2f} px, max centre {p['max_centre_cm']:.2f} cm, "
              f"max angle {p['max_angle_deg']:.2f} deg, scale to reference {p['scale_to_reference']:.3f} "
              f"(height {p['height_m']} m), floor tilt {p['floor_tilt_deg']:.1f} deg, solve {p['solve_s']:.1f} s, "
              f"{'pass' if p['pass'] else 'FAIL'}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    if args.threads:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.threads)
    sys.path.insert(0, str(ROOT))
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if not (POSE2SIM.is_dir() and CALISCOPE.is_dir()):
        print(f"shared data not found under {DATA}", file=sys.stderr)
        return 1
    load = os.getloadavg()[0]
    results = {"intrinsics": intrinsics_step(), "extrinsics": extrinsics_step(), "from_person": from_person_step(args.redetect),
               "load_average": load, "threads": args.threads}
    print(_table(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=float))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
