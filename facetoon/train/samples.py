"""Sample-grid helpers for training: tensors to images, CAM heat-map overlays, grids."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = ["tensor_to_uint8", "heatmap_overlay", "image_grid"]


def tensor_to_uint8(x: Tensor) -> np.ndarray:
    """``(3, H, W)`` RGB in [-1, 1] -> ``H x W x 3`` uint8."""
    arr = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return arr.permute(1, 2, 0).numpy()


def heatmap_overlay(image: np.ndarray, heatmap: Tensor, alpha: float = 0.5) -> np.ndarray:
    """Colour-map a CAM heat-map ``(h, w)`` (any range), resize it to ``image`` and blend it on top.

    ``image``: ``H x W x 3`` uint8 RGB. Returns ``H x W x 3`` uint8 RGB.
    """
    import cv2

    h = heatmap.detach().float().cpu().numpy()
    h = (h - h.min()) / max(float(h.max() - h.min()), 1e-8)
    h = cv2.resize(h, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_CUBIC)
    colour = cv2.applyColorMap((np.clip(h, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
    return (alpha * colour + (1 - alpha) * image).round().astype(np.uint8)


def image_grid(rows: Sequence[Sequence[np.ndarray]], pad: int = 2) -> np.ndarray:
    """Tile equally sized ``H x W x 3`` uint8 images row by row, with a white ``pad`` between."""
    h, w = rows[0][0].shape[:2]
    n_cols = max(len(r) for r in rows)
    grid = np.full((len(rows) * (h + pad) + pad, n_cols * (w + pad) + pad, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            grid[y:y + h, x:x + w] = img
    return grid
