"""Matching frames in time and resampling per-camera signals at common instants.

    instants = frame_times(frames=100, fps=60.0)                    # (100,) s from the start
    index = match_instants(instants, cam_times, tolerance=0.5 / 60)  # (F,) frame of the camera, -1
    kp = resample(cam_times, cam_keypoints, instants, max_gap=1.5 / 30)   # (F, J, 2), NaN outside

Cameras that run at different rates (a 30 fps webcam beside 60 fps ones, 25 beside 30) or
that were not triggered together are put on one timeline here: frame sets are the fastest
camera's instants, every camera contributes the frame nearest each instant when it lies within
`tolerance` (half the fastest frame period: no frame is used twice), and a per-camera signal
(a view's 2D) is brought to the exact instants by linear interpolation between the camera's
neighbouring frames. Post-hoc sync (a fractional time offset) is the same `resample` with
shifted source times. Pure numpy, no video reading: the take readers call these.
"""

from __future__ import annotations

import numpy as np

from calibration.errors import TriangulumError

_SAME_TIME_S = 1e-6  # a frame this close to an instant is that instant (no interpolation)


def frame_times(frames: int, fps: float, start: float = 0.0) -> np.ndarray:
    """Capture times of frames 0..frames-1 of a constant-rate video -> (frames,) s."""
    if fps <= 0:
        raise TriangulumError(f"a frame rate must be positive, got {fps:g} fps.")
    return start + np.arange(int(frames)) / float(fps)


def match_instants(instants: np.ndarray, times: np.ndarray, tolerance: float) -> np.ndarray:
    """For each instant the index of the nearest of `times` if within `tolerance`, else -1.

    instants: (F,) s, times: (N,) s increasing (one camera's frames) -> (F,) int64.
    """
    instants, times = np.asarray(instants, float), np.asarray(times, float)
    out = np.full(len(instants), -1, np.int64)
    if len(times) == 0 or len(instants) == 0:
        return out
    after = np.searchsorted(times, instants)
    lo, hi = np.clip(after - 1, 0, len(times) - 1), np.clip(after, 0, len(times) - 1)
    j = np.where(np.abs(times[lo] - instants) <= np.abs(times[hi] - instants), lo, hi)
    ok = np.abs(times[j] - instants) < tolerance
    out[ok] = j[ok]
    return out


def resample(times: np.ndarray, values: np.ndarray, instants: np.ndarray, max_gap: float) -> np.ndarray:
    """A signal sampled at `times` evaluated at `instants` by linear interpolation.

    times: (N,) s increasing; values: (N, ...) with NaN where a sample is missing;
    instants: (F,) s; max_gap: the longest span between two samples to interpolate across
    (e.g. 1.5 frame periods of the camera: its own frame spacing, but never a dropped frame or
    an occlusion) -> (F, ...). An instant at a sample's time takes it as it is; an instant
    outside the samples, across a longer gap, or next to a missing (NaN) sample is NaN, element
    by element.
    """
    times, values, instants = np.asarray(times, float), np.asarray(values, float), np.asarray(instants, float)
    if len(times) != len(values):
        raise TriangulumError(f"resample: {len(times)} times for {len(values)} samples.")
    out = np.full((len(instants), *values.shape[1:]), np.nan)
    if len(times) == 0:
        return out
    hi = np.searchsorted(times, instants)  # first sample at or after each instant
    lo = hi - 1
    exact_hi = (hi < len(times)) & (np.abs(times[np.minimum(hi, len(times) - 1)] - instants) <= _SAME_TIME_S)
    exact_lo = (lo >= 0) & (np.abs(times[np.maximum(lo, 0)] - instants) <= _SAME_TIME_S)
    inside = (lo >= 0) & (hi < len(times))
    lo_c, hi_c = np.clip(lo, 0, len(times) - 1), np.clip(hi, 0, len(times) - 1)
    span = times[hi_c] - times[lo_c]
    between = inside & ~exact_hi & ~exact_lo & (span <= max_gap) & (span > 0)
    shape = (-1,) + (1,) * (values.ndim - 1)
    alpha = np.where(between, (instants - times[lo_c]) / np.where(span > 0, span, 1.0), 0.0).reshape(shape)
    mixed = (1 - alpha) * values[lo_c] + alpha * values[hi_c]
    out[between] = mixed[between]
    out[exact_lo] = values[lo_c][exact_lo]
    out[exact_hi] = values[hi_c][exact_hi]
    return out


def common_instants(camera_times: list[np.ndarray], periods: list[float]) -> tuple[np.ndarray, int]:
    """Frame-set instants for cameras with these frame times: the fastest camera's frames that
    lie within every camera's recording (its first frame to its last frame plus one period).

    camera_times: per camera (N_c,) s; periods: per camera frame period s ->
    (instants (F,), index of the camera that sets them).
    """
    ref = int(np.argmin(periods))
    start = max(float(t[0]) for t in camera_times if len(t))
    end = min(float(t[-1]) + p for t, p in zip(camera_times, periods, strict=True) if len(t))
    ref_times = camera_times[ref]
    eps = _SAME_TIME_S
    keep = (ref_times >= start - periods[ref] / 2) & (ref_times < end - eps)
    return ref_times[keep], ref
