"""SSD anchors of the BlazePose detector (MediaPipe SsdAnchorsCalculator options of pose_detection).

Five layers with strides 8, 16, 32, 32, 32 on a 224 x 224 input, one aspect ratio plus the
interpolated scale, fixed anchor size: 2 anchors per cell at 28 x 28 and 14 x 14, and the three
stride-32 layers merged into 6 anchors per cell at 7 x 7, i.e. 1568 + 392 + 294 = 2254 anchors,
in the detector's NHWC output order (row, column, anchor).
"""

from __future__ import annotations

import numpy as np

STRIDES = (8, 16, 32, 32, 32)
ANCHORS_PER_LAYER = 2  # aspect ratio 1.0 + interpolated scale (same centre: fixed size)


def ssd_anchors(input_size: int = 224, strides: tuple[int, ...] = STRIDES) -> np.ndarray:
    """Anchor centres (N, 2) as normalised (x, y) in [0, 1]; widths and heights are all 1."""
    centres = []
    layer = 0
    while layer < len(strides):
        stride = strides[layer]
        same = 0
        while layer < len(strides) and strides[layer] == stride:  # layers sharing a stride merge
            same += 1
            layer += 1
        cells = int(np.ceil(input_size / stride))
        ys, xs = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
        grid = np.stack([(xs + 0.5) / cells, (ys + 0.5) / cells], axis=-1).reshape(-1, 1, 2)
        centres.append(np.repeat(grid, same * ANCHORS_PER_LAYER, axis=1).reshape(-1, 2))
    return np.concatenate(centres).astype(np.float32)
