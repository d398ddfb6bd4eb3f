"""Bundle adjustment: camera poses (optionally intrinsics) and structure by sparse least squares.

Structure is either rigid bodies with known local geometry (board poses: each
observation names a body and the board-frame point it saw) or free 3D points
(keypoint tracks). Residuals are pixel differences computed by
`calibration.geometry.project` (the one projection implementation); their Jacobian
comes from torch autograd per observation and is handed to
`scipy.optimize.least_squares` as a sparse matrix, with a robust loss.

Parameter layout: per camera [rx ry rz tx ty tz] (world->camera, Rodrigues) and
[fx fy cx cy k1 k2 p1 p2 k3]; per body [rx ry rz tx ty tz] (body->world) or per point
[x y z]. Cameras listed in `fixed_cameras` keep their pose (the gauge).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch
from scipy.optimize import least_squares

from calibration import geometry as geo
from calibration.camera import Camera
from calibration.errors import TriangulumError
from calibration.rig import Rig

INTRINSIC_NAMES = ("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2", "k3")
LOSSES = ("linear", "huber", "soft_l1", "cauchy", "arctan")
# A point that lands behind a camera has no projection; this residual (px) makes the
# optimiser back away from such steps instead of failing on NaN.
_BEHIND_CAMERA_PX = 1000.0


@dataclass
class Observations:
    """M image observations.

    camera: (M,) camera index; element: (M,) body or point index; points: (M, 2) px;
    local: (M, 3) point in the body's frame (rigid bodies) or None (free points).
    """

    camera: np.ndarray
    element: np.ndarray
    points: np.ndarray
    local: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.camera = np.asarray(self.camera, dtype=np.int64)
        self.element = np.asarray(self.element, dtype=np.int64)
        self.points = np.asarray(self.points, dtype=np.float64)
        if self.local is not None:
            self.local = np.asarray(self.local, dtype=np.float64)

    def __len__(self) -> int:
        return len(self.camera)

    def subset(self, keep: np.ndarray) -> Observations:
        return Observations(self.camera[keep], self.element[keep], self.points[keep],
                            None if self.local is None else self.local[keep])


@dataclass
class BundleOptions:
    """loss: scipy robust loss; f_scale: inlier scale in px; intrinsics: names from
    INTRINSIC_NAMES to refine (empty: fixed), or "f" for one focal length per camera with
    square pixels (fy = fx, set so at the start); fixed_cameras: indices whose pose is held;
    warm_start_scale: f_scale (px) of a first, wide-band pass (robust losses only)."""

    loss: str = "soft_l1"
    f_scale: float = 1.0
    intrinsics: tuple[str, ...] = ()
    fixed_cameras: tuple[int, ...] = (0,)
    max_nfev: int = 200
    warm_start_scale: float = 20.0
    ftol: float = 1e-8
    xtol: float = 1e-8


@dataclass
class BundleResult:
    """rig: adjusted cameras; structure: (S, 6) body poses or (S, 3) points;
    residuals: (M, 2) px; cost_*: 0.5 * sum of robust residuals."""

    rig: Rig
    structure: np.ndarray
    residuals: np.ndarray
    cost_initial: float
    cost_final: float
    nfev: int
    message: str
    errors: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.errors = np.linalg.norm(self.residuals, axis=-1)


def camera_params(cam: Camera) -> tuple[np.ndarray, np.ndarray]:
    """A camera's parameter blocks: extrinsic (6,) and intrinsic (9,)."""
    ext = np.concatenate([cam.rvec, cam.t])
    K = cam.K
    intr = np.array([K[0, 0], K[1, 1], K[0, 2], K[1, 2], *cam.dist])
    return ext, intr


def camera_from_params(template: Camera, ext: np.ndarray, intr: np.ndarray) -> Camera:
    R = geo.rodrigues_to_matrix(torch.as_tensor(ext[:3])).numpy()
    K = template.K.copy()
    K[0, 0], K[1, 1], K[0, 2], K[1, 2] = intr[:4]
    return Camera(template.name, template.size, K, intr[4:].copy(), R, ext[3:].copy(), template.rmse)


def pose_to_params(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """A rigid transform as [rx ry rz tx ty tz]. R: (3, 3); t: (3,) -> (6,)"""
    return np.concatenate([geo.matrix_to_rodrigues(torch.as_tensor(np.asarray(R, np.float64))).numpy(), np.asarray(t, np.float64)])


def params_to_pose(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[rx ry rz tx ty tz] -> (R (3, 3), t (3,))"""
    return geo.rodrigues_to_matrix(torch.as_tensor(np.asarray(p[:3], np.float64))).numpy(), np.asarray(p[3:6], np.float64)


def _residuals(ext: torch.Tensor, intr: torch.Tensor, struct: torch.Tensor, local: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
    """Pixel residuals of M observations, each with its own copy of its parameter blocks.

    ext (M, 6), intr (M, 9), struct (M, 6) | (M, 3), local (M, 3), obs (M, 2) -> (M, 2)
    """
    if struct.shape[-1] == 6:
        X = (geo.rodrigues_to_matrix(struct[:, :3]) @ local.unsqueeze(-1)).squeeze(-1) + struct[:, 3:]
    else:
        X = struct
    zero, one = torch.zeros_like(intr[:, 0]), torch.ones_like(intr[:, 0])
    K = torch.stack([intr[:, 0], zero, intr[:, 2], zero, intr[:, 1], intr[:, 3], zero, zero, one], -1).reshape(-1, 3, 3)
    x = geo.project(X.unsqueeze(1), K, intr[:, 4:], geo.rodrigues_to_matrix(ext[:, :3]), ext[:, 3:])[:, 0]
    return x - obs


def _residuals_and_jacobian(ext, intr, struct, local, obs) -> tuple[np.ndarray, np.ndarray]:
    """Residuals (M, 2) and per-observation Jacobians (M, 2, 15 + k) w.r.t. [ext, intr, struct].

    Each observation has private copies of its blocks, so the gradient of the summed
    x (then y) residuals with respect to the copies is exactly row m of the Jacobian:
    two backward passes instead of one per observation.
    """
    leaves = [a.detach().clone().requires_grad_(True) for a in (ext, intr, struct)]
    r = _residuals(*leaves, local, obs)
    rows = []
    for axis in range(2):
        grads = torch.autograd.grad(r[:, axis].sum(), leaves, retain_graph=axis == 0)
        rows.append(torch.cat(grads, -1))
    return r.detach().numpy(), torch.stack(rows, 1).numpy()


class _Problem:
    """Packs parameters, evaluates residuals and the sparse Jacobian for scipy."""

    def __init__(self, rig: Rig, obs: Observations, structure: np.ndarray, options: BundleOptions) -> None:
        self.C, self.S = len(rig), len(structure)
        self.k = structure.shape[1]
        if self.k not in (3, 6) or (self.k == 6) != (obs.local is not None):
            raise TriangulumError("bundle adjustment: structure must be (S, 6) poses with local points or (S, 3) points without.")
        unknown = set(options.intrinsics) - set(INTRINSIC_NAMES) - {"f"}
        if unknown:
            raise TriangulumError(f"bundle adjustment: unknown intrinsic parameter(s) {sorted(unknown)}; use {INTRINSIC_NAMES}.")
        blocks = [camera_params(c) for c in rig.cameras]
        self.square = "f" in options.intrinsics
        if self.square:
            for b in blocks:
                b[1][1] = b[1][0]
        self.full = np.concatenate([np.concatenate([b[0] for b in blocks]), np.concatenate([b[1] for b in blocks]), structure.ravel()])
        self.o_int = 6 * self.C
        self.o_str = 15 * self.C
        free = np.ones(self.full.size, bool)
        for c in options.fixed_cameras:
            free[6 * c : 6 * c + 6] = False
        intr_free = np.array([n in options.intrinsics or (self.square and n == "fx") for n in INTRINSIC_NAMES])
        free[self.o_int : self.o_str] = np.tile(intr_free, self.C)
        self.free = free
        self.col_map = np.full(self.full.size, -1)
        self.col_map[free] = np.arange(free.sum())
        self.fx_cols = self.o_int + 9 * np.arange(self.C)
        if self.square:  # fy follows fx: its Jacobian column adds to fx's (duplicates sum in csr)
            self.col_map[self.fx_cols + 1] = self.col_map[self.fx_cols]
        self.obs = obs
        self.cam_t = torch.as_tensor(obs.camera)
        self.el_t = torch.as_tensor(obs.element)
        self.pts_t = torch.as_tensor(obs.points)
        M = len(obs)
        self.local_t = torch.as_tensor(obs.local) if obs.local is not None else torch.zeros(M, 3, dtype=torch.float64)
        # Column indices of every observation's parameter blocks in the full vector.
        cam_cols = 6 * obs.camera[:, None] + np.arange(6)
        int_cols = self.o_int + 9 * obs.camera[:, None] + np.arange(9)
        str_cols = self.o_str + self.k * obs.element[:, None] + np.arange(self.k)
        self.cols = np.concatenate([cam_cols, int_cols, str_cols], 1)  # (M, 15 + k)
        rows = 2 * np.arange(M)[:, None] + np.arange(2)[None]  # (M, 2)
        self.rows = np.broadcast_to(rows[:, :, None], (M, 2, self.cols.shape[1]))
        self.cols_b = np.broadcast_to(self.cols[:, None, :], (M, 2, self.cols.shape[1]))

    def unpack(self, x: np.ndarray) -> np.ndarray:
        full = self.full.copy()
        full[self.free] = x
        if self.square:
            full[self.fx_cols + 1] = full[self.fx_cols]
        return full

    def _blocks(self, full: np.ndarray):
        p = torch.as_tensor(full)
        ext = p[: self.o_int].reshape(self.C, 6)
        intr = p[self.o_int : self.o_str].reshape(self.C, 9)
        struct = p[self.o_str :].reshape(self.S, self.k)
        return ext[self.cam_t], intr[self.cam_t], struct[self.el_t], self.local_t, self.pts_t

    def residuals_full(self, full: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return _residuals(*self._blocks(full)).numpy()

    def fun(self, x: np.ndarray) -> np.ndarray:
        r = self.residuals_full(self.unpack(x))
        return np.nan_to_num(r, nan=_BEHIND_CAMERA_PX).ravel()

    def jac(self, x: np.ndarray) -> sp.csr_matrix:
        full = self.unpack(x)
        _, J = _residuals_and_jacobian(*self._blocks(full))  # (M, 2, 15 + k)
        J = np.nan_to_num(J, nan=0.0, posinf=0.0, neginf=0.0)
        cols = self.col_map[self.cols_b]
        keep = cols >= 0
        return sp.csr_matrix((J[keep], (self.rows[keep], cols[keep])), shape=(2 * len(self.obs), int(self.free.sum())))


@contextmanager
def _one_torch_thread():
    """Run torch on one thread inside, restoring the setting after.

    The residuals are hundreds of small element-wise ops; OpenMP threads gain nothing
    there and, when another process busies the cores, their barriers make the
    adjustment five to ten times slower (measured on the shared 2-core machine).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def bundle_adjust(rig: Rig, obs: Observations, structure: np.ndarray, options: BundleOptions | None = None) -> BundleResult:
    """Refine cameras and structure to minimise robust reprojection error.

    rig: C cameras (initial values); obs: M observations; structure: (S, 6) body->world
    poses when obs.local is given, else (S, 3) world points. -> BundleResult
    """
    with _one_torch_thread():
        return _bundle_adjust(rig, obs, structure, options)


def _bundle_adjust(rig: Rig, obs: Observations, structure: np.ndarray, options: BundleOptions | None) -> BundleResult:
    options = options or BundleOptions()
    if options.loss not in LOSSES:
        raise TriangulumError(f"bundle adjustment: loss '{options.loss}' is unknown; use one of {LOSSES}.")
    if len(obs) == 0:
        raise TriangulumError("bundle adjustment: there are no observations to adjust.")
    structure = np.asarray(structure, dtype=np.float64)
    prob = _Problem(rig, obs, structure, options)
    x0 = prob.full[prob.free]
    common = dict(jac=prob.jac, method="trf", loss=options.loss, x_scale="jac", tr_solver="lsmr",
                  tr_options={"atol": 1e-12, "btol": 1e-12})
    x, nfev = x0, 0
    if options.loss != "linear" and options.warm_start_scale > options.f_scale:
        # A robust loss far from the optimum acts like L1 and crawls (Huber in scipy
        # worst: it can stop early); a wide inlier band first gets close in a few
        # steps, then the tight band finishes. soft_l1 is the default for that reason.
        warm = least_squares(prob.fun, x, f_scale=options.warm_start_scale, max_nfev=options.max_nfev,
                             ftol=1e-6, xtol=1e-8, **common)
        x, nfev = warm.x, warm.nfev
    res = least_squares(prob.fun, x, f_scale=options.f_scale, max_nfev=options.max_nfev,
                        ftol=options.ftol, xtol=options.xtol, **common)
    nfev += res.nfev
    full = prob.unpack(res.x)
    cams = [
        camera_from_params(cam, full[6 * c : 6 * c + 6], full[prob.o_int + 9 * c : prob.o_int + 9 * c + 9])
        for c, cam in enumerate(rig.cameras)
    ]
    r0 = prob.fun(x0)
    cost0 = float(0.5 * np.sum(_rho(r0, options)))
    return BundleResult(
        rig=Rig(cams, dict(rig.metadata)),
        structure=full[prob.o_str :].reshape(prob.S, prob.k),
        residuals=prob.residuals_full(full),
        cost_initial=cost0,
        cost_final=float(res.cost),
        nfev=int(nfev),
        message=str(res.message),
    )


def _rho(r: np.ndarray, options: BundleOptions) -> np.ndarray:
    """scipy's robust loss of residuals r, scaled as least_squares reports cost."""
    z = (r / options.f_scale) ** 2
    if options.loss == "linear":
        rho = z
    elif options.loss == "huber":
        rho = np.where(z <= 1, z, 2 * np.sqrt(z) - 1)
    elif options.loss == "soft_l1":
        rho = 2 * (np.sqrt(1 + z) - 1)
    elif options.loss == "cauchy":
        rho = np.log1p(z)
    else:
        rho = np.arctan(z)
    return options.f_scale**2 * rho


def check_projection_agrees(cam: Camera, X: np.ndarray) -> float:
    """Max px difference between the adjuster's residual path and Camera.project. X: (N, 3)"""
    ext, intr = camera_params(cam)
    n = len(X)
    with torch.no_grad():
        r = _residuals(
            torch.as_tensor(np.tile(ext, (n, 1))), torch.as_tensor(np.tile(intr, (n, 1))),
            torch.as_tensor(np.asarray(X, np.float64)), torch.zeros(n, 3, dtype=torch.float64), torch.zeros(n, 2, dtype=torch.float64),
        ).numpy()
    return float(np.nanmax(np.abs(r - cam.project(X))))
