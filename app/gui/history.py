"""Time series kept for the metrics plots: bounded, so a long session uses constant memory."""

from __future__ import annotations

import math
from collections import deque

import numpy as np


class History:
    """Named series of (time s, value) samples, each keeping its newest `length` samples."""

    def __init__(self, length: int = 600) -> None:
        self.length = length
        self._series: dict[str, deque[tuple[float, float]]] = {}

    def add(self, name: str, t: float, value: float) -> None:
        if value is None or not math.isfinite(value):
            return
        self._series.setdefault(name, deque(maxlen=self.length)).append((float(t), float(value)))

    def names(self, prefix: str = "") -> list[str]:
        return [n for n in self._series if n.startswith(prefix)]

    def series(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(times (N,), values (N,)) of a series; empty arrays if it has no samples."""
        samples = self._series.get(name)
        if not samples:
            return np.zeros(0), np.zeros(0)
        data = np.array(samples, np.float64)
        return data[:, 0], data[:, 1]

    def last(self, name: str) -> float:
        samples = self._series.get(name)
        return samples[-1][1] if samples else math.nan

    def clear(self) -> None:
        self._series.clear()


def event_rate(times: np.ndarray | list[float], now: float, window: float = 3.0) -> float:
    """Events per second among event times (s) within `window` s before `now`; 0 if under 2."""
    t = np.asarray(times, np.float64)
    t = t[(t <= now) & (now - t <= window)]
    if len(t) < 2 or t[-1] <= t[0]:
        return 0.0
    return (len(t) - 1) / (t[-1] - t[0])
