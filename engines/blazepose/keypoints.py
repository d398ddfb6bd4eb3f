"""2D keypoints from BlazePose heatmaps: windowed soft-argmax with a per-joint confidence.

A soft-argmax over the whole 64 x 64 map is unreliable because the maps are multi-modal
(REFERENCE.md). MediaPipe instead refines each regressed point inside a small window of the
sigmoid heatmap; this is the same computation in torch, so it is differentiable with respect to
the heatmap (the window position itself is an integer and carries no gradient). Coordinates
follow MediaPipe's convention: heatmap cell index / 64 in normalised crop units.
"""

from __future__ import annotations

import torch

# MediaPipe's graph asks for kernel_size 7 (REFERENCE.md says 7 x 7), but the window that
# mediapipe 0.10.21 actually averages over is 9 x 9: on the demo video with MediaPipe's own ROIs,
# 9 reproduces its landmarks to <= 0.3 px (all 33) where 7 leaves errors up to 3 px.
REFINE_KERNEL = 9
MIN_CONFIDENCE_TO_REFINE = 0.5


def windowed_soft_argmax(heatmaps: torch.Tensor, centres: torch.Tensor,
                         kernel: int = REFINE_KERNEL) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Soft-argmax of sigmoid(heatmaps) in a kernel x kernel window around each centre.

    heatmaps: (B, J, H, W) logits; centres: (B, J, 2) x, y normalised to [0, 1) of the map.
    Returns coords (B, J, 2) normalised like `centres`, confidence (B, J) = the window's peak
    sigmoid, and valid (B, J) = the centre lies on the map and the window has mass.
    Cells of the window that fall off the map are left out, as in MediaPipe.
    """
    b, j, h, w = heatmaps.shape
    size = torch.tensor([w, h], dtype=centres.dtype, device=centres.device)
    cell = torch.floor(centres.detach() * size).long()  # (B, J, 2) col, row of the centre
    on_map = (cell >= 0).all(-1) & (cell[..., 0] < w) & (cell[..., 1] < h)
    half = (kernel - 1) // 2
    offsets = torch.arange(-half, half + 1, device=heatmaps.device)
    cols = cell[..., 0, None, None] + offsets[None, None, None, :]  # (B, J, 1, K)
    rows = cell[..., 1, None, None] + offsets[None, None, :, None]  # (B, J, K, 1)
    inside = (cols >= 0) & (cols < w) & (rows >= 0) & (rows < h)  # (B, J, K, K)
    flat = (rows.clamp(0, h - 1) * w + cols.clamp(0, w - 1)).reshape(b, j, -1)
    prob = torch.sigmoid(torch.gather(heatmaps.reshape(b, j, h * w), 2, flat))
    prob = prob * inside.reshape(b, j, -1).to(prob.dtype)
    total = prob.sum(-1)
    col_idx = cols.expand(-1, -1, kernel, -1).reshape(b, j, -1).to(prob.dtype)
    row_idx = rows.expand(-1, -1, -1, kernel).reshape(b, j, -1).to(prob.dtype)
    safe = total.clamp_min(1e-12)
    x = (prob * col_idx).sum(-1) / safe / w
    y = (prob * row_idx).sum(-1) / safe / h
    confidence = prob.amax(-1) * on_map.to(prob.dtype)
    valid = on_map & (total > 0)
    return torch.stack([x, y], dim=-1), confidence, valid


def refine_landmarks(heatmaps: torch.Tensor, regressed: torch.Tensor,
                     kernel: int = REFINE_KERNEL,
                     min_confidence: float = MIN_CONFIDENCE_TO_REFINE) -> tuple[torch.Tensor, torch.Tensor]:
    """MediaPipe's RefineLandmarksFromHeatmap: replace a regressed point by its windowed
    soft-argmax where the window's peak is at least `min_confidence`.

    heatmaps: (B, J, H, W); regressed: (B, J, 2) normalised crop coordinates.
    Returns keypoints (B, J, 2) normalised, confidence (B, J).
    """
    refined, confidence, valid = windowed_soft_argmax(heatmaps, regressed, kernel)
    use = (valid & (confidence >= min_confidence))[..., None]
    return torch.where(use, refined, regressed), confidence
