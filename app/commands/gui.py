"""`triangulum gui` (the desktop app) and `triangulum demo` (the app playing the built-in sample).

    triangulum demo
    triangulum gui --source video:cam01.mp4 --source video:cam02.mp4 --calib rig.toml
    triangulum demo --screenshot docs/screenshot.png --frames 30
"""

from __future__ import annotations

import argparse
from pathlib import Path

from calibration.errors import TriangulumError


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--screenshot", type=Path, metavar="PNG",
                   help="play until --frames poses were shown, save the window to this PNG and exit")
    p.add_argument("--layout", type=Path, metavar="JSON",
                   help="with --screenshot: also write where the window drew the tiles, markers and 3D view")
    p.add_argument("--frames", type=int, default=30, metavar="N", help="frames to play before --screenshot (default 30)")
    p.add_argument("--timeout", type=float, default=300.0, metavar="S",
                   help="give up on --screenshot after this many seconds (default 300)")
    p.add_argument("--settings", type=Path, metavar="INI", help="keep settings in this file instead of the user's")


def register(subparsers: argparse._SubParsersAction) -> None:
    gui = subparsers.add_parser(
        "gui", help="open the desktop app", description="Open the desktop app, empty or with sources and a calibration.")
    gui.add_argument("--source", action="append", default=[], metavar="SPEC",
                     help="a source to open, e.g. video:cam01.mp4, webcam:0 or session:DIR (repeat per camera)")
    gui.add_argument("--calib", type=Path, help="calibration to load (any supported format)")
    _common(gui)
    gui.set_defaults(func=run_gui_command, demo=False)
    demo = subparsers.add_parser(
        "demo", help="open the desktop app playing the built-in sample",
        description="Open the desktop app playing the built-in sample (four cameras) through the live pipeline.")
    _common(demo)
    demo.set_defaults(func=run_gui_command, demo=True, source=[], calib=None)


def run_gui_command(args: argparse.Namespace) -> int:
    if args.frames < 1:
        raise TriangulumError(f"--frames {args.frames} must be at least 1.")
    if args.layout and not args.screenshot:
        raise TriangulumError("--layout goes with --screenshot; add --screenshot PATH.png.")
    from app.gui.app import GuiOptions, run_gui

    return run_gui(GuiOptions(
        demo=args.demo, sources=list(args.source), calibration=args.calib, screenshot=args.screenshot,
        layout=args.layout, frames=args.frames, timeout=args.timeout, settings=args.settings,
    ))
