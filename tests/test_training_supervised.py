"""Supervised training at scale (training/datasets, training/supervised.py, training/distributed.py):
Human3.6M and CMU Panoptic read from files written in exactly their layouts, each target lowers
the validation error, torchrun with 2 processes (gloo) follows a single process's loss curve,
a killed run resumes, a run's config.toml repeats it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.example_datasets import write_h36m, write_panoptic
from app.export.trc import read_trc
from calibration.errors import TriangulumError
from tests.shared_data import TEST_DATA
from training import distributed as ddp
from training.cli import main
from training.datasets import OURS, open_dataset
from training.datasets import h36m as h36m_format
from training.datasets import panoptic as panoptic_format
from training.supervised import SupervisedConfig, train

ROOT = Path(__file__).resolve().parents[1]
EVERY = 6  # frames 0, 6, ..., 96 of the sample: 12 train, 3 (H36M) or 5 (Panoptic) validation sets
REFERENCE = read_trc(TEST_DATA / "pose2sim-demo-single" / "reference" / "pose2sim_body25b_0-100.trc")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("datasets")
    write_h36m(root / "h36m", every=EVERY)
    write_panoptic(root / "panoptic", every=EVERY)
    return {"h36m": root / "h36m", "panoptic": root / "panoptic"}


def _marker(name: str, frame: int) -> np.ndarray:
    return REFERENCE.world[frame, REFERENCE.names.index(name)]


def test_human36m_layout_reads_in_metres_with_the_protocol_split(data):
    labels = np.load(data["h36m"] / h36m_format.LABELS, allow_pickle=True).item()
    assert labels["table"].dtype == h36m_format.table_dtype(4) and labels["cameras"].dtype == h36m_format.CAMERA_DTYPE
    # millimetres on disk
    assert abs(labels["table"][0]["keypoints"][0] / 1000 - _marker("RAnkle", 0)).max() < 1e-3
    train_ds, val_ds = open_dataset(f"h36m:{data['h36m']}", "train"), open_dataset(f"h36m:{data['h36m']}", "val")
    subjects = lambda ds: {ds.subjects_all[r["subject_idx"]] for r in ds.table}  # noqa: E731
    actions = lambda ds: {ds.actions[r["action_idx"]] for r in ds.table}  # noqa: E731
    assert subjects(train_ds) == {"S1"} and subjects(val_ds) == {"S9"}
    assert actions(val_ds) == {"Walking-1"}  # S9 Greeting-2 is one of the protocol's exclusions
    assert len(train_ds) == 12 and len(val_ds) == 3
    s = val_ds[1]  # frame 78
    assert s["crops"].shape == (4, 256, 256, 3) and s["view_ok"].all()
    assert np.allclose(s["joints"][OURS.index("right_knee")], _marker("RKnee", 78), atol=1e-4)  # metres
    assert np.isnan(s["joints"][OURS.index("left_eye")]).all()  # H36M has no eyes
    # The cameras are the studio's, in metres: the same centres as the sample's calibration.
    from app.sample import sample_calibration
    from calibration.rig_io import load_rig

    rig = load_rig(sample_calibration())
    centres = -np.einsum("vji,vj->vi", s["R"], s["t"])
    assert np.allclose(centres, [rig[c].center for c in rig.names], atol=1e-4)


def test_panoptic_layout_is_converted_from_cm_and_y_down_once(data):
    seq = data["panoptic"] / "studio_sample"
    calib = json.loads((seq / "calibration_studio_sample.json").read_text())["cameras"]
    body = json.loads((seq / panoptic_format.BODIES / "body3DScene_00000078.json").read_text())["bodies"][0]
    raw = np.asarray(body["joints19"]).reshape(19, 4)
    ds = open_dataset(f"panoptic:{data['panoptic']}", "val")
    s = next(ds[i] for i, (_, f, _) in enumerate(ds.items) if f == 78)
    knee = panoptic_format.JOINTS.index("right_knee")
    # Panoptic's own numbers: centimetres, Y pointing down (the knee is below the hips: larger y).
    assert raw[knee, 1] > raw[panoptic_format.JOINTS.index("right_hip"), 1]
    assert np.allclose(s["joints"][OURS.index("right_knee")], _marker("RKnee", 78), atol=1e-4)
    assert raw[panoptic_format.JOINTS.index("left_eye"), 3] < 0 and np.isnan(s["joints"][OURS.index("left_eye")]).all()
    # The raw camera (cm, Y down) and the converted one (m, Z up) see the joint at the same pixel.
    c = calib[2]
    raw_px, _ = cv2.projectPoints(raw[knee, :3][None], cv2.Rodrigues(np.asarray(c["R"]))[0], np.asarray(c["t"]),
                                  np.asarray(c["K"]), np.asarray(c["distCoef"]))
    ours_px, _ = cv2.projectPoints(s["joints"][OURS.index("right_knee")][None], cv2.Rodrigues(s["R"][2])[0],
                                   s["t"][2], s["K"][2], s["dist"][2])
    assert np.abs(raw_px - ours_px).max() < 1e-3
    assert np.allclose(s["R"][2] @ s["R"][2].T, np.eye(3), atol=1e-9) and np.linalg.det(s["R"][2]) > 0
    # Frames come from the HD video; the time split leaves the last 30 % for validation.
    assert (seq / "hdVideos" / "hd_00_02.mp4").is_file() and not (seq / "hdImgs").exists()
    assert {f for _, f, _ in ds.items} == {72, 78, 84, 90, 96}


def test_bad_datasets_say_what_to_give(tmp_path):
    with pytest.raises(TriangulumError, match="preprocessed"):
        open_dataset(f"h36m:{tmp_path}")
    with pytest.raises(TriangulumError, match="no Panoptic sequence"):
        open_dataset(f"panoptic:{tmp_path}")
    with pytest.raises(TriangulumError, match="KIND:PATH"):
        open_dataset(str(tmp_path))
    with pytest.raises(TriangulumError, match="multiple of 2"):
        ddp.shard(np.arange(3), ddp.Place(0, 2))


def test_global_batches_are_the_same_for_any_number_of_processes():
    b = ddp.batch_positions(7, 10, 4, seed=3)
    halves = [b[ddp.shard(b, ddp.Place(r, 2))] for r in range(2)]
    assert np.array_equal(np.concatenate(halves), b)
    seen = np.concatenate([ddp.batch_positions(s, 10, 5, 3) for s in range(2)])  # one epoch
    assert sorted(seen) == list(range(10))


def _config(target: str, data: dict, **kw) -> SupervisedConfig:
    base = {"backbone": dict(dataset=f"h36m:{data['h36m']}", batch=2, lr=1e-5, scope="heads"),
            "confidence": dict(dataset=f"h36m:{data['h36m']}", batch=4, lr=1e-3, init="scratch"),
            "volumetric": dict(dataset=f"panoptic:{data['panoptic']}", batch=2)}[target]
    return SupervisedConfig(target=target, **{"steps": 6, "val_every": 3, "device": "cpu", **base, **kw})


def _rows(run: Path) -> list[dict]:
    import csv

    with open(run / "metrics.csv") as f:
        return [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["h36m", "panoptic"])
@pytest.mark.parametrize("target", ["backbone", "confidence", "volumetric"])
def test_each_target_lowers_the_validation_error_and_its_weights_load(target, kind, data, tmp_path):
    best = train(_config(target, data, dataset=f"{kind}:{data[kind]}"), tmp_path / "run", progress=False)
    rows = _rows(tmp_path / "run")
    assert [r["step"] for r in rows] == [0, 3, 6]
    assert best["mpjpe_mm"] < rows[0]["mpjpe_mm"]  # the step-0 row is where training started
    for k in ("n_mpjpe_mm", "p_mpjpe_mm", "pck150", "pss"):
        assert np.isfinite(rows[-1][k])
    if target == "backbone":
        from engines.blazepose.backbone import resolve_backbone

        assert resolve_backbone(tmp_path / "run").onnx.is_file()  # --backbone RUN
    elif target == "confidence":
        from engines.heads.algebraic import read_head

        read_head(tmp_path / "run")  # --weights RUN
    else:
        from engines.heads.volumetric import read_volumetric

        read_volumetric(tmp_path / "run")


def _env() -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    return env


def _cli(config: SupervisedConfig) -> list[str]:
    args = [config.target, "--dataset", config.dataset, "--steps", str(config.steps), "--batch", str(config.batch),
            "--val-every", str(config.val_every), "--device", "cpu", "--quiet"]
    for name in ("lr", "init", "scope"):
        value = getattr(config, name)
        if value != getattr(SupervisedConfig(), name):
            args += [f"--{name}", str(value)]
    return args


@pytest.mark.slow
@pytest.mark.parametrize("target", ["backbone", "confidence", "volumetric"])
def test_torchrun_with_two_processes_follows_the_single_process_curve(target, data, tmp_path):
    torchrun = shutil.which("torchrun") or pytest.skip("no torchrun on PATH")
    config = _config(target, data)
    one = subprocess.run([sys.executable, "-m", "training", *_cli(config), "-o", str(tmp_path / "one")],
                         env=_env(), capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([torchrun, "--nproc_per_node", "2", "--master_port", str(29500 + os.getpid() % 1000),
                          "-m", "training", *_cli(config), "-o", str(tmp_path / "two")],
                         env=_env(), capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = _rows(tmp_path / "one"), _rows(tmp_path / "two")
    assert [r["step"] for r in a] == [r["step"] for r in b]
    # Exact up to float summation order, except batch norm: V2V's statistics are per process
    # on the CPU (SyncBatchNorm needs CUDA), so the volumetric curve drifts a little.
    tol = 0.05 if target == "volumetric" else 1e-4
    for ra, rb in zip(a[1:], b[1:], strict=True):
        assert rb["loss"] == pytest.approx(ra["loss"], rel=tol)
        assert rb["mpjpe_mm"] == pytest.approx(ra["mpjpe_mm"], rel=tol)
    assert __import__("tomllib").loads((tmp_path / "two" / "config.toml").read_text())["run"]["world_size"] == 2
    if target != "backbone":  # each process computed half of the heads' 2D; rank 0 joined them in order
        with np.load(tmp_path / "one" / "observed_train.npz") as o, np.load(tmp_path / "two" / "observed_train.npz") as t:
            assert all(np.allclose(o[k], t[k], atol=1e-4, equal_nan=True) for k in o.files)
        assert not list((tmp_path / "two").glob("*.part*"))


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_checkpoint_and_workers_change_nothing(data, tmp_path):
    config = _config("backbone", data, steps=10, val_every=2)
    cmd = [sys.executable, "-m", "training", *_cli(config)]
    # The uninterrupted run reads its images in 2 DataLoader workers: the same batches.
    straight = subprocess.run([*cmd, "--workers", "2", "-o", str(tmp_path / "straight")], env=_env(),
                              capture_output=True, timeout=300)
    assert straight.returncode == 0
    run = tmp_path / "killed"
    proc = subprocess.Popen([*cmd, "-o", str(run)], env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if (run / "metrics.csv").is_file() and len(_rows(run)) >= 3:  # steps 0, 2 and 4 validated
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(_rows(run))
    assert done < 6
    resumed = subprocess.run([*cmd, "-o", str(run)], env=_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0 and "resuming" in resumed.stderr
    a, b = _rows(tmp_path / "straight"), _rows(run)
    assert [r["step"] for r in b] == [0, 2, 4, 6, 8, 10]
    for ra, rb in zip(a, b, strict=True):
        for k in ("loss", "mpjpe_mm", "p_mpjpe_mm"):
            assert rb[k] == pytest.approx(ra[k], rel=1e-6, nan_ok=True)


@pytest.mark.slow
def test_a_runs_config_toml_repeats_it_and_tensorboard_or_csv_records_it(data, tmp_path):
    config = _config("confidence", data)
    assert main([*_cli(config), "-o", str(tmp_path / "a")]) == 0
    assert main(["--config", str(tmp_path / "a" / "config.toml"), "-o", str(tmp_path / "b"), "--quiet"]) == 0
    a, b = _rows(tmp_path / "a"), _rows(tmp_path / "b")
    assert [(r["loss"], r["mpjpe_mm"]) for r in a[1:]] == [(r["loss"], r["mpjpe_mm"]) for r in b[1:]]
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        assert not (tmp_path / "a" / "tb").exists()
    else:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        events = EventAccumulator(str(tmp_path / "a" / "tb"))
        events.Reload()
        assert [e.step for e in events.Scalars("val/mpjpe_mm")] == [0, 3, 6]
    assert main(["confidence", "--dataset", f"h36m:{tmp_path}", "-o", str(tmp_path / "c")]) == 2


@pytest.mark.slow
def test_our_own_take_with_its_processed_3d_is_a_dataset(tmp_path):
    from app.process.inputs import open_take
    from app.process.outputs import write_npz
    from app.process.take import ProcessConfig, process_take
    from app.sample import CAMERAS, sample_calibration, sample_videos

    take_dir = tmp_path / "take"
    take_dir.mkdir()
    for cam, video in zip(CAMERAS, sample_videos(), strict=True):
        (take_dir / f"{cam}.mp4").symlink_to(video)
    shutil.copy(sample_calibration(), take_dir / "calibration.toml")
    result = process_take(open_take([take_dir]), ProcessConfig(start=10, stop=40))
    (take_dir / "results").mkdir()
    write_npz(result, take_dir / "results" / "poses3d.npz")
    train_ds, val_ds = open_dataset(f"session:{take_dir}", "train"), open_dataset(f"session:{take_dir}", "val")
    assert len(train_ds) == 21 and len(val_ds) == 9  # frames 10-30 train, 31-39 validate
    s = val_ds[0]
    person = result.person(result.main)
    assert np.allclose(s["joints"], person.final.joints[21], equal_nan=True)
    assert s["view_ok"].all() and s["crops"].std() > 10  # real pixels, cut around the person
    with pytest.raises(TriangulumError, match="triangulum process"):
        open_dataset(f"session:{tmp_path}")


def test_panoptic_sequences_with_different_cameras_give_samples_of_their_common_views(data, tmp_path):
    root = tmp_path / "panoptic"
    shutil.copytree(data["panoptic"] / "studio_sample", root / "a")
    shutil.copytree(data["panoptic"] / "studio_sample", root / "b")
    calib = root / "b" / "calibration_studio_sample.json"
    (root / "b" / "calibration_b.json").write_text(json.dumps(
        {"cameras": [c for c in json.loads(calib.read_text())["cameras"] if c["name"] != "00_01"]}))
    (root / "a" / "calibration_studio_sample.json").rename(root / "a" / "calibration_a.json")
    ds = open_dataset(f"panoptic:{root}", "train")
    assert ds.cameras == ["00_00", "00_02", "00_03"]
    assert {len(ds[i]["K"]) for i in (0, len(ds) - 1)} == {3}
