"""What the models read from a dataset's frame sets: the crops' labels for the backbone, and the
frozen backbone's 2D for the heads (computed once, cached as a run's observed_*.npz).

    obs = observe(dataset, landmark_net, device, np.arange(len(dataset)), "2D", progress=True)
    batch = obs.take(indices)      # P, x, und, conf, K, dist, R, t, truth as tensors

Every array keeps the sample layout of training.datasets (V views, our 33 joints).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from calibration import geometry as geo
from training import distributed as ddp
from training.datasets import OURS, array_roi

MIN_CONFIDENCE = 0.3  # as the product's triangulation (app.process): weaker 2D is not used


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, np.float64))


def undistort(x: np.ndarray, K: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """(V, J, 2) distorted px of V cameras -> undistorted px (same K), NaN stays NaN."""
    out = np.full_like(x, np.nan)
    for v in range(len(x)):
        ok = np.isfinite(x[v]).all(-1)
        if ok.any():
            out[v, ok] = geo.undistort_pixels(_t(x[v, ok]), _t(K[v]), _t(dist[v])).numpy()
    return out


def crop_labels(s: dict) -> tuple[np.ndarray, np.ndarray]:
    """The truth in each crop: (V, 33, 2) crop units (NaN outside the crop or unknown) and
    weights (V, 33), 1 where labelled."""
    from engines.blazepose.roi import image_to_crop

    uv = geo.project(_t(s["joints"])[None], _t(s["K"]), _t(s["dist"]), _t(s["R"]), _t(s["t"])).numpy()  # (V, 33, 2)
    out = np.full((len(uv), len(OURS), 2), np.nan)
    for v in np.flatnonzero(s["view_ok"]):
        out[v] = image_to_crop(uv[v], array_roi(s["roi"][v]), 1.0)
    inside = np.isfinite(out).all(-1) & (out >= 0).all(-1) & (out <= 1).all(-1)
    out[~inside] = np.nan
    return out, inside.astype(np.float64)


@dataclass
class Observed:
    """Frame sets as the heads see them: the backbone's 2D x (N, V, 33, 2) distorted px and
    und (the same undistorted), conf (N, V, 33) (0 where unused), cameras K, dist, R, t, and
    truth (N, 33, 3) metres."""

    x: np.ndarray
    und: np.ndarray
    conf: np.ndarray
    K: np.ndarray
    dist: np.ndarray
    R: np.ndarray
    t: np.ndarray
    truth: np.ndarray

    def __len__(self) -> int:
        return len(self.x)

    def take(self, idx: np.ndarray) -> dict[str, torch.Tensor]:
        a = {k: torch.as_tensor(getattr(self, k)[idx]) for k in ("x", "und", "conf", "K", "dist", "R", "t", "truth")}
        a["P"] = geo.projection_matrix(a["K"], a["R"], a["t"])
        return a


def backbone_points(net: torch.nn.Module, crops: np.ndarray, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """(N, 256, 256, 3) uint8 -> the refined 2D (N, 33, 2) crop units and its confidence (N, 33)."""
    from training.adapt import decoded_points, to_tensor

    with torch.no_grad():
        out = net(to_tensor(crops, device))
        _, refined, conf = decoded_points(out)
    return refined[:, :33].float().cpu().numpy(), conf[:, :33].float().cpu().numpy()


def observe_sample(s: dict, net: torch.nn.Module, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """The backbone's 2D of one frame set in image px (V, 33, 2), NaN where a view is missing or
    the joint is weaker than MIN_CONFIDENCE, and confidences (V, 33), 0 there."""
    from engines.blazepose.roi import crop_to_image

    V = len(s["crops"])
    x, c = np.full((V, 33, 2), np.nan), np.zeros((V, 33))
    ok = np.flatnonzero(s["view_ok"])
    if len(ok):
        pts, conf = backbone_points(net, s["crops"][ok], device)
        for k, v in enumerate(ok):
            x[v] = crop_to_image(pts[k], array_roi(s["roi"][v]), 1.0)
            c[v] = conf[k]
    weak = c < MIN_CONFIDENCE
    x[weak], c[weak] = np.nan, 0.0
    return x, c


def observe(ds, net: torch.nn.Module, device: torch.device, indices: np.ndarray, desc: str,
            progress: bool) -> Observed:
    cols = {k: [] for k in ("x", "und", "conf", "K", "dist", "R", "t", "truth")}
    for i in tqdm(indices, desc=desc, disable=not progress, unit="set"):
        s = ds[int(i)]
        x, c = observe_sample(s, net, device)
        for k, v in (("x", x), ("und", undistort(x, s["K"], s["dist"])), ("conf", c), ("K", s["K"]),
                     ("dist", s["dist"]), ("R", s["R"]), ("t", s["t"]), ("truth", s["joints"])):
            cols[k].append(v)
    return Observed(**{k: np.stack(v) for k, v in cols.items()})


def read_observed(path: Path) -> Observed:
    with np.load(path) as d:
        return Observed(**{k: d[k] for k in d.files})


def cached_observed(path: Path, make) -> Observed:
    """`path` read if it is there, else `make()` written there (atomically) and returned."""
    if path.is_file():
        return read_observed(path)
    obs = make()
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **dataclasses.asdict(obs))
    os.replace(tmp, path)
    return obs


def dlt(P: np.ndarray, und: np.ndarray, conf: np.ndarray) -> np.ndarray:
    """Confidence-weighted DLT of (N, V, 33, 2) undistorted px -> (N, 33, 3)."""
    from calibration.triangulation import triangulate_dlt

    Pt = torch.as_tensor(P)[:, None].expand(-1, und.shape[2], -1, -1, -1)
    w = torch.as_tensor(np.where(np.isfinite(und).all(-1), conf, 0.0)).transpose(1, 2)
    return triangulate_dlt(Pt, torch.as_tensor(np.nan_to_num(und)).transpose(1, 2), w).numpy()


def synthetic_observed(directory: Path, subjects: tuple[str, ...], samples: int, seed: int) -> Observed:
    """Frame sets made from motion capture (training.synthetic: random 2-8 camera studios,
    BlazePose's fitted errors from training/error_model.toml, views padded to 8): the heads'
    input without images. The 2D is pinhole, so x and und are the same."""
    from training.error_model import ErrorModel
    from training.mocap import load_clips
    from training.synthetic import SyntheticViews

    model = ErrorModel.load(Path(__file__).with_name("error_model.toml"))
    b = SyntheticViews(load_clips(Path(directory), subjects), model, seed=seed).sample(samples)
    return Observed(x=b.x, und=b.x, conf=b.conf, K=b.K, dist=np.zeros((*b.K.shape[:2], 5)), R=b.R, t=b.t,
                    truth=b.truth)


def evenly(n: int, limit: int) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(n, limit)).round().astype(int)) if n else np.zeros(0, int)


def backbone_batch(ds, positions: np.ndarray, step: int, seed: int) -> tuple[np.ndarray, ...]:
    """Crops (n, 256, 256, 3), labels (n, 33, 2) and weights (n, 33) of the frame sets at
    `positions`, augmented with a generator per (seed, step, position in the global batch)."""
    from training.adapt import augment

    crops, labels, weights = [], [], []
    for slot, i in positions:
        s = ds[int(i)]
        lab, w = crop_labels(s)
        ok = np.flatnonzero(s["view_ok"])
        im, lab = augment(s["crops"][ok], np.nan_to_num(lab[ok]), np.random.default_rng([seed, step, int(slot)]))
        crops.append(im)
        labels.append(lab)
        weights.append(w[ok])
    return np.concatenate(crops), np.concatenate(labels), np.concatenate(weights)


class StepBatches(torch.utils.data.Dataset):
    """Item `step`: this rank's slice of that step's global batch for the backbone (crops,
    labels, weights), so a DataLoader with workers reads and augments images ahead of the
    step while keeping the batches exactly those of a run without workers."""

    def __init__(self, ds, size: int, batch: int, seed: int, place: ddp.Place):
        self.ds, self.size, self.batch, self.seed, self.place = ds, size, batch, seed, place

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, step: int) -> tuple[np.ndarray, ...]:
        positions = ddp.batch_positions(step, self.size, self.batch, self.seed)
        mine = ddp.shard(positions, self.place)
        slots = np.arange(len(positions))[mine]
        return backbone_batch(self.ds, zip(slots, positions[mine], strict=True), step, self.seed)


def keep_batch(batch):
    return batch
