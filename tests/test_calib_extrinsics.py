"""Extrinsics from a board: the caliscope 4-webcam session against caliscope's own calibration."""

from __future__ import annotations

import numpy as np
import pytest
from calib_support import CALISCOPE, CALISCOPE_REF, caliscope_detections, needs_caliscope  # noqa: F401

from calibration.boards import Board, Detection
from calibration.bundle_adjust import params_to_pose
from calibration.camera_graph import components, spanning_tree
from calibration.errors import TriangulumError
from calibration.extrinsics import (
    average_transform,
    calibrate_extrinsics,
    set_world_frame,
    shared_views,
)
from calibration.formats import convert
from calibration.frames import load_sync_table, session_sources
from calibration.report import build_report


@needs_caliscope
def test_sync_table_maps_frames_to_instants():
    names = [s.name for s in session_sources(CALISCOPE / "extrinsic")]
    table = load_sync_table(CALISCOPE / "extrinsic" / "timestamps.csv", names)
    assert len(table) == 57 and set(table[35]) == set(names)
    assert all(table[35][n] == 0 for n in names) and all(table[91][n] == 56 for n in names)


@needs_caliscope
def test_caliscope_extrinsics_match_the_reference(caliscope_detections):  # noqa: F811
    board, dets, sizes = caliscope_detections
    ref = convert(CALISCOPE_REF)
    assert all(sizes[n] == ref[n].size for n in ref.names)
    result = calibrate_extrinsics(dets, ref, board)
    assert np.median(result.errors) <= 1.0
    from calibration.alignment import compare_rigs

    cmp = compare_rigs(result.rig, ref)
    assert cmp.max_centre_error() < 0.03, cmp.summary()
    assert cmp.max_angle_error() < 1.5, cmp.summary()
    # The board is metric: no rescaling needed to match caliscope.
    assert cmp.scale == pytest.approx(1.0, abs=0.02)
    assert len(result.tree) == 3 and not result.warnings
    # Quality report: every pair shares views and agrees to a couple of pixels.
    tracks, frames, world = result.tracks()
    report = build_report(result.rig, tracks, frames)
    assert all(p["shared_views"] > 10 and p["rms"] < 3 for p in report.pairs)
    assert report.shared[0][0] == len(dets["cam_0"])
    # World frame from the board at one instant: its corners lie on z = 0 there.
    first = min(result.board_poses)
    set_world_frame(result, f"board:{first}")
    R, t = params_to_pose(result.board_poses[first])
    corners = board.object_points @ R.T + t
    assert np.abs(corners[:, 2]).max() < 1e-9
    assert result.rig.metadata["world"].startswith("z-up")
    with pytest.raises(TriangulumError, match="no pose at instant"):
        set_world_frame(result, "board:9999")


def _fake_detection(board: Board) -> Detection:
    return Detection(np.arange(board.n_corners), np.random.default_rng(0).uniform(100, 300, (board.n_corners, 2)))


@needs_caliscope
def test_cameras_without_shared_views_are_named(caliscope_detections):  # noqa: F811
    board, dets, _ = caliscope_detections
    ref = convert(CALISCOPE_REF)
    # cam_3 keeps only instants that no other camera saw: it cannot be linked.
    others = set().union(*(set(dets[n]) for n in ("cam_0", "cam_1", "cam_2")))
    alone = {s + 10_000: d for s, d in dets["cam_3"].items()}
    split = {**{n: dets[n] for n in ("cam_0", "cam_1", "cam_2")}, "cam_3": alone}
    assert not set(alone) & others
    with pytest.raises(TriangulumError, match=r"cam_3 share no views: film the board where both see it"):
        calibrate_extrinsics(split, ref, board)


def test_checkerboard_is_refused_for_extrinsics():
    from calibration.camera import Camera
    from calibration.rig import Rig

    board = Board("checkerboard", 5, 8, 0.06)
    cam = Camera("a", (640, 480), [[500, 0, 320], [0, 500, 240], [0, 0, 1]])
    rig = Rig([cam, Camera("b", cam.size, cam.K)])
    with pytest.raises(TriangulumError, match="ChArUco"):
        calibrate_extrinsics({"a": {}, "b": {}}, rig, board)


def test_graph_helpers():
    shared = np.array([[10, 5, 0, 0], [5, 9, 7, 0], [0, 7, 8, 2], [0, 0, 2, 6]])
    assert components(shared, 3) == [[0, 1, 2], [3]]
    assert components(shared, 1) == [[0, 1, 2, 3]]
    assert spanning_tree(shared, 1, 1) == [(1, 2), (1, 0), (2, 3)]
    poses = {"a": {1: 0, 2: 0, 3: 0}, "b": {2: 0, 3: 0, 4: 0}}
    assert shared_views(poses, ["a", "b"]).tolist() == [[3, 2], [2, 3]]


def test_average_transform_ignores_outliers():
    rng = np.random.default_rng(0)
    R0 = params_to_pose(np.array([0.2, -0.4, 0.9, 0, 0, 0]))[0]
    t0 = np.array([0.5, -0.2, 1.5])
    Rs, ts = [], []
    for _ in range(20):
        dR = params_to_pose(np.concatenate([rng.normal(size=3) * 0.002, np.zeros(3)]))[0]
        Rs.append(dR @ R0)
        ts.append(t0 + rng.normal(size=3) * 0.002)
    for _ in range(5):  # flipped planar poses
        Rs.append(params_to_pose(np.concatenate([rng.normal(size=3), np.zeros(3)]))[0])
        ts.append(t0 + rng.normal(size=3) * 0.5)
    R, t, n = average_transform(Rs, ts)
    assert n == 20
    assert np.degrees(np.arccos((np.trace(R @ R0.T) - 1) / 2)) < 0.1 and np.linalg.norm(t - t0) < 0.002


def test_sync_from_capture_times_pairs_nearest_frames():
    from calibration.frames import sync_from_capture_times

    a = np.arange(10) / 30.0
    b = np.delete(a + 0.004, 4)  # camera b dropped frame 4
    c = a + 5.0  # another clock: never simultaneous
    table = sync_from_capture_times({"a": a, "b": b, "c": c})
    assert table[3] == {"a": 3, "b": 3}
    assert table[4] == {"a": 4} and table[5] == {"a": 5, "b": 4}
    assert all("c" not in v for v in table.values())


@needs_caliscope
def test_recorded_session_folder(tmp_path, caliscope_detections):  # noqa: F811
    """A folder laid out like app/capture's recordings: manifest order, names and capture times."""
    import csv

    import tomli_w

    from calibration.extrinsics import detect_synchronised
    from calibration.frames import expand_sources

    _, dets, _ = caliscope_detections
    rows = list(csv.DictReader((CALISCOPE / "extrinsic" / "timestamps.csv").read_text().splitlines()))
    cams = []
    for cam_id in (2, 0, 1, 3):  # manifest order, not file-name order
        name = f"cam_{cam_id}"
        (tmp_path / f"{name}.mp4").symlink_to(CALISCOPE / "extrinsic" / f"{name}.mp4")
        times = sorted(float(r["frame_time"]) for r in rows if int(r["cam_id"]) == cam_id)
        lines = ["frame,source_index,t_capture"] + [f"{i},{i},{t - 25.0}" for i, t in enumerate(times)]
        (tmp_path / f"{name}_timestamps.csv").write_text("\n".join(lines) + "\n")
        cams.append({"name": name, "video": f"{name}.mp4", "timestamps": f"{name}_timestamps.csv"})
    (tmp_path / "manifest.toml").write_text(tomli_w.dumps({"format": "triangulum-session", "cameras": cams}))
    sources = expand_sources([str(tmp_path)])
    assert [s.name for s in sources] == ["cam_2", "cam_0", "cam_1", "cam_3"]
    from calibration.boards import load_board

    found, _ = detect_synchronised(sources, load_board(CALISCOPE / "charuco.toml"), step=4)
    # Instants are cam_2's frame numbers; caliscope's sync index = frame + 35 in every camera.
    for name in ("cam_0", "cam_3"):
        for instant, det in found[name].items():
            ref = dets[name].get(instant + 35)
            if ref is not None:
                assert np.allclose(ref.corners, det.corners)
