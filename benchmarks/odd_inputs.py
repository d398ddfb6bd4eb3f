"""`triangulum process` on odd copies of the studio take, against the take as it is.

    python benchmarks/odd_inputs.py [--json PATH]

The built-in sample (4 x 60 fps, metres calibration) is processed with the defaults as the
reference, then: its calibration written in millimetres; cam04 re-encoded at 30 fps (every
other frame); every camera at 6 fps (every tenth frame). Printed per case: frame sets,
reprojection p95 (px), mean limb bone-length CV (%), and the main performer's 3D against
the reference over the frame sets both have (median / p95 mm; for 30 fps also the sets cam04
has no frame of its own for, filled by interpolating its 2D in time).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import tomllib
import warnings
from pathlib import Path

import cv2
import numpy as np
import tomli_w

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.process.inputs import open_take  # noqa: E402
from app.process.report import quality  # noqa: E402
from app.process.take import ProcessConfig, process_take  # noqa: E402
from app.sample import SAMPLE_DIR, sample_calibration  # noqa: E402

CAMERAS = ("cam01", "cam02", "cam03", "cam04")


def every_nth(src: Path, dst: Path, n: int, fps: float) -> None:
    cap, writer, k = cv2.VideoCapture(str(src)), None, 0
    while True:
        ok, image = cap.read()
        if not ok:
            break
        if k % n == 0:
            if writer is None:
                writer = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"mp4v"), fps, (image.shape[1], image.shape[0]))
            writer.write(image)
        k += 1
    writer.release()


def copy_take(folder: Path, slow: dict[str, tuple[int, float]], units: float = 1.0) -> Path:
    """The sample's videos (some re-encoded: camera -> (keep every n-th frame, fps)) and
    calibration (translations x units) in `folder`."""
    folder.mkdir(parents=True)
    for cam in CAMERAS:
        if cam in slow:
            every_nth(SAMPLE_DIR / f"{cam}.mp4", folder / f"{cam}.mp4", *slow[cam])
        else:
            shutil.copy(SAMPLE_DIR / f"{cam}.mp4", folder / f"{cam}.mp4")
    data = tomllib.loads(sample_calibration().read_text())
    for table in data.values():
        if isinstance(table, dict) and "translation" in table:
            table["translation"] = [x * units for x in table["translation"]]
    (folder / "calibration.toml").write_text(tomli_w.dumps(data))
    return folder


def row(name: str, result, reference=None, step: int = 1) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        q = quality(result)
    person = q["people"][0]
    out = {"case": name, "frame_sets": q["frames"], "reprojection_p95_px": person["reprojection_px"]["p95"],
           "bone_cv_percent": 100 * person["bone_length_cv_mean"], "notes": q["warnings"]}
    if reference is not None:
        joints = result.person(result.main).final.joints
        ref = reference.person(reference.main).final.joints[::step][: len(joints)]
        d = np.linalg.norm(joints[: len(ref)] - ref, axis=-1) * 1000
        out.update(mm_median=float(np.nanmedian(d)), mm_p95=float(np.nanpercentile(d, 95)))
        if name.startswith("cam04 at 30"):
            out["mm_median_sets_without_a_cam04_frame"] = float(np.nanmedian(d[1::2]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    reference = process_take(open_take([]), ProcessConfig())
    rows = [row("as it is (60 fps, metres)", reference)]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        mm = copy_take(tmp / "mm", {}, units=1000.0)
        rows.append(row("calibration in millimetres", process_take(open_take([mm]), ProcessConfig()), reference))
        t30 = copy_take(tmp / "t30", {"cam04": (2, 30.0)})
        rows.append(row("cam04 at 30 fps", process_take(open_take([t30]), ProcessConfig()), reference))
        t6 = copy_take(tmp / "t6", {c: (10, 6.0) for c in CAMERAS})
        rows.append(row("all at 6 fps", process_take(open_take([t6]), ProcessConfig()), reference, step=10))
    print(f"{'case':<28}{'sets':>6}{'repro p95 px':>14}{'bone CV %':>11}{'3D vs ref med mm':>18}{'p95 mm':>9}")
    for r in rows:
        med = f"{r['mm_median']:.1f}" if "mm_median" in r else "-"
        p95 = f"{r['mm_p95']:.1f}" if "mm_p95" in r else "-"
        print(f"{r['case']:<28}{r['frame_sets']:>6}{r['reprojection_p95_px']:>14.1f}{r['bone_cv_percent']:>11.1f}"
              f"{med:>18}{p95:>9}")
    for r in rows:
        if "mm_median_sets_without_a_cam04_frame" in r:
            print(f"cam04 at 30 fps: 3D median {r['mm_median_sets_without_a_cam04_frame']:.1f} mm on the sets "
                  "cam04 has no frame for (its 2D interpolated in time)")
    if args.json:
        args.json.write_text(json.dumps({"benchmark": "odd_inputs", "results": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
