"""SyncBuffer: property tests under jitter, drift, missing frames and unequal frame rates,
and the real per-camera capture times of the caliscope recording."""

from __future__ import annotations

import csv
import threading
from collections import defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shared_data import TEST_DATA

from app.capture.frames import Frame, FrameSet
from app.capture.sync import SyncBuffer, default_tolerance

DATA = TEST_DATA
CALISCOPE = DATA / "caliscope-charuco-4cam" / "extrinsic"
PIXEL = np.zeros((1, 1, 3), np.uint8)


class SimClock:
    """Simulated capture clock: the time the driver says it is."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def make_frames(times: dict[str, list[float]], delays: dict[str, float] | None = None) -> list[tuple[float, Frame]]:
    """(arrival time, Frame) for every frame, in arrival order; a camera's frames keep their order."""
    out = []
    for cam, ts in times.items():
        for i, t in enumerate(ts):
            out.append((t + (delays or {}).get(cam, 0.0), Frame(cam, i, t, t, PIXEL)))
    out.sort(key=lambda x: (x[0], x[1].camera))
    return out


def run_lockstep(sync: SyncBuffer, arrivals: list[tuple[float, Frame]], clock: SimClock) -> list[FrameSet]:
    """Grabber threads simulated in arrival order: a camera whose queue is full waits (as
    push would) while the others go on; the consumer takes a set when nobody can push."""
    sets = []
    waiting = {c: [a for a in arrivals if a[1].camera == c] for c in sync.cameras}
    for cam, w in waiting.items():
        if not w:
            sync.end(cam)
    while any(waiting.values()):
        free = [w[0] for c, w in waiting.items() if w and (len(sync._queues[c]) < sync.depth or sync.finished)]
        if not free:
            fs = sync.get(timeout=0)
            if fs is not None:
                sets.append(fs)
            else:  # unmatched frames were dropped: some producer must be able to go on
                assert any(w and len(sync._queues[c]) < sync.depth for c, w in waiting.items()), "lock-step stalled"
            continue
        t, frame = min(free, key=lambda a: (a[0], a[1].camera))
        waiting[frame.camera].pop(0)
        clock.t = t
        sync.push(frame)
        if not waiting[frame.camera]:
            sync.end(frame.camera)  # as its grabber does at the end of the source
    for cam in sync.cameras:
        sync.end(cam)
    while (fs := sync.get(timeout=0)) is not None:
        sets.append(fs)
    assert sync.finished
    return sets


def run_live(sync: SyncBuffer, arrivals: list[tuple[float, Frame]], clock: SimClock, every: int = 1) -> list[tuple[int, FrameSet]]:
    """Push in arrival order; the consumer looks for a set after every `every` pushes.
    Returns (number of frames pushed so far, set) pairs."""
    sets = []
    for n, (t, frame) in enumerate(arrivals, start=1):
        clock.t = t
        sync.push(frame)
        if n % every == 0 and (fs := sync.get(timeout=0)) is not None:
            sets.append((n, fs))
    return sets


def check_invariants(sync: SyncBuffer, sets: list[FrameSet], total: dict[str, int]) -> None:
    """Within tolerance, no frame twice, time order per camera, and every frame accounted for."""
    used = defaultdict(list)
    for fs in sets:
        assert fs.skew <= sync.tolerance + 1e-12
        for f in fs.frames:
            used[f.camera].append(f.index)
    stats = sync.stats()
    for cam in sync.cameras:
        assert used[cam] == sorted(set(used[cam])), f"{cam}: frames reused or out of order"
        assert stats.received[cam] == total[cam]
        assert len(used[cam]) + stats.dropped[cam] + stats.pending[cam] == total[cam]
    assert stats.sets == len(sets)


@st.composite
def grouped_capture(draw):
    """Cameras filming together: frame k of every camera near k * period, with per-camera
    offset, jitter and clock drift small enough that the true grouping is unambiguous, and
    some frames lost. Returns (period, times per camera with None for lost frames)."""
    cams = draw(st.integers(2, 5))
    fps = draw(st.floats(5.0, 120.0))
    n = draw(st.integers(3, 40))
    p = 1.0 / fps
    times = {}
    for c in range(cams):
        offset = draw(st.floats(-0.1, 0.1)) * p
        drift = draw(st.floats(-0.05, 0.05)) / n  # total drift over the run <= 0.05 period
        jitter = draw(st.lists(st.floats(-0.05, 0.05), min_size=n, max_size=n))
        lost = draw(st.lists(st.booleans(), min_size=n, max_size=n)) if draw(st.booleans()) else [False] * n
        times[f"cam{c}"] = [
            None if lost[k] else k * p * (1 + drift) + offset + jitter[k] * p for k in range(n)
        ]
    return p, times


def split(times: dict[str, list[float | None]]) -> tuple[dict[str, list[float]], dict[str, list[int]]]:
    """Drop lost frames; remember each kept frame's group number."""
    kept = {c: [t for t in ts if t is not None] for c, ts in times.items()}
    groups = {c: [k for k, t in enumerate(ts) if t is not None] for c, ts in times.items()}
    return kept, groups


@settings(max_examples=150, deadline=None)
@given(grouped_capture(), st.integers(2, 6))
def test_lockstep_hands_out_exactly_the_complete_groups(capture, depth):
    p, times = capture
    kept, groups = split(times)
    clock = SimClock()
    sync = SyncBuffer(list(times), default_tolerance([1 / p]), "lockstep", depth, now=clock)
    sets = run_lockstep(sync, make_frames(kept), clock)
    complete = [k for k in range(len(next(iter(times.values())))) if all(ts[k] is not None for ts in times.values())]
    full = [fs for fs in sets if fs.cameras == tuple(times)]
    assert [groups[fs.frames[0].camera][fs.frames[0].index] for fs in full] == complete
    for fs in sets:
        group = {groups[f.camera][f.index] for f in fs.frames}
        assert len(group) == 1  # one group per set
        # Sets without some camera come only after that camera's last frame (it has ended).
        for cam in set(times) - set(fs.cameras):
            assert not groups[cam] or groups[cam][-1] < group.pop() if group else True
    check_invariants(sync, sets, {c: len(ts) for c, ts in kept.items()})


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.sampled_from([1, 2, 4]), min_size=2, max_size=4),
    st.floats(5.0, 30.0),
    st.integers(3, 20),
    st.randoms(use_true_random=False),
)
def test_lockstep_with_unequal_frame_rates_matches_the_slowest_camera(multipliers, fps, n, rnd):
    """Cameras at fps * m (m in 1, 2, 4), started together: one set per frame of the slowest,
    holding from each faster camera its frame taken at the same instant."""
    slowest = min(multipliers)
    p = 1.0 / (fps * slowest)
    times = {}
    for c, m in enumerate(multipliers):
        period = p * slowest / m
        jitter = 0.04 * p / max(multipliers)
        times[f"cam{c}"] = [k * period + rnd.uniform(-jitter, jitter) for k in range(n * m // slowest)]
    clock = SimClock()
    sync = SyncBuffer(list(times), default_tolerance([fps * m for m in multipliers]), "lockstep", 4, now=clock)
    sets = run_lockstep(sync, make_frames(times), clock)
    full = [fs for fs in sets if len(fs) == len(times)]
    assert len(full) == n
    for k, fs in enumerate(full):
        for f, m in zip(fs.frames, multipliers, strict=True):
            assert f.index == k * m // slowest
    # After the slowest camera's last frame the faster ones may still pair among themselves.
    end = max(ts[-1] for c, ts in times.items() if multipliers[int(c[3:])] == slowest)
    assert all(min(f.t_capture for f in fs.frames) > end for fs in sets[len(full) :])
    check_invariants(sync, sets, {c: len(ts) for c, ts in times.items()})


@settings(max_examples=150, deadline=None)
@given(grouped_capture(), st.data())
def test_live_with_a_fast_consumer_loses_no_complete_group(capture, data):
    p, times = capture
    kept, groups = split(times)
    delays = {c: data.draw(st.floats(0.0, 0.3)) * p for c in times}  # transfer/decode delay per camera
    clock = SimClock()
    sync = SyncBuffer(list(times), default_tolerance([1 / p]), "live", 4, now=clock)
    sets = [fs for _, fs in run_live(sync, make_frames(kept, delays), clock)]
    complete = [k for k in range(len(next(iter(times.values())))) if all(ts[k] is not None for ts in times.values())]
    got = [groups[fs.frames[0].camera][fs.frames[0].index] for fs in sets]
    # Each complete group is handed out once its last frame arrives; the very last one may
    # still be held back for a closer frame that never comes (the run ends).
    assert got == complete or got == complete[:-1]
    for fs in sets:
        assert len({groups[f.camera][f.index] for f in fs.frames}) == 1
    check_invariants(sync, [fs for fs in sets], {c: len(ts) for c, ts in kept.items()})


@settings(max_examples=100, deadline=None)
@given(grouped_capture(), st.integers(2, 12))
def test_live_with_a_slow_consumer_gets_the_newest_complete_group(capture, every):
    p, times = capture
    kept, groups = split(times)
    clock = SimClock()
    sync = SyncBuffer(list(times), default_tolerance([1 / p]), "live", 4, now=clock)
    arrivals = make_frames(kept)
    results = run_live(sync, arrivals, clock, every)
    for pushed, fs in results:
        arrived = {c: {groups[c][f.index] for _, f in arrivals[:pushed] if f.camera == c} for c in times}
        newest = max(set.intersection(*arrived.values()))
        assert groups[fs.frames[0].camera][fs.frames[0].index] == newest
    check_invariants(sync, [fs for _, fs in results], {c: len(ts) for c, ts in kept.items()})


@settings(max_examples=100, deadline=None)
@given(
    st.integers(2, 4),
    st.lists(st.floats(10.0, 60.0), min_size=4, max_size=4),
    st.lists(st.floats(0.0, 1.0), min_size=4, max_size=4),
    st.integers(2, 8),
    st.randoms(use_true_random=False),
)
def test_live_free_running_cameras_keep_every_invariant(cams, rates, phases, every, rnd):
    """Unsynchronised cameras at unrelated rates with jitter: whatever sets come out are
    within tolerance, in order, never reuse a frame, and every frame is accounted for."""
    times = {}
    for c in range(cams):
        period = 1.0 / rates[c]
        times[f"cam{c}"] = sorted(phases[c] * period + k * period + rnd.uniform(-0.1, 0.1) * period for k in range(40))
    clock = SimClock()
    sync = SyncBuffer(list(times), default_tolerance(rates[:cams]), "live", 4, now=clock)
    results = run_live(sync, make_frames(times), clock, every)
    check_invariants(sync, [fs for _, fs in results], {c: 40 for c in times})
    if every == 2 and cams == 2:
        assert results, "two cameras polled often must yield sets"


def test_live_waits_briefly_for_a_closer_frame():
    """30 and 15 fps cameras started together: frame 2 of the 30 fps camera (t = 66.7 ms)
    arrives just after frame 1 of the 15 fps one (t = 66.7 ms); the set must pair them,
    not settle for the 30 fps camera's frame 1 (33 ms off) that was there first."""
    clock = SimClock()
    sync = SyncBuffer(["a", "b"], default_tolerance([30, 15]), "live", 4, now=clock)
    arrivals = make_frames({"a": [k / 30 for k in range(7)], "b": [k / 15 for k in range(4)]}, {"a": 0.004})
    results = run_live(sync, arrivals, clock)
    assert [(fs["a"].index, fs["b"].index) for _, fs in results] == [(0, 0), (2, 1), (4, 2), (6, 3)]
    assert all(fs.skew < 1e-9 for _, fs in results)


def test_camera_marked_failed_is_left_out_then_rejoins():
    clock = SimClock()
    sync = SyncBuffer(["a", "b", "c"], 0.01, "live", 4, now=clock)
    for k in range(3):
        for cam in "abc":
            sync.push(Frame(cam, k, k / 30, k / 30, PIXEL))
    assert sync.get(timeout=0).cameras == ("a", "b", "c")
    sync.set_active("b", False)
    for cam in "ac":
        sync.push(Frame(cam, 3, 0.1, 0.1, PIXEL))
    assert sync.get(timeout=0).cameras == ("a", "c")
    for cam in "abc":
        sync.push(Frame(cam, 4, 0.2, 0.2, PIXEL))
    assert sync.get(timeout=0).cameras == ("a", "b", "c")


def test_lockstep_push_waits_for_the_consumer_and_close_releases_it():
    sync = SyncBuffer(["a", "b"], 0.01, "lockstep", depth=2)
    for k in range(2):
        sync.push(Frame("a", k, k, k, PIXEL))
    pushed = threading.Event()

    def producer():
        sync.push(Frame("a", 2, 2.0, 2.0, PIXEL))
        pushed.set()

    thread = threading.Thread(target=producer)
    thread.start()
    assert not pushed.wait(0.2), "push into a full lock-step queue must wait"
    sync.push(Frame("b", 0, 0.0, 0.0, PIXEL))
    sync.push(Frame("b", 1, 1.0, 1.0, PIXEL))
    assert sync.get(timeout=1)["a"].index == 0
    assert pushed.wait(1.0), "taking a set makes room"
    thread.join()
    sync.close()
    assert sync.get(timeout=1) is None


def _caliscope_times() -> tuple[dict[str, list[float]], dict[str, list[int]]]:
    rows = list(csv.DictReader(open(CALISCOPE / "timestamps.csv", encoding="utf-8")))
    by_cam: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for r in rows:
        by_cam[f"cam_{r['cam_id']}"].append((float(r["frame_time"]), int(r["sync_index"])))
    for v in by_cam.values():
        v.sort()
    cams = sorted(by_cam)
    return {c: [t for t, _ in by_cam[c]] for c in cams}, {c: [s for _, s in by_cam[c]] for c in cams}


@pytest.mark.skipif(not CALISCOPE.exists(), reason="shared data not available")
@pytest.mark.parametrize("tolerance_ms", [None, 10.0, 3.0])
def test_real_webcam_timestamps_group_like_caliscope(tolerance_ms):
    """Four free-running USB webcams (6 fps, real capture times): lock-step sets are exactly
    caliscope's own sync groups whose spread fits the tolerance."""
    times, sync_index = _caliscope_times()
    tolerance = default_tolerance([6.0]) if tolerance_ms is None else tolerance_ms / 1000
    groups = defaultdict(list)
    for c in times:
        for t, s in zip(times[c], sync_index[c], strict=True):
            groups[s].append(t)
    expected = [s for s in sorted(groups) if max(groups[s]) - min(groups[s]) <= tolerance]
    if tolerance_ms is None:
        assert len(expected) == len(groups) == 57
    else:
        assert 0 < len(expected) < 57
    clock = SimClock()
    sync = SyncBuffer(list(times), tolerance, "lockstep", 4, now=clock)
    sets = run_lockstep(sync, make_frames(times), clock)
    got = []
    for fs in sets:
        ids = {sync_index[f.camera][f.index] for f in fs.frames}
        assert len(ids) == 1
        got.append(ids.pop())
    assert got == expected
    check_invariants(sync, sets, {c: len(t) for c, t in times.items()})
    # Live mode with a prompt consumer finds the same sets.
    clock = SimClock()
    live = SyncBuffer(list(times), tolerance, "live", 4, now=clock)
    live_sets = [fs for _, fs in run_live(live, make_frames(times), clock)]
    assert [sync_index[fs.frames[0].camera][fs.frames[0].index] for fs in live_sets] in (expected, expected[:-1])


def test_lockstep_stops_waiting_once_no_set_can_form():
    """Two cameras, one has ended: the other's grabber must not wait forever on a full queue."""
    sync = SyncBuffer(["a", "b"], 0.01, "lockstep", depth=2)
    sync.end("a")
    done = threading.Event()

    def producer():
        for k in range(10):
            sync.push(Frame("b", k, float(k), float(k), PIXEL))
        done.set()

    thread = threading.Thread(target=producer)
    thread.start()
    assert done.wait(2.0)
    thread.join()
    assert sync.finished and sync.get(timeout=0) is None
