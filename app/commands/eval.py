"""`triangulum eval PRED --reference REF [--map joints.toml] [--offset N] -o OUT_DIR`: a
reconstruction against a reference of the same take (app.evaluate): per-joint errors, MPJPE,
PCK, PCP per limb class and person, a Bland-Altman plot and a JSON."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("eval", help="compare a reconstruction with a reference (markers, another tool)")
    parser.add_argument("prediction", type=Path, metavar="PRED", help="poses3d.npz, .trc, .c3d or .csv")
    parser.add_argument("--reference", type=Path, required=True, metavar="REF",
                        help="the reference of the same take: poses3d.npz, .trc, .c3d or .csv")
    parser.add_argument("--map", type=Path, help='TOML [joints] table of pred_name = "ref_name" (default: by name)')
    parser.add_argument("--offset", type=int, default=0,
                        help="frames by which the reference starts later than the prediction")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from app.evaluate import evaluate, format_report, load_people, read_joint_map, write_report

    joint_map = read_joint_map(args.map) if args.map else None
    report = evaluate(load_people(args.prediction), load_people(args.reference), joint_map, args.offset)
    print(format_report(report))
    for path in write_report(report, args.output, args.prediction, args.reference):
        print(f"wrote {path}")
    return 0
