"""Read a .tflite flatbuffer into plain numpy: constant tensors and the operator list.

Only what the converter needs: the graph's operators in file order (type, input and output
tensor ids, the options that matter for layout), and every constant tensor materialised as a
dense numpy array, with DENSIFY (sparse weights) and DEQUANTIZE (float16 -> float32 at run
time in TFLite) resolved. The `tflite` PyPI parser is a convert-time dependency only; it is
imported inside `read_tflite` so that importing this module never requires it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from calibration.errors import TriangulumError

# TensorType enum values of the TFLite schema that appear in constant buffers.
_NUMPY_DTYPE = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 9: np.int8}
# ActivationFunctionType of the schema.
ACTIVATIONS = {0: None, 1: "relu", 3: "relu6"}


@dataclass
class TfliteOp:
    """One operator of the graph, in file (= execution) order."""

    index: int
    kind: str  # builtin operator name, e.g. "CONV_2D"
    inputs: list[int]  # tensor ids; -1 = optional input absent
    outputs: list[int]
    options: dict = field(default_factory=dict)


@dataclass
class TfliteGraph:
    """Subgraph 0 of a model with its constants resolved.

    `constants` maps a tensor id to its value as stored in the file: float16 weights stay float16
    (the ids of DEQUANTIZE/DENSIFY outputs map to the same array), so a converter can keep them
    bit-exact.
    """

    ops: list[TfliteOp]
    names: list[str]
    shapes: list[tuple[int, ...]]
    constants: dict[int, np.ndarray]
    inputs: list[int]
    outputs: list[int]

    def compute_ops(self) -> list[TfliteOp]:
        """The operators that do work at run time (not weight decoding)."""
        return [op for op in self.ops if op.kind not in ("DEQUANTIZE", "DENSIFY")]


def densify(shape: tuple[int, ...], values: np.ndarray, sparsity) -> np.ndarray:
    """Expand a TFLite sparse tensor (CSR levels in traversal order, optional blocks) to dense.

    shape: the dense shape (N dims); values: the stored non-zeros in traversal order.
    Returns an array of `shape` and `values.dtype`.
    """
    traversal = [int(v) for v in sparsity.TraversalOrderAsNumpy()]
    block_map = [int(v) for v in sparsity.BlockMapAsNumpy()] if sparsity.BlockMapLength() else []
    n_levels = sparsity.DimMetadataLength()
    positions = np.zeros(1, dtype=np.int64)  # index into the next level's storage
    coords = np.zeros((1, 0), dtype=np.int64)  # (P, level) coordinate in traversal order
    level_sizes = []
    for level in range(n_levels):
        meta = sparsity.DimMetadata(level)
        if meta.Format() == 0:  # DENSE
            size = int(meta.DenseSize())
            level_sizes.append(size)
            steps = np.arange(size, dtype=np.int64)
            positions = (positions[:, None] * size + steps[None, :]).ravel()
            coords = np.concatenate(
                [np.repeat(coords, size, axis=0), np.tile(steps, len(coords))[:, None]], axis=1
            )
        else:  # SPARSE_CSR
            segments = _index_vector(meta.ArraySegmentsType(), meta.ArraySegments())
            indices = _index_vector(meta.ArrayIndicesType(), meta.ArrayIndices())
            starts, ends = segments[positions], segments[positions + 1]
            counts = ends - starts
            flat = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
            coords = np.concatenate([np.repeat(coords, counts, axis=0), indices[flat][:, None]], axis=1)
            positions = flat
            level_sizes.append(None)
    # Back from traversal order to the expanded (dims + block dims) order, then fold blocks.
    rank = len(shape)
    expanded = np.zeros((len(coords), n_levels), dtype=np.int64)
    for level, dim in enumerate(traversal):
        expanded[:, dim] = coords[:, level]
    dense_index = expanded[:, :rank].copy()
    for b, dim in enumerate(block_map):
        block_size = level_sizes[traversal.index(rank + b)]
        dense_index[:, dim] = dense_index[:, dim] * block_size + expanded[:, rank + b]
    out = np.zeros(shape, dtype=values.dtype)
    out[tuple(dense_index.T)] = values[positions]
    return out


def _index_vector(kind: int, table) -> np.ndarray:
    """Decode a SparseIndexVector union (1 int32, 2 uint16, 3 uint8) to int64."""
    import tflite

    cls = {1: tflite.Int32Vector, 2: tflite.Uint16Vector, 3: tflite.Uint8Vector}[kind]
    vec = cls()
    vec.Init(table.Bytes, table.Pos)
    return vec.ValuesAsNumpy().astype(np.int64)


def read_tflite(path: str | Path) -> TfliteGraph:
    """Parse subgraph 0 of the .tflite file at `path`.

    Raises TriangulumError when the file is missing or is not a TFLite flatbuffer.
    """
    try:
        import tflite
        from tflite.BuiltinOperator import BuiltinOperator
    except ImportError as exc:  # the parser is a convert-time extra
        raise TriangulumError(
            "Converting .tflite models needs the `tflite` parser: install it with "
            "`pip install triangulum[convert]`."
        ) from exc
    path = Path(path)
    if not path.is_file():
        raise TriangulumError(f"TFLite model {path} does not exist; give the path of a .tflite file.")
    buf = path.read_bytes()
    if buf[4:8] != b"TFL3":
        raise TriangulumError(f"{path} is not a TFLite flatbuffer (no TFL3 identifier).")
    model = tflite.Model.GetRootAsModel(buf, 0)
    graph = model.Subgraphs(0)
    op_names = {v: k for k, v in BuiltinOperator.__dict__.items() if not k.startswith("_")}

    names, shapes, constants = [], [], {}
    sparse = {}
    for i in range(graph.TensorsLength()):
        t = graph.Tensors(i)
        names.append(t.Name().decode())
        shape = tuple(int(v) for v in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        shapes.append(shape)
        data = model.Buffers(t.Buffer()).DataAsNumpy()
        if isinstance(data, int) or len(data) == 0:
            continue
        raw = np.frombuffer(data.tobytes(), dtype=_NUMPY_DTYPE[t.Type()])
        if t.Sparsity() is not None:
            sparse[i] = densify(shape, raw, t.Sparsity())
        else:
            constants[i] = raw.reshape(shape)
    constants.update(sparse)

    ops = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        kind = op_names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
        entry = TfliteOp(
            index=i,
            kind=kind,
            inputs=[int(v) for v in op.InputsAsNumpy()],
            outputs=[int(v) for v in op.OutputsAsNumpy()],
            options=_options(tflite, kind, op),
        )
        if kind in ("DEQUANTIZE", "DENSIFY"):
            # Weight decoding: alias the output id to the stored (still float16) array.
            constants[entry.outputs[0]] = constants[entry.inputs[0]]
        ops.append(entry)
    return TfliteGraph(
        ops=ops,
        names=names,
        shapes=shapes,
        constants=constants,
        inputs=[int(v) for v in graph.InputsAsNumpy()],
        outputs=[int(v) for v in graph.OutputsAsNumpy()],
    )


def _options(tflite, kind: str, op) -> dict:
    """The layout-relevant builtin options of one operator as a dict."""
    table = op.BuiltinOptions()
    if table is None:
        return {}

    def load(cls):
        o = cls()
        o.Init(table.Bytes, table.Pos)
        return o

    if kind == "CONV_2D":
        o = load(tflite.Conv2DOptions)
        return {
            "padding": "SAME" if o.Padding() == 0 else "VALID",
            "stride": (o.StrideH(), o.StrideW()),
            "dilation": (o.DilationHFactor(), o.DilationWFactor()),
            "activation": ACTIVATIONS[o.FusedActivationFunction()],
        }
    if kind == "DEPTHWISE_CONV_2D":
        o = load(tflite.DepthwiseConv2DOptions)
        return {
            "padding": "SAME" if o.Padding() == 0 else "VALID",
            "stride": (o.StrideH(), o.StrideW()),
            "dilation": (o.DilationHFactor(), o.DilationWFactor()),
            "depth_multiplier": o.DepthMultiplier(),
            "activation": ACTIVATIONS[o.FusedActivationFunction()],
        }
    if kind == "ADD":
        return {"activation": ACTIVATIONS[load(tflite.AddOptions).FusedActivationFunction()]}
    if kind == "MAX_POOL_2D":
        o = load(tflite.Pool2DOptions)
        return {
            "padding": "SAME" if o.Padding() == 0 else "VALID",
            "stride": (o.StrideH(), o.StrideW()),
            "filter": (o.FilterHeight(), o.FilterWidth()),
            "activation": ACTIVATIONS[o.FusedActivationFunction()],
        }
    if kind == "RESIZE_BILINEAR":
        o = load(tflite.ResizeBilinearOptions)
        return {"align_corners": bool(o.AlignCorners()), "half_pixel_centers": bool(o.HalfPixelCenters())}
    if kind == "DEPTH_TO_SPACE":
        return {"block_size": load(tflite.DepthToSpaceOptions).BlockSize()}
    if kind == "CONCATENATION":
        o = load(tflite.ConcatenationOptions)
        return {"axis": o.Axis(), "activation": ACTIVATIONS[o.FusedActivationFunction()]}
    return {}
