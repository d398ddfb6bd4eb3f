"""Frame matching in time and resampling at frame-set instants (calibration.timing), and how
`open_take` builds frame sets for cameras at different rates."""

from pathlib import Path

import numpy as np
import pytest

from app.process.inputs import VideoInfo, video_index
from calibration.errors import TriangulumError
from calibration.timing import common_instants, frame_times, match_instants, resample


def test_frame_times_and_bad_rate():
    np.testing.assert_allclose(frame_times(4, 30.0), [0, 1 / 30, 2 / 30, 3 / 30])
    with pytest.raises(TriangulumError, match="frame rate must be positive"):
        frame_times(3, 0.0)


def test_a_30fps_camera_matches_every_other_60fps_instant_once():
    instants = frame_times(10, 60.0)
    j = match_instants(instants, frame_times(5, 30.0), tolerance=0.5 / 60)
    assert j.tolist() == [0, -1, 1, -1, 2, -1, 3, -1, 4, -1]


def test_25fps_beside_30fps_uses_no_frame_twice():
    instants = frame_times(30, 30.0)
    j = match_instants(instants, frame_times(25, 25.0), tolerance=0.5 / 30)
    used = j[j >= 0]
    assert len(used) == len(set(used.tolist()))  # each 25 fps frame in at most one set
    assert 20 <= len(used) <= 25
    hit = j >= 0
    assert np.all(np.abs(frame_times(25, 25.0)[j[hit]] - instants[hit]) < 0.5 / 30)


def test_resample_copies_exact_samples_and_interpolates_between():
    t = np.array([0.0, 0.1, 0.2, 0.5])
    v = np.array([[0.0, 10.0], [1.0, 20.0], [2.0, np.nan], [5.0, 50.0]])
    out = resample(t, v, np.array([0.0, 0.05, 0.1, 0.15, 0.3, 0.6, -0.1]), max_gap=0.15)
    np.testing.assert_allclose(out[0], [0.0, 10.0])
    np.testing.assert_allclose(out[1], [0.5, 15.0])  # halfway
    np.testing.assert_allclose(out[2], [1.0, 20.0])
    assert out[3, 0] == pytest.approx(1.5) and np.isnan(out[3, 1])  # a NaN neighbour stays missing
    assert np.isnan(out[4]).all()  # 0.2 -> 0.5 is longer than max_gap
    assert np.isnan(out[5]).all() and np.isnan(out[6]).all()  # outside the samples


def test_resample_keeps_trailing_shapes():
    t = frame_times(3, 30.0)
    v = np.arange(3 * 4 * 2, dtype=float).reshape(3, 4, 2)
    out = resample(t, v, np.array([0.5 / 30]), max_gap=1.5 / 30)
    np.testing.assert_allclose(out[0], (v[0] + v[1]) / 2)


def test_common_instants_follow_the_fastest_camera_over_the_shared_time():
    instants, ref = common_instants([frame_times(100, 60.0), frame_times(50, 30.0)], [1 / 60, 1 / 30])
    assert ref == 0 and len(instants) == 100
    instants, ref = common_instants([frame_times(100, 60.0), frame_times(40, 30.0)], [1 / 60, 1 / 30])
    assert len(instants) == 80  # the 30 fps video ends at 40/30 s


def _info(camera, frames, fps):
    return VideoInfo(camera, Path(f"{camera}.mp4"), (100, 100), frames, fps)


def test_videos_at_different_rates_are_matched_by_time_not_index():
    warnings: list[str] = []
    index, times, used, fps = video_index([_info("a", 100, 60.0), _info("b", 100, 60.0), _info("c", 50, 30.0)],
                                          warnings)
    assert fps == [60.0, 60.0, 30.0] and len(times) == 100
    np.testing.assert_allclose(times, np.arange(100) / 60)
    assert index[:, 0].tolist() == list(range(100))
    assert index[:6, 2].tolist() == [0, -1, 1, -1, 2, -1]
    np.testing.assert_allclose(used[4, 2], 2 / 30)
    assert np.isnan(used[5, 2])
    assert not warnings  # same duration, nothing cut


def test_a_video_without_a_frame_rate_takes_the_others_with_a_warning():
    warnings: list[str] = []
    _, _, _, fps = video_index([_info("a", 10, 30.0), _info("b", 10, 0.0)], warnings)
    assert fps == [30.0, 30.0] and "does not say its frame rate" in warnings[0]
