"""The int8 landmark network: ONNX Runtime static quantisation calibrated on real crops.

    python -m engines.blazepose.quantize VIDEO... [--frames 60] [-o OUT.onnx]

The float landmark graph (engines/export_onnx.py) is quantised per channel (int8 weights,
uint8 activations, QDQ format) with activation ranges fitted on the crops the float tracker
itself cuts from real video (every tracked person of every view in the first `frames` frames),
so the ranges are those of people, not of noise. Only the encoder's convolutions are int8: the
output heads, the regression branch (reg*), the heatmap decoder (decoder_in, skip*, Resize)
and the residual Adds stay float. Measured per crop against the float graph on crops the
calibration did not see (studio frames 60-99, and the caliscope webcam take, another room),
heatmap-refined landmarks moved by a median 1.1 / 1.7 px of the 256 crop (p95 6.4 / 14.5);
quantising everything moved them 1.6 / 2.3 px and ran slower (requantisation around the small
tensors), the encoder alone is where the time goes (1.9x faster per crop than float here).
benchmarks/process_quality.py --speed-options gives what that becomes in image pixels and 3D.

`ensure_quantized` caches the file next to the float export, keyed by the float graph and the
calibration videos, as `ensure_exported` does for the float one.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from calibration.errors import TriangulumError

CALIBRATION_FRAMES = 60
# Graph nodes kept float: the output heads and the regression branch (see the docstring).
FLOAT_NODES = ("landmarks_out", "world_out", "flag_out", "/heatmap/", "reg", "skip", "decoder_in", "/Add",
               "Resize")


class _CropRecorder:
    """A backend that runs `backend` and keeps every landmark batch it was given."""

    def __init__(self, backend) -> None:
        self.backend = backend
        self.crops: list[np.ndarray] = []

    def detect(self, images: np.ndarray) -> dict[str, np.ndarray]:
        return self.backend.detect(images)

    def landmarks(self, crops: np.ndarray) -> dict[str, np.ndarray]:
        self.crops.append(crops.copy())
        return self.backend.landmarks(crops)


def calibration_crops(videos: list[Path], frames: int = CALIBRATION_FRAMES) -> np.ndarray:
    """(N, 3, 256, 256) float32 landmark inputs: every person the float tracker follows in the
    first `frames` frames of each video (the views tracked together, as in a take)."""
    from engines.blazepose.backends import OnnxRuntimeBackend
    from engines.blazepose.pipeline import BlazePoseEstimator
    from engines.tracker import PeopleTracker

    recorder = _CropRecorder(OnnxRuntimeBackend())
    tracker = PeopleTracker(BlazePoseEstimator(recorder))
    captures = [cv2.VideoCapture(str(v)) for v in videos]
    try:
        for c, v in zip(captures, videos, strict=True):
            if not c.isOpened():
                raise TriangulumError(f"cannot read {v} for int8 calibration; give readable videos.")
        for _ in range(frames):
            images = [c.read()[1] for c in captures]
            if any(im is None for im in images):
                break
            tracker(images)
    finally:
        for c in captures:
            c.release()
    if not recorder.crops:
        raise TriangulumError(f"no person found in the first {frames} frames of {[str(v) for v in videos]}; "
                              "calibrate the int8 model on videos with people in them.")
    return np.concatenate(recorder.crops)


class _Reader:
    """ONNX Runtime's calibration reader protocol over a crop array, one crop per call."""

    def __init__(self, crops: np.ndarray) -> None:
        self._items: Iterator[np.ndarray] = iter(crops[i:i + 1] for i in range(len(crops)))

    def get_next(self) -> dict[str, np.ndarray] | None:
        x = next(self._items, None)
        return None if x is None else {"crops": x}


def quantize_landmark(float_path: Path, crops: np.ndarray, out: Path) -> Path:
    """Static int8 quantisation of the float landmark graph at `float_path` -> `out`."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        # Symbolic shape inference stops on the dynamic batch; ONNX's own inference suffices.
        quant_pre_process(str(float_path), str(pre), skip_symbolic_shape=True)
        keep = [n.name for n in onnx.load(str(pre)).graph.node if any(k in n.name for k in FLOAT_NODES)]
        part = out.with_suffix(".tmp.onnx")
        quantize_static(str(pre), str(part), _Reader(crops), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=keep)
        os.replace(part, out)  # never a half-written model under the final name
    return out


def ensure_quantized(videos: list[Path], frames: int = CALIBRATION_FRAMES, model_dir: Path | None = None) -> Path:
    """The int8 landmark graph calibrated on `videos`, from the cache or made now (~20 s)."""
    from engines.export_onnx import default_cache_dir, ensure_exported

    float_path = ensure_exported(model_dir, dynamic=True)["landmark"]
    h = hashlib.sha256(float_path.name.encode())
    h.update(Path(__file__).read_bytes())
    h.update(str(frames).encode())
    for v in videos:
        h.update(Path(v).read_bytes())
    out = (Path(model_dir) if model_dir else default_cache_dir()) / f"blazepose_landmark_int8_{h.hexdigest()[:12]}.onnx"
    if not out.is_file():
        quantize_landmark(float_path, calibration_crops(videos, frames), out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Quantise the BlazePose landmark network to int8.")
    parser.add_argument("videos", nargs="+", type=Path, help="calibration videos (one take, one per camera)")
    parser.add_argument("--frames", type=int, default=CALIBRATION_FRAMES, help="first frames used of each video")
    parser.add_argument("-o", "--output", type=Path, help="write here instead of the cache")
    args = parser.parse_args(argv)
    if args.output:
        from engines.export_onnx import ensure_exported

        path = quantize_landmark(ensure_exported()["landmark"], calibration_crops(args.videos, args.frames), args.output)
    else:
        path = ensure_quantized(args.videos, args.frames)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
