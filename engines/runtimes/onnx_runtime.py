"""Run an ONNX model with ONNX Runtime: named numpy inputs in, named numpy outputs out."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from calibration.errors import TriangulumError

MAX_CHUNKS = 4  # a set of four views gives four landmark crops


def default_threads() -> int:
    """The 2D model's default CPU threads: one per core, at most MAX_CHUNKS (see OnnxRuntimeModel)."""
    return max(1, min(MAX_CHUNKS, os.cpu_count() or 1))


class OnnxRuntimeModel:
    """One InferenceSession; `model(name=array, ...)` returns {output name: array}.

    threads: CPU threads. On the CPU, more than one runs the batch as that many chunks at once,
    each a single-threaded run of the same session (ONNX Runtime's `run` is thread-safe),
    instead of one run whose operators are split across a thread pool: the chunks need no
    barrier per operator, so a thread the OS pauses (grabbers and the recorder share the cores)
    holds up only its own chunk. Measured here on four landmark crops: 22 ms as two chunks
    against 30-33 ms with two intra-op threads and 39-43 ms on one thread. A batch of one runs
    on one thread.
    """

    def __init__(self, path: str | Path, providers: list[str] | None = None,
                 threads: int | None = None):
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise TriangulumError(f"ONNX model {path} does not exist; export it first.")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        providers = providers or ["CPUExecutionProvider"]
        self.chunks = threads if threads and threads > 1 and providers[0] == "CPUExecutionProvider" else 1
        if self.chunks > 1:
            options.intra_op_num_threads = 1
        elif threads:
            options.intra_op_num_threads = threads
        self.path = path
        self.session = ort.InferenceSession(str(path), options, providers=providers)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self._pool = ThreadPoolExecutor(self.chunks - 1, "onnx-chunk") if self.chunks > 1 else None

    def _run(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(self.output_names, feed)

    def __call__(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        feed = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in inputs.items()}
        n = len(next(iter(feed.values())))
        if self._pool is None or n < 2:
            return dict(zip(self.output_names, self._run(feed), strict=True))
        bounds = np.linspace(0, n, min(self.chunks, n) + 1).astype(int)
        parts = [{k: v[a:b] for k, v in feed.items()} for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        # The caller's thread runs the first chunk itself: no hand-off for it.
        futures = [self._pool.submit(self._run, part) for part in parts[1:]]
        outs = [self._run(parts[0]), *(f.result() for f in futures)]
        return {name: np.concatenate([o[i] for o in outs]) for i, name in enumerate(self.output_names)}
