"""Behaviour of the triangulation methods beyond exact projections (see test_geometry)."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from calibration import triangulation as tri

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from triangulation_robustness import noisy_views, ring_rig  # noqa: E402


@pytest.fixture(scope="module")
def scene():
    rng = np.random.default_rng(1)
    rig = ring_rig(6)
    X = rng.uniform([-1, -1, 0], [1, 1, 2], (400, 3))
    x = rig.project(X).transpose(1, 0, 2)  # (N, C, 2)
    return rig.stacked()["P"], X, x, rng


def err_mm(est: torch.Tensor, X: np.ndarray) -> np.ndarray:
    return np.linalg.norm(est.numpy() - X, axis=-1) * 1000


def test_robust_ignores_one_corrupted_view_that_spoils_dlt(scene):
    P, X, x, rng = scene
    bad = torch.as_tensor(noisy_views(x, 1, 60.0, rng))
    assert err_mm(tri.triangulate_dlt(P, bad), X).mean() > 20
    res = tri.triangulate_robust(P, bad)
    assert err_mm(res.points, X).mean() < 0.5
    assert not res.rejected.any()
    # The corrupted view of each point is the one with the lowest weight.
    moved = np.linalg.norm(bad.numpy() - x, axis=-1).argmax(-1)
    assert (res.weights.numpy().argmin(-1) == moved).all()


def test_wss_rejects_when_most_views_are_corrupted(scene):
    P, X, x, rng = scene
    bad = torch.as_tensor(noisy_views(x, 5, 60.0, rng))
    res = tri.triangulate_robust(P, bad)
    assert res.rejected.float().mean() > 0.95
    # Rejected joints fall back to plain DLT ("on par"), or NaN when asked to discard.
    dlt = tri.triangulate_dlt(P, bad)
    assert torch.allclose(res.points[res.rejected], dlt[res.rejected], atol=1e-9)
    gone = tri.triangulate_robust(P, bad, on_reject="discard").points
    assert torch.isnan(gone[res.rejected]).all()


def test_ransac_rejects_outlier_and_refines(scene):
    P, X, x, rng = scene
    bad = noisy_views(x, 2, 80.0, rng)
    bad = torch.as_tensor(bad + rng.normal(0, 0.5, bad.shape))  # plus detector noise
    est = tri.triangulate_ransac(P, bad, threshold=15.0)
    assert np.median(err_mm(est, X)) < 2.0
    # Huber refinement lowers the reprojection error of the inliers vs plain DLT on them.
    plain = tri.triangulate_ransac(P, bad, threshold=15.0, huber_delta=None)
    assert np.median(err_mm(est, X)) <= np.median(err_mm(plain, X)) + 1e-6


def test_missing_views_and_too_few_views(scene):
    P, X, x, _ = scene
    xx = torch.as_tensor(x.copy())
    xx[:, :4] = float("nan")  # only two views left
    assert err_mm(tri.triangulate_dlt(P, xx), X).max() < 1e-6
    w = torch.ones(xx.shape[:-1], dtype=xx.dtype)
    w[:, 4] = 0  # one view left
    assert torch.isnan(tri.triangulate_dlt(P, xx, w)).all()
    for fn in (tri.triangulate_ransac, lambda *a: tri.triangulate_robust(*a).points):
        assert torch.isnan(fn(P, xx, w)).all()


def test_dlt_closed_form_matches_svd_with_weights(scene):
    P, X, x, rng = scene
    noisy = torch.as_tensor(x + rng.normal(0, 3.0, x.shape))
    w = torch.as_tensor(rng.uniform(0.05, 1.0, x.shape[:-1]))
    a = tri.triangulate_dlt(P, noisy, w)
    b = tri.triangulate_dlt_svd(P, noisy, w)
    # Both minimise the algebraic error; they differ by the gauge, a few micrometres here.
    assert (a - b).norm(dim=-1).max() < 5e-4


def test_gradients_reach_points_and_weights(scene):
    P, X, x, _ = scene
    pts = torch.as_tensor(x[:8]).float().requires_grad_(True)
    w = torch.rand(8, 6, requires_grad=True)
    out = tri.triangulate_dlt(P.float(), pts, w)
    out.sum().backward()
    assert torch.isfinite(pts.grad).all() and pts.grad.abs().sum() > 0
    assert torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0


class _DLT(torch.nn.Module):
    def forward(self, P, x, w):
        return tri.triangulate_dlt(P, x, w)


@pytest.mark.parametrize("dynamo", [False, True])
def test_dlt_exports_to_onnx_without_svd(scene, dynamo):
    P, X, x, rng = scene
    P32 = P.float()
    pts = torch.as_tensor(x + rng.normal(0, 1.0, x.shape)).float()
    w = torch.as_tensor(rng.uniform(0.1, 1, x.shape[:-1])).float()
    buf = io.BytesIO()
    kwargs = {"dynamo": dynamo, "input_names": ["P", "x", "w"], "output_names": ["X"]}
    if dynamo:
        n = torch.export.Dim("n")
        kwargs["dynamic_shapes"] = {"P": None, "x": {0: n}, "w": {0: n}}
    else:
        kwargs["dynamic_axes"] = {"x": {0: "n"}, "w": {0: "n"}, "X": {0: "n"}}
    torch.onnx.export(_DLT(), (P32, pts[:10], w[:10]), buf, **kwargs)
    model = onnx.load_from_string(buf.getvalue())
    ops = {node.op_type for node in model.graph.node}
    assert not ops & {"SVD", "Eigh", "Einsum", "Inverse"}, ops
    sess = ort.InferenceSession(buf.getvalue())
    got = sess.run(None, {"P": P32.numpy(), "x": pts.numpy(), "w": w.numpy()})[0]
    want = tri.triangulate_dlt(P32, pts, w).numpy()
    assert np.abs(got - want).max() < 1e-4
    # float32 in ONNX Runtime vs the float64 SVD reference: well under a millimetre.
    ref = tri.triangulate_dlt_svd(P, pts.double(), w.double()).numpy()
    assert np.abs(got - ref).max() < 1e-3


def test_the_robust_kernel_widens_to_the_2d_noise_instead_of_falling_back_to_equal_weights():
    """BlazePose-like noise (4 px, about 2 % of a person's size in a 1080p view from 4 m) plus one
    view per joint off by 60 px: the paper's fixed 10/20 mm reject nearly every joint, which then
    gets equal weights (the bad view included); the kernel widened per frame keeps the
    weights, so the bad view loses its say and the 3D error drops."""
    from app.process.reconstruct import TriangulationConfig, robust_kernel, triangulate_joints
    from calibration.rig import Rig

    rng = np.random.default_rng(5)
    rig = Rig(ring_rig(5).cameras)
    X = rng.uniform([-0.5, -0.5, 0.2], [0.5, 0.5, 1.8], (30, 33, 3))  # 30 frames of 33 joints
    x = rig.project(X) + rng.normal(0, 4.0, (5, 30, 33, 2))
    bad = rng.integers(0, 5, (30, 33))
    x[bad, np.arange(30)[:, None], np.arange(33)[None]] += rng.normal(0, 60.0, (30, 33, 2))
    conf = np.full(x.shape[:-1], 0.9)
    fixed = TriangulationConfig(method="robust", robust_adaptive=False)
    adaptive = TriangulationConfig(method="robust")
    sigma, wss = robust_kernel(rig, x, conf, adaptive)
    assert sigma.shape == (30, 33) and (sigma > 0.02).all() and np.allclose(wss, 2 * sigma)
    assert robust_kernel(rig, x, conf, fixed) == (0.01, 0.02)
    P = rig.stacked()["P"]
    und = torch.as_tensor(rig.undistort(x).reshape(5, -1, 2).transpose(1, 0, 2))
    w = torch.as_tensor(conf.reshape(5, -1).T)
    assert tri.triangulate_robust(P, und, w).rejected.double().mean() > 0.8
    widened = tri.triangulate_robust(P, und, w, torch.as_tensor(sigma.ravel()), torch.as_tensor(wss.ravel()))
    assert widened.rejected.double().mean() < 0.2
    e_fixed = np.linalg.norm(triangulate_joints(rig, x, conf, fixed)[0] - X, axis=-1)
    e_adapt = np.linalg.norm(triangulate_joints(rig, x, conf, adaptive)[0] - X, axis=-1)
    assert np.median(e_adapt) < 0.7 * np.median(e_fixed)
    # Clean 2D keeps the paper's values (the kernel never narrows below them).
    s_clean, _ = robust_kernel(rig, rig.project(X), conf, adaptive)
    assert np.allclose(s_clean, 0.01)
