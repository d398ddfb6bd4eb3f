"""A synthetic camera for sync tests and demos without hardware: a moving disc and the frame
number as a barcode (`test:NAME` sources)."""

from __future__ import annotations

import math
import zlib

import cv2
import numpy as np

from app.capture.sources import CameraSource, Grabbed, Schedule, SourceEnded, SourceInfo

BARCODE_BITS = 32
BARCODE_HEIGHT = 16


def draw_barcode(image: np.ndarray, value: int) -> None:
    """Write `value` as 32 black/white blocks across the top 16 rows of image (H, W, 3)."""
    width = image.shape[1] // BARCODE_BITS
    for bit in range(BARCODE_BITS):
        image[:BARCODE_HEIGHT, bit * width : (bit + 1) * width] = 255 if (value >> bit) & 1 else 0


def read_barcode(image: np.ndarray) -> int:
    """The value `draw_barcode` wrote into image (H, W, 3) (or a copy decoded from a file)."""
    width = image.shape[1] // BARCODE_BITS
    row = image[BARCODE_HEIGHT // 2, width // 2 :: width][:BARCODE_BITS]
    bits = row.reshape(BARCODE_BITS, -1).mean(axis=1) > 127
    return int(sum(1 << i for i, b in enumerate(bits) if b))


class TestPatternSource(CameraSource):
    """A synthetic camera: a moving disc over a colour gradient, its frame number as a
    barcode along the top (see `read_barcode`) and the frame number and capture time as
    text. The disc's position is a function of capture time, so views of a synchronised
    capture show it in the same place. For sync tests and demos without hardware."""

    kind = "test"
    __test__ = False  # a source, not a pytest test class

    def __init__(
        self, name: str, width: int, height: int, fps: float, paced: bool, frames: int | None
    ) -> None:
        super().__init__(name, f"test pattern {name}", paced)
        if width < 2 * BARCODE_BITS or height < 2 * BARCODE_HEIGHT:
            raise ValueError(f"test pattern must be at least {2 * BARCODE_BITS}x{2 * BARCODE_HEIGHT}")
        self.width, self.height, self.frames = width, height, frames
        self.schedule = Schedule(fps)
        self._next = 0
        hue = zlib.crc32(name.encode()) % 180
        ramp = np.linspace(60, 220, width, dtype=np.float32)
        hsv = np.empty((height, width, 3), np.uint8)
        hsv[..., 0] = hue
        hsv[..., 1] = 160
        hsv[..., 2] = ramp[None, :].astype(np.uint8)
        self._background = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)

    def _open(self) -> SourceInfo:
        return SourceInfo(self.width, self.height, self.schedule.fps, self.frames, "synthetic")

    def _read(self, out: np.ndarray | None) -> Grabbed:
        k = self._next
        skipped = 0
        if self.paced:
            skipped = self._wait_for(self.schedule, k)
            k += skipped
        if self.frames is not None and k >= self.frames:
            raise SourceEnded(f"{self.description}: all {self.frames} frames delivered")
        t = self.schedule.due(self.epoch, k)
        image = out if out is not None and out.shape == self._background.shape else np.empty_like(self._background)
        self.render(image, k, t - self.epoch)
        self._next = k + 1
        return Grabbed(image, k, t, skipped)

    def render(self, image: np.ndarray, k: int, t: float) -> None:
        """Draw frame k, taken t seconds after the epoch, into image (H, W, 3)."""
        np.copyto(image, self._background)
        h, w = self.height, self.width
        x = int((0.5 + 0.4 * math.sin(2 * math.pi * 0.25 * t)) * w)
        y = int((0.5 + 0.3 * math.sin(2 * math.pi * 0.5 * t)) * h)
        cv2.circle(image, (x, y), max(4, min(w, h) // 12), (255, 255, 255), -1, cv2.LINE_AA)
        draw_barcode(image, k)
        text = f"{self.name} #{k} t={t:.3f}s"
        cv2.putText(image, text, (8, BARCODE_HEIGHT + 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(image, text, (8, BARCODE_HEIGHT + 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
