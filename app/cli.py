"""`triangulum` command line: one sub-command per module in app/commands."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from calibration.errors import TriangulumError

# Each module defines `register(subparsers)` which adds its parser and sets `func`.
COMMAND_MODULES = [
    "app.commands.calib",
    "app.commands.capture",
    "app.commands.detect2d",
    "app.commands.gui",
    "app.commands.process",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="triangulum",
        description="Markerless multi-camera 3D human pose capture.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except TriangulumError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
