"""Small PNG charts drawn with OpenCV (no plotting library needed at run time).

Each function returns a BGR uint8 image; `save` writes it. Charts are plain on purpose:
title, axes with a few labelled ticks, data, legend.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

WHITE, BLACK, GREY = (255, 255, 255), (0, 0, 0), (200, 200, 200)
PALETTE = [(180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148),
           (75, 86, 140), (194, 119, 227), (127, 127, 127), (34, 189, 188), (207, 190, 23)]
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float = 0.45, colour=BLACK,
          anchor: str = "left") -> None:
    (w, h), _ = cv2.getTextSize(text, FONT, scale, 1)
    x, y = org
    if anchor == "right":
        x -= w
    elif anchor == "centre":
        x -= w // 2
    cv2.putText(img, text, (int(x), int(y + h // 2)), FONT, scale, colour, 1, cv2.LINE_AA)


def _nice_ticks(lo: float, hi: float, n: int = 5) -> np.ndarray:
    if not np.isfinite(lo) or not np.isfinite(hi) or hi <= lo:
        hi = lo + 1.0 if np.isfinite(lo) else 1.0
        lo = lo if np.isfinite(lo) else 0.0
    raw = (hi - lo) / n
    mag = 10 ** np.floor(np.log10(raw))
    step = min((m * mag for m in (1, 2, 5, 10) if m * mag >= raw), default=10 * mag)
    return np.arange(np.ceil(lo / step) * step, hi + 1e-9 * step, step)


class _Axes:
    def __init__(self, size, title, xlabel, ylabel, xlim, ylim, legend_width=0):
        self.w, self.h = size
        self.img = np.full((self.h, self.w, 3), 255, np.uint8)
        self.left, self.right = 70, self.w - 20 - legend_width
        self.top, self.bottom = 40, self.h - 50
        self.xlim, self.ylim = xlim, ylim
        _text(self.img, title, (self.w // 2, 16), 0.55, anchor="centre")
        _text(self.img, xlabel, ((self.left + self.right) // 2, self.h - 14), anchor="centre")
        _text(self.img, ylabel, (8, 26))
        cv2.rectangle(self.img, (self.left, self.top), (self.right, self.bottom), BLACK, 1)

    def x(self, v):
        lo, hi = self.xlim
        return self.left + (np.asarray(v, float) - lo) / max(hi - lo, 1e-12) * (self.right - self.left)

    def y(self, v):
        lo, hi = self.ylim
        return self.bottom - (np.asarray(v, float) - lo) / max(hi - lo, 1e-12) * (self.bottom - self.top)

    def yticks(self, fmt="{:g}"):
        for t in _nice_ticks(*self.ylim):
            y = int(self.y(t))
            cv2.line(self.img, (self.left, y), (self.right, y), GREY, 1)
            _text(self.img, fmt.format(t), (self.left - 6, y), anchor="right")

    def xticks(self, fmt="{:g}"):
        for t in _nice_ticks(*self.xlim):
            x = int(self.x(t))
            cv2.line(self.img, (x, self.bottom), (x, self.bottom + 4), BLACK, 1)
            _text(self.img, fmt.format(t), (x, self.bottom + 14), anchor="centre")

    def legend(self, labels: list[str]):
        for k, label in enumerate(labels):
            y = self.top + 10 + 18 * k
            cv2.line(self.img, (self.right + 10, y), (self.right + 30, y), PALETTE[k % len(PALETTE)], 3)
            _text(self.img, label, (self.right + 36, y), 0.4)


def line_chart(x: np.ndarray, series: dict[str, np.ndarray], title: str, xlabel: str, ylabel: str,
               size: tuple[int, int] = (900, 420)) -> np.ndarray:
    """Lines y(x) per named series (x: (N,), each series (N,), NaN = gap)."""
    values = np.concatenate([np.ravel(v) for v in series.values()]) if series else np.zeros(1)
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    pad = 0.05 * (hi - lo) or 0.5
    longest = max((len(k) for k in series), default=0)
    ax = _Axes(size, title, xlabel, ylabel, (float(np.min(x)), float(np.max(x)) if len(x) > 1 else float(np.min(x)) + 1),
               (lo - pad, hi + pad), legend_width=min(40 + 7 * longest, 260))
    ax.yticks()
    ax.xticks()
    for k, (_, y) in enumerate(series.items()):
        pts = np.stack([ax.x(x), ax.y(y)], -1)
        ok = np.isfinite(pts).all(-1)
        colour = PALETTE[k % len(PALETTE)]
        for a in range(len(pts) - 1):
            if ok[a] and ok[a + 1]:
                cv2.line(ax.img, tuple(np.round(pts[a]).astype(int)), tuple(np.round(pts[a + 1]).astype(int)),
                         colour, 2, cv2.LINE_AA)
    ax.legend(list(series))
    return ax.img


def bar_chart(labels: list[str], values: np.ndarray, title: str, ylabel: str,
              size: tuple[int, int] = (900, 420), fmt: str = "{:.1f}") -> np.ndarray:
    """One bar per label, value printed above it."""
    values = np.asarray(values, float)
    finite = values[np.isfinite(values)]
    hi = float(finite.max()) if finite.size else 1.0
    ax = _Axes(size, title, "", ylabel, (0, len(labels)), (0, hi * 1.15 or 1.0))
    ax.yticks()
    for k, (label, v) in enumerate(zip(labels, values, strict=True)):
        x0, x1 = int(ax.x(k + 0.15)), int(ax.x(k + 0.85))
        if np.isfinite(v):
            cv2.rectangle(ax.img, (x0, int(ax.y(v))), (x1, int(ax.y(0))), PALETTE[0], -1)
            _text(ax.img, fmt.format(v), ((x0 + x1) // 2, int(ax.y(v)) - 9), 0.4, anchor="centre")
        _text(ax.img, label, ((x0 + x1) // 2, ax.bottom + 14), 0.4, anchor="centre")
    return ax.img


def heatmap(matrix: np.ndarray, rows: list[str], columns: list[str], title: str, unit: str,
            vmax: float | None = None, cell: tuple[int, int] = (56, 22)) -> np.ndarray:
    """A (R, K) matrix as coloured cells with their values (NaN cells grey)."""
    matrix = np.asarray(matrix, float)
    R, K = matrix.shape
    left, top = 150, 60
    w, h = left + K * cell[0] + 20, top + R * cell[1] + 40
    img = np.full((h, w, 3), 255, np.uint8)
    _text(img, f"{title} ({unit})", (w // 2, 16), 0.55, anchor="centre")
    finite = matrix[np.isfinite(matrix)]
    vmax = vmax or (float(finite.max()) if finite.size else 1.0)
    scaled = np.clip(np.nan_to_num(matrix / max(vmax, 1e-12)) * 255, 0, 255).astype(np.uint8)
    colours = cv2.applyColorMap(scaled.reshape(-1, 1), cv2.COLORMAP_TURBO).reshape(R, K, 3)
    for k, name in enumerate(columns):
        x = left + k * cell[0] + cell[0] // 2
        _text(img, name, (x, top - 12), 0.35, anchor="centre")
    for r, name in enumerate(rows):
        y0 = top + r * cell[1]
        _text(img, name, (left - 6, y0 + cell[1] // 2), 0.38, anchor="right")
        for k in range(K):
            x0 = left + k * cell[0]
            colour = GREY if not np.isfinite(matrix[r, k]) else tuple(int(c) for c in colours[r, k])
            cv2.rectangle(img, (x0, y0), (x0 + cell[0] - 1, y0 + cell[1] - 1), colour, -1)
            if np.isfinite(matrix[r, k]):
                bright = sum(colour) > 380
                _text(img, f"{matrix[r, k]:.1f}", (x0 + cell[0] // 2, y0 + cell[1] // 2), 0.35,
                      BLACK if bright else WHITE, anchor="centre")
    _text(img, f"colour scale 0 .. {vmax:.0f} {unit}", (left, h - 16), 0.4)
    return img


def save(image: np.ndarray, path: Path) -> Path:
    cv2.imwrite(str(path), image)
    return path
