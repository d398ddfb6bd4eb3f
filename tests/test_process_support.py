"""Shared inputs of the tests/test_process_*.py modules (no tests here).

- `reference_take()`: Pose2Sim's 3D reconstruction of the sample take as BlazePose joints
  (the 17 it defines; others NaN), world metres: real motion for synthetic-from-real 2D.
- `views_of(rig, people)`: per frame, per camera, the ViewPeople that the given 3D people
  project to (a person can be hidden from chosen views), with real calibration and distortion.
- `sample_result()`: the built-in sample processed once per test session with the default
  configuration (real videos, real BlazePose), shared by the modules that need it.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from shared_data import TEST_DATA

from app.sample import sample_calibration
from calibration.formats.detect import convert
from engines.skeleton import BLAZEPOSE33
from engines.tracker import ViewPeople

DATA = TEST_DATA
REFERENCE_TRC = DATA / "pose2sim-demo-single" / "reference" / "pose2sim_body25b_0-100.trc"

BODY25B_TO_BLAZEPOSE = {
    "RHip": "right_hip", "RKnee": "right_knee", "RAnkle": "right_ankle", "RBigToe": "right_foot_index",
    "RHeel": "right_heel", "LHip": "left_hip", "LKnee": "left_knee", "LAnkle": "left_ankle",
    "LBigToe": "left_foot_index", "LHeel": "left_heel", "Nose": "nose", "RShoulder": "right_shoulder",
    "RElbow": "right_elbow", "RWrist": "right_wrist", "LShoulder": "left_shoulder", "LElbow": "left_elbow",
    "LWrist": "left_wrist",
}
REFERENCE_LIMBS = ("left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist",
                   "right_wrist", "left_knee", "right_knee", "left_ankle", "right_ankle")


def sample_rig():
    return convert(sample_calibration())


def reference_take() -> np.ndarray:
    """(100, 33, 3) world metres; joints Pose2Sim does not give are NaN."""
    if not REFERENCE_TRC.is_file():
        pytest.skip("shared data (pose2sim-demo-single) not available")
    from app.export.trc import read_trc

    trc = read_trc(REFERENCE_TRC)
    out = np.full((len(trc.world), BLAZEPOSE33.num_joints, 3), np.nan)
    for src, dst in BODY25B_TO_BLAZEPOSE.items():
        out[:, BLAZEPOSE33.index[dst]] = trc.world[:, trc.names.index(src)]
    return out


def views_of(rig, people: list[np.ndarray], hidden: dict[int, list[int]] | None = None,
             noise_px: float = 0.0, seed: int = 0) -> list[list[ViewPeople]]:
    """Frames of ViewPeople from 3D people (each (F, J, 3)); hidden: person -> views that do
    not see them. Confidence 0.9 where a joint exists, 0 elsewhere; detections in each view
    are listed in a random order per frame, as detectors do not sort people consistently."""
    rng = np.random.default_rng(seed)
    hidden = hidden or {}
    F = len(people[0])
    projected = [rig.project(p) for p in people]  # (C, F, J, 2) each
    frames = []
    for f in range(F):
        views = []
        for v in range(len(rig)):
            members = [k for k in range(len(people)) if v not in hidden.get(k, [])]
            rng.shuffle(members)
            if not members:
                views.append(ViewPeople.empty())
                continue
            kp = np.stack([projected[k][v, f] for k in members])
            kp = kp + rng.normal(0, noise_px, kp.shape) if noise_px else kp
            conf = np.where(np.isfinite(kp).all(-1), 0.9, 0.0)
            views.append(ViewPeople(kp, conf, np.array(members, np.int64), np.ones(len(members))))
        frames.append(views)
    return frames


@functools.cache
def sample_result():
    """The built-in sample through `process_take` with the default configuration."""
    from app.process.inputs import open_take
    from app.process.take import ProcessConfig, process_take

    return process_take(open_take([]), ProcessConfig())
