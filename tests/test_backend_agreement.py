"""ONNX Runtime and PyTorch give the same take: per-view tracking crops on a grid
(engines.tracker.snap_roi) keep tiny numeric differences from steering the two runs onto different
crops. Whole real takes through both backends."""

import numpy as np
import pytest
from test_process_support import DATA, sample_result

from app.process.inputs import open_take
from app.process.take import ProcessConfig, process_take
from engines.blazepose.roi import Roi
from engines.tracker import ROI_ANGLE_STEP, ROI_CENTRE_STEP, ROI_SIZE_STEP, snap_roi

CALISCOPE = DATA / "caliscope-charuco-4cam"


def test_snapping_is_idempotent_and_moves_the_crop_by_under_half_a_step():
    rng = np.random.default_rng(0)
    for _ in range(200):
        roi = Roi(rng.uniform(0, 2000, 2), float(rng.uniform(50, 2000)), float(rng.uniform(-np.pi, np.pi)))
        s = snap_roi(roi)
        again = snap_roi(s)
        np.testing.assert_allclose(again.centre, s.centre, atol=1e-9)
        assert again.size == pytest.approx(s.size) and again.rotation == pytest.approx(s.rotation)
        assert abs(np.log(s.size / roi.size)) <= np.log(ROI_SIZE_STEP) / 2 + 1e-12
        assert np.abs(s.centre - roi.centre).max() <= ROI_CENTRE_STEP * s.size / 2 + 1e-9
        assert abs(s.rotation - roi.rotation) <= ROI_ANGLE_STEP / 2 + 1e-12


def _agreement(a, b) -> tuple[float, float]:
    pa, pb = a.person(a.main), b.person(b.main)
    d2 = np.linalg.norm(pa.keypoints - pb.keypoints, axis=-1)
    d3 = np.linalg.norm(pa.final.joints - pb.final.joints, axis=-1)
    return float(np.nanpercentile(d2, 95)), float(np.nanmedian(d3))


@pytest.mark.slow
def test_the_studio_take_is_the_same_through_both_backends():
    ort = sample_result()  # onnxruntime, the default
    torch_run = process_take(open_take([]), ProcessConfig(backend="torch"))
    assert ort.main == torch_run.main
    p95_px, median_m = _agreement(ort, torch_run)
    assert p95_px <= 2.0 and median_m <= 0.005


@pytest.mark.slow
@pytest.mark.skipif(not CALISCOPE.is_dir(), reason="shared data (caliscope-charuco-4cam) not present")
def test_the_caliscope_take_is_the_same_through_both_backends():
    runs = [process_take(open_take([CALISCOPE / "extrinsic"], CALISCOPE / "reference_camera_array.toml"),
                         ProcessConfig(backend=b)) for b in ("onnxruntime", "torch")]
    p95_px, median_m = _agreement(*runs)
    assert p95_px <= 2.0 and median_m <= 0.005
