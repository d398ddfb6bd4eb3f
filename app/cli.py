"""`triangulum` command line: one sub-command per module in app/commands."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import warnings

from calibration.errors import TriangulumError

# Exit codes (README, "Exit codes"): scripts and batch runs tell outcomes apart by these.
EXIT_OK = 0  # the command did its work (`process`: at least one person reconstructed)
EXIT_BAD_INPUT = 2  # bad input or options: nothing was processed; the message says what to do
EXIT_NOTHING_RECONSTRUCTED = 3  # `process` ran but reconstructed nobody; the reason is on stderr and in report.json
EXIT_INTERRUPTED = 130

# Each module defines `register(subparsers)` which adds its parser and sets `func`.
COMMAND_MODULES = [
    "app.commands.adapt",
    "app.commands.batch",
    "app.commands.calib",
    "app.commands.capture",
    "app.commands.detect2d",
    "app.commands.eval",
    "app.commands.gui",
    "app.commands.process",
    "app.commands.train",
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
    # Python warnings become log lines, never raw tracebacks; numpy's RuntimeWarnings about
    # empty or NaN data are expected (missing joints are NaN) and shown only with --verbose.
    logging.captureWarnings(True)
    if not args.verbose:
        warnings.simplefilter("ignore", RuntimeWarning)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except TriangulumError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
