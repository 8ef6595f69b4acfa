"""The pipeline's two ends: an input read into the photo the models see (transparency
composited over white, the alpha kept aside), and the output taken back to straight colours
(where there is alpha), mixed with the photo by ``strength`` and returned as the caller's type
(array in, array out; anything else, PIL out).

Images are ``uint8`` RGB ``(H, W, 3)``; alphas ``(H, W)`` ``uint8``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import IO, Union

import numpy as np
from PIL import Image

from ..io import ImageSource, composite_over_white, read_image, source_label

__all__ = ["FileOrPIL", "PipelineInput", "finish", "mix", "read_input", "straight_colours"]


# image sources that give a PIL image back
FileOrPIL = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, IO[bytes], Image.Image]


@dataclass(eq=False)
class PipelineInput:
    """An input as read: ``photo`` (H, W, 3) uint8 RGB composited over white (what the models
    see), ``straight`` the un-composited RGB, ``alpha`` (H, W) uint8 or ``None``."""

    photo: np.ndarray
    straight: np.ndarray
    alpha: np.ndarray | None
    as_array: bool
    label: str


def read_input(image: ImageSource) -> PipelineInput:
    """Read any :data:`~facetoon.io.ImageSource` for the pipeline (EXIF-oriented, gray expanded).

    Raises:
        InvalidImageError: not a readable image.
        ImageTooLargeError: over the pixel budget (:func:`facetoon.io.get_max_pixels`).
    """
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
        # RGB frames (video): one copy, no alpha plane to build and check
        rgb = read_image(image)
        return PipelineInput(photo=rgb, straight=rgb, alpha=None, as_array=True, label="<array>")
    rgba = read_image(image, keep_alpha=True)
    straight = np.ascontiguousarray(rgba[:, :, :3])
    if (rgba[:, :, 3] == 255).all():
        # an (H, W, 4) array gets (H, W, 4) back even when opaque: array in, same shape out
        four = isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 4
        return PipelineInput(photo=straight, straight=straight,
                             alpha=np.ascontiguousarray(rgba[:, :, 3]) if four else None,
                             as_array=isinstance(image, np.ndarray), label=source_label(image))
    alpha = np.ascontiguousarray(rgba[:, :, 3])
    return PipelineInput(photo=composite_over_white(straight, alpha), straight=straight, alpha=alpha,
                         as_array=isinstance(image, np.ndarray), label=source_label(image))


def straight_colours(styled: np.ndarray, src: PipelineInput) -> np.ndarray:
    """``styled`` ``(H, W, 3)`` uint8 RGB, made from ``src.photo``, as straight colours to re-attach
    ``src.alpha`` to.

    The models saw each pixel composited over white: of opacity ``a / 255``, it showed only
    ``a / 255`` of its own colour. Re-attaching the alpha to ``styled`` as it is would add that
    white a second time (a light fringe on every soft edge). So the change the models made is
    scaled by ``255 / a`` and added to the straight colour (the inverse of the compositing, up to
    rounding): pixels the models left alone come back exactly, and fully transparent ones
    (``a == 0``: the models saw only white) keep their straight colour. Without alpha, or with an
    opaque one (the models saw the straight colours), ``styled`` itself.
    """
    if src.alpha is None or src.photo is src.straight:
        return styled
    a = src.alpha.astype(np.float32)[:, :, None]
    change = styled.astype(np.float32) - src.photo.astype(np.float32)
    gain = np.where(a > 0, 255.0 / np.maximum(a, 1.0), 0.0)
    out = src.straight.astype(np.float32) + change * gain
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def mix(photo: np.ndarray, styled: np.ndarray, strength: float) -> np.ndarray:
    """``photo + strength * (styled - photo)``, rounded; exact at 0 and 1."""
    if strength >= 1.0:
        return styled
    if strength <= 0.0:
        return photo.copy()
    p = photo.astype(np.float32)
    out = p + np.float32(strength) * (styled.astype(np.float32) - p)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def finish(rgb: np.ndarray, alpha: np.ndarray | None, as_array: bool) -> Image.Image | np.ndarray:
    """The output as the caller gets it: ``rgb`` ``(H, W, 3)`` uint8 with ``alpha`` re-attached
    (``(H, W, 4)``) when there is one; a C-contiguous array if ``as_array``, else a PIL image."""
    arr = rgb if alpha is None else np.dstack([rgb, alpha])
    arr = np.ascontiguousarray(arr)
    if as_array:
        return arr
    return Image.fromarray(arr)  # (H, W, 3) -> "RGB", (H, W, 4) -> "RGBA"
