"""Temporal filters: gap filling, zero-phase Butterworth, One Euro."""

import math

import numpy as np
import pytest

from calibration.errors import TriangulumError
from engines.temporal import (
    ButterworthConfig,
    GapFillConfig,
    OneEuroConfig,
    OneEuroFilter,
    butterworth,
    describe,
    fill_gaps,
    one_euro,
)

FPS = 60.0


def _amplitude(signal, t, freq):
    """Least-squares amplitude and phase (rad) of a sinusoid of `freq` in `signal`."""
    basis = np.stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t)], axis=1)
    (s, c), *_ = np.linalg.lstsq(basis, signal, rcond=None)
    return math.hypot(s, c), math.atan2(c, s)


def test_fill_gaps_short_long_and_edges():
    x = np.arange(30, dtype=float)
    pts = np.stack([x, 2 * x, -x], axis=1)[:, None, :].repeat(2, axis=1)  # (30, 2, 3), linear
    holed = pts.copy()
    holed[0:2, 0] = np.nan  # leading: no left neighbour
    holed[5:8, 0] = np.nan  # 3 frames: filled
    holed[12:20, 0] = np.nan  # 8 frames: too long for max_gap=5
    holed[25, 0, 1] = np.nan  # one coordinate missing makes the joint missing
    holed[29, 1] = np.nan  # trailing
    out = fill_gaps(holed, GapFillConfig(max_gap=5))
    assert np.isnan(out[0:2, 0]).all()
    assert np.allclose(out[5:8, 0], pts[5:8, 0])
    assert np.isnan(out[12:20, 0]).all()
    assert np.allclose(out[25, 0], pts[25, 0])
    assert np.isnan(out[29, 1]).all()
    assert np.allclose(out[:29, 1], pts[:29, 1])
    assert np.isnan(holed[5, 0, 0])  # input untouched
    assert not np.isnan(fill_gaps(holed, GapFillConfig(max_gap=8))[12:20, 0]).any()


def test_butterworth_keeps_slow_removes_fast():
    t = np.arange(600) / FPS
    slow, fast = np.sin(2 * np.pi * 1.0 * t), 0.3 * np.sin(2 * np.pi * 20.0 * t)
    pts = np.zeros((len(t), 1, 3))
    pts[:, 0, 0] = slow + fast
    cfg = ButterworthConfig(cutoff_hz=6.0, order=4)
    out = butterworth(pts, FPS, cfg)[:, 0, 0]
    mid = slice(60, -60)  # away from the edges
    a_slow, ph_slow = _amplitude(out[mid], t[mid], 1.0)
    a_fast, _ = _amplitude(out[mid], t[mid], 20.0)
    # analytic gain of the double pass: 1 / (1 + (f/fc)^(2n))
    assert a_slow == pytest.approx(1.0 / (1 + (1 / 6) ** 8), abs=2e-3)
    assert abs(ph_slow) < 1e-3  # zero phase: no lag
    assert a_fast / 0.3 < 1e-3
    assert a_fast / 0.3 == pytest.approx(1.0 / (1 + (20 / 6) ** 8), abs=2e-4)
    # at the cutoff the double pass halves the amplitude
    at_fc = butterworth(np.sin(2 * np.pi * 6.0 * t)[:, None, None], FPS, cfg)[:, 0, 0]
    assert _amplitude(at_fc[mid], t[mid], 6.0)[0] == pytest.approx(0.5, abs=0.02)


def test_butterworth_runs_between_gaps():
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(200, 2, 3))
    pts[100:103, 0] = np.nan
    pts[190:, 1] = np.nan
    pts[180, 1] = np.nan  # leaves a 9-frame run 181..189, shorter than the padding
    out = butterworth(pts, FPS, ButterworthConfig(cutoff_hz=5.0, order=2))
    assert np.isnan(out[100:103, 0]).all() and np.isnan(out[190:, 1]).all()
    assert np.array_equal(out[181:190, 1], pts[181:190, 1])
    first = butterworth(pts[:100, :1], FPS, ButterworthConfig(cutoff_hz=5.0, order=2))
    assert np.allclose(out[:100, :1], first)  # the gap does not leak across runs
    assert out[:100, 0].std() < 0.6 * pts[:100, 0].std()


def test_butterworth_bad_cutoff():
    with pytest.raises(TriangulumError, match="half the frame rate"):
        butterworth(np.zeros((50, 1, 3)), 10.0, ButterworthConfig(cutoff_hz=6.0))
    with pytest.raises(TriangulumError, match="frames, joints"):
        butterworth(np.zeros((50, 3)), 60.0)


def _ramp_lag(beta):
    f = OneEuroFilter(OneEuroConfig(min_cutoff=1.0, beta=beta, d_cutoff=1.0))
    out = None
    for i in range(600):
        t = i / FPS
        out = f(np.array([[t * 1.0, 0.0, 0.0]]), t)  # 1 m/s along x
    return t - out[0, 0]


def test_one_euro_ramp_lag_matches_theory():
    # steady state of a first-order low-pass on a ramp: lag = v * tau = v / (2 pi fc),
    # fc = min_cutoff + beta * v once the speed estimate has converged to v
    assert _ramp_lag(0.0) == pytest.approx(1 / (2 * np.pi * 1.0), rel=1e-3)
    assert _ramp_lag(2.0) == pytest.approx(1 / (2 * np.pi * 3.0), rel=1e-3)


def test_one_euro_reduces_jitter_on_still_joint():
    rng = np.random.default_rng(1)
    noisy = 0.005 * rng.normal(size=(300, 4, 3))
    times = np.arange(300) / FPS
    out = one_euro(noisy, times, OneEuroConfig(min_cutoff=1.0, beta=0.5))
    # still joint: cutoff ~1 Hz at 60 fps, noise std drops several-fold
    assert out[60:].std() < 0.35 * noisy[60:].std()
    # with a very high beta the noise itself opens the filter
    loose = one_euro(noisy, times, OneEuroConfig(min_cutoff=1.0, beta=500.0))
    assert loose[60:].std() > out[60:].std()


def test_one_euro_missing_joint_restarts_and_time_must_increase():
    f = OneEuroFilter(OneEuroConfig(min_cutoff=0.5, beta=0.0))
    a = f(np.array([[0.0, 0.0], [1.0, 1.0]]), 0.0)
    assert np.array_equal(a, [[0.0, 0.0], [1.0, 1.0]])  # first frame passes through
    b = f(np.array([[1.0, 0.0], [np.nan, 1.0]]), 0.1)
    assert 0.0 < b[0, 0] < 1.0 and np.isnan(b[1]).all()
    c = f(np.array([[1.0, 0.0], [5.0, 5.0]]), 0.2)
    assert np.array_equal(c[1], [5.0, 5.0])  # restarted, not pulled toward (1, 1)
    with pytest.raises(TriangulumError, match="increase"):
        f(np.zeros((2, 2)), 0.2)
    with pytest.raises(TriangulumError, match="reset"):
        f(np.zeros((3, 2)), 0.3)
    f.reset()
    assert np.array_equal(f(np.ones((3, 2)), 0.0), np.ones((3, 2)))


def test_describe_for_metadata():
    assert describe(ButterworthConfig(cutoff_hz=4.0, order=2)) == {
        "filter": "butterworth",
        "cutoff_hz": 4.0,
        "order": 2,
    }
    assert describe(OneEuroConfig())["filter"] == "one_euro"
    assert describe(GapFillConfig(max_gap=3)) == {"filter": "gap_fill", "max_gap": 3}
