"""Our Matroska MJPEG writer (app/capture/mkv.py) against PyAV (FFmpeg's muxer): CPU per frame,
and what survives a SIGKILL in the middle of a recording.

    python benchmarks/mkv_writer.py [--frames 300] [--kill-after 150] [--json PATH]

Frames are real: the built-in sample's cam03 (1088x1920) as JPEG, quality 90, the bytes the
recorder stores. For each writer, a child process writes `--frames` frames (CPU time per
frame), and another child writes `--kill-after` frames and kills itself with SIGKILL without
closing anything; the parent then counts the frames OpenCV (FFmpeg) can still decode from the
file it left. PyAV is run with FFmpeg's defaults and with `flush_packets=1` (every packet
written at once). PyAV is optional (`pip install av`); without it only ours is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WRITERS = ("ours", "pyav", "pyav-flush")


def jpegs(n: int) -> list[bytes]:
    cap = cv2.VideoCapture(str(ROOT / "app" / "sample" / "cam03.mp4"))
    out = []
    while len(out) < n:
        ok, image = cap.read()
        if not ok:
            cap.release()
            cap = cv2.VideoCapture(str(ROOT / "app" / "sample" / "cam03.mp4"))
            continue
        out.append(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())
    return out


def write(kind: str, path: Path, frames: list[bytes], kill_after: int | None) -> float:
    """Write the frames with one writer -> CPU seconds (never returns when killed)."""
    t0 = time.process_time()
    if kind == "ours":
        from app.capture.mkv import MjpegMkvWriter

        w = MjpegMkvWriter(path, 1088, 1920, 60.0, "bench")
        for k, data in enumerate(frames):
            w.write(data, round(k * 1000 / 60))
            if kill_after is not None and k + 1 == kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
        w.close()
    else:
        from fractions import Fraction

        import av

        options = {"flush_packets": "1"} if kind == "pyav-flush" else {}
        container = av.open(str(path), "w", format="matroska", options=options)
        stream = container.add_stream("mjpeg", rate=60)
        stream.width, stream.height, stream.pix_fmt = 1088, 1920, "yuvj420p"
        stream.time_base = Fraction(1, 1000)
        for k, data in enumerate(frames):
            packet = av.Packet(data)
            packet.stream = stream
            packet.pts = packet.dts = round(k * 1000 / 60)
            packet.time_base = stream.time_base
            container.mux(packet)
            if kill_after is not None and k + 1 == kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
        container.close()
    return time.process_time() - t0


def readable(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def child(kind: str, path: str, frames: int, kill_after: int | None) -> None:
    data = jpegs(frames)
    cpu = write(kind, Path(path), data, kill_after)
    print(json.dumps({"cpu_ms_per_frame": 1000 * cpu / frames}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--kill-after", type=int, default=150)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, path, frames, kill = args.child
        child(kind, path, int(frames), None if kill == "-" else int(kill))
        return 0
    try:
        import av  # noqa: F401

        kinds = WRITERS
    except ImportError:
        kinds = ("ours",)
        print("PyAV is not installed (pip install av): measuring ours only")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            full = Path(tmp) / f"{kind}-full.mkv"
            run = subprocess.run([sys.executable, __file__, "--child", kind, str(full), str(args.frames), "-"],
                                 capture_output=True, text=True, check=True)
            cpu = json.loads(run.stdout.strip().splitlines()[-1])["cpu_ms_per_frame"]
            killed = Path(tmp) / f"{kind}-killed.mkv"
            proc = subprocess.run([sys.executable, __file__, "--child", kind, str(killed), str(args.kill_after),
                                   str(args.kill_after)], capture_output=True, text=True)
            rows.append({"writer": kind, "cpu_ms_per_frame": round(cpu, 3), "frames_written": args.frames,
                         "readable_after_close": readable(full), "killed_after": args.kill_after,
                         "killed_by_sigkill": proc.returncode == -signal.SIGKILL,
                         "readable_after_sigkill": readable(killed)})
    print(f"{'writer':<12}{'CPU ms/frame':>14}{'readable/written':>18}{'readable after SIGKILL':>24}")
    for r in rows:
        print(f"{r['writer']:<12}{r['cpu_ms_per_frame']:>14.3f}{r['readable_after_close']:>10}/{r['frames_written']:<7}"
              f"{r['readable_after_sigkill']:>16}/{r['killed_after']}")
    if args.json:
        args.json.write_text(json.dumps({"benchmark": "mkv_writer", "results": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
