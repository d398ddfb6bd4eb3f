"""`triangulum calib ...`: calibration files and calibration solving.

The sub-commands live in the modules below; each defines `register(subparsers)`.
"""

from __future__ import annotations

import argparse
import importlib

CALIB_MODULES: list[str] = [
    "app.commands.calib_files",
    "app.commands.calib_solve",
]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("calib", help="calibrate cameras; convert and inspect rig files")
    sub = parser.add_subparsers(dest="calib_command", metavar="STEP")
    for name in CALIB_MODULES:
        importlib.import_module(name).register(sub)
    parser.set_defaults(func=lambda args: parser.print_help() or 0)
