"""Export the learned heads to ONNX: the algebraic head (descriptors, confidence network,
weighted DLT) and the volumetric head (from the heatmaps on: unprojection, aggregation, V2V,
soft-argmax).

    python -m engines.heads.export OUT.onnx [--weights PATH] [--views 4]
    python -m engines.heads.export OUT.onnx --volumetric [--weights PATH] [--views 4]

Volumetric graph: inputs heatmaps (B, C, 33, H, W), roi (B, C, 3), K, R (B, C, 3, 3), dist
(B, C, 5), t (B, C, 3), coords (B, N^3, 3), views (B, C) bool, view_conf (B, C); outputs points
(B, 33, 3) and weights (B, 33, N^3). Rendering the heatmaps and placing the cube (cheap,
`VolumetricTriangulation.inputs`) stay outside, so the same graph takes the backbone's own
maps once a head is trained on them.

Inputs P (B, C, 3, 4) undistorted pixel projections, keypoints (B, C, 33, 2) undistorted px
(NaN missing), confidence (B, C, 33); outputs points (B, 33, 3) and confidences (B, C, 33).
The batch is dynamic, the number of views fixed at export (pad with empty views, as training
does). The graph is float32 and uses only operators on TensorRT's ONNX support list
(engines/runtimes/tensorrt_onnx_ops.json, tests check every node), so the TensorRT runtime
loads the same file the ONNX Runtime tests run. It runs separately from the backbone's
graphs: the head needs the 2D of every view at once, the backbone runs per crop.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
from pathlib import Path

import torch

from engines.export_onnx import OPSET
from engines.heads.algebraic import LearnedTriangulation, load_head
from engines.heads.volumetric import VolumetricTriangulation, load_volumetric

INPUTS = ("P", "keypoints", "confidence")
OUTPUTS = ("points", "confidences")


def example_inputs(batch: int = 2, views: int = 4, joints: int = 33, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """A plausible input set: `views` cameras on a ring 4 m around a random point cloud of a person."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(batch, joints, 3, generator=g, dtype=torch.float64) * torch.tensor([0.2, 0.2, 0.5]) + torch.tensor([0, 0, 1.0])
    P = []
    for a in torch.linspace(0, 2 * torch.pi, views + 1)[:-1]:
        c = torch.tensor([4 * torch.cos(a), 4 * torch.sin(a), 1.2], dtype=torch.float64)
        z = -c / c.norm()
        z[2] = 0.0
        z = z / z.norm()
        x_ = torch.linalg.cross(z, torch.tensor([0, 0, 1.0], dtype=torch.float64))
        y_ = torch.linalg.cross(z, x_)
        R = torch.stack([x_, y_, z])
        K = torch.tensor([[1000.0, 0, 960], [0, 1000.0, 540], [0, 0, 1]], dtype=torch.float64)
        P.append(K @ torch.cat([R, (-R @ c)[:, None]], 1))
    P = torch.stack(P)[None].expand(batch, -1, -1, -1).contiguous()
    Xh = torch.cat([X, torch.ones_like(X[..., :1])], -1)
    uvw = torch.einsum("bcik,bjk->bcji", P, Xh)
    x = uvw[..., :2] / uvw[..., 2:3] + torch.randn(batch, views, joints, 2, generator=g, dtype=torch.float64) * 3
    x[:, -1] += 150 * torch.randn(batch, joints, 2, generator=g, dtype=torch.float64)  # one bad view
    x[0, 0, 5] = float("nan")  # a missed joint
    conf = 0.5 + 0.5 * torch.rand(batch, views, joints, generator=g, dtype=torch.float64)
    conf[0, 0, 5] = 0.0
    return P.float(), x.float(), conf.float()


def float32_copy(model: LearnedTriangulation) -> LearnedTriangulation:
    m = copy.deepcopy(model).float().eval()
    m.geometry = torch.float32
    return m


def export_head(path: Path, model: LearnedTriangulation | None = None, views: int = 4) -> Path:
    """Write the head (default: the shipped weights) as a dynamic-batch ONNX graph for `views` cameras."""
    m = float32_copy(model or load_head())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.onnx")
    axes = {n: {0: "batch"} for n in INPUTS + OUTPUTS}
    torch.onnx.export(m, example_inputs(2, views), str(tmp), input_names=list(INPUTS), output_names=list(OUTPUTS),
                      dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    os.replace(tmp, path)
    return path


VOLUME_INPUTS = ("heatmaps", "roi", "K", "dist", "R", "t", "coords", "views", "view_conf")
VOLUME_OUTPUTS = ("points", "weights")


class _Volume(torch.nn.Module):
    def __init__(self, head: VolumetricTriangulation):
        super().__init__()
        self.head = head

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head.volume(*inputs)


def example_cameras(batch: int = 2, views: int = 4, seed: int = 0, distortion: bool = True) -> tuple[torch.Tensor, ...]:
    """`example_inputs`' scene with its cameras taken apart (float64): K, dist, R, t, P, x, conf;
    a little barrel distortion unless `distortion` is False (the 2D stays as projected)."""
    P, x, conf = (a.double() for a in example_inputs(batch, views, seed=seed))
    K = torch.tensor([[1000.0, 0, 960], [0, 1000.0, 540], [0, 0, 1]], dtype=torch.float64).expand(batch, views, 3, 3)
    Rt = torch.linalg.solve(K, P)  # P = K [R | t]
    d = [-0.05, 0.01, 0.0, 0.0, 0.0] if distortion else [0.0] * 5
    dist = torch.tensor(d, dtype=torch.float64).expand(batch, views, 5)
    return K, dist, Rt[..., :3], Rt[..., 3], P, x, conf


def volume_inputs(head: VolumetricTriangulation, batch: int = 2, views: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    """The volumetric graph's inputs for `example_inputs`' scene (with a little distortion)."""
    from engines.heads.volumetric import root_estimate

    K, dist, R, t, P, x, conf = example_cameras(batch, views, seed)
    i = head.inputs(K, R, x, conf, root_estimate(P, x, conf))
    return {"heatmaps": i["heatmaps"], "roi": i["roi"], "K": K.float().contiguous(), "dist": dist.float().contiguous(),
            "R": R.float().contiguous(), "t": t.float().contiguous(), "coords": i["coords"], "views": i["views"],
            "view_conf": i["view_conf"]}


def export_volumetric(path: Path, model: VolumetricTriangulation | None = None, views: int = 4) -> Path:
    """Write the volumetric head's graph (default: the shipped weights) as a dynamic-batch ONNX
    file for `views` cameras."""
    m = _Volume(copy.deepcopy(model or load_volumetric()).float().eval())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.onnx")
    inputs = volume_inputs(m.head, 2, views)
    axes = {n: {0: "batch"} for n in VOLUME_INPUTS + VOLUME_OUTPUTS}
    with torch.no_grad():
        torch.onnx.export(m, tuple(inputs[n] for n in VOLUME_INPUTS), str(tmp), input_names=list(VOLUME_INPUTS),
                          output_names=list(VOLUME_OUTPUTS), dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    os.replace(tmp, path)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engines.heads.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("output", type=Path)
    p.add_argument("--weights", type=Path, help="another checkpoint (default: the shipped weights)")
    p.add_argument("--views", type=int, default=4)
    p.add_argument("--volumetric", action="store_true", help="the volumetric head instead of the algebraic one")
    a = p.parse_args(argv)
    if a.volumetric:
        print(export_volumetric(a.output, load_volumetric(str(a.weights) if a.weights else None), a.views))
        return 0
    model = load_head(str(a.weights) if a.weights else None)
    print(export_head(a.output, model, a.views))
    return 0


if __name__ == "__main__":
    sys.exit(main())
