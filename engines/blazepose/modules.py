"""BlazePose networks as plain torch modules: the person detector and the GHUM "full" landmark net.

Architectures are written out from the layer structure of MediaPipe's pose_detection.tflite
and pose_landmark_full.tflite; `tflite_conv_order()` lists every convolution in the order the
flatbuffer stores it, which is how convert.py assigns the weights. Inputs are NCHW RGB float32:
the detector takes [-1, 1], the landmark net [0, 1] (the range MediaPipe feeds each model).
"""

from __future__ import annotations

import torch
from torch import nn

from engines.blazepose.layers import (
    DepthwiseSeparable,
    DownsampleResidual,
    InvertedResidual,
    ResidualDW,
    Stem,
    conv1x1,
    depth_to_space,
    depthwise,
    relu6,
    upsample2x,
)

DETECTOR_INPUT = 224
LANDMARK_INPUT = 256
# Output names, in the order the exported ONNX graphs (and every runtime) give them.
DETECTOR_OUTPUTS = ("regressors", "scores")
LANDMARK_OUTPUTS = ("landmarks", "pose_flag", "heatmaps", "world", "features")
NUM_LANDMARKS = 39  # 33 body points + hip centre (33) + ROI scale point (34) + 4 unused
HEATMAP_SIZE = 64
FEATURE_CHANNELS = 48


def _block_convs(prefix: str, block: nn.Module) -> list[str]:
    names = [] if getattr(block, "expand", None) is None else [f"{prefix}.expand"]
    return names + [f"{prefix}.dw", f"{prefix}.project"]


class SSDHead(nn.Module):
    """Per-level classifier and box/keypoint regressor on a DEPTH_TO_SPACE-upsampled map.

    (B, C, 2H, 2W) -> scores (B, H*W*A, 1), regressors (B, H*W*A, 12) in NHWC anchor order.
    """

    def __init__(self, channels: int, anchors: int, cells: int):
        super().__init__()
        self.boxes = cells * cells * anchors
        self.cls_dw = depthwise(channels, 3, stride=2, pad=1)
        self.cls = conv1x1(channels, anchors)
        self.reg_dw = depthwise(channels, 3, stride=2, pad=1)
        self.reg = conv1x1(channels, anchors * 12)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores = self.cls(self.cls_dw(x)).permute(0, 2, 3, 1).reshape(-1, self.boxes, 1)
        boxes = self.reg(self.reg_dw(x)).permute(0, 2, 3, 1).reshape(-1, self.boxes, 12)
        return scores, boxes


class BlazePoseDetector(nn.Module):
    """Person detector: (B, 3, 224, 224) in [-1, 1] -> raw SSD outputs for 2254 anchors.

    Returns (regressors (B, 2254, 12), score logits (B, 2254, 1)); regressors are box centre
    offset, size and 4 keypoints (hip centre, scale point, ...) in 224-pixel units.
    """

    def __init__(self):
        super().__init__()
        self.stem = Stem(24)
        self.b1 = InvertedResidual(24, 24, 16, 3, expand=False)  # 112
        self.b2 = InvertedResidual(16, 64, 24, 3, stride=2)  # 56
        self.b3 = InvertedResidual(24, 144, 24, 3)
        self.b4 = InvertedResidual(24, 144, 40, 5, stride=2)  # 28
        self.b5 = InvertedResidual(40, 240, 40, 5)
        self.lateral28 = DepthwiseSeparable(40, 96)
        self.b6 = InvertedResidual(40, 240, 80, 3, stride=2)  # 14
        self.b7 = InvertedResidual(80, 480, 80, 3)
        self.b8 = InvertedResidual(80, 480, 80, 3)
        self.b9 = InvertedResidual(80, 480, 112, 5)
        self.b10 = InvertedResidual(112, 672, 112, 5)
        self.b11 = InvertedResidual(112, 672, 112, 5)
        self.lateral14 = DepthwiseSeparable(112, 192)
        self.b12 = InvertedResidual(112, 672, 192, 5, stride=2)  # 7
        self.b13 = InvertedResidual(192, 1152, 192, 5)
        self.b14 = InvertedResidual(192, 1152, 192, 5)
        self.b15 = InvertedResidual(192, 1152, 192, 5)
        self.top_expand = conv1x1(192, 1152)
        self.top_dw = depthwise(1152, 3)
        # Top-down path: resize x2, 1x1 + ReLU6, add the lateral, two residual blocks.
        self.up14 = conv1x1(1152, 192)
        self.fpn14 = nn.ModuleList([ResidualDW(192, dw_act=False) for _ in range(2)])
        self.up28 = conv1x1(192, 96)
        self.fpn28 = nn.ModuleList([ResidualDW(96, dw_act=False) for _ in range(2)])
        self.head8 = SSDHead(24, 2, 28)  # 28 x 28 x 2 anchors
        self.head16 = SSDHead(48, 2, 14)  # 14 x 14 x 2
        self.head32 = SSDHead(288, 6, 7)  # 7 x 7 x 6

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.b1(self.stem(x))
        x = self.b5(self.b4(self.b3(self.b2(x))))
        lat28 = self.lateral28(x)
        x = self.b8(self.b7(self.b6(x)))
        x = self.b11(self.b10(self.b9(x)))
        lat14 = self.lateral14(x)
        x = self.b15(self.b14(self.b13(self.b12(x))))
        top = relu6(self.top_dw(relu6(self.top_expand(x))))  # (B, 1152, 7, 7)
        p14 = lat14 + relu6(self.up14(upsample2x(top)))
        for block in self.fpn14:
            p14 = block(p14)
        p28 = lat28 + relu6(self.up28(upsample2x(p14)))
        for block in self.fpn28:
            p28 = block(p28)
        s8, r8 = self.head8(depth_to_space(p28, 2, 24, 28))
        s16, r16 = self.head16(depth_to_space(p14, 2, 48, 14))
        s32, r32 = self.head32(depth_to_space(top, 2, 288, 7))
        return torch.cat([r8, r16, r32], dim=1), torch.cat([s8, s16, s32], dim=1)

    def tflite_conv_order(self) -> list[str]:
        """Names of every conv layer in the order pose_detection.tflite stores them."""
        order = ["stem.conv"]
        for i in range(1, 6):
            order += _block_convs(f"b{i}", getattr(self, f"b{i}"))
        # The graph emits b6's expansion, then the 28x28 lateral, then the rest of b6.
        order += ["b6.expand", "lateral28.dw", "lateral28.pw", "b6.dw", "b6.project"]
        for i in range(7, 12):
            order += _block_convs(f"b{i}", getattr(self, f"b{i}"))
        order += ["b12.expand", "lateral14.dw", "lateral14.pw", "b12.dw", "b12.project"]
        for i in range(13, 16):
            order += _block_convs(f"b{i}", getattr(self, f"b{i}"))
        order += ["top_expand", "top_dw", "up14"]
        order += [f"fpn14.{i}.{n}" for i in range(2) for n in ("dw", "pw")]
        order += ["up28"] + [f"fpn28.{i}.{n}" for i in range(2) for n in ("dw", "pw")]
        for head in ("head8", "head16"):
            order += [f"{head}.cls_dw", f"{head}.cls", f"{head}.reg_dw", f"{head}.reg"]
        order += ["head32.cls_dw", "head32.cls", "head32.reg_dw", "head32.reg"]
        return order


class BlazePoseLandmark(nn.Module):
    """GHUM "full" landmark net on a (B, 3, 256, 256) crop in [0, 1].

    forward returns a dict:
      landmarks (B, 39, 5): x, y, z (crop pixels of the 256 crop), visibility and presence logits
      pose_flag (B,): probability that a person is in the crop
      heatmaps (B, 39, 64, 64): logits
      world (B, 39, 3): metres, hip-centred, camera-aligned axes of the crop
      features (B, 48, 64, 64): the decoder map the heatmaps are read from
      segmentation (B, 1, 256, 256): logits, only when `with_segmentation` is set
    """

    def __init__(self, with_segmentation: bool = False):
        super().__init__()
        self.with_segmentation = with_segmentation
        self.stem = Stem(24)
        self.b1 = InvertedResidual(24, 24, 16, 3, expand=False)  # 128
        self.skip128 = DepthwiseSeparable(16, 8, dw_act=True)
        self.b2 = InvertedResidual(16, 64, 24, 3, stride=2)  # 64
        self.b3 = InvertedResidual(24, 144, 24, 3)
        self.skip64 = DepthwiseSeparable(24, 48, dw_act=True)
        self.b4 = InvertedResidual(24, 144, 32, 5, stride=2)  # 32
        self.b5 = InvertedResidual(32, 192, 32, 5)
        self.skip32 = DepthwiseSeparable(32, 48, dw_act=True)
        self.b6 = InvertedResidual(32, 192, 64, 3, stride=2)  # 16
        self.b7 = InvertedResidual(64, 384, 64, 3)
        self.b8 = InvertedResidual(64, 384, 64, 3)
        self.b9 = InvertedResidual(64, 384, 88, 5)
        self.b10 = InvertedResidual(88, 528, 88, 5)
        self.b11 = InvertedResidual(88, 528, 88, 5)
        self.skip16 = DepthwiseSeparable(88, 48, dw_act=True)
        self.b12 = InvertedResidual(88, 528, 144, 5, stride=2)  # 8
        self.b13 = InvertedResidual(144, 864, 144, 5)
        self.b14 = InvertedResidual(144, 864, 144, 5)
        self.b15 = InvertedResidual(144, 864, 144, 5)
        self.top_expand = conv1x1(144, 864)
        self.top_dw = depthwise(864, 3)
        # Heatmap decoder: 8 -> 64 with skip additions; its 64x64 map is `features`.
        self.decoder_in = DepthwiseSeparable(864, 48, dw_act=True)
        self.heatmap = conv1x1(48, NUM_LANDMARKS)
        # Segmentation decoder: 64 -> 256.
        self.seg_in = DepthwiseSeparable(48, 8, dw_act=True)
        self.seg128 = nn.ModuleList([ResidualDW(8, dw_act=True) for _ in range(2)])
        self.seg256 = nn.ModuleList([ResidualDW(8, dw_act=True) for _ in range(2)])
        self.seg_out = nn.Conv2d(8, 1, 3, padding=1)
        # Regression path: 8 -> 4 -> 2 -> 1 x 1 outputs.
        self.reg_in = DepthwiseSeparable(864, 288, dw_act=True)
        self.reg_down4 = DownsampleResidual(288)
        self.reg4 = nn.ModuleList([ResidualDW(288, dw_act=True) for _ in range(4)])
        self.reg_down2 = DownsampleResidual(288)
        self.reg2 = nn.ModuleList([ResidualDW(288, dw_act=True) for _ in range(5)])
        self.landmarks_out = nn.Conv2d(288, NUM_LANDMARKS * 5, 2)
        self.world_out = nn.Conv2d(288, NUM_LANDMARKS * 3, 2)
        self.flag_out = nn.Conv2d(288, 1, 2)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.b1(self.stem(x))
        s128 = self.skip128(x)
        x = self.b3(self.b2(x))
        s64 = self.skip64(x)
        x = self.b5(self.b4(x))
        s32 = self.skip32(x)
        x = self.b8(self.b7(self.b6(x)))
        x = self.b11(self.b10(self.b9(x)))
        s16 = self.skip16(x)
        x = self.b15(self.b14(self.b13(self.b12(x))))
        top = relu6(self.top_dw(relu6(self.top_expand(x))))  # (B, 864, 8, 8)

        d = upsample2x(self.decoder_in(top)) + s16
        d = upsample2x(d) + s32
        features = upsample2x(d) + s64  # (B, 48, 64, 64)
        out = {"features": features, "heatmaps": self.heatmap(features)}

        r = self.reg_down4(self.reg_in(top))
        for block in self.reg4:
            r = block(r)
        r = self.reg_down2(r)
        for block in self.reg2:
            r = block(r)
        out["landmarks"] = self.landmarks_out(r).reshape(-1, NUM_LANDMARKS, 5)
        out["world"] = self.world_out(r).reshape(-1, NUM_LANDMARKS, 3)
        out["pose_flag"] = torch.sigmoid(self.flag_out(r)).reshape(-1)

        if self.with_segmentation:
            s = upsample2x(self.seg_in(features)) + s128
            for block in self.seg128:
                s = block(s)
            s = upsample2x(s)
            for block in self.seg256:
                s = block(s)
            out["segmentation"] = self.seg_out(s)
        return out

    def tflite_conv_order(self) -> list[str]:
        """Names of every conv layer in the order pose_landmark_full.tflite stores them."""
        order = ["stem.conv", "b1.dw", "b1.project", "b2.expand", "skip128.dw", "skip128.pw"]
        order += ["b2.dw", "b2.project"] + _block_convs("b3", self.b3)
        order += ["b4.expand", "skip64.dw", "skip64.pw", "b4.dw", "b4.project"]
        order += _block_convs("b5", self.b5)
        order += ["b6.expand", "skip32.dw", "skip32.pw", "b6.dw", "b6.project"]
        for i in range(7, 12):
            order += _block_convs(f"b{i}", getattr(self, f"b{i}"))
        order += ["b12.expand", "skip16.dw", "skip16.pw", "b12.dw", "b12.project"]
        for i in range(13, 16):
            order += _block_convs(f"b{i}", getattr(self, f"b{i}"))
        order += ["top_expand", "top_dw", "decoder_in.dw", "decoder_in.pw", "seg_in.dw", "seg_in.pw"]
        order += [f"seg128.{i}.{n}" for i in range(2) for n in ("dw", "pw")]
        order += [f"seg256.{i}.{n}" for i in range(2) for n in ("dw", "pw")]
        order += ["seg_out", "heatmap", "reg_in.dw", "reg_in.pw", "reg_down4.dw", "reg_down4.pw"]
        order += [f"reg4.{i}.{n}" for i in range(4) for n in ("dw", "pw")]
        order += ["reg_down2.dw", "reg_down2.pw"]
        order += [f"reg2.{i}.{n}" for i in range(5) for n in ("dw", "pw")]
        order += ["landmarks_out", "world_out", "flag_out"]
        return order
