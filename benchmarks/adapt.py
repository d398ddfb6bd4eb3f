"""Adapt to my studio: every real take adapted on its first 60 %, checked on its last 40 %.

    python benchmarks/adapt.py [--epochs N] [--json PATH] [--keep DIR]

For each real multi-view take in ../shared/data (the studio sample: 4 Qualisys video cameras,
100 frames; the caliscope webcams: another room, person and cameras, 57 frames) the landmark
network is adapted with `triangulum adapt`'s own code (training.adapt.adapt_takes) on frames
0..60 % (its early stopping uses the last 20 % of those), then the last 40 % of EVERY take is
processed with the shipped network and with each adapted one, on the same frames. Split by
time range within a take; the last 40 % is never trained on (and the generic crops mixed into
training are the sample's frames 0-59). Printed per take evaluated and network: reprojection
error median / p95 (px, 12 limb joints, against the 2D that network gave), bone-length CV of the
8 limb bones, agreement with Pose2Sim's reconstruction where there is one (median / p90 cm), and
EpipolarPose's PSS@50 against that reconstruction. Rows "adapted on <other take>" are the
forgetting check. Also the time each adaptation took and how many crops it used.
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

from app.adapt import TakeRange, adapt_takes  # noqa: E402
from app.evaluate import People, evaluate, load_people  # noqa: E402
from app.process.inputs import open_take  # noqa: E402
from benchmarks.process_quality import REFERENCE_TRC, load_reference, quality, real_takes  # noqa: E402
from engines.skeleton import BLAZEPOSE33  # noqa: E402
from training.adapt import AdaptConfig  # noqa: E402

SHARE = 0.6


def evaluate_take(take, start: int, backbone: str | None, peer: bool) -> dict:
    from app.process.take import ProcessConfig, process_take

    result = process_take(take, ProcessConfig(start=start, backbone=backbone))
    if result.main is None:
        return {}
    p = result.person(result.main)
    reference = load_reference(take.frames)[start:] if peer else None
    q = quality(take.rig, p.final.joints, p.keypoints, np.moveaxis(p.final.views_used, -1, 0), take.fps, reference)
    row = {"reprojection_median_px": q["reprojection_px"]["median"], "reprojection_p95_px": q["reprojection_px"]["p95"],
           "bone_cv": q["bone_cv"]}
    if peer:
        row["peer_median_cm"] = 100 * q["reference_m"]["median"]
        row["peer_p90_cm"] = 100 * q["reference_m"]["p90"]
        ref = load_people(REFERENCE_TRC)
        ref = People(ref.names, ref.joints[:, start:take.frames], ref.ids, ref.fps, ref.source)
        ours = People(BLAZEPOSE33.joints, p.final.joints[None], [0], take.fps, Path("ours"))
        row["pss50"] = evaluate(ours, ref).summary.get("pss50")
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=AdaptConfig.epochs)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train", choices=("heads", "all"), default=AdaptConfig.train)
    parser.add_argument("--no-swapped-labels", action="store_true",
                        help="leave the joints the left/right repair swapped unlabelled")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", type=Path, help="keep the adapted models here (default: a temporary folder)")
    args = parser.parse_args(argv)
    takes = {name: open_take(videos, calib) for name, (videos, calib, _) in real_takes().items()}
    work = args.keep or Path(tempfile.mkdtemp(prefix="adapt-bench-"))
    models, runs = {}, {}
    for name, take in takes.items():
        stop = int(round(SHARE * take.frames))
        out = work / name.split(" ")[0]
        t0 = time.time()
        config = AdaptConfig(epochs=args.epochs, seed=args.seed, train=args.train,
                             label_swapped=not args.no_swapped_labels)
        r = adapt_takes([TakeRange(take, 0, stop)], config, out)
        models[name] = str(out)
        runs[name] = {"frames": f"0-{stop - 1}", "crops": r.train_crops, "holdout_crops": r.holdout_crops,
                      "steps": r.steps, "best_epoch": r.best_epoch, "seconds": time.time() - t0,
                      "holdout_agreement_px": [r.before, r.after]}
    rows = []
    for name, take in takes.items():
        start = int(round(SHARE * take.frames))
        peer = "studio" in name and REFERENCE_TRC.is_file()
        for label, backbone in [("shipped", None), *((f"adapted on {m}", path) for m, path in models.items())]:
            rows.append({"take": f"{name}, frames {start}-{take.frames - 1}", "network": label,
                         **evaluate_take(take, start, backbone, peer)})
    print("\nadaptation runs (2-core CPU unless a GPU was visible):")
    for name, r in runs.items():
        print(f"  {name}: frames {r['frames']}, {r['crops']} training crops + {r['holdout_crops']} held out, "
              f"{r['steps']} steps, best epoch {r['best_epoch']}, {r['seconds']:.0f} s; held-out agreement "
              f"{list(r['holdout_agreement_px'][0].values())[0]:.2f} -> {list(r['holdout_agreement_px'][1].values())[0]:.2f} px (256 crop)")
    print(f"\n{'take (frames never trained on)':38s} {'network':28s} {'reproj med':>10s} {'p95':>6s} {'bone CV %':>9s} "
          f"{'peer med cm':>11s} {'p90':>5s} {'PSS %':>6s}")
    for r in rows:
        peer = (f"{r['peer_median_cm']:11.1f} {r['peer_p90_cm']:5.1f} {100 * r['pss50']:6.1f}" if "peer_median_cm" in r
                else f"{'-':>11s} {'-':>5s} {'-':>6s}")
        print(f"{r['take']:38s} {r['network']:28s} {r['reprojection_median_px']:10.1f} {r['reprojection_p95_px']:6.1f} "
              f"{100 * r['bone_cv']:9.2f} {peer}")
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "rows": rows}, indent=2, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
