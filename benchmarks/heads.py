"""Every triangulation method of the registry (engines.heads.METHODS) on the same 2D, in one run.

    python benchmarks/heads.py [--weights PATH] [--volumetric-weights PATH] [--samples N] [--json PATH]

Real takes in ../shared/data, each person's 2D from the default pipeline (cached under
~/.cache/triangulum/heads-bench), triangulated per frame without temporal filtering:
  - pose2sim-demo-single (studio, 4 cameras): frames 70-99 only; both shipped heads trained
    (self-supervised) on frames 0-69 of this take;
  - caliscope-charuco-4cam (4 webcams, another room and person): every frame; never trained on.
Per method: reprojection error over all views that saw each of the 12 limb joints (median,
p95, px, against the 2D the method was given), bone-length CV of the 8 limb bones, the
agreement with Pose2Sim's reconstruction where there is one (median / p90 cm), views used per
limb joint, and ms per frame set of the triangulation alone (the backbone's ms per 4-view
frame set is printed beside it: the landmark network on 4 crops, ONNX Runtime, this machine).
The volumetric head's ms on one 4-view frame set (batch 1, as live) for the shipped size and
the sizes it was chosen among, against that backbone time.

Synthetic test set: motion capture of CMU subject 007 (never used in training or
validation), 4-6 random cameras, 1-2 views given a whole-view failure (another person, a
left/right swap, a limb burst), BlazePose's fitted error model elsewhere: 3D error (mm)
against the truth, mean, median and p90 over joints.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.process.reconstruct import TriangulationConfig, triangulate_joints  # noqa: E402
from benchmarks.process_quality import load_reference, quality  # noqa: E402
from engines.heads import METHODS  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
CACHE = Path.home() / ".cache" / "triangulum" / "heads-bench"
TAKES = {  # name: (videos, calibration, frames evaluated)
    "studio (frames 70-99)": (DATA / "pose2sim-demo-single" / "videos",
                              DATA / "pose2sim-demo-single" / "calibration" / "Calib.qca.txt", slice(70, None)),
    "caliscope webcams (all)": (DATA / "caliscope-charuco-4cam" / "extrinsic",
                                DATA / "caliscope-charuco-4cam" / "reference_camera_array.toml", slice(None)),
}


def backbone_ms(repeats: int = 5) -> float:
    """ms of the landmark network on one 4-view frame set (4 crops), ONNX Runtime."""
    from engines.export_onnx import ensure_exported
    from engines.runtimes.onnx_runtime import OnnxRuntimeModel

    m = OnnxRuntimeModel(ensure_exported()["landmark"])
    crops = np.random.default_rng(0).random((4, 3, 256, 256), dtype=np.float32)
    m(crops=crops)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        m(crops=crops)
        best = min(best, time.perf_counter() - t)
    return best * 1000


def real_rows(weights: dict[str, str | None]) -> dict:
    from app.commands.train import take_2d

    out = {}
    for name, (videos, calib, frames) in TAKES.items():
        if not videos.is_dir():
            print(f"skipped {name}: {videos} is missing")
            continue
        rig, kp, cf = take_2d(videos, calib, "auto", CACHE / videos.parent.name)
        kp, cf = kp[:, frames], cf[:, frames]
        start = frames.start or 0
        ref = load_reference(kp.shape[1] + start) if "pose2sim" in str(videos) else None
        ref = ref[start:] if ref is not None else None
        rows = {}
        for method in METHODS:
            config = TriangulationConfig(method, weights=weights.get(method))
            triangulate_joints(rig, kp[:, :2], cf[:, :2], config)  # warm-up (loads the head)
            t = time.perf_counter()
            X, used = triangulate_joints(rig, kp, cf, config)
            ms = (time.perf_counter() - t) * 1000 / kp.shape[1]
            rows[method] = quality(rig, X, kp, used, 30.0, ref) | {"ms": ms}
        out[name] = {"frames": int(kp.shape[1]), "rows": rows}
    return out


def synthetic_volumetric(b, weights: str | None, chunk: int = 32) -> torch.Tensor:
    """The volumetric head on a synthetic batch (pinhole cameras, so no distortion), in chunks."""
    from engines.heads.volumetric import load_volumetric
    from training.volumetric import run_head

    head = load_volumetric(weights)
    T = [torch.as_tensor(a) for a in (b.P, b.x, b.conf, b.K, b.R, b.t)]
    out = []
    with torch.no_grad():
        for s in range(0, len(b.P), chunk):
            out.append(run_head(head, *(a[s:s + chunk] for a in T))[0].double())
    return torch.cat(out)


def volumetric_speed(repeats: int = 5) -> dict:
    """ms of the volumetric head (rendering, cube, unprojection, V2V, soft-argmax) on one
    4-view frame set, PyTorch on this CPU, for the shipped size and the alternatives it was
    chosen among (untrained weights: the time does not depend on them)."""
    from engines.heads.export import example_cameras
    from engines.heads.volumetric import (
        REFERENCE,
        VolumeConfig,
        VolumetricTriangulation,
        root_estimate,
    )

    K, dist, R, t, P, x, conf = example_cameras(1, 4, seed=2, distortion=False)
    root = root_estimate(P, x, conf)
    sizes = {"shipped (2.2 m, 24^3, V2V 16, 2 levels)": VolumeConfig(),
             "coarser (16^3)": VolumeConfig(voxels=16), "finer (32^3)": VolumeConfig(voxels=32),
             "reference (2.5 m, 64^3, V2V 32, 4 levels)": REFERENCE}
    out = {}
    for name, cfg in sizes.items():
        head = VolumetricTriangulation(cfg).eval()
        n = 1 if cfg.voxels >= 64 else repeats
        with torch.no_grad():
            head(K, dist, R, t, x, conf, root)
            best = float("inf")
            for _ in range(n):
                t0 = time.perf_counter()
                head(K, dist, R, t, x, conf, root)
                best = min(best, time.perf_counter() - t0)
        out[name] = best * 1000
    return out


def synthetic_rows(learned_weights: str | None, volumetric_weights: str | None, samples: int) -> dict:
    from calibration import triangulation as tri
    from engines.heads.algebraic import WEIGHTS, load_head
    from training.error_model import ErrorModel
    from training.mocap import MOCAP_DIR, TEST_SUBJECTS, load_clips
    from training.synthetic import SyntheticViews

    clips = load_clips(MOCAP_DIR, TEST_SUBJECTS)
    model = ErrorModel.load(WEIGHTS.with_name("error_model.toml"))
    b = SyntheticViews(clips, model, seed=12345).sample(samples, views=(4, 6), forced_failures=(1, 2))
    P, x, conf, truth = (torch.as_tensor(a) for a in (b.P, b.x, b.conf, b.truth))
    seen = torch.isfinite(x).all(-1)
    gated = torch.where(seen & (conf >= 0.3), conf, torch.zeros_like(conf)).transpose(1, 2)
    x0 = torch.nan_to_num(x).transpose(1, 2)  # (B, J, V, 2)
    Pj = P[:, None].expand(-1, x.shape[2], -1, -1, -1)
    rows = {}
    for method in METHODS:
        t = time.perf_counter()
        if method == "learned":
            with torch.no_grad():
                X, _ = load_head(learned_weights)(P, x, conf)
        elif method == "volumetric":
            X = synthetic_volumetric(b, volumetric_weights)
        elif method == "algebraic":
            X = tri.triangulate_dlt(Pj, x0, gated)
        elif method == "dlt":
            X = tri.triangulate_dlt(Pj, x0, seen.transpose(1, 2).double())
        elif method == "robust":
            X = tri.triangulate_robust(Pj, x0, gated).points
        else:
            X = tri.triangulate_ransac(Pj, x0, gated, threshold=15.0)
        ms = (time.perf_counter() - t) * 1000 / samples
        e = (X - truth).norm(dim=-1).numpy() * 1000
        f = e[np.isfinite(e)]
        rows[method] = {"mean_mm": float(f.mean()), "median_mm": float(np.median(f)),
                        "p90_mm": float(np.percentile(f, 90)), "triangulated": float(np.isfinite(e).mean()), "ms": ms}
    return {"samples": samples, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", help="another learned-head checkpoint (default: the shipped one)")
    p.add_argument("--volumetric-weights", help="another volumetric-head checkpoint (default: the shipped one)")
    p.add_argument("--samples", type=int, default=1024, help="synthetic test samples (default 1024)")
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    torch.set_num_threads(2)
    weights = {"learned": a.weights, "volumetric": a.volumetric_weights}
    report = {"backbone_ms_per_4_views": backbone_ms(), "volumetric_ms_per_4_views": volumetric_speed(),
              "real": real_rows(weights), "synthetic": synthetic_rows(a.weights, a.volumetric_weights, a.samples)}
    bb = report["backbone_ms_per_4_views"]
    print(f"\nbackbone (landmark network, 4 crops, ONNX Runtime): {bb:.1f} ms per frame set")
    for name, take in report["real"].items():
        print(f"\n{name}: {take['frames']} frames")
        print(f"{'method':10s} {'reproj med px':>13s} {'p95 px':>7s} {'bone CV':>8s} {'ref med cm':>10s} "
              f"{'ref p90 cm':>10s} {'views':>6s} {'ms/set':>7s} {'% backbone':>10s}")
        for m, q in take["rows"].items():
            ref = q.get("reference_m")
            r = f"{ref['median'] * 100:10.1f} {ref['p90'] * 100:10.1f}" if ref else f"{'-':>10s} {'-':>10s}"
            rp = q["reprojection_px"]
            print(f"{m:10s} {rp['median']:13.1f} {rp['p95']:7.1f} {q['bone_cv']:8.3f} {r} "
                  f"{q['views_used_per_limb_joint']:6.2f} {q['ms']:7.2f} {100 * q['ms'] / bb:9.1f}%")
    print("\nvolumetric head, one 4-view frame set (batch 1), PyTorch, this CPU:")
    for name, ms in report["volumetric_ms_per_4_views"].items():
        print(f"  {name:44s} {ms:8.1f} ms  ({ms / bb:.2f} x the backbone)")
    s = report["synthetic"]
    print(f"\nsynthetic test (CMU subject 007, 4-6 views, 1-2 failed): {s['samples']} samples")
    print(f"{'method':10s} {'mean mm':>8s} {'median mm':>9s} {'p90 mm':>8s} {'ms/sample':>9s}")
    for m, q in s["rows"].items():
        print(f"{m:10s} {q['mean_mm']:8.1f} {q['median_mm']:9.1f} {q['p90_mm']:8.1f} {q['ms']:9.3f}")
    if a.json:
        a.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
