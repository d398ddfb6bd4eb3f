"""Building blocks shared by the BlazePose detector and landmark networks (NCHW, float32).

The blocks reproduce TFLite semantics exactly: explicit zero padding before stride-2
depthwise convolutions (the models were exported with Keras ZeroPadding2D), TF "SAME"
padding where the file says SAME (asymmetric for stride 2 on even inputs), DEPTH_TO_SPACE in
TF's depth-column-row channel order, and half-pixel bilinear resizing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv1x1(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1)


def depthwise(channels: int, kernel: int, stride: int = 1, pad: int | None = None) -> nn.Conv2d:
    """Depthwise k x k convolution; `pad` defaults to TF SAME for stride 1 (k // 2 each side)."""
    return nn.Conv2d(
        channels, channels, kernel, stride=stride, padding=kernel // 2 if pad is None else pad,
        groups=channels,
    )


def relu6(x: torch.Tensor) -> torch.Tensor:
    # clamp lowers to Clip in ONNX, which TensorRT supports natively.
    return torch.clamp(x, 0.0, 6.0)


def depth_to_space(x: torch.Tensor, block: int, channels: int, size: int) -> torch.Tensor:
    """TF DEPTH_TO_SPACE (DCR order): (B, channels*b*b, size, size) -> (B, channels, size*b, size*b).

    torch.pixel_shuffle uses CRD order, so it would scramble the channels of the TFLite weights.
    The sizes are passed in rather than read from x.shape so that the exported graph has
    constant reshapes (no Shape/Gather chains for the runtimes to evaluate).
    """
    x = x.reshape(-1, block, block, channels, size, size)
    x = x.permute(0, 3, 4, 1, 5, 2)
    return x.reshape(-1, channels, size * block, size * block)


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """Bilinear x2 with half-pixel centres (TFLite RESIZE_BILINEAR half_pixel_centers=True)."""
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


class Stem(nn.Module):
    """Zero-pad 1 then 3x3 stride-2 convolution with ReLU6: (B, 3, H, W) -> (B, C, H/2, W/2)."""

    def __init__(self, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(3, cout, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return relu6(self.conv(x))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand + ReLU6, k x k depthwise + ReLU6, 1x1 linear projection.

    `hidden == cin` with `expand=False` drops the expansion (the first block of both nets).
    Stride 2 uses symmetric zero padding (k // 2), as the exported graphs do.
    (B, cin, H, W) -> (B, cout, H/stride, W/stride).
    """

    def __init__(self, cin: int, hidden: int, cout: int, kernel: int, stride: int = 1,
                 expand: bool = True):
        super().__init__()
        self.expand = conv1x1(cin, hidden) if expand else None
        self.dw = depthwise(hidden, kernel, stride)
        self.project = conv1x1(hidden, cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = relu6(self.expand(x)) if self.expand is not None else x
        y = self.project(relu6(self.dw(y)))
        return x + y if self.residual else y


class DepthwiseSeparable(nn.Module):
    """k x k depthwise (optional ReLU6) then 1x1 projection (optional ReLU6): lateral branches."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, dw_act: bool = False,
                 pw_act: bool = True):
        super().__init__()
        self.dw = depthwise(cin, kernel)
        self.pw = conv1x1(cin, cout)
        self.dw_act, self.pw_act = dw_act, pw_act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dw(x)
        y = self.pw(relu6(y) if self.dw_act else y)
        return relu6(y) if self.pw_act else y


class ResidualDW(nn.Module):
    """x + pw(dw(x)), then ReLU6 after the sum (the BlazeBlock of the decoders and heads).

    `dw_act` puts a ReLU6 between depthwise and pointwise (landmark net) or not (detector).
    (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self, channels: int, dw_act: bool):
        super().__init__()
        self.dw = depthwise(channels, 3)
        self.pw = conv1x1(channels, channels)
        self.dw_act = dw_act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dw(x)
        y = self.pw(relu6(y) if self.dw_act else y)
        return relu6(x + y)


class DownsampleResidual(nn.Module):
    """Stride-2 BlazeBlock: maxpool2(x) + pw(dw_s2(x)), ReLU6. (B, C, H, W) -> (B, C, H/2, W/2).

    The depthwise conv uses TF SAME padding for stride 2 on an even input, i.e. zero rows and
    columns only at the bottom and right.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.dw = depthwise(channels, 3, stride=2, pad=0)
        self.pw = conv1x1(channels, channels)
        self.pool = nn.MaxPool2d(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pw(relu6(self.dw(F.pad(x, (0, 1, 0, 1)))))
        return relu6(self.pool(x) + y)
