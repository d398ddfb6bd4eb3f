"""Multi-person benchmark: PCP of every triangulation method on synthetic crowds (issue 17).

    python benchmarks/multi_person.py [--takes 6] [--seed 0] [--methods algebraic robust ...]
                                      [--seconds 10] [--json PATH]

The public multi-person benchmarks (Shelf, Campus) cannot be downloaded here, so their
equivalent is built from real motion capture by `training.crowd`: 3-5 walkers from the
walking clips of CMU subjects 003 and 007 (the learned head's validation and test subjects,
never trained on), 3-5 cameras around a 6 m room, BlazePose's error model fitted on the real
studio take, and what crowds do to 2D detectors (occlusion, limbs taken from another person,
dropped and mixed detections, false people in single views, left/right swaps, people who
leave and come back). Every method gets the same 2D and runs the whole offline pipeline:
`app.process.take.process_views` with `--people all` (association, relinking, left/right
repair, triangulation, gap filling, Butterworth), exactly as `triangulum process --keypoints`.

Scored like Shelf and Campus (training.metrics.multi_person_pcp): each frame, every true person
present is matched to the closest reconstructed person; a limb is correct when the mean distance
of its two ends to the truth is at most half its true length; a missed person scores 0. The head
limb runs thorax-nose (BlazePose has no head top). Printed per method: PCP per limb class and
on average over the people of all takes, the worst person, ID switches (a true person's matched
reconstruction changing), reconstructed people per true person, and ms per frame set.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.process.inputs import Take  # noqa: E402
from app.process.pipeline import PipelineConfig  # noqa: E402
from app.process.reconstruct import TriangulationConfig  # noqa: E402
from app.process.take import ProcessConfig, process_views  # noqa: E402
from calibration.takes import VideoInfo  # noqa: E402
from engines.heads import METHODS  # noqa: E402
from engines.skeleton import BLAZEPOSE33  # noqa: E402
from training.crowd import CrowdConfig, CrowdTake, crowd_take, load_walks  # noqa: E402
from training.error_model import ErrorModel  # noqa: E402
from training.metrics import PCP_LIMBS, multi_person_pcp  # noqa: E402
from training.mocap import TEST_SUBJECTS, VAL_SUBJECTS  # noqa: E402

ERROR_MODEL = ROOT / "training" / "error_model.toml"


def as_take(crowd: CrowdTake) -> Take:
    """The crowd's rig and timing as a Take (what `process --keypoints` builds from files)."""
    F, C = len(crowd.views), len(crowd.rig)
    times = np.arange(F) / crowd.fps
    videos = [VideoInfo(c.name, Path(f"synthetic/{c.name}"), c.size, F, crowd.fps) for c in crowd.rig.cameras]
    index = np.tile(np.arange(F)[:, None], (1, C))
    return Take(crowd.rig, videos, index, times, crowd.fps, "synthetic crowd", None,
                np.tile(times[:, None], (1, C)), [crowd.fps] * C, [], [])


def reconstruct_crowd(crowd: CrowdTake, method: str) -> tuple[np.ndarray, float]:
    """Every reconstructed person (Q, F, 33, 3) of the offline pipeline, and ms per frame set."""
    config = ProcessConfig(pipeline=PipelineConfig(triangulation=TriangulationConfig(method=method)), people="all")
    t = time.perf_counter()
    result = process_views(as_take(crowd), crowd.views, BLAZEPOSE33, config)
    ms = 1000 * (time.perf_counter() - t) / len(crowd.views)
    F = len(crowd.views)
    pred = np.full((max(len(result.people), 1), F, BLAZEPOSE33.num_joints, 3), np.nan)
    for q, person in enumerate(result.people):
        pred[q] = person.final.joints
    return pred, ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--takes", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    walks = load_walks(VAL_SUBJECTS + TEST_SUBJECTS)
    model = ErrorModel.load(ERROR_MODEL)
    config = CrowdConfig(seconds=args.seconds)
    crowds = [crowd_take(np.random.default_rng(args.seed + k), walks, model, config) for k in range(args.takes)]
    people = sum(len(c.truth) for c in crowds)
    cams = [len(c.rig) for c in crowds]
    print(f"{args.takes} synthetic takes of {args.seconds:g} s at {config.fps:g} fps, {people} people "
          f"({[len(c.truth) for c in crowds]}), cameras {cams}; CMU subjects {VAL_SUBJECTS + TEST_SUBJECTS}")
    classes = list(PCP_LIMBS)
    summary = {}
    for method in args.methods:
        rows, switches, found, ms = [], 0, 0, []  # rows: (label, PCP per class, PCP over limbs) per person
        for k, crowd in enumerate(crowds):
            pred, t = reconstruct_crowd(crowd, method)
            score = multi_person_pcp(pred, crowd.truth, BLAZEPOSE33)
            rows += [(f"{k}.{g} ({len(crowd.rig)} cams)", [float(c) for c in score.per_person[g]],
                      float(score.person_average[g])) for g in range(len(crowd.truth))]
            switches += int(score.id_switches.sum())
            found += len({int(q) for q in score.matched[score.matched >= 0]})
            ms.append(t)
        per_class = np.nanmean([r[1] for r in rows], 0)
        summary[method] = {"average": float(np.mean([r[2] for r in rows])),
                           **dict(zip(classes, map(float, per_class), strict=True)),
                           "worst_person": float(min(r[2] for r in rows)), "id_switches": switches,
                           "matched_ids_per_person": found / people, "ms_per_set": float(np.mean(ms)),
                           "people": rows}
    print("\nPCP % (alpha 0.5), mean over all people of all takes; worst: the lowest person's average;\n"
          "IDs/person: reconstructed IDs matched to each true person (1.00 = one stable ID each)")
    head = ["method", *classes, "average", "worst", "ID switches", "IDs/person", "ms/set"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for method, s in summary.items():
        cells = [method] + [f"{s[k]:.1f}" for k in classes] + [
            f"**{s['average']:.1f}**", f"{s['worst_person']:.1f}", str(s["id_switches"]),
            f"{s['matched_ids_per_person']:.2f}", f"{s['ms_per_set']:.1f}"]
        print("| " + " | ".join(cells) + " |")
    print("\nPCP % per person (take.person, cameras): average over limbs | " + " | ".join(classes))
    for method, s in summary.items():
        print(f"{method}:")
        for label, cells, avg in s["people"]:
            print(f"  {label:<12} {avg:5.1f} | " + " | ".join(f"{c:5.1f}" for c in cells))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
