"""ONNX Runtime against PyTorch over whole real takes, and each backend's quality.

    python benchmarks/backend_agreement.py [--json PATH]

Every real multi-view take: the studio take (the built-in sample, 4 x 60 fps) and, where
../shared/data has it, the caliscope take (4 webcams, 6 fps, with caliscope's calibration).
Each is processed with the default configuration through both backends. Printed per take:
the main performer's 2D (every view, after left/right correction) between the backends,
median / p95 / max px; the filtered 3D between them, median / p95 mm; and per backend the
reprojection p95 (px) and mean limb bone-length CV, as `triangulum process` reports them.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.process.inputs import open_take  # noqa: E402
from app.process.report import quality  # noqa: E402
from app.process.take import ProcessConfig, process_take  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
BACKENDS = ("onnxruntime", "torch")


def takes() -> dict[str, tuple[list[Path], Path | None]]:
    out = {"studio": ([], None)}
    caliscope = DATA / "caliscope-charuco-4cam"
    if caliscope.is_dir():
        out["caliscope"] = ([caliscope / "extrinsic"], caliscope / "reference_camera_array.toml")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rows = []
    for name, (inputs, calib) in takes().items():
        runs = {b: process_take(open_take(inputs, calib), ProcessConfig(backend=b)) for b in BACKENDS}
        people = {b: r.person(r.main) for b, r in runs.items()}
        d2 = np.linalg.norm(people["onnxruntime"].keypoints - people["torch"].keypoints, axis=-1)
        d3 = np.linalg.norm(people["onnxruntime"].final.joints - people["torch"].final.joints, axis=-1) * 1000
        row = {"take": name, "frames": len(runs["onnxruntime"].frames),
               "px_median": float(np.nanmedian(d2)), "px_p95": float(np.nanpercentile(d2, 95)),
               "px_max": float(np.nanmax(d2)), "mm_median": float(np.nanmedian(d3)),
               "mm_p95": float(np.nanpercentile(d3, 95))}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            for b, r in runs.items():
                q = quality(r)["people"][0]
                row[f"{b}_reprojection_p95_px"] = q["reprojection_px"]["p95"]
                row[f"{b}_bone_cv_percent"] = 100 * q["bone_length_cv_mean"]
        rows.append(row)
    print("main performer, onnxruntime vs torch; quality per backend (reprojection p95 px / bone-length CV %)")
    print(f"{'take':<11}{'frames':>7}{'2D med':>8}{'2D p95':>8}{'2D max':>8}{'3D med mm':>11}{'3D p95 mm':>11}"
          f"{'onnxruntime':>16}{'torch':>16}")
    for r in rows:
        print(f"{r['take']:<11}{r['frames']:>7}{r['px_median']:>8.2f}{r['px_p95']:>8.2f}{r['px_max']:>8.2f}"
              f"{r['mm_median']:>11.2f}{r['mm_p95']:>11.2f}"
              + "".join(f"{r[f'{b}_reprojection_p95_px']:>9.1f} / {r[f'{b}_bone_cv_percent']:<4.1f}" for b in BACKENDS))
    if args.json:
        args.json.write_text(json.dumps({"benchmark": "backend_agreement", "results": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
