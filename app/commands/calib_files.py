"""`triangulum calib convert` and `triangulum calib show`: calibration files.

    triangulum calib convert Calib.qca.txt -o rig.toml      format detected from the content
    triangulum calib convert rig.toml -o easymocap/ --to easymocap
    triangulum calib show rig.toml [--json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from calibration.errors import TriangulumError
from calibration.formats import FORMATS, WRITABLE, convert, export
from calibration.formats.detect import ALIASES, detect_format, format_name
from calibration.rig import Rig
from calibration.units import CHOICES as UNIT_CHOICES

_FORMAT_HELP = f"one of {', '.join(FORMATS)} (aliases: {', '.join(sorted(ALIASES))})"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("convert", help="convert a calibration (Qualisys, caliscope, Pose2Sim/Anipose, EasyMocap) "
                              "to our rig TOML or to EasyMocap YAML")
    p.add_argument("source", type=Path, help="calibration file (or EasyMocap folder)")
    p.add_argument("-o", "--output", type=Path, required=True,
                   help="rig .toml, or EasyMocap folder / intri.yml (both intri.yml and extri.yml are written)")
    _input_options(p)
    p.add_argument("--to", dest="fmt_out", metavar="FORMAT", choices=WRITABLE,
                   help=f"output format, {' or '.join(WRITABLE)} (default: from the output name)")
    p.set_defaults(func=run_convert)

    s = subparsers.add_parser("show", help="print the cameras of a calibration: size, intrinsics, centre, RMSE")
    s.add_argument("source", type=Path, help="calibration file (any format convert reads)")
    _input_options(s)
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    s.set_defaults(func=run_show)


def _input_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="fmt_in", metavar="FORMAT", help=f"input format, {_FORMAT_HELP} (default: detected)")
    p.add_argument("--size", nargs=2, type=int, metavar=("W", "H"),
                   help="image size in px for EasyMocap files that do not store it (default: from the principal point)")
    p.add_argument("--calib-units", choices=UNIT_CHOICES, default="auto",
                   help="length unit of the input (default auto: told from the rig's geometry); "
                   "the output is always in metres")


def _read(args: argparse.Namespace) -> tuple[Rig, str]:
    fmt = format_name(args.fmt_in) if args.fmt_in else detect_format(args.source)
    notes: list[str] = []
    rig = convert(args.source, fmt, tuple(args.size) if args.size else None, args.calib_units, notes)
    for note in notes:
        print(f"note: {note}")
    return rig, fmt


def run_convert(args: argparse.Namespace) -> int:
    if args.output.exists() and args.source.exists() and args.output.resolve() == args.source.resolve():
        raise TriangulumError(f"{args.output}: the output is the input file; choose another output name.")
    rig, fmt = _read(args)
    written = export(rig, args.output, args.fmt_out)
    print(f"{args.source} ({fmt}): {len(rig)} cameras ({', '.join(rig.names)})")
    for path in written:
        print(f"wrote {path}")
    return 0


def camera_rows(rig: Rig) -> list[dict[str, Any]]:
    """One summary dict per camera: what `show` prints."""
    rows = []
    for cam in rig.cameras:
        rows.append({
            "name": cam.name,
            "size": [int(cam.size[0]), int(cam.size[1])],
            "fx": float(cam.K[0, 0]), "fy": float(cam.K[1, 1]),
            "cx": float(cam.K[0, 2]), "cy": float(cam.K[1, 2]),
            "center_m": [float(v) for v in cam.center],
            "rmse_px": None if cam.rmse is None else float(cam.rmse),
            "distortions": [float(v) for v in cam.dist],
            "rotation": [float(v) for v in cam.rvec],
            "translation_m": [float(v) for v in cam.t],
        })
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """Rows as an aligned text table: text left-aligned, numbers right-aligned."""
    header = ["camera", "size (px)", "fx", "fy", "cx", "cy", "centre x (m)", "y", "z", "RMSE (px)"]
    body = [
        [r["name"], f"{r['size'][0]}x{r['size'][1]}",
         *(f"{r[k]:.3f}" for k in ("fx", "fy", "cx", "cy")),
         *(f"{v:.4f}" for v in r["center_m"]),
         "-" if r["rmse_px"] is None else f"{r['rmse_px']:.3f}"]
        for r in rows
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def fmt(line: list[str]) -> str:
        cells = [c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True))]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(header), rule, *(fmt(line) for line in body)])


def run_show(args: argparse.Namespace) -> int:
    rig, fmt = _read(args)
    rows = camera_rows(rig)
    if args.json:
        doc = {"source": str(args.source), "format": fmt, "cameras": rows, "metadata": rig.metadata}
        print(json.dumps(doc, indent=2, default=str))
        return 0
    print(f"{args.source} ({fmt}): {len(rig)} cameras")
    print(format_table(rows))
    return 0
