"""Temporal filters for joint trajectories: gap filling, zero-phase Butterworth, One Euro.

Offline filters take a whole take ``(F, J, D)`` (frames x joints x coordinates); a joint is
missing in a frame when any of its coordinates is NaN. The One Euro filter is stateful and
runs frame by frame for live use. Each filter has a configuration dataclass; ``describe(config)``
gives the dict to store in output metadata so a file says how it was smoothed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.signal import butter, filtfilt

from calibration.errors import TriangulumError

DEFAULT_CUTOFF_HZ = 6.0
NYQUIST_SHARE = 0.8  # a capped cutoff sits this far up to half the frame rate


@dataclass(frozen=True)
class GapFillConfig:
    """Linear interpolation across missing runs of at most `max_gap` frames."""

    max_gap: int = 10


@dataclass(frozen=True)
class ButterworthConfig:
    """Zero-phase low-pass: an `order` Butterworth run forwards and backwards (filtfilt).

    The double pass squares the magnitude response, so the effective order is 2 x `order` and
    `cutoff_hz` is where the gain is 0.5 (-6 dB), not 1/sqrt(2); None is the default for the
    take's frame rate (`fit_cutoff`).
    """

    cutoff_hz: float | None = None  # None: 6 Hz, capped below half the frame rate (fit_cutoff)
    order: int = 4


@dataclass(frozen=True)
class OneEuroConfig:
    """One Euro filter (Casiez et al., CHI 2012) on each joint's position.

    min_cutoff: cutoff in Hz when the joint is still (lower = smoother, more lag).
    beta: cutoff increase in Hz per m/s of the joint's speed (higher = less lag when moving).
    d_cutoff: cutoff in Hz of the low-pass on the speed estimate.
    """

    min_cutoff: float = 1.0
    beta: float = 2.0
    d_cutoff: float = 1.0


def describe(config: GapFillConfig | ButterworthConfig | OneEuroConfig) -> dict:
    """Metadata record of a filter configuration: {"filter": name, **fields}."""
    names = {GapFillConfig: "gap_fill", ButterworthConfig: "butterworth", OneEuroConfig: "one_euro"}
    return {"filter": names[type(config)], **asdict(config)}


def _check_take(points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 3:
        raise TriangulumError(
            f"A take must be shaped (frames, joints, coordinates), got {points.shape}."
        )
    return points


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of True in a (F,) bool array."""
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))


def fill_gaps(points: np.ndarray, config: GapFillConfig = GapFillConfig()) -> np.ndarray:
    """Linearly interpolate missing joints: (F, J, D) -> (F, J, D).

    Only gaps with a valid frame on both sides and at most `config.max_gap` frames long are
    filled; longer gaps and missing frames at the start or end stay NaN.
    """
    points = _check_take(points)
    if config.max_gap < 0:
        raise TriangulumError(f"max_gap must be zero or more frames, got {config.max_gap}.")
    out = points.copy()
    frames = np.arange(len(points))
    missing = np.isnan(points).any(axis=-1)
    for j in range(points.shape[1]):
        valid = ~missing[:, j]
        if valid.sum() < 2:
            continue
        for start, stop in _runs(missing[:, j]):
            if start == 0 or stop == len(points) or stop - start > config.max_gap:
                continue
            for d in range(points.shape[2]):
                out[start:stop, j, d] = np.interp(
                    frames[start:stop], frames[valid], points[valid, j, d]
                )
    return out


def fit_cutoff(cutoff_hz: float | None, fps: float) -> tuple[float, str | None]:
    """The Butterworth cutoff to use on a take at `fps` -> (Hz, note or None).

    cutoff_hz None: the default 6 Hz, capped at 0.8 x half the frame rate for slow takes
    (a 6 fps take is filtered at 2.4 Hz) with a note saying so. A cutoff the user chose that
    is not under half the frame rate cannot work: TriangulumError, before any work is done.
    """
    if fps <= 0:
        raise TriangulumError(f"Frame rate must be positive, got {fps}.")
    nyquist = fps / 2
    if cutoff_hz is not None:
        if not 0 < cutoff_hz < nyquist:
            raise TriangulumError(f"the Butterworth cutoff {cutoff_hz:g} Hz must lie between 0 and half the frame "
                                  f"rate of this take ({nyquist:g} Hz at {fps:g} fps); choose a lower --cutoff, "
                                  "or leave it out to use the default for this frame rate.")
        return float(cutoff_hz), None
    if DEFAULT_CUTOFF_HZ <= NYQUIST_SHARE * nyquist:
        return DEFAULT_CUTOFF_HZ, None
    capped = round(NYQUIST_SHARE * nyquist, 3)
    return capped, (f"the take runs at {fps:g} fps, so the default {DEFAULT_CUTOFF_HZ:g} Hz low-pass is above half "
                    f"its frame rate; filtering at {capped:g} Hz instead (set --cutoff to choose).")


def butterworth(
    points: np.ndarray, fps: float, config: ButterworthConfig = ButterworthConfig()
) -> np.ndarray:
    """Zero-phase Butterworth low-pass of a take: (F, J, D) -> (F, J, D).

    Each joint's contiguous runs of valid frames are filtered separately, so gaps never leak
    into the signal; runs too short for filtfilt's edge padding (3 x (order + 1) frames or
    fewer) are returned unfiltered, and NaN stays NaN.
    """
    points = _check_take(points)
    if fps <= 0:
        raise TriangulumError(f"Frame rate must be positive, got {fps}.")
    cutoff, _ = fit_cutoff(config.cutoff_hz, fps)
    if config.order < 1:
        raise TriangulumError(f"Butterworth order must be at least 1, got {config.order}.")
    b, a = butter(config.order, cutoff / (fps / 2))
    padlen = 3 * max(len(a), len(b))
    out = points.copy()
    missing = np.isnan(points).any(axis=-1)
    for j in range(points.shape[1]):
        for start, stop in _runs(~missing[:, j]):
            if stop - start > padlen:
                out[start:stop, j] = filtfilt(b, a, points[start:stop, j], axis=0)
    return out


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    """Smoothing factor of a first-order low-pass with the given cutoff (Hz) at step dt (s)."""
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff))
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Stateful One Euro filter for live use, one per person: call it once per frame.

    The adaptive cutoff uses each joint's speed (norm over coordinates), so all coordinates of
    a joint are smoothed alike. A missing joint (NaN) comes out NaN and restarts its filter,
    so it does not glide in from a stale position when it reappears.
    """

    def __init__(self, config: OneEuroConfig = OneEuroConfig()) -> None:
        if config.min_cutoff <= 0 or config.d_cutoff <= 0 or config.beta < 0:
            raise TriangulumError(
                f"One Euro needs min_cutoff > 0, d_cutoff > 0 and beta >= 0; got {config}."
            )
        self.config = config
        self.reset()

    def reset(self) -> None:
        """Forget all state; the next frame passes through unchanged."""
        self._x: np.ndarray | None = None  # (J, D) filtered position
        self._raw: np.ndarray | None = None  # (J, D) previous input
        self._dx: np.ndarray | None = None  # (J, D) filtered velocity
        self._live: np.ndarray | None = None  # (J,) joint has state
        self._t: float | None = None

    def __call__(self, points: np.ndarray, t: float) -> np.ndarray:
        """Filter one frame: (J, D) positions at time `t` seconds -> (J, D)."""
        x = np.asarray(points, dtype=np.float64)
        if x.ndim != 2:
            raise TriangulumError(f"One Euro takes one frame shaped (joints, D), got {x.shape}.")
        if self._x is None or self._x.shape != x.shape:
            if self._x is not None:
                raise TriangulumError(
                    f"One Euro filter got {x.shape} after {self._x.shape}; reset() it first."
                )
            self._x = np.zeros_like(x)
            self._raw = np.zeros_like(x)
            self._dx = np.zeros_like(x)
            self._live = np.zeros(len(x), dtype=bool)
            dt = None
        else:
            dt = t - self._t
            if not dt > 0:
                raise TriangulumError(
                    f"One Euro timestamps must increase; got {t} s after {self._t} s."
                )
        self._t = t
        valid = ~np.isnan(x).any(axis=1)
        fresh = valid & ~self._live
        self._x[fresh] = x[fresh]
        self._dx[fresh] = 0.0
        step = valid & self._live
        if dt is not None and step.any():
            c = self.config
            # Speed from raw samples, as in the authors' code: differencing against the lagging
            # filtered value would overstate a moving joint's speed by lag / dt.
            dx = (x[step] - self._raw[step]) / dt
            self._dx[step] += _alpha(c.d_cutoff, dt) * (dx - self._dx[step])
            speed = np.linalg.norm(self._dx[step], axis=1, keepdims=True)
            a = _alpha(c.min_cutoff + c.beta * speed, dt)
            self._x[step] += a * (x[step] - self._x[step])
        self._raw[valid] = x[valid]
        self._live = valid
        out = self._x.copy()
        out[~valid] = np.nan
        return out


def one_euro(
    points: np.ndarray, times: np.ndarray, config: OneEuroConfig = OneEuroConfig()
) -> np.ndarray:
    """Run a fresh OneEuroFilter over a take: (F, J, D), (F,) seconds -> (F, J, D)."""
    points = _check_take(points)
    times = np.asarray(times, dtype=np.float64)
    if times.shape != (len(points),):
        raise TriangulumError(f"Need one timestamp per frame: {times.shape} for {len(points)}.")
    f = OneEuroFilter(config)
    return np.stack([f(p, float(t)) for p, t in zip(points, times, strict=True)])
