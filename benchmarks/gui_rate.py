"""Display rate and the latency the GUI adds, in the desktop app under Xvfb on this CPU.

The window (1920x1080) shows the built-in sample: 4 camera tiles at the videos' own resolution
(1080/1088 x 1920) with their overlays, and the 3D view (OpenGL through Mesa). Scenarios:

  gui       frames and poses arrive from a thread at the sample's 60 fps, as from live
            cameras: the first --frames sets of the sample, decoded beforehand, each with the
            pose the real pipeline computed for it. Measures the GUI alone.
  player    the media player decoding the sample's four videos, every frame, as fast as it
            can, with those same poses replayed: decoding + GUI.
  pipeline  the real pipeline (BlazePose + triangulation) on the player, every frame: what
            `triangulum demo` does.

Per scenario: displayed fps (new images painted per second per tile, mean over the 4 tiles),
3D updates per second, GUI latency (frame or pose handed to the GUI -> its image first
painted; median and 95th percentile), UI-thread time per display update, process CPU use.

    python benchmarks/gui_rate.py [--json PATH] [--seconds 10] [--frames 24]

Starts a private Xvfb (needs the xvfb package) and runs itself under it, unless --display
names an X display to use.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def start_xvfb() -> tuple[subprocess.Popen, str]:
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), "-screen", "0", "1920x1080x24", "-nolisten", "tcp"],
        pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    with os.fdopen(read_end) as f:
        number = f.readline().strip()
    if not number:
        raise SystemExit("Xvfb did not start; install it (apt-get install xvfb) or pass --display.")
    return proc, f":{number}"


def sample_sets(count: int):
    """The first `count` frame sets of the sample (decoded) and the real pipeline's pose of each."""
    from app.capture.frames import Frame, FrameSet, clock
    from app.gui.media import open_media
    from app.gui.pipelines import PipelineChoice, build_pipeline
    from app.gui.sample import sample_calibration, sample_sources
    from calibration.rig_io import load_rig

    media = open_media(sample_sources())
    rig = load_rig(sample_calibration())
    pipeline = build_pipeline(rig, PipelineChoice())
    images, poses = [], {}
    t0 = time.perf_counter()
    for k in range(min(count, len(media))):
        images.append(media.read(k))
        now = clock()
        frames = tuple(Frame(n, k, now, now, im) for n, im in zip(media.names, images[-1], strict=True))
        poses[k] = pipeline.process(FrameSet(k, frames, now))
    names = media.names
    media.close()
    print(f"computed {len(poses)} real poses in {time.perf_counter() - t0:.1f} s", flush=True)
    return rig, names, images, poses


class ReplayPipeline:
    """Hands back the pose the real pipeline computed for frame set k mod the sets computed."""

    def __init__(self, poses: dict) -> None:
        self.poses = poses

    def process(self, frameset):
        pose = self.poses[frameset.index % len(self.poses)]
        return dataclasses.replace(pose, index=frameset.index, t_capture=frameset.t, timings={}, frameset=None)


class FeedRunner:
    """Frames and poses from a thread at `fps`, through the same latest-only slots as live capture."""

    seekable = False
    recording_dir = None
    finished = False

    def __init__(self, names, images, poses, fps: float) -> None:
        from app.capture.worker import Mailbox

        self.cameras, self.images, self.poses_by_set, self.fps = list(names), images, poses, fps
        self.poses, self.take = Mailbox(1, images=True), Mailbox(4096, images=False)
        self._latest: dict = {}
        self._stop = threading.Event()
        self._published: list[float] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        from app.capture.frames import Frame, FrameSet, clock

        t0, i = clock(), 0
        while not self._stop.is_set():
            due = t0 + i / self.fps
            if due > clock():
                time.sleep(due - clock())
            k = i % len(self.images)
            now = clock()
            frames = tuple(Frame(n, i, now, now, im) for n, im in zip(self.cameras, self.images[k], strict=True))
            for f in frames:
                self._latest[f.camera] = (f, clock())
            pose = dataclasses.replace(self.poses_by_set[k], index=i, t_capture=now, frameset=FrameSet(i, frames, now))
            pose.t_published = clock()
            pose.timings = {"latency": pose.t_published - now}
            self.poses.put(pose)
            self.take.put(pose)
            self._published = self._published[-600:] + [pose.t_published]
            i += 1

    def latest_frames(self) -> dict:
        return dict(self._latest)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def snapshot(self):
        from app.capture.frames import clock
        from app.gui.history import event_rate
        from app.gui.runners import Snapshot

        rate = event_rate(self._published, clock())
        return Snapshot(clock(), dict.fromkeys(self.cameras, rate), 0.0, {"latency": 0.0}, 0, "", None, None)


def spin(app, seconds: float) -> None:
    from PyQt6 import QtCore

    from app.capture.frames import clock

    end = clock() + seconds
    while clock() < end:
        app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 20)
        time.sleep(0.001)


def measure(app, window, name: str, seconds: float) -> dict:
    from app.capture.frames import clock

    c = window.controller
    deadline = clock() + 180
    while not (c.running and window.poses_displayed > 3) and clock() < deadline:
        spin(app, 0.1)
    if not (c.running and window.poses_displayed > 3):
        raise SystemExit(f"{name}: nothing was shown: {window.last_error}")
    spin(app, 2.0)  # warm-up
    tiles = list(window.grid.tiles.values())
    for t in tiles:
        t.image_item.latencies.clear()
    painted0 = [t.image_item.painted for t in tiles]
    poses0 = window.view3d.poses_shown
    window.display_times.clear()
    cpu0, t0 = time.process_time(), clock()
    spin(app, seconds)
    wall, cpu = clock() - t0, time.process_time() - cpu0
    painted = [t.image_item.painted - p for t, p in zip(tiles, painted0, strict=True)]
    latencies = np.concatenate([np.array(t.image_item.latencies) for t in tiles]) * 1e3
    stages = c.runner.snapshot().stages
    c.stop()
    while c.busy and clock() < deadline + 60:
        spin(app, 0.1)
    return {
        "scenario": name,
        "tiles": len(tiles),
        "tile_resolution": [list(t.image_shape[::-1]) for t in tiles],
        "tile_display_size": [list(t.displayed_image().shape[1::-1]) for t in tiles],
        "displayed_fps_per_tile": float(np.mean(painted) / wall),
        "updates_3d_per_s": float((window.view3d.poses_shown - poses0) / wall),
        "gui_latency_ms_median": float(np.median(latencies)) if latencies.size else float("nan"),
        "gui_latency_ms_p95": float(np.percentile(latencies, 95)) if latencies.size else float("nan"),
        "ui_update_ms_median": float(np.median(window.display_times) * 1e3) if window.display_times else float("nan"),
        "pose_latency_ms_median": stages.get("latency", float("nan")) * 1e3,
        "process_cpu_percent": 100.0 * cpu / wall,
        "seconds": wall,
    }


def run(args: argparse.Namespace) -> dict:
    os.environ["QT_QPA_PLATFORM"] = "xcb"
    from PyQt6 import QtCore, QtWidgets

    from app.gui.pipelines import build_pipeline, configure_threads
    from app.gui.platform import configure_pyqtgraph
    from app.gui.sample import sample_sources
    from app.gui.window import MainWindow

    configure_threads()
    rig, names, images, poses = sample_sets(args.frames)
    configure_pyqtgraph()
    app = QtWidgets.QApplication(sys.argv[:1])
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = QtCore.QSettings(str(Path(tmp) / "s.ini"), QtCore.QSettings.Format.IniFormat)
        window = MainWindow(settings=settings)
        window.resize(1920, 1080)
        window.show()
        spin(app, 1.0)  # the 3D window gets its GL context when first exposed
        renderer = "none (no OpenGL)"
        if window.view3d.gl is not None and window.view3d.gl.isValid():
            from OpenGL import GL

            window.view3d.gl.makeCurrent()
            renderer = (GL.glGetString(GL.GL_RENDERER) or b"unknown").decode()
            window.view3d.gl.doneCurrent()
        c = window.controller
        c.set_calibration(rig)

        feed = FeedRunner(names, images, poses, fps=60.0)
        feed.start()
        c.attach(feed, rig)
        results.append(measure(app, window, "gui", args.seconds))

        c.add_sources(sample_sources())
        c.loop = True
        c.every_frame = True
        for name, factory in (("player", lambda rig, choice: ReplayPipeline(poses)), ("pipeline", build_pipeline)):
            if name == "pipeline" and args.skip_pipeline:
                continue
            c.pipeline_factory = factory
            c.start(play=True)
            results.append(measure(app, window, name, args.seconds))
        window.close()
    window.deleteLater()
    app.processEvents()
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "load_average_1min": os.getloadavg()[0], "gl_renderer": renderer,
            "window": [1920, 1080], "results": results}


def report(data: dict) -> None:
    print(f"\nGUI display rate, window 1920x1080 under Xvfb; CPU: {data['cpu']} ({data['cores']} cores, "
          f"load {data['load_average_1min']:.1f}); GL: {data['gl_renderer']}")
    header = f"{'scenario':10} {'fps/tile':>9} {'3D/s':>6} {'GUI lat. ms':>12} {'p95':>7} {'UI ms':>6} {'pose lat. ms':>13} {'CPU %':>6}"
    print(header)
    print("-" * len(header))
    for r in data["results"]:
        print(f"{r['scenario']:10} {r['displayed_fps_per_tile']:9.1f} {r['updates_3d_per_s']:6.1f} "
              f"{r['gui_latency_ms_median']:12.1f} {r['gui_latency_ms_p95']:7.1f} {r['ui_update_ms_median']:6.1f} "
              f"{r['pose_latency_ms_median']:13.0f} {r['process_cpu_percent']:6.0f}")
    sizes = data["results"][0]
    print(f"tiles: {sizes['tile_resolution']} px frames drawn at {sizes['tile_display_size']} px")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring time per scenario")
    parser.add_argument("--frames", type=int, default=24, help="sample frame sets decoded and posed for the feed")
    parser.add_argument("--display", help="run on this X display instead of a private Xvfb")
    parser.add_argument("--skip-pipeline", action="store_true", help="leave out the real-pipeline scenario")
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)  # child -> parent
    args = parser.parse_args()

    if args.display is None:
        # Run under a private Xvfb in a child process, so the X server outlives every client.
        xvfb, display = start_xvfb()
        with tempfile.TemporaryDirectory() as tmp:
            result_file = Path(tmp) / "result.json"
            cmd = [sys.executable, __file__, "--display", display, "--seconds", str(args.seconds),
                   "--frames", str(args.frames), "--result-file", str(result_file)]
            cmd += ["--skip-pipeline"] if args.skip_pipeline else []
            try:
                code = subprocess.run(cmd, env=dict(os.environ, DISPLAY=display)).returncode
            finally:
                xvfb.terminate()
                xvfb.wait(10)
            if code != 0:
                return code
            data = json.loads(result_file.read_text())
    else:
        os.environ["DISPLAY"] = args.display
        data = run(args)
        if args.result_file:
            args.result_file.write_text(json.dumps(data))
            return 0
    report(data)
    if args.json:
        args.json.write_text(json.dumps(data, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
