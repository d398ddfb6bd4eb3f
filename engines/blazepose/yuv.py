"""Frames as video decoders deliver them (planar YUV 4:2:0), and crops cut straight from them.

An H.264 decoder hands out three planes: Y at full size, U and V at half size. Turning a
whole 1080 x 1920 frame into BGR costs about as much as a quarter of its decoding, yet the
networks only ever see a few small crops of it. `crop` warps each plane into the crop
instead (Y at the crop's size, U and V at half of it) and converts just those pixels, with
the colour conversion OpenCV's own video reader uses (BT.601, limited range), so the crop
matches the crop of the converted frame to a level or two of rounding.

    frame = Yuv420(y, u, v)          # y (H, W), u and v (H/2, W/2) uint8
    small = crop(frame, m, 256)      # (256, 256, 3) uint8 BGR; m: (2, 3) crop -> image pixels
    full = frame.bgr()               # the whole frame in BGR, for whoever needs all of it
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Limited-range black: what a zero (letterbox) border becomes in each plane.
BLACK_Y, BLACK_UV = 16, 128


@dataclass(frozen=True)
class Yuv420:
    """One I420 frame: y (H, W), u and v (ceil(H/2), ceil(W/2)) uint8 planes.

    The planes may be views into the decoder's buffers; treat them as read-only.
    """

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        """(H, W, 3), as the BGR frame would have."""
        return (*self.y.shape, 3)

    def bgr(self) -> np.ndarray:
        """(H, W, 3) uint8 BGR of the whole frame."""
        h, w = self.y.shape
        if h % 2 or w % 2:  # OpenCV's I420 layout needs even sides: convert at full chroma size
            up = [cv2.resize(p, (w, h), interpolation=cv2.INTER_LINEAR) for p in (self.u, self.v)]
            return _yuv444_to_bgr(self.y, *up)
        return cv2.cvtColor(_i420(self.y, self.u, self.v), cv2.COLOR_YUV2BGR_I420)


def _i420(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The three planes in OpenCV's single-array I420 layout ((3H/2, W)), one copy of each
    (the planes may be strided views into a decoder's padded buffers)."""
    h, w = y.shape
    out = np.empty((h * 3 // 2, w), np.uint8)
    out[:h] = y
    flat = out.reshape(-1)
    n = u.size
    flat[h * w: h * w + n].reshape(u.shape)[...] = u
    flat[h * w + n:].reshape(v.shape)[...] = v
    return out


def _yuv444_to_bgr(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """BT.601 limited range, the formulas of OpenCV's I420 conversion, at full chroma size."""
    yf = (y.astype(np.float32) - 16.0) * 1.164
    uf, vf = u.astype(np.float32) - 128.0, v.astype(np.float32) - 128.0
    b = yf + 2.018 * uf
    g = yf - 0.813 * vf - 0.391 * uf
    r = yf + 1.596 * vf
    return np.clip(np.stack([b, g, r], axis=-1) + 0.5, 0, 255).astype(np.uint8)


def _chroma_matrix(m: np.ndarray) -> np.ndarray:
    """A crop -> image map in luma pixels (2, 3) -> the same map in chroma pixels of both.

    Chroma sample j sits at luma position 2j + 0.5 (centred between its two luma samples), in
    the image and in the crop alike, so x_luma = 2 x_chroma + 0.5 on both sides.
    """
    to_luma = np.array([[2.0, 0.0, 0.5], [0.0, 2.0, 0.5], [0.0, 0.0, 1.0]])
    to_chroma = np.array([[0.5, 0.0, -0.25], [0.0, 0.5, -0.25], [0.0, 0.0, 1.0]])
    return (to_chroma @ np.vstack([m, [0.0, 0.0, 1.0]]) @ to_luma)[:2]


def crop(image: Yuv420, m: np.ndarray, out_size: int, border_mode: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """Bilinear warp of `image` into an (out_size, out_size, 3) uint8 BGR crop.

    m: (2, 3) map from crop pixels to image pixels (as cv2.WARP_INVERSE_MAP takes it).
    border_mode: cv2.BORDER_REPLICATE, or cv2.BORDER_CONSTANT for black outside the frame.
    out_size must be even (the landmark crop is 256, the detector's 224).
    """
    if out_size % 2:
        raise ValueError(f"a crop from a YUV 4:2:0 frame needs an even size, not {out_size}")
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    half = out_size // 2
    mc = _chroma_matrix(m)
    y = cv2.warpAffine(image.y, m, (out_size, out_size), flags=flags, borderMode=border_mode, borderValue=BLACK_Y)
    u = cv2.warpAffine(image.u, mc, (half, half), flags=flags, borderMode=border_mode, borderValue=BLACK_UV)
    v = cv2.warpAffine(image.v, mc, (half, half), flags=flags, borderMode=border_mode, borderValue=BLACK_UV)
    return cv2.cvtColor(_i420(y, u, v), cv2.COLOR_YUV2BGR_I420)
