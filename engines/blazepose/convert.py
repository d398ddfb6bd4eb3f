"""Convert MediaPipe's BlazePose .tflite models into the safetensors shipped with this package.

    python -m engines.blazepose.convert --from-wheel PATH [--out DIR] [--check]

PATH is a mediapipe wheel (.whl), a site-packages folder or the `mediapipe` package folder;
without it the converter looks for an importable mediapipe, then $TRIANGULUM_MP_PYTHON's
environment, then /opt/mpref. The output is deterministic: running it on mediapipe 0.10.21
reproduces engines/blazepose/weights/*.safetensors byte for byte (`--check` verifies that).
Weights stay float16, exactly as stored in the flatbuffers (sparse ones densified), transposed
from TFLite's OHWI / 1HWC layouts to torch's OIHW.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calibration.errors import TriangulumError
from engines.blazepose.modules import BlazePoseDetector, BlazePoseLandmark
from engines.blazepose.tflite_reader import TfliteGraph, read_tflite

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DETECTOR_TFLITE = "mediapipe/modules/pose_detection/pose_detection.tflite"
LANDMARK_TFLITE = "mediapipe/modules/pose_landmark/pose_landmark_full.tflite"
SOURCES_FILE = "SOURCES.json"  # sha256 of the .tflite files the weights came from


@dataclass(frozen=True)
class ModelSpec:
    """One model to convert: where it lives in the wheel and where its weights go."""

    tflite: str  # path inside the wheel / site-packages
    weights: str  # file name under WEIGHTS_DIR
    module: type


MODELS = (
    ModelSpec(DETECTOR_TFLITE, "pose_detection.safetensors", BlazePoseDetector),
    ModelSpec(LANDMARK_TFLITE, "pose_landmark_full.safetensors", BlazePoseLandmark),
)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _site_packages_of(python: str) -> list[Path]:
    base = Path(python).absolute().parent.parent  # a venv python is a symlink: do not resolve it
    return sorted(base.glob("lib/python3*/site-packages"))


def candidate_roots() -> list[Path]:
    """Folders that may contain `mediapipe/modules/...`, most specific first."""
    roots = []
    try:
        import importlib.util

        spec = importlib.util.find_spec("mediapipe")
        if spec is not None and spec.origin:
            roots.append(Path(spec.origin).parent.parent)
    except (ImportError, ValueError):
        pass
    env = os.environ.get("TRIANGULUM_MP_PYTHON")
    if env:
        roots += _site_packages_of(env)
    roots += _site_packages_of("/opt/mpref/bin/python")
    return roots


def locate_tflite(source: Path | None, workdir: Path) -> dict[str, Path]:
    """Find both .tflite files in `source` (wheel, site-packages or mediapipe folder) or by search.

    Wheels are unpacked (only the two files) into `workdir`. Returns {inner path: file}.
    Raises TriangulumError when they cannot be found.
    """
    wanted = [m.tflite for m in MODELS]
    if source is not None:
        source = Path(source)
        if source.is_file() and source.suffix == ".whl":
            with zipfile.ZipFile(source) as wheel:
                missing = [w for w in wanted if w not in wheel.namelist()]
                if missing:
                    raise TriangulumError(
                        f"Wheel {source} does not contain {missing[0]}; use mediapipe==0.10.21."
                    )
                for inner in wanted:
                    wheel.extract(inner, workdir)
            return {w: workdir / w for w in wanted}
        roots = [source, source.parent]
    else:
        roots = candidate_roots()
    for root in roots:
        found = {w: root / w for w in wanted}
        if all(p.is_file() for p in found.values()):
            return found
    where = str(source) if source is not None else ", ".join(str(r) for r in roots) or "nowhere"
    raise TriangulumError(
        f"Could not find the BlazePose .tflite files in {where}; pass --from-wheel with a "
        "mediapipe 0.10.21 wheel or the site-packages folder it is installed in."
    )


def state_dict_from_graph(graph: TfliteGraph, module) -> dict[str, np.ndarray]:
    """Map every CONV_2D / DEPTHWISE_CONV_2D of `graph`, in file order, onto `module`'s layers.

    Returns {param name: float16 array in torch layout}. Raises TriangulumError when the
    graph does not have the expected layers (a different model version).
    """
    convs = [op for op in graph.compute_ops() if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    order = module.tflite_conv_order()
    if len(convs) != len(order):
        raise TriangulumError(
            f"The .tflite graph has {len(convs)} convolutions but {type(module).__name__} "
            f"expects {len(order)}; convert the models of mediapipe==0.10.21."
        )
    layers = dict(module.named_modules())
    out = {}
    for op, name in zip(convs, order, strict=True):
        layer = layers[name]
        weight = graph.constants[op.inputs[1]]
        bias = graph.constants[op.inputs[2]]
        if op.kind == "CONV_2D":
            weight = weight.transpose(0, 3, 1, 2)  # OHWI -> OIHW
        else:
            weight = weight.transpose(3, 0, 1, 2)  # 1HWC -> C1HW
        stride = tuple(layer.stride)
        if tuple(weight.shape) != tuple(layer.weight.shape) or stride != op.options["stride"]:
            raise TriangulumError(
                f"Layer {name} does not match op {op.index} of the .tflite graph "
                f"({weight.shape} stride {op.options['stride']}); is this mediapipe 0.10.21?"
            )
        out[f"{name}.weight"] = np.ascontiguousarray(weight.astype(np.float16))
        out[f"{name}.bias"] = np.ascontiguousarray(bias.astype(np.float16))
    return out


def convert(source: Path | None, out_dir: Path = WEIGHTS_DIR) -> dict[str, Path]:
    """Convert both models; returns {weights file name: written path}."""
    from safetensors.numpy import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    written, sources = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        files = locate_tflite(source, Path(tmp))
        for spec in MODELS:
            path = files[spec.tflite]
            graph = read_tflite(path)
            tensors = state_dict_from_graph(graph, spec.module())
            target = out_dir / spec.weights
            # No safetensors metadata: its writer orders metadata keys at random, which would
            # break the byte-for-byte reproduction. Provenance goes to SOURCES.json instead.
            save_file(tensors, str(target))
            written[spec.weights] = target
            sources[spec.weights] = {"from": spec.tflite, "sha256": sha256(path)}
    target = out_dir / SOURCES_FILE
    target.write_text(json.dumps(sources, indent=2, sort_keys=True) + "\n")
    written[SOURCES_FILE] = target
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from-wheel", type=Path, default=None, metavar="PATH",
                        help="mediapipe wheel, site-packages or mediapipe folder")
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="output folder")
    parser.add_argument("--check", action="store_true",
                        help="convert into a temporary folder and compare hashes with --out")
    args = parser.parse_args(argv)
    try:
        if args.check:
            with tempfile.TemporaryDirectory() as tmp:
                fresh = convert(args.from_wheel, Path(tmp))
                same = True
                for name, path in fresh.items():
                    shipped = args.out / name
                    ok = shipped.is_file() and sha256(path) == sha256(shipped)
                    same &= ok
                    print(f"{name}: {'identical' if ok else 'DIFFERENT'} {sha256(path)}")
            return 0 if same else 1
        for path in convert(args.from_wheel, args.out).values():
            print(f"wrote {path} sha256={sha256(path)}")
    except TriangulumError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
