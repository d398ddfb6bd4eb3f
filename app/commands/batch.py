"""`triangulum batch ROOT`: every take under a folder through `process`, in parallel, resumable."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "batch",
        help="process every take under a folder (sessions, video folders, Pose2Sim trials) with one configuration",
        description="Find every take under ROOT (recorded sessions; folders with two or more videos and a "
        "calibration beside them or in a calibration/ folder above them, as in Pose2Sim's "
        "session/participant/trial layout) and run `triangulum process` on each, in parallel. Takes already "
        "done with the same configuration are skipped; a take that fails is reported and the others go on. "
        "Writes OUT/<take>/ per take and OUT/batch_summary.csv/.json.",
    )
    p.add_argument("root", type=Path, metavar="ROOT", help="the folder that holds the takes")
    p.add_argument("--config", type=Path, metavar="TOML",
                   help="process options for every take, as a [process] table (e.g. method = \"robust\", "
                   "formats = \"trc,csv\", kinematics = true)")
    p.add_argument("-o", "--output", type=Path, help="where the results go (default ROOT/batch-results)")
    p.add_argument("--jobs", type=int, default=1, help="takes processed at once on this machine (default 1)")
    p.add_argument("--ray", metavar="ADDRESS", help="run the takes as Ray tasks: a cluster's address, auto, or "
                   "local to start Ray here (needs pip install ray)")
    p.add_argument("--list", action="store_true", help="only list the takes found")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from app.batch import find_takes, read_config, run_batch, summary_table
    from app.progress import stage_bar
    from calibration.errors import TriangulumError

    if args.jobs < 1:
        raise TriangulumError(f"--jobs {args.jobs} must be 1 or more.")
    takes = find_takes(args.root)
    if args.list:
        for t in takes:
            print(f"{t.name}: {len(t.inputs)} input(s), calibration {t.calib or '(the session’s)'}")
        return 0
    config = read_config(args.config, args.output or args.root / "batch-results")
    with stage_bar("takes", len(takes), unit="take") as update:
        rows = run_batch(takes, config, args.jobs, args.ray, progress=update)
    print(summary_table(rows))
    print(f"Summary in {config.out / 'batch_summary.csv'}")
    return 0 if all(r["status"] in ("ok", "skipped (done before)") for r in rows) else 3
