"""C3D (re-read with the c3d library's Reader), CSV (re-read with the csv module), export_all."""

import csv
import json
import warnings

import c3d
import numpy as np
import pytest

from app.export import FORMATS, export_all
from app.export.c3d_io import write_c3d
from app.export.csv_io import read_csv, write_csv
from app.export.trc import read_trc
from calibration.errors import TriangulumError
from engines.skeleton import BLAZEPOSE33, COCO17, H36M17
from engines.temporal import ButterworthConfig, describe


def _take(skeleton, frames=12, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.normal(scale=0.4, size=(skeleton.num_joints, 3)) + [0.0, 0.0, 1.0]
    walk = np.cumsum(rng.normal(scale=0.01, size=(frames, skeleton.num_joints, 3)), axis=0)
    joints = base + walk
    joints[2, 4] = np.nan
    joints[5:8, 0] = np.nan
    return joints


def _read_c3d(path):
    with open(path, "rb") as f, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No analog data found")
        reader = c3d.Reader(f)
        labels = [s.strip() for s in reader.point_labels]
        meta = {
            "rate": reader.point_rate,
            "units": reader.get("POINT:UNITS").string_value.strip(),
            "first": reader.first_frame,
            "last": reader.last_frame,
            "scale": reader.point_scale,
        }
        frames = [points.copy() for _, points, _ in reader.read_frames()]
    return labels, meta, np.stack(frames)


def test_c3d_roundtrip_with_library_reader(tmp_path):
    joints = _take(COCO17)
    path = write_c3d(tmp_path / "t.c3d", joints, COCO17, 50.0)
    labels, meta, data = _read_c3d(path)
    assert labels == list(COCO17.joints)
    assert meta["rate"] == 50.0 and meta["units"] == "mm" and meta["scale"] < 0  # float storage
    assert meta["last"] - meta["first"] + 1 == len(joints)
    assert data.shape == (12, 17, 5)
    missing = np.isnan(joints).any(-1)
    assert ((data[..., 3] == -1) == missing).all()  # residual -1 exactly where missing
    # world axes, millimetres, float32 precision
    assert np.allclose(data[~missing][:, :3], joints[~missing] * 1000.0, atol=1e-3, rtol=1e-6)


def test_csv_roundtrip_with_csv_module(tmp_path):
    joints = _take(H36M17)
    path = write_csv(tmp_path / "t.csv", joints, H36M17, 25.0)
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][:5] == ["frame", "time", "right_ankle_x", "right_ankle_y", "right_ankle_z"]
    assert len(rows[0]) == 2 + 17 * 3 and len(rows) == 13
    assert rows[3][:2] == ["2", "0.080000"]
    assert rows[3][2 + 12 : 2 + 15] == ["", "", ""]  # joint 4 missing in frame 2
    values = np.array([[float(c) if c else np.nan for c in r[2:]] for r in rows[1:]])
    assert np.allclose(values.reshape(12, 17, 3), joints, atol=5e-7, equal_nan=True)
    names, times, back = read_csv(path)
    assert names == H36M17.joints
    assert times == pytest.approx(np.arange(12) / 25.0)
    assert np.allclose(back, joints, atol=5e-7, equal_nan=True)


def test_csv_read_rejects_other_files(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(TriangulumError, match="not a joint CSV"):
        read_csv(bad)


def test_export_all_writes_every_format_and_sidecar(tmp_path):
    joints = _take(BLAZEPOSE33, frames=30)
    joints[:, :11] = np.nan  # no face: the rig's head follows the trunk
    filt = describe(ButterworthConfig(cutoff_hz=6.0, order=4))
    paths = export_all(tmp_path / "out", joints, BLAZEPOSE33, 30.0, metadata={"filters": [filt]})
    assert set(paths) == set(FORMATS) | {"json"}
    meta = json.loads(paths["json"].read_text())
    assert meta["skeleton"] == "blazepose33" and meta["frames"] == 30 and meta["fps"] == 30.0
    assert meta["metadata"]["filters"][0] == {"filter": "butterworth", "cutoff_hz": 6.0, "order": 4}
    assert meta["files"]["c3d"]["path"] == "take.c3d"
    assert np.allclose(read_trc(paths["trc"]).world, joints, atol=5e-7, equal_nan=True)
    assert np.allclose(read_csv(paths["csv"])[2], joints, atol=5e-7, equal_nan=True)
    assert "ROOT Hips" in paths["bvh"].read_text() and "JOINT Head" in paths["bvh"].read_text()
    only = export_all(tmp_path / "two", joints, BLAZEPOSE33, 30.0, formats=["csv"], stem="x")
    assert sorted(p.name for p in only.values()) == ["x.csv", "x.json"]


def test_export_all_errors(tmp_path):
    joints = _take(COCO17)
    with pytest.raises(TriangulumError, match="Unknown export format"):
        export_all(tmp_path, joints, COCO17, 30.0, formats=["fbx"])
    with pytest.raises(TriangulumError, match="frame rate"):
        export_all(tmp_path, joints, COCO17, 0.0)
    with pytest.raises(TriangulumError, match="coco17"):
        export_all(tmp_path, joints[:, :5], COCO17, 30.0)
