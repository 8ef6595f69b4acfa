"""Input checks shared by the face functions: anything image-like -> a ``uint8`` array.

Face functions accept a ``uint8`` array of shape ``(H, W, 3)`` (RGB) or ``(H, W)`` (grayscale)
as is, without a copy. Every other input (a path, bytes, a PIL image, an RGBA or float array...)
goes through :func:`facetoon.io.read_image`, imported only then. Inputs that are not images at
all raise :class:`~facetoon.errors.InvalidImageError` naming the argument.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..errors import InvalidImageError

__all__ = ["as_image", "as_rgb", "to_gray"]


def _is_readable_source(src: Any) -> bool:
    if isinstance(src, (str, os.PathLike, bytes, bytearray, memoryview, np.ndarray)):
        return True
    if hasattr(src, "read"):  # binary file object
        return True
    return type(src).__module__.startswith("PIL.")


def as_image(src: Any, name: str = "image") -> np.ndarray:
    """Return ``src`` as a ``uint8`` array of shape ``(H, W, 3)`` RGB or ``(H, W)`` gray.

    ``uint8`` arrays of shape ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` are returned without a
    copy (``(H, W, 1)`` as a 2-D view); anything else is read with
    :func:`facetoon.io.read_image` (paths, bytes, PIL images, RGBA/uint16/float arrays).

    Raises:
        InvalidImageError: ``src`` is not an image (wrong type, empty, wrong shape or dtype).
    """
    if isinstance(src, np.ndarray) and src.dtype == np.uint8:
        if src.ndim == 3 and src.shape[2] == 1:
            src = src[:, :, 0]
        if (src.ndim == 2 or (src.ndim == 3 and src.shape[2] == 3)) and src.size > 0:
            return src
    if isinstance(src, np.ndarray) and (src.size == 0 or src.ndim not in (2, 3)):
        raise InvalidImageError(
            f"{name}: expected an image array of shape (H, W) or (H, W, 3), got shape {src.shape}"
        )
    if not _is_readable_source(src):
        raise InvalidImageError(
            f"{name}: expected an image (uint8 array, path or bytes), got {type(src).__name__}"
        )
    from ..io import read_image  # lazy: facetoon.io is only needed for non-array inputs

    if not isinstance(src, np.ndarray):
        return read_image(src)
    try:
        return read_image(src)
    except InvalidImageError as exc:  # name the argument, not "<array>"
        raise InvalidImageError(f"{name}: {str(exc).removeprefix('<array>: ')}") from None


def as_rgb(image: np.ndarray) -> np.ndarray:
    """Gray ``(H, W)`` -> ``(H, W, 3)`` by replication; RGB arrays are returned unchanged."""
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    return image


def to_gray(image: np.ndarray) -> np.ndarray:
    """RGB ``(H, W, 3)`` uint8 -> gray ``(H, W)`` uint8 (ITU-R 601 luma); gray passes through."""
    if image.ndim == 2:
        return image
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
