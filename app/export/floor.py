"""Feet on the floor for the character rig (`app.export.rig`): frames where a foot is low and
still are contact frames; there the foot is brought onto the floor (the calibration's floor,
world Z = 0) by two-bone IK of the leg (hip fixed, the knee kept in its plane), and where a
straight leg cannot reach, the body comes down by what is missing; corrections fade in and out
over a few frames.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from app.export.rig import Rig, _unit, forward, solve_rotations


@dataclass(frozen=True)
class FloorConfig:
    """Contact: a foot's lowest point within `height` m of its lowest over the take and
    slower than `speed` m/s; corrections fade over `fade` frames."""

    height: float = 0.05
    speed: float = 0.35
    fade: int = 6


def _two_bone(hip: np.ndarray, knee: np.ndarray, target: np.ndarray, l1: float, l2: float) -> np.ndarray:
    """Knee positions (F, 3) with the ankle at target, the knee in the hip-knee-target plane."""
    d = target - hip
    dist = np.clip(np.linalg.norm(d, axis=-1), 1e-6, l1 + l2 - 1e-6)
    u = _unit(d)
    pole = knee - hip
    pole = pole - np.einsum("fi,fi->f", pole, u)[:, None] * u
    n = np.linalg.norm(pole, axis=-1, keepdims=True)
    pole = np.where(n > 1e-9, pole / np.maximum(n, 1e-9), 0.0)
    a = (l1 ** 2 - l2 ** 2 + dist ** 2) / (2 * dist)
    h = np.sqrt(np.clip(l1 ** 2 - a ** 2, 0, None))
    return hip + a[:, None] * u + h[:, None] * pole


def _feet(rig: Rig, points: dict[str, np.ndarray], up: int) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """side -> (lowest foot point height (F,), foot centre (F, 3), FK positions (F, N, 3)) of
    the solved rig."""
    local, root = solve_rotations(rig, points)
    pos, ends = forward(rig, local, root)
    name = {n: i for i, n in enumerate(rig.names)}
    out = {}
    for side in ("Left", "Right"):
        parts = [name[f"{side}{p}"] for p in ("Foot", "ToeBase") if f"{side}{p}" in name]
        if not parts or f"{side}Leg" not in name:
            continue
        foot = np.concatenate([pos[:, parts], ends[:, parts]], axis=1)  # joints and tips of the foot
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out[side] = (np.nanmin(foot[..., up], axis=1), np.nanmean(foot, axis=1), pos)
    return out


def _fade(values: np.ndarray, contact: np.ndarray, fade: int) -> np.ndarray:
    """(F,) corrections kept in contact frames and faded linearly to 0 over `fade` frames
    outside them."""
    near = np.nonzero(contact)[0]
    if not len(near):
        return np.zeros(len(values))
    f = np.arange(len(values))
    right = np.minimum(np.searchsorted(near, f), len(near) - 1)
    left = np.maximum(right - 1, 0)
    # the nearest contact frame; on a tie the earlier one
    g = np.where(np.abs(near[left] - f) <= np.abs(near[right] - f), near[left], near[right])
    weight = np.clip(1.0 - np.abs(g - f) / (fade + 1), 0.0, None)
    return np.where(contact, values, weight * values[g])


def plant_feet(rig: Rig, points: dict[str, np.ndarray], fps: float, config: FloorConfig = FloorConfig(),
               up: int = 1) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Points (Y-up) with each foot on the floor (coordinate `up` = 0) in its contact frames ->
    (new points, side -> (F,) bool contact frames).

    Each foot in contact is lowered (or raised) onto the floor by two-bone IK of its leg with
    the rig's lengths (hip fixed, knee in its plane); where a leg is too short to reach, the
    whole body comes down by what is missing, and the legs are solved again."""
    feet = _feet(rig, points, up)
    contacts = {}
    for side, (low, centre, _) in feet.items():
        # speed of the foot smoothed over 0.15 s: unfiltered takes jitter by more than a
        # standing foot moves
        width = max(3, int(round(0.15 * fps)) | 1)
        kernel = np.ones(width) / width
        padded = np.pad(centre, ((width // 2, width // 2), (0, 0)), mode="edge")
        smooth = np.stack([np.convolve(padded[:, i], kernel, mode="valid") for i in range(3)], 1)
        speed = np.r_[0.0, np.linalg.norm(np.diff(smooth, axis=0), axis=-1) * fps]
        speed = np.nan_to_num(speed, nan=np.inf)
        contacts[side] = (low < np.nanmin(low) + config.height) & (speed < config.speed)
    out = _lower_feet(rig, points, feet, contacts, config.fade, up)
    # what the legs could not reach: the body comes down (the most any contact foot lacks)
    after = _feet(rig, out, up)
    missing = np.zeros(len(next(iter(points.values()))))
    for side, (low, _, _) in after.items():
        missing = np.maximum(missing, np.where(contacts[side], np.nan_to_num(low), 0.0))
    if missing.max() > 1e-4:
        body = _fade(missing, missing > 0, config.fade)
        shifted = {k: v - body[:, None] * np.eye(3)[up] for k, v in points.items()}
        out = _lower_feet(rig, shifted, _feet(rig, shifted, up), contacts, config.fade, up)
    return out, contacts


def _lower_feet(rig: Rig, points: dict[str, np.ndarray], feet, contacts: dict[str, np.ndarray], fade: int,
                up: int) -> dict[str, np.ndarray]:
    name = {n: i for i, n in enumerate(rig.names)}
    out = dict(points)
    for side, (low, _, pos) in feet.items():
        contact, k = contacts[side], side[0].lower()
        if not contact.any():
            continue
        drop = _fade(np.nan_to_num(low), contact, fade)
        shift = np.outer(drop, np.eye(3)[up])
        hip, knee, ankle = (pos[:, name[f"{side}{p}"]] for p in ("UpLeg", "Leg", "Foot"))
        l1 = float(np.linalg.norm(rig.offsets[name[f"{side}Leg"]]))
        l2 = float(np.linalg.norm(rig.offsets[name[f"{side}Foot"]]))
        knee_new = _two_bone(hip, knee, ankle - shift, l1, l2)
        ankle_new = knee_new + l2 * _unit(ankle - shift - knee_new)
        moved = (np.abs(drop) > 0)[:, None]
        # back in the take's frame: the rig reproduces directions, so keep the solved offsets
        knee_obs = points[f"{k}_hip"] + (knee_new - hip)
        ankle_obs = knee_obs + (ankle_new - knee_new)
        out[f"{k}_knee"] = np.where(moved, knee_obs, points[f"{k}_knee"])
        out[f"{k}_ankle"] = np.where(moved, ankle_obs, points[f"{k}_ankle"])
        for key in (f"{k}_ball", f"{k}_toe"):  # the foot moves rigidly with its ankle
            out[key] = np.where(moved, out[f"{k}_ankle"] + (points[key] - points[f"{k}_ankle"]), points[key])
    return out
