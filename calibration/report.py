"""Calibration quality report: per-camera and per-pair errors, shared views, the rig in 3D.

    report = build_report(rig, tracks, track_frame, errors=..., warnings=...)
    save_report(report, rig, "rig.toml", points)   # rig.report.json + rig.report.png

Tracks are image observations of the same 3D point in several cameras (a board
corner at one instant, a joint at one frame): points (C, N, 2) with NaN where a
camera did not see it. Per-camera errors are those of the final adjustment when
given, else reprojection errors of a DLT triangulation over all cameras. Per-pair
errors triangulate each point from the two cameras alone and reproject into both:
a pair that disagrees with itself stands out even if the others hide it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from calibration.camera import Camera
from calibration.rig import Rig


@dataclass
class QualityReport:
    """cameras: names; per_camera: {name: {rms, median, p95, count}} px; pairs: one dict per
    camera pair {a, b, shared_views, points, rms, median}; shared: (C, C) instants seen by
    both; warnings: advice; extra: step-specific figures (intrinsic uncertainties...)."""

    cameras: list[str]
    per_camera: dict[str, dict[str, float]]
    pairs: list[dict[str, Any]]
    shared: list[list[int]]
    warnings: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))

    def summary(self) -> str:
        lines = ["per camera:"]
        lines += [f"  {n}: RMS {v['rms']:.3f} px, median {v['median']:.3f} px ({int(v['count'])} points)" for n, v in self.per_camera.items()]
        lines.append("per pair (two-view triangulation):")
        lines += [f"  {p['a']}-{p['b']}: {p['shared_views']} shared views, RMS {p['rms']:.3f} px" for p in self.pairs]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def jsonable(x: Any) -> Any:
    """Numpy values and NaN made JSON-safe (NaN -> null), recursively."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (np.floating, float)):
        return None if not np.isfinite(x) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


def _stats(e: np.ndarray) -> dict[str, float]:
    e = e[np.isfinite(e)]
    if e.size == 0:
        return {"rms": float("nan"), "median": float("nan"), "p95": float("nan"), "count": 0}
    return {"rms": float(np.sqrt(np.mean(e**2))), "median": float(np.median(e)), "p95": float(np.percentile(e, 95)), "count": int(e.size)}


def build_report(
    rig: Rig,
    tracks: np.ndarray,
    track_frame: np.ndarray,
    errors: dict[str, np.ndarray] | None = None,
    warnings: list[str] | None = None,
    extra: dict[str, Any] | None = None,
) -> QualityReport:
    """Figures of a calibrated rig on its calibration data.

    tracks: (C, N, 2) px, NaN where unseen; track_frame: (N,) instant of each track;
    errors: {camera: (M,) px} from the final adjustment, or None to triangulate.
    """
    tracks = np.asarray(tracks, np.float64)
    seen = np.isfinite(tracks).all(-1)  # (C, N)
    names = rig.names
    C = len(names)
    if errors is None:
        X = rig.triangulate(tracks)
        err = rig.reprojection_error(X, tracks)
        errors = {n: err[c][seen[c]] for c, n in enumerate(names)}
    per_camera = {n: _stats(np.asarray(errors.get(n, np.array([])), np.float64)) for n in names}
    frames = [set(np.asarray(track_frame)[seen[c]].tolist()) for c in range(C)]
    shared = [[len(frames[i] & frames[j]) for j in range(C)] for i in range(C)]
    pairs = []
    for i in range(C):
        for j in range(i + 1, C):
            both = seen[i] & seen[j]
            entry: dict[str, Any] = {"a": names[i], "b": names[j], "shared_views": shared[i][j], "points": int(both.sum())}
            if both.sum() > 0:
                sub = rig.subset([names[i], names[j]])
                x = tracks[[i, j]][:, both]
                e = sub.reprojection_error(sub.triangulate(x), x).ravel()
                s = _stats(e)
                entry |= {"rms": s["rms"], "median": s["median"]}
            else:
                entry |= {"rms": float("nan"), "median": float("nan")}
            pairs.append(entry)
    return QualityReport(names, per_camera, pairs, shared, list(warnings or []), dict(extra or {}))


# --- drawing ------------------------------------------------------------------------
def _up_vector(rig: Rig) -> np.ndarray:
    """World up: Z when the rig says so, else opposite to the cameras' mean image-down axis."""
    if str(rig.metadata.get("world", "")).lower().startswith("z-up"):
        return np.array([0.0, 0.0, 1.0])
    down = np.mean([c.R[1] for c in rig.cameras], 0)
    n = np.linalg.norm(down)
    return -down / n if n > 1e-9 else np.array([0.0, 0.0, 1.0])


def viewer_camera(rig: Rig, points: np.ndarray | None, size: tuple[int, int]) -> Camera:
    """A virtual camera looking at the rig from above and behind it, everything in view."""
    centres = np.stack([c.center for c in rig.cameras])
    cloud = centres if points is None or not np.isfinite(points).any() else np.concatenate([centres, points[np.isfinite(points).all(-1)]])
    target = 0.5 * (cloud.min(0) + cloud.max(0))
    radius = float(np.max(np.linalg.norm(cloud - target, axis=1))) + 0.3
    up = _up_vector(rig)
    side = np.cross(up, [1.0, 0.0, 0.0] if abs(up[0]) < 0.9 else [0.0, 1.0, 0.0])
    side /= np.linalg.norm(side)
    fwd_flat = np.cross(side, up)
    view_dir = np.cos(np.radians(40)) * (0.8 * fwd_flat + 0.6 * side) - np.sin(np.radians(40)) * up
    view_dir /= np.linalg.norm(view_dir)
    W, H = size
    f = 0.9 * min(W, H)
    dist = radius * f / (0.5 * min(W, H) * 0.85)
    eye = target - view_dir * dist
    z = view_dir
    x = np.cross(z, -up)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])
    K = np.array([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]])
    return Camera("viewer", (W, H), K, np.zeros(5), R, -R @ eye)


def _line(img: np.ndarray, a: np.ndarray, b: np.ndarray, color, thickness: int = 1) -> None:
    if np.isfinite(a).all() and np.isfinite(b).all() and np.abs(np.concatenate([a, b])).max() < 1e5:
        cv2.line(img, tuple(int(round(v)) for v in a), tuple(int(round(v)) for v in b), color, thickness, cv2.LINE_AA)


def draw_rig(rig: Rig, points: np.ndarray | None = None, size: tuple[int, int] = (900, 700)) -> np.ndarray:
    """The rig as a 3D line drawing: world axes, camera frusta with names, the points.

    points: (P, 3) world points (board corners, joints) or None -> BGR image (H, W, 3)
    """
    W, H = size
    img = np.full((H, W, 3), 255, np.uint8)
    view = viewer_camera(rig, points, size)
    centres = np.stack([c.center for c in rig.cameras])
    span = float(np.ptp(centres, axis=0).max()) if len(centres) > 1 else 1.0
    if points is not None:
        P = points[np.isfinite(points).all(-1)]
        if len(P) > 4000:
            P = P[np.random.default_rng(0).choice(len(P), 4000, replace=False)]
        for x in view.project(P):
            if np.isfinite(x).all():
                cv2.circle(img, (int(x[0]), int(x[1])), 1, (150, 150, 150), -1)
    axis_len = 0.15 * span
    o = view.project(np.zeros(3))
    for k, color in enumerate([(0, 0, 220), (0, 160, 0), (220, 0, 0)]):
        e = np.zeros(3)
        e[k] = axis_len
        _line(img, o, view.project(e), color, 2)
    depth = 0.12 * span
    for cam in rig.cameras:
        w, h = cam.size
        corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
        und = cam.undistort_pixels(corners) if np.any(cam.dist) else corners
        rays = np.linalg.inv(cam.K) @ np.concatenate([und, np.ones((4, 1))], 1).T  # (3, 4)
        pts_c = (rays / rays[2]) * depth
        world = (cam.R.T @ (pts_c - cam.t[:, None])).T
        c2 = view.project(cam.center)
        base = view.project(world)
        for k in range(4):
            _line(img, c2, base[k], (60, 60, 60))
            _line(img, base[k], base[(k + 1) % 4], (60, 60, 60))
        _line(img, base[0], base[1], (0, 0, 200), 2)  # top edge of the image
        if np.isfinite(c2).all():
            cv2.putText(img, cam.name, (int(c2[0]) + 5, int(c2[1]) - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def _pair_matrix(report: QualityReport, size: int = 420) -> np.ndarray:
    """Shared views above the diagonal, two-view RMS (px) below; red = no shared views."""
    C = len(report.cameras)
    cell = size // (C + 1)
    img = np.full((cell * (C + 1), cell * (C + 1), 3), 255, np.uint8)
    rms = {(p["a"], p["b"]): p["rms"] for p in report.pairs}
    font = cv2.FONT_HERSHEY_SIMPLEX
    for i, n in enumerate(report.cameras):
        cv2.putText(img, n[:8], (cell * (i + 1) + 4, cell // 2), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(img, n[:8], (4, cell * (i + 1) + cell // 2), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        for j, m in enumerate(report.cameras):
            x0, y0 = cell * (j + 1), cell * (i + 1)
            k = report.shared[i][j]
            if i == j:
                color, text = (230, 230, 230), str(k)
            elif j > i:
                color = (80, 80, 230) if k == 0 else (80, 200, 255) if k < 10 else (120, 220, 120)
                text = str(k)
            else:
                r = rms.get((m, n), float("nan"))
                color = (245, 245, 245)
                text = "-" if not np.isfinite(r) else f"{r:.2f}"
            cv2.rectangle(img, (x0, y0), (x0 + cell - 2, y0 + cell - 2), color, -1)
            cv2.putText(img, text, (x0 + 6, y0 + cell // 2 + 5), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def render_report(report: QualityReport, rig: Rig, points: np.ndarray | None = None) -> np.ndarray:
    """One PNG-able page: the rig in 3D on the left, pair matrix and per-camera errors right."""
    left = draw_rig(rig, points, (900, 700))
    right = np.full((700, 460, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(right, "shared views (upper) / pair RMS px (lower)", (10, 20), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    mat = _pair_matrix(report, 420)
    right[30 : 30 + mat.shape[0], 10 : 10 + mat.shape[1]] = mat
    y = 60 + mat.shape[0]
    for n, s in report.per_camera.items():
        cv2.putText(right, f"{n}: RMS {s['rms']:.2f} px  median {s['median']:.2f}  n={int(s['count'])}", (10, y), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        y += 20
    for w in report.warnings[:6]:
        cv2.putText(right, w[:70], (10, y), font, 0.38, (0, 0, 180), 1, cv2.LINE_AA)
        y += 16
    return np.concatenate([left, right], 1)


def report_paths(rig_path: str | Path) -> tuple[Path, Path]:
    """Where the report of a rig file goes: rig.report.json and rig.report.png beside it."""
    rig_path = Path(rig_path)
    stem = rig_path.with_suffix("")
    return stem.with_name(stem.name + ".report.json"), stem.with_name(stem.name + ".report.png")


def save_report(report: QualityReport, rig: Rig, rig_path: str | Path, points: np.ndarray | None = None) -> tuple[Path, Path]:
    """Write the JSON and the PNG next to the rig TOML. -> (json path, png path)"""
    js, png = report_paths(rig_path)
    js.parent.mkdir(parents=True, exist_ok=True)
    js.write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")
    cv2.imwrite(str(png), render_report(report, rig, points))
    return js, png
