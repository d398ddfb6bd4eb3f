"""Training MetaPose's refinement (engines/metapose.py) on motion capture through random rigs.

    model = fit_world_error(world, joints, rig, frames)    # BlazePose's monocular 3D, real take
    best = train(MetaPoseConfig(), train_clips, val_clips, error2d, model, run_dir)

A sample: one instant of a CMU clip, placed and turned at random in a random studio of 2-8
cameras (training.synthetic.random_studio: 2.5-6 m away, 45-80 degree fields of view); the 2D
drawn from the BlazePose error model fitted on real detections (training.error_model, whole-view
failures included), the per-view 3D poses drawn from `WorldError`, fitted here on a real take:
how BlazePose's metric 3D pose differs from the multi-view triangulation turned into that
camera's axes (a global tilt, a size error, per-joint noise, and mirrored bodies). The
refinement starts from the per-frame stage 1 (engines.metapose.initial_weak) and is supervised
with the truth the synthetic sample has: the pose (after the best scale: BlazePose's metric
size is itself a guess) and every camera's rotation relative to the first, plus a robust
reprojection term on the 2D it sees. Validation: the validation subject's clips in fixed rigs
(the same every time). Subject 007 is never used (benchmarks' test subject).
"""

from __future__ import annotations

import csv
import time
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import tomli_w
import torch
import torch.nn.functional as F

from calibration.alignment import umeyama
from calibration.errors import TriangulumError
from calibration.geometry import rodrigues_to_matrix
from calibration.rig import Rig
from engines.metapose import (
    HIPS,
    JOINTS,
    MetaPoseNet,
    initial_weak,
    normalise_2d,
    place_weak,
    save_metapose,
    weak_project,
)
from training.error_model import ErrorModel, corrupt
from training.synthetic import project, random_rig


@dataclass
class WorldError:
    """How BlazePose's per-view metric 3D pose errs (fitted by `fit_world_error`): tilt_deg RMS
    angle of its global rotation error; scale (mean, std) of its size over the truth's; sigma
    (J,) per-joint per-axis noise in metres after both (over JOINTS); p_turned: share of frames
    whose body is turned front to back (a rotation error over 90 degrees: a body seen from behind
    taken for one seen from the front); p_mirror: share of frames whose pose is left-right
    mirrored; samples and source: what it was fitted on."""

    tilt_deg: float
    scale: tuple[float, float]
    sigma: list[float]
    p_mirror: float
    p_turned: float = 0.0
    samples: int = 0
    source: str = ""

    def save(self, path: Path) -> None:
        d = asdict(self)
        d["scale"] = list(self.scale)
        Path(path).write_text("# BlazePose monocular 3D error model (training/metapose.py)\n" + tomli_w.dumps(d))

    @staticmethod
    def load(path: Path) -> WorldError:
        d = tomllib.loads(Path(path).read_text())
        d["scale"] = tuple(d["scale"])
        return WorldError(**d)


def _rotation(axis_angle: np.ndarray) -> np.ndarray:
    """(..., 3) -> (..., 3, 3) (Rodrigues: calibration.geometry)."""
    return rodrigues_to_matrix(torch.from_numpy(np.asarray(axis_angle, np.float64))).numpy()


def fit_world_error(world: np.ndarray, joints: np.ndarray, rig: Rig, source: str = "") -> WorldError:
    """world (C, F, 33, 3) BlazePose's per-view 3D poses; joints (F, 33, 3) the take's
    triangulation (the reference the views agree on) -> the fitted WorldError."""
    J = list(JOINTS)
    tilts, scales, resid, mirrored, turned, n = [], [], [], 0, 0, 0
    for c, cam in enumerate(rig.cameras):
        for f in range(world.shape[1]):
            w, x = world[c, f, J], joints[f, J]
            ok = np.isfinite(w).all(-1) & np.isfinite(x).all(-1)
            if ok.sum() < 6:
                continue
            truth = x @ cam.R.T  # camera axes (both are centred on the joints they share below)
            a, b = w[ok] - w[ok].mean(0), truth[ok] - truth[ok].mean(0)
            mirror = a * np.array([-1.0, 1.0, 1.0])
            R, Rm = umeyama(a, b, with_scale=False)[1], umeyama(mirror, b, with_scale=False)[1]
            e, em = np.linalg.norm(a @ R.T - b), np.linalg.norm(mirror @ Rm.T - b)
            n += 1
            if em < 0.7 * e:  # a mirrored body fits far better: count it, do not fit its noise
                mirrored += 1
                continue
            angle = np.degrees(np.arccos(np.clip((np.trace(R) - 1) / 2, -1, 1)))
            if angle > 90:  # turned front to back: counted, not part of the tilt or the noise
                turned += 1
                continue
            tilts.append(angle)
            scale = np.sqrt((a ** 2).sum() / max((b ** 2).sum(), 1e-12))
            scales.append(scale)
            r = np.full((len(J), 3), np.nan)
            r[ok] = a @ R.T / scale - b
            resid.append(r)
    if not tilts:
        raise TriangulumError("no frame of the take shows six or more joints in a view and in the triangulation; "
                              "fit the monocular 3D error on a take where the person is in full view.")
    resid = np.array(resid)
    seen = np.isfinite(resid).any(axis=(0, 2))
    sq = np.where(np.isfinite(resid), resid, 0.0) ** 2
    sigma = np.sqrt(sq.sum((0, 2)) / np.maximum(np.isfinite(resid).sum((0, 2)), 1))
    # joints the take never showed (legs out of a webcam's view) take the median of the others
    sigma = np.where(seen, sigma, np.median(sigma[seen]))
    return WorldError(float(np.sqrt(np.mean(np.square(tilts)))), (float(np.mean(scales)), float(np.std(scales))),
                      [float(v) for v in sigma], mirrored / max(n, 1), turned / max(n, 1), n, source)


def synthesise_world(rng: np.random.Generator, model: WorldError, truth_cam: np.ndarray) -> np.ndarray:
    """BlazePose-like per-view 3D from the truth in camera axes, hip-centred. (..., J, 3) -> same."""
    shape = truth_cam.shape[:-2]
    axis = rng.normal(size=shape + (3,))
    # The tilt's size varies per sample, 0.2-1.2 times the fitted RMS: how far a monocular pose
    # tilts depends on the view (the close, cropped webcam views it was fitted on tilt ~3 times
    # more than the studio take's full-body views), and the refinement must neither
    # over-correct a good start nor give up on a bad one.
    axis *= np.radians(model.tilt_deg) / np.sqrt(3) * rng.uniform(0.2, 1.2, shape)[..., None]
    R = _rotation(axis)
    scale = rng.normal(model.scale[0], model.scale[1], shape)[..., None, None]
    w = scale * np.einsum("...ik,...jk->...ji", R, truth_cam)
    w = w + rng.normal(size=w.shape) * np.asarray(model.sigma)[:, None]
    mirror = rng.random(shape) < model.p_mirror
    w[mirror, :, 0] *= -1
    turned = rng.random(shape) < model.p_turned  # 180 degrees about the camera's vertical axis
    w[turned, :, 0] *= -1
    w[turned, :, 2] *= -1
    return w


@dataclass
class MetaPoseConfig:
    """steps/width: the network; iterations, batch, lr: the optimiser (Adam, cosine decay);
    views: (min, max) cameras per sample; view_failure: whole-view failures per view (2D);
    w_*: loss weights; val_every, val_batches: validation; seed."""

    steps: int = 3
    width: int = 512
    iterations: int = 3000
    batch: int = 128
    lr: float = 3e-4
    views: tuple[int, int] = (2, 8)
    view_failure: float = 0.05
    take_init: float = 0.75  # share of samples that start from take-level cameras (see make_batch)
    take_init_deg: float = 15.0  # their rotation error: uniform in 0..this per camera
    w_pose: float = 1.0
    w_rot: float = 1.0
    w_reproj: float = 0.1
    val_every: int = 250
    val_batches: int = 8
    seed: int = 0
    extra: dict = field(default_factory=dict)

    def save(self, path: Path) -> None:
        d = asdict(self)
        d["views"] = list(self.views)
        Path(path).write_text(tomli_w.dumps(d))


@dataclass
class Sample:
    """A batch of one view count: net inputs (normalised 2D, confidence, stage-1 cameras and
    pose) and the truth (pose in the first camera's axes, root-centred, m; rotations (B, V, 3, 3)
    relative to the first camera)."""

    kp: torch.Tensor
    conf: torch.Tensor
    init: tuple[torch.Tensor, ...]
    pose: torch.Tensor
    rot: torch.Tensor


def make_batch(rng: np.random.Generator, poses: np.ndarray, views: int, batch: int, error2d: ErrorModel,
               world_error: WorldError, view_failure: float, take_init: float = 0.0,
               take_init_deg: float = 15.0) -> Sample:
    """`batch` samples of `views` cameras from `poses` (N, 33, 3) (module docstring).

    The start: a `take_init` share of the samples starts from cameras as stage 1 gives them over
    a take (its rotations averaged over many frames: each camera 0-`take_init_deg` degrees off
    the truth, about a random axis), the rest from this one frame's alignment (tens of degrees
    off, the monocular poses' own tilt). The refinement runs on takes from the first kind."""
    idx = rng.integers(len(poses), size=batch)
    X = poses[idx].astype(np.float64)
    other_idx = rng.integers(len(poses), size=batch)
    hips = X[:, [23, 24]].mean(1, keepdims=True) * np.array([1, 1, 0])
    a = rng.uniform(0, 2 * np.pi, batch)
    Rz = np.zeros((batch, 3, 3))
    Rz[:, 0, 0], Rz[:, 0, 1], Rz[:, 1, 0], Rz[:, 1, 1], Rz[:, 2, 2] = np.cos(a), -np.sin(a), np.sin(a), np.cos(a), 1
    X = np.einsum("bik,bjk->bji", Rz, X - hips)
    other = poses[other_idx] - poses[other_idx][:, [23, 24]].mean(1, keepdims=True) * np.array([1, 1, 0])
    other = other + np.array([1.5, 0.0, 0.0])
    rigs = [random_rig(rng, views, np.array([0.0, 0.0, 1.0])) for _ in range(batch)]  # P, sizes, K, R, t
    P, R = np.stack([r[0] for r in rigs]), np.stack([r[3] for r in rigs])  # (B, V, 3, 4), (B, V, 3, 3)
    clean, far = project(P, X)[0], project(P, other)[0]
    kp, conf, _ = corrupt(rng, error2d, clean, far, view_failure)
    size = np.stack([r[1] for r in rigs])[:, :, None]
    inside = ((kp >= 0) & (kp < size)).all(-1)
    conf = np.where(inside, conf, 0.0)
    hip = X[:, [23, 24]].mean(1, keepdims=True)
    truth_cam = np.einsum("bvik,bjk->bvji", R, X - hip)  # (B, V, 33, 3)
    world = synthesise_world(rng, world_error, truth_cam[:, :, list(JOINTS)])
    J = list(JOINTS)
    kp_t, conf_t = torch.from_numpy(kp[:, :, J]), torch.from_numpy(conf[:, :, J])
    norm, _, _ = normalise_2d(kp_t, conf_t)
    conf_t = torch.where(torch.isfinite(kp_t).all(-1), conf_t, torch.zeros_like(conf_t))
    world_t = torch.from_numpy(world)
    rot = np.einsum("bvij,bkj->bvik", R, R[:, 0])  # R_c R_0^T
    R0, s0, t0, X0 = initial_weak(world_t, norm, conf_t)
    take = rng.random(batch) < take_init
    if take.any():
        angle = np.radians(rng.uniform(0, take_init_deg, (batch, views)))
        axis = rng.normal(size=(batch, views, 3))
        axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
        Rt = np.einsum("bvij,bvjk->bvik", _rotation(axis * angle[..., None]), rot)
        Rt[:, 0] = np.eye(3)
        Rt = torch.from_numpy(Rt)
        st, tt, Xt = place_weak(Rt, world_t, norm, conf_t)
        pick = torch.from_numpy(take)
        R0 = torch.where(pick[:, None, None, None], Rt, R0)
        s0 = torch.where(pick[:, None], st, s0)
        t0 = torch.where(pick[:, None, None], tt, t0)
        X0 = torch.where(pick[:, None, None], Xt, X0)
    init = (R0, s0, t0, X0)
    pose = torch.from_numpy(truth_cam[:, 0][:, J])
    rot = torch.from_numpy(rot)
    f = lambda x: x.float()  # noqa: E731  (float32 trains ~4x faster here than float64)
    return Sample(f(norm), f(conf_t), tuple(f(x) for x in init), f(pose), f(rot))


def aligned_mpjpe(X: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Per-sample mean joint error after the best scale, both root-centred. (B, J, 3) -> (B,)"""
    Xc = X - X[:, list(HIPS)].mean(1, keepdim=True)
    Tc = truth - truth[:, list(HIPS)].mean(1, keepdim=True)
    s = (Xc * Tc).sum((1, 2)) / (Xc * Xc).sum((1, 2)).clamp(min=1e-9)
    return (s[:, None, None] * Xc - Tc).norm(dim=-1).mean(-1)


def rotation_error_deg(R: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """(B, V, 3, 3) -> (B, V) angle between R and truth."""
    tr = (R * truth).sum((-1, -2))
    return torch.rad2deg(torch.arccos(((tr - 1) / 2).clamp(-1 + 1e-7, 1 - 1e-7)))


def losses(out: list[tuple[torch.Tensor, ...]], b: Sample, config: MetaPoseConfig) -> tuple[torch.Tensor, dict]:
    total = torch.zeros((), dtype=b.kp.dtype)
    for R, s, t, X in out:
        pose = aligned_mpjpe(X, b.pose).mean()
        rot = (R[:, 1:] - b.rot[:, 1:]).square().sum((-1, -2)).mean()
        proj = weak_project(X, R, s, t)
        reproj = (F.smooth_l1_loss(proj, b.kp, reduction="none", beta=0.1).sum(-1) * b.conf).sum() / b.conf.sum().clamp(min=1)
        total = total + config.w_pose * pose + config.w_rot * rot + config.w_reproj * reproj
    R, s, t, X = out[-1]
    with torch.no_grad():
        rot_deg = float(rotation_error_deg(R[:, 1:], b.rot[:, 1:]).mean())
    return total / len(out), {"pose_mm": 1000 * float(pose.detach()), "rot_deg": rot_deg}


def evaluate(net: MetaPoseNet, batches: list[Sample]) -> dict:
    """Stage 1 and refined errors on fixed batches: pose (scale-aligned MPJPE, mm) and camera
    rotations (mean degrees, relative to the first)."""
    init_pose, init_rot, pose, rot = [], [], [], []
    with torch.no_grad():
        for b in batches:
            R0, s0, t0, X0 = b.init
            R, s, t, X = net(b.kp, b.conf, R0, s0, t0, X0)[-1]
            init_pose.append(aligned_mpjpe(X0, b.pose))
            pose.append(aligned_mpjpe(X, b.pose))
            init_rot.append(rotation_error_deg(R0[:, 1:], b.rot[:, 1:]).flatten())
            rot.append(rotation_error_deg(R[:, 1:], b.rot[:, 1:]).flatten())
    cat = lambda xs: float(torch.cat(xs).mean())  # noqa: E731
    return {"val_init_pose_mm": 1000 * cat(init_pose), "val_pose_mm": 1000 * cat(pose),
            "val_init_rot_deg": cat(init_rot), "val_rot_deg": cat(rot)}


def validation_batches(val_poses: np.ndarray, error2d: ErrorModel, world_error: WorldError,
                       config: MetaPoseConfig) -> list[Sample]:
    rng = np.random.default_rng(12345)  # the same validation set every time
    lo, hi = config.views
    # validation starts as takes do (take-level cameras): what the refinement is used for
    return [make_batch(rng, val_poses, int(v), config.batch, error2d, world_error, config.view_failure, 1.0,
                       config.take_init_deg) for v in np.linspace(lo, hi, config.val_batches).round()]


def train(config: MetaPoseConfig, train_poses: np.ndarray, val_poses: np.ndarray, error2d: ErrorModel,
          world_error: WorldError, run_dir: Path, progress: bool = True) -> dict:
    """The loop: sample a view count, a batch, step; validate; keep the best weights
    (RUN/metapose.safetensors), a checkpoint to resume (RUN/checkpoint.pt) and RUN/metrics.csv."""
    from tqdm import tqdm

    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    net = MetaPoseNet(config.steps, config.width)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, config.iterations)
    start, best = 0, {"val_rot_deg": float("inf")}
    ckpt = run_dir / "checkpoint.pt"
    if ckpt.is_file():
        state = torch.load(ckpt, weights_only=False)
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        start, best, rng = state["iteration"], state["best"], state["rng"]
    val = validation_batches(val_poses, error2d, world_error, config)
    metrics = run_dir / "metrics.csv"
    t0 = time.time()
    bar = tqdm(range(start, config.iterations), initial=start, total=config.iterations, disable=not progress,
               desc="metapose")
    for it in bar:
        views = int(rng.integers(config.views[0], config.views[1] + 1))
        b = make_batch(rng, train_poses, views, config.batch, error2d, world_error, config.view_failure,
                       config.take_init, config.take_init_deg)
        net.train()
        loss, parts = losses(net(b.kp, b.conf, *b.init), b, config)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{float(loss):.3f}", rot=f"{parts['rot_deg']:.1f}")
        if (it + 1) % config.val_every == 0 or it + 1 == config.iterations:
            net.eval()
            row = {"iteration": it + 1, "seconds": time.time() - t0, "loss": float(loss), **evaluate(net, val)}
            new = not metrics.is_file()
            with metrics.open("a", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=list(row))
                if new:
                    w.writeheader()
                w.writerow(row)
            if row["val_rot_deg"] < best["val_rot_deg"]:
                best = row
                save_metapose(net, run_dir / "metapose.safetensors")
            torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                        "iteration": it + 1, "best": best, "rng": rng}, ckpt)
    return best
