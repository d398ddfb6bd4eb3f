"""The volumetric head (engines/heads/volumetric.py): its geometry on a scene with known
cameras, its export, its training, and its place in the method registry on the real studio 2D."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from calib_support import KEYPOINTS, QCA
from shared_data import TEST_DATA

from calibration import geometry as geo
from calibration.errors import TriangulumError
from engines.heads import LEARNED, METHODS
from engines.heads.volumetric import (
    VolumeConfig,
    VolumetricTriangulation,
    aggregate,
    cube_basis,
    cube_coords,
    load_volumetric,
    person_roi,
    read_volumetric,
    render_heatmaps,
    soft_argmax3d,
    unproject,
)

MOCAP = TEST_DATA / "mocap-cmu"
SIDE, N = 2.0, 20


def ring(views: int = 4, dist: tuple = (-0.2, 0.05, 0.001, -0.001, 0.0)) -> tuple[torch.Tensor, ...]:
    """K, dist, R (1, V, ...), t: cameras on a ring 4 m around (0, 0, 1), with barrel distortion."""
    Ks, Rs, ts = [], [], []
    for a in torch.linspace(0, 2 * torch.pi, views + 1, dtype=torch.float64)[:-1]:
        c = torch.tensor([4 * torch.cos(a), 4 * torch.sin(a), 1.5], dtype=torch.float64)
        z = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64) - c
        z = z / z.norm()
        x = torch.linalg.cross(z, torch.tensor([0, 0, 1.0], dtype=torch.float64))
        x = x / x.norm()
        R = torch.stack([x, torch.linalg.cross(z, x), z])
        Ks.append(torch.tensor([[900.0, 0, 640], [0, 900.0, 360], [0, 0, 1]], dtype=torch.float64))
        Rs.append(R)
        ts.append(-R @ c)
    d = torch.tensor(dist, dtype=torch.float64).expand(views, 5)
    return torch.stack(Ks)[None], d[None], torch.stack(Rs)[None], torch.stack(ts)[None]


def locate(point: torch.Tensor, root: torch.Tensor, yaw: float = 0.0, dist=None) -> torch.Tensor:
    """Render the distorted projections of `point` (3,), unproject them into a cube on `root`
    turned by `yaw`, and take the soft-argmax of the mean volume (sharpened): -> (3,)."""
    K, d, R, t = ring()
    x = geo.project(point[None, None, None].expand(1, 4, 1, 3), K, d, R, t)  # (1, 4, 1, 2)
    # A person-sized box around the point so the map has a realistic scale.
    box = torch.cat([x, x + 300, x - 300], 2)
    conf = torch.ones(1, 4, 3, dtype=torch.float64)
    roi = person_roi(box, torch.ones(1, 4, 3, dtype=torch.bool))
    maps = render_heatmaps(x, conf[..., :1], roi, 64, 1.5)
    coords = cube_coords(root[None], cube_basis(R, torch.ones(1, 4, dtype=torch.bool)),
                         torch.tensor([yaw], dtype=torch.float64), SIDE, N)
    vols = unproject(maps, roi, K, d if dist is None else dist, R, t, coords, torch.ones(1, 4, dtype=torch.bool))
    cube = aggregate(vols, torch.ones(1, 4, dtype=torch.bool), torch.ones(1, 4, dtype=torch.float64), "mean")
    X, _ = soft_argmax3d(cube * 50, coords)
    return X[0, 0]


def test_unprojected_heatmaps_of_a_known_point_put_the_soft_argmax_on_it():
    root = torch.tensor([0.0, 0.1, 1.0], dtype=torch.float64)
    for point in ([0.31, -0.22, 1.27], [0.8, 0.7, 0.4]):
        assert (locate(torch.tensor(point, dtype=torch.float64), root) - torch.tensor(point)).norm() < SIDE / N
    # Off the image centres, the camera model matters: the same maps read as if the lenses
    # had no distortion miss the point by more than half a voxel; read right, by millimetres.
    point = torch.tensor([0.8, 0.7, 0.4], dtype=torch.float64)
    right = (locate(point, root) - point).norm()
    wrong = (locate(point, root, dist=torch.zeros(1, 4, 5, dtype=torch.float64)) - point).norm()
    assert right < 0.01 and wrong > 0.5 * SIDE / N


def test_turning_the_cube_keeps_world_coordinates():
    point = torch.tensor([-0.4, 0.25, 0.8], dtype=torch.float64)
    root = torch.tensor([0.05, 0.0, 1.0], dtype=torch.float64)
    found = [locate(point, root, yaw) for yaw in (0.0, 0.7, 2.4, 5.0)]
    for X in found:
        assert (X - point).norm() < SIDE / N
    # The voxel centres of a turned cube are the unturned ones rotated about the up axis.
    R = ring()[2]
    basis = cube_basis(R, torch.ones(1, 4, dtype=torch.bool))
    assert torch.allclose(basis[0, 2], torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    a = 0.7
    c0 = cube_coords(root[None], basis, torch.zeros(1, dtype=torch.float64), SIDE, 4)[0] - root
    c1 = cube_coords(root[None], basis, torch.tensor([a], dtype=torch.float64), SIDE, 4)[0] - root
    Rz = torch.tensor([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]], dtype=torch.float64)
    local0, local1 = c0 @ basis[0].T, c1 @ basis[0].T  # in the cube basis
    assert torch.allclose(local1, local0 @ Rz.T, atol=1e-9)


def test_a_tilted_world_gets_an_upright_cube():
    K, d, R, t = ring()
    tilt = geo.rodrigues_to_matrix(torch.tensor([1.2, 0.0, 0.0], dtype=torch.float64))
    basis = cube_basis(R @ tilt.T, torch.ones(1, 4, dtype=torch.bool))  # world turned 69 degrees
    assert torch.allclose(basis[0, 2], tilt @ torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64), atol=0.2)


def test_aggregation_counts_a_view_that_does_not_see_a_voxel_as_no_evidence():
    vols = torch.tensor([[[[0.9, 0.0]], [[0.2, 0.8]], [[0.0, 0.8]]]])  # (1, V=3, F=1, N=2)
    views = torch.tensor([[True, True, True]])
    # Voxel 0 is seen by views 0 and 1 only; voxel 1 by views 1 and 2 only, and both agree:
    # with the absent view as evidence 0 neither voxel is promoted by one view's value.
    for how in ("softmax", "mean", "confidence"):
        out = aggregate(vols, views, torch.tensor([[1.0, 1.0, 1.0]]), how)
        assert out.shape == (1, 1, 2) and 0.0 < out[0, 0, 0] < 0.9 and 0.0 < out[0, 0, 1] < 0.8
    # A view without joints (padding) does not count at all.
    alone = aggregate(vols, torch.tensor([[True, False, False]]), torch.ones(1, 3), "mean")
    assert torch.allclose(alone[0, 0], torch.tensor([0.9, 0.0]))
    assert aggregate(vols, views, torch.ones(1, 3), "softmax")[0, 0, 0] > aggregate(vols, views, torch.ones(1, 3), "mean")[0, 0, 0]
    with pytest.raises(TriangulumError, match="aggregation"):
        VolumeConfig(aggregation="max")


def test_onnx_graph_equals_torch_and_uses_only_tensorrt_operators(tmp_path):
    pytest.importorskip("onnxruntime")
    from engines.export_onnx import unsupported_by_tensorrt
    from engines.heads.export import VOLUME_INPUTS, export_volumetric, volume_inputs
    from engines.runtimes.onnx_runtime import OnnxRuntimeModel

    head = load_volumetric()
    path = export_volumetric(tmp_path / "volumetric.onnx", head)
    assert unsupported_by_tensorrt(path) == set()
    inputs = volume_inputs(head, 3, 4, seed=4)  # another batch size than exported with
    model = OnnxRuntimeModel(path)
    out = model(**{k: inputs[k].numpy() for k in model.input_names})
    with torch.no_grad():
        X, w = head.volume(*(inputs[n] for n in VOLUME_INPUTS))
    assert np.abs(out["points"] - X.numpy()).max() < 1e-3  # metres
    assert np.abs(out["weights"] - w.numpy()).max() < 1e-4


def test_a_few_training_steps_lower_the_loss_on_fixed_data():
    from engines.heads.algebraic import WEIGHTS
    from training.error_model import ErrorModel
    from training.mocap import load_clips
    from training.synthetic import SyntheticViews
    from training.volumetric import _tensors, run_head, volumetric_loss

    torch.manual_seed(0)
    config = VolumeConfig(voxels=16, heatmap=24, width=8)
    b = SyntheticViews(load_clips(MOCAP, ("002",)), ErrorModel.load(WEIGHTS.with_name("error_model.toml")),
                       seed=3).sample(8, views=(3, 5))
    P, x, conf, K, R, t, truth = _tensors(b)
    net = VolumetricTriangulation(config)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    yaw = torch.linspace(0, 6, 8, dtype=torch.float64)
    losses = []
    for _ in range(12):
        X, p, coords = run_head(net, P, x, conf, K, R, t, yaw)
        loss, _ = volumetric_loss(X, p, coords, truth, config.voxels, 0.01)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3])


def test_bad_weights_are_refused_with_advice(tmp_path):
    with pytest.raises(TriangulumError, match="train volumetric"):
        read_volumetric(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(TriangulumError, match="not a volumetric head"):
        read_volumetric(bad)


@pytest.mark.skipif(not QCA.is_file(), reason="shared data (pose2sim-demo-single) not present")
def test_the_registry_runs_the_shipped_head_on_the_real_studio_2d():
    from app.process.reconstruct import TriangulationConfig, reconstruct
    from calibration.formats.detect import convert

    assert "volumetric" in METHODS and "volumetric" in LEARNED
    rig = convert(QCA)
    with np.load(KEYPOINTS) as z:
        kp, cf = z["keypoints"][:, :12], z["confidence"][:, :12]
    vol = reconstruct(rig, kp, cf, TriangulationConfig("volumetric"))
    alg = reconstruct(rig, kp, cf, TriangulationConfig("algebraic"))
    both = np.isfinite(vol.joints).all(-1) & np.isfinite(alg.joints).all(-1)
    assert both.mean() > 0.9
    # Same 2D, same rig: a working head lands near the classical answer on a clean take.
    assert np.median(np.linalg.norm(vol.joints - alg.joints, axis=-1)[both]) < 0.05
    assert vol.views_used.any(-1)[both].mean() > 0.9


@pytest.mark.skipif(not QCA.is_file(), reason="shared data (pose2sim-demo-single) not present")
def test_process_with_the_volumetric_head_writes_the_usual_outputs(tmp_path, capsys):
    from app.cli import main

    assert main(["process", "--method", "volumetric", "--frames", "20:28", "--formats", "trc,csv",
                 "-o", str(tmp_path)]) == 0
    assert "person 0" in capsys.readouterr().out
    names = {p.name for p in tmp_path.iterdir()}
    assert {"poses3d.npz", "person0.trc", "person0.csv", "report.json"} <= names
    assert any(n.endswith(".mp4") for p in tmp_path.rglob("*") for n in [p.name])  # overlays
    joints = np.load(tmp_path / "poses3d.npz")["person0_joints"]
    assert joints.shape == (8, 33, 3) and np.isfinite(joints).all(-1).mean() > 0.9


def test_train_volumetric_command_writes_a_run_that_resumes_and_loads(tmp_path, capsys):
    from app.cli import main

    run = tmp_path / "run"
    args = ["train", "volumetric", "--mocap", str(MOCAP), "-o", str(run), "--batch", "2"]
    assert main([*args, "--steps", "2"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert {"volumetric.safetensors", "checkpoint.pt", "metrics.csv", "config.toml", "NOTICE.md"} <= {
        p.name for p in run.iterdir()}
    assert main([*args, "--steps", "3"]) == 0  # resumes at step 2
    assert torch.load(run / "checkpoint.pt", weights_only=False)["step"] == 3
    assert read_volumetric(run).config == VolumeConfig()
    if not torch.cuda.is_available():
        assert main(["train", "volumetric", "--device", "cuda", "-o", str(tmp_path / "x")]) == 2
        assert "--device cpu" in capsys.readouterr().err
