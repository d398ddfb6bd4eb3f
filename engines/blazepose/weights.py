"""Load the shipped BlazePose weights (safetensors, float16) into the torch modules.

Only torch and safetensors are needed: no mediapipe, TensorFlow or network at run time.
"""

from __future__ import annotations

from pathlib import Path

import torch

from calibration.errors import TriangulumError
from engines.blazepose.modules import BlazePoseDetector, BlazePoseLandmark

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DETECTOR_WEIGHTS = WEIGHTS_DIR / "pose_detection.safetensors"
LANDMARK_WEIGHTS = WEIGHTS_DIR / "pose_landmark_full.safetensors"


def _load(module: torch.nn.Module, path: Path) -> torch.nn.Module:
    from safetensors.torch import load_file

    if not path.is_file():
        raise TriangulumError(
            f"BlazePose weights {path} are missing; reinstall triangulum or regenerate them with "
            "`python -m engines.blazepose.convert --from-wheel PATH`."
        )
    try:
        state = {k: v.float() for k, v in load_file(str(path)).items()}
        module.load_state_dict(state, strict=True)
    except (RuntimeError, OSError, ValueError) as e:  # another network's file, or a damaged one
        raise TriangulumError(f"{path} does not hold {type(module).__name__} weights ({str(e).splitlines()[0]}); "
                              "give a file written by `triangulum adapt` or the shipped weights.") from None
    return module.eval()


def load_detector(path: Path = DETECTOR_WEIGHTS) -> BlazePoseDetector:
    """The person detector in eval mode, float32 on the CPU."""
    return _load(BlazePoseDetector(), path)


def load_landmark(path: Path = LANDMARK_WEIGHTS, with_segmentation: bool = False) -> BlazePoseLandmark:
    """The GHUM full landmark net in eval mode, float32 on the CPU."""
    return _load(BlazePoseLandmark(with_segmentation=with_segmentation), path)
