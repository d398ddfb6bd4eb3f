"""Speed of the BlazePose networks: ms per image (detector) and per crop (landmark net).

    python benchmarks/backbone_speed.py [--json PATH] [--threads 2] [--repeats 20]
                                        [--mp-python PATH] [--device cuda]

Runtimes, in one run and with the same thread count: the TFLite interpreter on MediaPipe's own
.tflite files (reference; run in the mediapipe environment by mediapipe_reference.py), torch
eager, torch traced (torch.jit.trace + freeze), and ONNX Runtime on our exported graphs; on a
CUDA machine (--device cuda) torch eager, traced and TensorRT as well. Batch 1 and batch 4
(the .tflite graphs have a fixed batch of 1, so their batch 4 is four invocations). Each figure
is the best over repeats and rounds, the rounds alternating the runtimes, because this CPU is
shared. The landmark net here skips the segmentation decoder, which the .tflite graph always
runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engines.blazepose.weights import load_detector, load_landmark  # noqa: E402

REFERENCE_SCRIPT = Path(__file__).resolve().parent / "mediapipe_reference.py"
BATCHES = (1, 4)


def _best_ms(fn, batch: int, repeats: int, sync=lambda: None) -> float:
    """Best time per item over `repeats` calls of a batch (the least disturbed on a shared CPU)."""
    for _ in range(3):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t0) / batch)
    return 1000.0 * float(np.min(times))


def tflite_reference(mp_python: str, threads: int, repeats: int) -> dict[str, float] | None:
    if not Path(mp_python).exists():
        print(f"(no mediapipe environment at {mp_python}: tflite rows skipped)", file=sys.stderr)
        return None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "speed.json"
        run = subprocess.run([mp_python, str(REFERENCE_SCRIPT), "speed", str(out),
                              "--threads", str(threads), "--repeats", str(repeats)],
                             stderr=subprocess.PIPE, text=True)
        if run.returncode != 0:
            print(f"(tflite reference failed: {run.stderr.strip().splitlines()[-1:]})", file=sys.stderr)
            return None
        return json.loads(out.read_text())


class _LandmarkTuple(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        out = self.net(x)
        return out["landmarks"], out["pose_flag"], out["heatmaps"], out["world"], out["features"]


def torch_rows(device: str, repeats: int) -> dict[str, dict[str, float]]:
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    # The layout TorchBackend uses: channels-last on the CPU.
    layout = torch.channels_last if device == "cpu" else torch.contiguous_format
    nets = {"detector": load_detector().to(device, memory_format=layout),
            "landmark": _LandmarkTuple(load_landmark()).to(device, memory_format=layout)}
    sizes = {"detector": 224, "landmark": 256}
    rows: dict[str, dict[str, float]] = {"torch eager": {}, "torch traced": {}}
    with torch.inference_mode():
        for name, net in nets.items():
            for batch in BATCHES:
                x = torch.rand(batch, 3, sizes[name], sizes[name], device=device).contiguous(memory_format=layout)
                rows["torch eager"][f"{name}_b{batch}"] = _best_ms(lambda net=net, x=x: net(x), batch, repeats, sync)
                traced = torch.jit.freeze(torch.jit.trace(net.eval(), x))
                rows["torch traced"][f"{name}_b{batch}"] = _best_ms(lambda traced=traced, x=x: traced(x), batch, repeats, sync)
    return rows


def onnx_rows(repeats: int, threads: int, providers: list[str]) -> dict[str, float]:
    from engines.export_onnx import ensure_exported
    from engines.runtimes.onnx_runtime import OnnxRuntimeModel

    paths = ensure_exported(dynamic=True)
    row = {}
    for name, key, size in (("detector", "images", 224), ("landmark", "crops", 256)):
        model = OnnxRuntimeModel(paths[name], providers=providers, threads=threads)
        for batch in BATCHES:
            x = np.random.default_rng(0).uniform(0, 1, (batch, 3, size, size)).astype(np.float32)
            row[f"{name}_b{batch}"] = _best_ms(lambda model=model, key=key, x=x: model(**{key: x}), batch, repeats)
    return row


def tensorrt_row(repeats: int) -> dict[str, float]:
    from engines.export_onnx import ensure_exported
    from engines.runtimes.tensorrt_runtime import TensorRTModel

    paths = ensure_exported(dynamic=True)
    row = {}
    for name, key, size in (("detector", "images", 224), ("landmark", "crops", 256)):
        model = TensorRTModel(paths[name], max_batch=max(BATCHES), fp16=True)
        for batch in BATCHES:
            x = np.random.default_rng(0).uniform(0, 1, (batch, 3, size, size)).astype(np.float32)
            row[f"{name}_b{batch}"] = _best_ms(lambda model=model, key=key, x=x: model(**{key: x}), batch, repeats)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2,
                        help="alternate all runtimes this many times and keep each one's best")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--mp-python", default=os.environ.get("TRIANGULUM_MP_PYTHON", "/opt/mpref/bin/python"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    rows: dict[str, dict[str, float]] = {}

    def keep_best(name: str, row: dict[str, float] | None) -> None:
        if row:
            old = rows.setdefault(name, {})
            for k, v in row.items():
                old[k] = min(v, old.get(k, float("inf")))

    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if args.device == "cuda" else None
    # Rounds alternate the runtimes so that a burst of load from elsewhere hits them alike.
    for _ in range(args.rounds):
        if args.device == "cpu":
            keep_best("tflite (reference)", tflite_reference(args.mp_python, args.threads, args.repeats))
        for name, row in torch_rows(args.device, args.repeats).items():
            keep_best(name, row)
        keep_best("onnxruntime", onnx_rows(args.repeats, args.threads, providers))
        if args.device == "cuda":
            keep_best("tensorrt fp16", tensorrt_row(args.repeats))

    cols = [f"{n}_b{b}" for n in ("detector", "landmark") for b in BATCHES]
    print(f"ms per image (detector) / per crop (landmark), {args.device}, {args.threads} threads, "
          f"best of {args.rounds} x {args.repeats}; load average {os.getloadavg()[0]:.1f}")
    print(f"{'runtime':20s}" + "".join(f"{c:>14s}" for c in cols))
    for name, row in rows.items():
        print(f"{name:20s}" + "".join(f"{row.get(c, float('nan')):14.2f}" for c in cols))
    result = {"device": args.device, "threads": args.threads, "rounds": args.rounds,
              "repeats": args.repeats, "load_average": os.getloadavg()[0], "ms": rows}
    if "tflite (reference)" in rows:
        ref = rows["tflite (reference)"]
        result["onnxruntime_over_tflite"] = {c: rows["onnxruntime"][c] / ref[c] for c in cols}
        print("onnxruntime / tflite: " + ", ".join(f"{c} {v:.2f}x" for c, v in result["onnxruntime_over_tflite"].items()))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
