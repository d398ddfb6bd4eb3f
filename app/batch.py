"""Batch processing: every take under a folder, one configuration, in parallel, resumable.

    takes = find_takes(root)                          # sessions, video folders, Pose2Sim trials
    rows = run_batch(takes, BatchConfig(...), jobs=2) # or ray_address="auto" / "local"

A take is
  - a session folder (``manifest.toml``, as `triangulum capture --record` writes it);
  - a folder holding two or more videos and a calibration (a ``*.toml``/``*.qca.txt`` beside them,
    or in a ``calibration/`` folder of an ancestor: Pose2Sim's session/participant/trial layout,
    whose trials keep their videos in ``videos/``).
Each take runs as its own `triangulum process` process (one that crashes or is killed costs only
itself; each uses one thread for the 2D model, so N jobs use N cores). Its outputs go to
``OUT/<the take's path under root>/``; a take whose folder has ``batch_done.json`` from an earlier
run with the same configuration is skipped. The summary (one row per take: status, people,
frames, reprojection p95, seconds, the error in a sentence) is returned and written as
``OUT/batch_summary.csv`` and ``.json`` with the configuration beside it.

On a Ray cluster (`ray_address`: "auto", a head's address, or "local" to start one here) each
take is a Ray task with one CPU; Ray is an optional dependency (``pip install ray``).
"""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import sys
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from calibration.errors import TriangulumError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".mjpeg")
CALIBRATION_GLOBS = ("*.toml", "*.qca.txt", "*.yml", "*.yaml")
SKIP = {"batch-results", "results", "kinematics", "calibration"}


@dataclass(frozen=True)
class TakeSpec:
    """name: the take's path under the root (its output folder's name); inputs: what `process`
    gets (the session folder, or the videos); calib: the calibration (None: the session's)."""

    name: str
    inputs: tuple[Path, ...]
    calib: Path | None


@dataclass(frozen=True)
class BatchConfig:
    """process: `triangulum process` options as in a TOML [process] table (names without the
    dashes, e.g. method = "robust", formats = "trc,csv", frames = "0:50", kinematics = true);
    out: where each take's results go."""

    out: Path
    process: dict = field(default_factory=dict)

    def key(self) -> str:
        """Fingerprint of the processing options (a finished take is redone when they change)."""
        return hashlib.sha1(json.dumps(self.process, sort_keys=True).encode()).hexdigest()[:12]


def read_config(path: Path | None, out: Path) -> BatchConfig:
    """A batch configuration TOML ([process] table), checked against `process`'s options."""
    if path is None:
        return BatchConfig(out)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise TriangulumError(f"Cannot read the batch configuration {path}: {exc}.") from None
    options = data.get("process", {})
    known = _process_options()
    unknown = sorted(set(options) - known)
    if unknown:
        raise TriangulumError(f"{path}: [process] has unknown option(s) {', '.join(unknown)}; use the names of "
                              "`triangulum process --help` without the dashes (e.g. max_gap = 5).")
    for bad in ("output", "inputs", "calib", "keypoints"):
        if bad in options:
            raise TriangulumError(f"{path}: {bad} is set per take by the batch; leave it out of [process].")
    return BatchConfig(out, dict(options))


def _process_options() -> set[str]:
    from app.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return {a.dest for a in sub.choices["process"]._actions if a.dest != "help"}


def _calibration_near(folder: Path, root: Path) -> Path | None:
    """A calibration in the folder, else in a calibration/ folder of it or an ancestor up to root."""
    for place in [folder, *folder.parents]:
        for where in (place, place / "calibration"):
            if where.is_dir():
                found = sorted(p for g in CALIBRATION_GLOBS for p in where.glob(g) if p.name != "manifest.toml")
                if found:
                    return found[0]
        if place == root:
            break
    return None


def find_takes(root: Path) -> list[TakeSpec]:
    """Every take under root (module docstring), sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise TriangulumError(f"{root} is not a folder; give the folder that holds the takes.")
    takes: list[TakeSpec] = []

    def visit(folder: Path) -> None:
        if folder.name in SKIP and folder != root:
            return
        if (folder / "manifest.toml").is_file():
            takes.append(TakeSpec(_name(folder, root), (folder,), None))
            return
        videos = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
        if len(videos) >= 2:
            calib = _calibration_near(folder, root)
            take_dir = folder.parent if folder.name == "videos" else folder
            takes.append(TakeSpec(_name(take_dir, root), tuple(videos), calib))
        for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
            visit(sub)

    visit(root)
    return sorted(takes, key=lambda t: t.name)


def _name(folder: Path, root: Path) -> str:
    rel = folder.relative_to(root).as_posix()
    return rel if rel != "." else folder.name


def process_argv(take: TakeSpec, config: BatchConfig) -> list[str]:
    """The `triangulum process` command line for one take."""
    argv = [str(p) for p in take.inputs] + ["-o", str(config.out / take.name)]
    if take.calib is not None:
        argv += ["--calib", str(take.calib)]
    for key, value in config.process.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value is False or value is None:
            continue
        else:
            argv += [flag, str(value)]
    return argv


def run_take(take: TakeSpec, config: BatchConfig) -> dict:
    """Process one take in its own process -> its summary row (never raises for the take's own
    failure: that is the row's status and error)."""
    out = config.out / take.name
    done = out / "batch_done.json"
    if done.is_file():
        try:
            previous = json.loads(done.read_text(encoding="utf-8"))
            if previous.get("config") == config.key():
                return {**previous["row"], "status": "skipped (done before)"}
        except (OSError, ValueError, KeyError):
            pass
    t0 = time.perf_counter()
    if take.calib is None and not (take.inputs[0] / "manifest.toml").is_file():
        return _row(take, "failed", time.perf_counter() - t0,
                    error="no calibration found beside the videos or in a calibration/ folder above them")
    run = subprocess.run([sys.executable, "-m", "app.cli", "process", *process_argv(take, config), "--threads", "1"],
                         capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    seconds = time.perf_counter() - t0
    errors = [line[len("error: "):] for line in run.stderr.splitlines() if line.startswith("error: ")]
    if run.returncode not in (0, 3):
        tail = errors[-1] if errors else (run.stderr.strip().splitlines() or [f"exit code {run.returncode}"])[-1]
        return _row(take, "failed", seconds, error=tail)
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    people = report.get("people", [])
    row = _row(take, "ok" if run.returncode == 0 else "nobody reconstructed", seconds,
               frames=report.get("frames"), people=len(people),
               reprojection_p95_px=max((p["reprojection_px"]["p95"] for p in people), default=None),
               error=errors[-1] if errors else "")
    done.write_text(json.dumps({"config": config.key(), "row": row}), encoding="utf-8")
    return row


def _row(take: TakeSpec, status: str, seconds: float, **values) -> dict:
    return {"take": take.name, "status": status, "frames": values.get("frames"), "people": values.get("people"),
            "reprojection_p95_px": values.get("reprojection_p95_px"), "seconds": round(seconds, 1),
            "error": values.get("error", "")}


def run_batch(takes: list[TakeSpec], config: BatchConfig, jobs: int = 1, ray_address: str | None = None,
              progress=None) -> list[dict]:
    """Run every take (in parallel: `jobs` processes here, or Ray tasks) -> summary rows in
    take order; writes the summary and the configuration into config.out."""
    if not takes:
        raise TriangulumError("no takes found (session folders, or folders with two or more videos and a "
                              "calibration); check the folder.")
    config.out.mkdir(parents=True, exist_ok=True)
    if ray_address is not None:
        rows = _run_ray(takes, config, ray_address, progress)
    else:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:  # each task waits on its own process
            futures = [pool.submit(run_take, t, config) for t in takes]
            rows = []
            for f in futures:
                rows.append(f.result())
                if progress is not None:
                    progress(len(rows), len(takes))
    write_summary(rows, config)
    return rows


def _run_ray(takes: list[TakeSpec], config: BatchConfig, address: str, progress) -> list[dict]:
    try:
        import ray
    except ImportError:
        raise TriangulumError("--ray needs Ray: pip install ray.") from None
    started = not ray.is_initialized()
    if started:
        ray.init(address=None if address == "local" else address, include_dashboard=False,
                 log_to_driver=False, ignore_reinit_error=True)
    try:
        task = ray.remote(num_cpus=1)(run_take)
        pending = [task.remote(t, config) for t in takes]
        rows = []
        for ref in pending:
            rows.append(ray.get(ref))
            if progress is not None:
                progress(len(rows), len(takes))
        return rows
    finally:
        if started:
            ray.shutdown()


def write_summary(rows: list[dict], config: BatchConfig) -> tuple[Path, Path]:
    """batch_summary.csv and .json (with the configuration) in config.out."""
    csv_path, json_path = config.out / "batch_summary.csv", config.out / "batch_summary.json"
    with csv_path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    json_path.write_text(json.dumps({"process": config.process, "takes": rows}, indent=2), encoding="utf-8")
    return csv_path, json_path


def summary_table(rows: list[dict]) -> str:
    """The summary as a plain table for the console."""
    lines = [f"{'take':30s} {'status':22s} {'frames':>6s} {'people':>6s} {'p95 px':>7s} {'s':>6s}  error"]
    for r in rows:
        p95 = f"{r['reprojection_p95_px']:.1f}" if r["reprojection_p95_px"] is not None else "-"
        lines.append(f"{r['take'][:30]:30s} {r['status'][:22]:22s} {r['frames'] or '-':>6} {r['people'] or 0:>6} "
                     f"{p95:>7s} {r['seconds']:>6.1f}  {r['error']}")
    ok = sum(r["status"] in ("ok", "skipped (done before)") for r in rows)
    lines.append(f"{ok} of {len(rows)} takes processed" + (f"; {len(rows) - ok} need attention." if ok < len(rows) else "."))
    return "\n".join(lines)
