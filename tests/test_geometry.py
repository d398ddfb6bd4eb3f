"""Property tests of the geometry core: projection, undistortion, triangulation, rotations.

Random cameras come from realistic ranges: images 240..3840 px, half field of view
20..35 degrees on the short side, principal point within 3 % of the centre, and
distortion scaled to the field so that the image corner is displaced by -24 % (barrel)
.. +19 % (pincushion) with a radial profile that stays monotonic over the image, as
every usable lens calibration has (the caliscope webcams of ../shared/data reach -30 %
at their corners, with a monotonic profile).
Hypothesis draws the parameters; point clouds come from a generator it seeds.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from hypothesis import assume, example, given
from hypothesis import strategies as st

from calibration import geometry as geo
from calibration import triangulation as tri
from calibration.camera import Camera
from calibration.rig import METHODS, Rig

TARGET = np.array([0.0, 0.0, 1.0])  # centre of the capture volume, world Z up
VOLUME_RADIUS = 0.8  # metres


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


@st.composite
def intrinsics(draw) -> tuple[tuple[int, int], np.ndarray, np.ndarray]:
    """-> size (W, H), K (3, 3), dist (5,) of a plausible camera."""
    long_side = draw(st.integers(320, 3840))
    aspect = draw(st.floats(1.0, 16 / 9))
    short_side = max(240, round(long_side / aspect))
    W, H = (long_side, short_side) if draw(st.booleans()) else (short_side, long_side)
    half_fov = math.radians(draw(st.floats(20, 35)))
    f = (min(W, H) / 2) / math.tan(half_fov)
    fy = f * draw(st.floats(0.99, 1.01))
    cx = W / 2 + draw(st.floats(-0.03, 0.03)) * W
    cy = H / 2 + draw(st.floats(-0.03, 0.03)) * H
    K = np.array([[f, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    r_corner = math.hypot(max(cx, W - cx) / f, max(cy, H - cy) / fy)  # distorted, normalised
    # a_i = k_i r_u^(2i), r_u = the undistorted radius that lands on the farthest corner:
    # r (1 + k1 r^2 + k2 r^4 + k3 r^6) then rises monotonically (slope >= 1 - 0.6 - 0.15
    # - 0.07 > 0) up to r_u, so every pixel of the image has exactly one undistorted point.
    a1, a2, a3 = draw(st.floats(-0.2, 0.1)), draw(st.floats(-0.03, 0.08)), draw(st.floats(-0.01, 0.01))
    r_u = r_corner / (1 + a1 + a2 + a3)
    p1, p2 = draw(st.floats(-1e-3, 1e-3)), draw(st.floats(-1e-3, 1e-3))
    dist = np.array([a1 / r_u**2, a2 / r_u**4, p1, p2, a3 / r_u**6])
    return (W, H), K, dist


rotations = st.tuples(*[st.floats(-1, 1)] * 3, st.floats(0, math.pi - 1e-3)).filter(
    lambda v: math.hypot(*v[:3]) > 1e-3
).map(lambda v: np.array(v[:3]) / math.hypot(*v[:3]) * v[3])


@st.composite
def cameras(draw) -> Camera:
    size, K, dist = draw(intrinsics())
    R = cv2.Rodrigues(draw(rotations))[0]
    t = np.array([draw(st.floats(-2, 2)) for _ in range(3)])
    return Camera("cam", size, K, dist, R, t)


def look_at(centre: np.ndarray, target: np.ndarray, roll: float) -> np.ndarray:
    """World->camera rotation of a camera at `centre` looking at `target`, image y down."""
    z = unit(target - centre)
    down = np.array([0.0, 0.0, -1.0])
    y = unit(down - (down @ z) * z)
    R = np.stack([np.cross(y, z), y, z])
    c, s = math.cos(roll), math.sin(roll)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ R


@st.composite
def rigs(draw, min_cameras: int = 2, max_cameras: int = 8) -> Rig:
    """Cameras spread around the capture volume, as a motion-capture rig is set up."""
    n = draw(st.integers(min_cameras, max_cameras))
    phase = draw(st.floats(0, 2 * math.pi))
    cams = []
    for i in range(n):
        size, K, dist = draw(intrinsics())
        azimuth = phase + 2 * math.pi * i / n + draw(st.floats(-0.3, 0.3)) * math.pi / n
        elevation = draw(st.floats(0.0, 0.6))
        distance = draw(st.floats(3.0, 6.0))
        centre = TARGET + distance * np.array([math.cos(elevation) * math.cos(azimuth),
                                               math.cos(elevation) * math.sin(azimuth), math.sin(elevation)])
        aim = TARGET + np.array([draw(st.floats(-0.3, 0.3)) for _ in range(3)])
        R = look_at(centre, aim, draw(st.floats(-0.2, 0.2)))
        cams.append(Camera(f"cam{i}", size, K, dist, R, -R @ centre))
    return Rig(cams)


def volume_points(rng: np.random.Generator, n: int) -> np.ndarray:
    """Uniform points in the capture volume. -> (n, 3)"""
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return TARGET + d * VOLUME_RADIUS * rng.uniform(0, 1, (n, 1)) ** (1 / 3)


def in_front_points(cam: Camera, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """World points that project inside the camera's undistorted field. -> X (n, 3), pinhole px (n, 2)"""
    W, H = cam.size
    px = rng.uniform([0, 0], [W, H], (n, 2))
    xn = geo.remove_intrinsics(torch.as_tensor(px), torch.as_tensor(cam.K)).numpy()
    z = rng.uniform(0.3, 10.0, (n, 1))
    Xc = np.concatenate([xn * z, z], axis=1)
    return (Xc - cam.t) @ cam.R, px  # R^T (Xc - t)


def visible(rig: Rig, X: np.ndarray) -> np.ndarray:
    """Projections with views outside the image set to NaN, as a detector reports them. -> (C, N, 2)"""
    x = rig.project(X)
    for c, cam in enumerate(rig.cameras):
        W, H = cam.size
        out = ~((x[c] >= 0) & (x[c] <= [W - 1, H - 1])).all(-1)
        x[c, out] = np.nan
    return x


def well_conditioned(rig: Rig, X: np.ndarray, x: np.ndarray, min_degrees: float = 10.0) -> np.ndarray:
    """Points that two of the cameras seeing them view at least `min_degrees` apart (and at
    most 180 - min_degrees: opposite cameras are as blind along their baseline). -> (N,) bool"""
    rays = np.stack([c.center for c in rig.cameras])[:, None, :] - X[None]  # (C, N, 3)
    rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
    seen = np.isfinite(x).all(-1)  # (C, N)
    sines = np.linalg.norm(np.cross(rays[:, None], rays[None, :]), axis=-1)  # (C, C, N)
    sines = np.where(seen[:, None] & seen[None, :], sines, 0.0)
    return sines.max(axis=(0, 1)) >= math.sin(math.radians(min_degrees))


seeds = st.integers(0, 2**32 - 1)


# --- projection and distortion ------------------------------------------------------

@given(cameras(), seeds)
def test_project_matches_opencv(cam, seed):
    X, _ = in_front_points(cam, np.random.default_rng(seed), 64)
    ours = cam.project(X)
    ref = cv2.projectPoints(X, cam.rvec, cam.t, cam.K, cam.dist)[0].reshape(-1, 2)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-6)


@given(cameras(), seeds)
def test_points_behind_the_camera_project_to_nan(cam, seed):
    X, _ = in_front_points(cam, np.random.default_rng(seed), 16)
    behind = 2 * cam.center - X  # mirrored through the centre: same ray, other side
    assert np.isnan(cam.project(behind)).all()


@given(cameras(), seeds)
def test_undistort_inverts_projection_distortion(cam, seed):
    """Distorted projection -> undistort_pixels gives the pinhole projection, to 1e-6 px."""
    X, pinhole = in_front_points(cam, np.random.default_rng(seed), 256)
    np.testing.assert_allclose(cam.undistort_pixels(cam.project(X)), pinhole, rtol=0, atol=1e-6)


def wide_webcam() -> tuple[tuple[int, int], np.ndarray, np.ndarray]:
    """The hardest lens of the range: 1280x720, 70 degrees vertical field, 24 % corner barrel."""
    f = 360 / math.tan(math.radians(35))
    r_u = math.hypot(640 / f, 360 / f) / (1 - 0.2 - 0.03 - 0.01)
    dist = np.array([-0.2 / r_u**2, -0.03 / r_u**4, 0.0, 0.0, -0.01 / r_u**6])
    return (1280, 720), np.array([[f, 0.0, 640.0], [0.0, f, 360.0], [0.0, 0.0, 1.0]]), dist


@given(intrinsics(), seeds)
@example(wide_webcam(), 0)  # plain fixed-point iteration leaves 0.06 px at its corners
def test_distort_inverts_undistort_over_the_image(intr, seed):
    """Every pixel of the image undistorts to a point that distorts back onto it."""
    (W, H), K, dist = intr
    px = np.random.default_rng(seed).uniform([0, 0], [W - 1, H - 1], (256, 2))
    px[:4] = [[0, 0], [W - 1, 0], [0, H - 1], [W - 1, H - 1]]  # the corners are the hardest
    Kt, dt = torch.as_tensor(K), torch.as_tensor(dist)
    und = geo.undistort_pixels(torch.as_tensor(px), Kt, dt)
    back = geo.apply_intrinsics(geo.distort(geo.remove_intrinsics(und, Kt), dt), Kt)
    np.testing.assert_allclose(back.numpy(), px, rtol=0, atol=1e-6)


# --- triangulation -----------------------------------------------------------------------

@pytest.mark.parametrize("method", METHODS)
@given(rig=rigs(), seed=seeds)
def test_triangulation_recovers_exact_projections(method, rig, seed):
    X = volume_points(np.random.default_rng(seed), 48)
    x = visible(rig, X)
    seen = np.isfinite(x).all(-1).sum(0)
    assume((seen >= 2).any())
    est = rig.triangulate(x, method=method)
    ok = seen >= 2
    err = np.linalg.norm(est[ok] - X[ok], axis=-1)
    assert err.max() < 1e-6, f"{method}: worst error {err.max() * 1000:.3g} mm"
    assert np.isnan(est[~ok]).all()


@given(rig=rigs(), seed=seeds)
def test_dlt_closed_form_agrees_with_svd(rig, seed):
    rng = np.random.default_rng(seed)
    X = volume_points(rng, 48)
    x = visible(rig, X)
    P = rig.stacked()["P"]
    und = torch.as_tensor(rig.undistort(x)).transpose(0, 1)  # (N, C, 2)
    w = torch.as_tensor(rng.uniform(0.1, 1.0, und.shape[:2]))
    a, b = tri.triangulate_dlt(P, und, w), tri.triangulate_dlt_svd(P, und, w)
    assert torch.equal(torch.isnan(a), torch.isnan(b))
    ok = torch.isfinite(a).all(-1)
    assert (a[ok] - b[ok]).norm(dim=-1).max() < 1e-7  # exact data: same point
    # With 1 px noise they minimise two different algebraic errors: |A [X; 1]|^2 (closed
    # form) and |A [X; 1]|^2 / (|X|^2 + 1) (SVD). Each must be optimal for its own, and
    # the two stay closer to each other than to the truth.
    noisy = und + torch.as_tensor(rng.normal(0, 1.0, und.shape))
    a, b = tri.triangulate_dlt(P, noisy, w), tri.triangulate_dlt_svd(P, noisy, w)
    # Near-degenerate views (a point on the baseline of two opposite cameras) leave the
    # point undetermined; there the two solutions may wander apart.
    ok &= torch.as_tensor(well_conditioned(rig, X, x))
    assume(ok.any())
    seen = torch.isfinite(noisy).all(-1)
    A = tri.dlt_rows(P.expand(*noisy.shape[:-1], 3, 4), torch.nan_to_num(noisy), w * seen)[ok]

    def residual(Xe: torch.Tensor) -> torch.Tensor:
        Xh = torch.cat([Xe[ok], torch.ones_like(Xe[ok][:, :1])], -1)
        return ((A @ Xh.unsqueeze(-1)).squeeze(-1) ** 2).sum(-1)

    def norm2(Xe: torch.Tensor) -> torch.Tensor:
        return (Xe[ok] ** 2).sum(-1) + 1

    assert (residual(a) <= residual(b) * (1 + 1e-9) + 1e-12).all()
    assert (residual(b) / norm2(b) <= residual(a) / norm2(a) * (1 + 1e-9) + 1e-12).all()
    gap = (a[ok] - b[ok]).norm(dim=-1)
    err = (a[ok] - torch.as_tensor(X)[ok]).norm(dim=-1)
    # Over 500 examples: median gap/error <= 0.013, worst gap/worst error <= 0.1.
    assert gap.median() <= 0.05 * err.median(), f"median gap {gap.median():.3g} m, error {err.median():.3g} m"
    assert gap.max() <= 0.25 * err.max(), f"worst gap {gap.max():.3g} m, error {err.max():.3g} m"


@given(rig=rigs(min_cameras=3), seed=seeds, data=st.data())
def test_missing_view_equals_leaving_the_camera_out(rig, seed, data):
    rng = np.random.default_rng(seed)
    X = volume_points(rng, 32)
    noisy = rig.project(X) + rng.normal(0, 0.5, (len(rig), len(X), 2))
    w = rng.uniform(0.2, 1.0, (len(rig), len(X)))
    drop = data.draw(st.integers(0, len(rig) - 1))
    keep = [n for i, n in enumerate(rig.names) if i != drop]
    ref = rig.subset(keep).triangulate(np.delete(noisy, drop, 0), np.delete(w, drop, 0), method="dlt")
    as_nan = noisy.copy()
    as_nan[drop] = np.nan
    zero_w = w.copy()
    zero_w[drop] = 0.0
    np.testing.assert_allclose(rig.triangulate(as_nan, w, method="dlt"), ref, rtol=0, atol=1e-9)
    np.testing.assert_allclose(rig.triangulate(noisy, zero_w, method="dlt"), ref, rtol=0, atol=1e-9)
    # Only relative weights matter.
    np.testing.assert_allclose(rig.triangulate(noisy, 7.5 * w, method="dlt"),
                               rig.triangulate(noisy, w, method="dlt"), rtol=0, atol=1e-9)


@pytest.mark.parametrize("method", METHODS)
@given(rig=rigs(), seed=seeds)
def test_fewer_than_two_views_is_nan(method, rig, seed):
    rng = np.random.default_rng(seed)
    X = volume_points(rng, 8)
    x = rig.project(X)
    w = np.ones(x.shape[:2])
    x[1:, :4] = np.nan  # points 0-3: one view left
    w[1:, 4:] = 0.0  # points 4-7: one view with weight
    est = rig.triangulate(x, w, method=method)
    assert np.isnan(est).all()


# --- rotations and scaled cameras ------------------------------------------------------

@given(rotations)
def test_rodrigues_round_trip_and_opencv(rvec):
    R = geo.rodrigues_to_matrix(torch.as_tensor(rvec)).numpy()
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(R) == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(R, cv2.Rodrigues(rvec)[0], atol=1e-12)
    back = geo.matrix_to_rodrigues(torch.as_tensor(R)).numpy()
    np.testing.assert_allclose(back, rvec, atol=1e-9)


@given(st.tuples(*[st.floats(-1, 1)] * 3).filter(lambda v: math.hypot(*v) > 1e-3),
       st.sampled_from([0.0, 1e-14, 1e-9, 1e-6, math.pi - 1e-9, math.pi]))
def test_rodrigues_near_zero_and_pi(axis, angle):
    rvec = unit(np.array(axis)) * angle
    R = geo.rodrigues_to_matrix(torch.as_tensor(rvec))
    back = geo.matrix_to_rodrigues(R)
    # Near pi, r and -r (mod 2 pi) are the same rotation: compare the matrices.
    np.testing.assert_allclose(geo.rodrigues_to_matrix(back).numpy(), R.numpy(), atol=1e-9)
    if angle < 1:
        np.testing.assert_allclose(back.numpy(), rvec, atol=1e-12)


def test_rodrigues_gradients_are_finite_at_zero():
    r = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    geo.rodrigues_to_matrix(r).sum().backward()
    assert torch.isfinite(r.grad).all()
    R = torch.eye(3, dtype=torch.float64, requires_grad=True)
    geo.matrix_to_rodrigues(R).sum().backward()
    assert torch.isfinite(R.grad).all()


@given(cameras(), st.floats(0.1, 4.0), st.floats(0.1, 4.0), seeds)
def test_scaled_camera_projects_to_scaled_pixels(cam, sx, sy, seed):
    X, _ = in_front_points(cam, np.random.default_rng(seed), 32)
    small = cam.scaled(sx, sy)
    # Pixel centres map to pixel centres: x' + 0.5 = s (x + 0.5).
    expected = (cam.project(X) + 0.5) * [sx, sy] - 0.5
    np.testing.assert_allclose(small.project(X), expected, rtol=1e-12, atol=1e-7)
    assert small.size == (round(cam.size[0] * sx), round(cam.size[1] * sy))
    np.testing.assert_allclose(small.scaled(1 / sx, 1 / sy).K, cam.K, rtol=1e-12, atol=1e-9)
    np.testing.assert_array_equal(small.dist, cam.dist)


@given(rig=rigs(), s=st.floats(0.1, 1.0), seed=seeds)
def test_triangulation_is_the_same_from_scaled_cameras(rig, s, seed):
    """Heatmaps are smaller than images; triangulating there must give the same points."""
    X = volume_points(np.random.default_rng(seed), 16)
    small = Rig([c.scaled(s) for c in rig.cameras])
    np.testing.assert_allclose(small.triangulate(small.project(X)), X, rtol=0, atol=1e-6)
