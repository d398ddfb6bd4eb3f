"""Quality report: per-camera and per-pair figures, shared views, the JSON and PNG beside the rig."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from calib_support import QCA, needs_pose2sim

from calibration.formats import convert
from calibration.report import build_report, draw_rig, report_paths, save_report

pytestmark = needs_pose2sim


def test_report_figures_and_files(tmp_path):
    rig = convert(QCA)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3)) * 0.4 + [0, 0, 1.0]
    pts = rig.project(X) + rng.normal(size=(4, 200, 2)) * 0.5
    frame = np.arange(200) // 10  # 20 instants of 10 points
    pts[3, :100] = np.nan  # cam04 misses the first ten instants
    pts[2, 150:, :] += 25.0  # cam03 is off by 25 px for the last five instants
    report = build_report(rig, pts, frame, warnings=["demo"], extra={"note": 1})
    assert report.shared[0][3] == 10 and report.shared[3][3] == 10 and report.shared[0][1] == 20
    pair = {(p["a"], p["b"]): p for p in report.pairs}
    assert pair[("cam01", "cam02")]["rms"] < 1.0
    assert pair[("cam01", "cam03")]["rms"] > 3.0  # the bad camera stands out in its pairs
    assert report.per_camera["cam04"]["count"] == 100
    js, png = save_report(report, rig, tmp_path / "rig.toml", X)
    assert (js, png) == report_paths(tmp_path / "rig.toml")
    data = json.loads(js.read_text())
    assert data["cameras"] == rig.names and data["warnings"] == ["demo"] and data["extra"] == {"note": 1}
    image = cv2.imread(str(png))
    assert image is not None and image.shape[0] >= 700 and image.std() > 5


def test_rig_drawing_shows_every_camera():
    rig = convert(QCA)
    image = draw_rig(rig, None, (600, 500))
    assert image.shape == (500, 600, 3)
    # Something is drawn near each camera centre's projection.
    from calibration.report import viewer_camera

    view = viewer_camera(rig, None, (600, 500))
    for c in rig.cameras:
        x, y = view.project(c.center)
        assert 0 <= x < 600 and 0 <= y < 500
        patch = image[max(0, int(y) - 6) : int(y) + 7, max(0, int(x) - 6) : int(x) + 7]
        assert patch.min() < 200


def test_missing_pairs_report_nan():
    rig = convert(QCA)
    pts = np.full((4, 10, 2), np.nan)
    pts[:2] = rig.project(np.zeros((10, 3)) + [0, 0, 1.0])[:2]
    report = build_report(rig, pts, np.arange(10))
    pair = {(p["a"], p["b"]): p for p in report.pairs}
    assert pair[("cam03", "cam04")]["shared_views"] == 0 and np.isnan(pair[("cam03", "cam04")]["rms"])
    assert report.to_dict()["pairs"][-1]["rms"] is None  # JSON has null, not NaN
    assert pair[("cam01", "cam02")]["rms"] == pytest.approx(0.0, abs=1e-6)
