"""Affine resampling between an image and its face crops, and the plain paste-back.

Matrices follow :mod:`facetoon.face.geometry` (``(2, 3)``, source -> destination, ``(x, y)``
pixels, pixel centres at integers). :func:`warp_to_image` puts a crop — or any per-pixel map of
the crop such as a mask — back into the frame of the original image with the crop's inverse
matrix; :func:`paste_back` composites a (stylized) crop over the original image with the crop's
valid mask. Only the region the crop covers is resampled, so the cost does not grow with the
size of the photo.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..errors import ConfigError, InvalidImageError
from ._image import as_image, as_rgb
from .geometry import (
    apply_affine,
    compose,
    invert_affine,
    matrix_scale,
    resize_matrix,
    translation,
)

if TYPE_CHECKING:
    from .types import AlignedFace

__all__ = ["crop_to_image_matrix", "image_region", "paste_back", "resample", "warp_to_image"]

Interpolation = Literal["nearest", "linear", "cubic"]
Border = Literal["constant", "replicate", "reflect"]

# below this scale (destination px per source px) the source is first shrunk with area
# averaging, so that bilinear/bicubic sampling does not alias
_PREFILTER_BELOW = 0.7


def _cv2_flag(interpolation: str) -> int:
    import cv2

    table = {"nearest": cv2.INTER_NEAREST, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC}
    if interpolation not in table:
        raise ConfigError(f"interpolation: expected one of {sorted(table)}, got {interpolation!r}")
    return table[interpolation]


def _cv2_border(border: str) -> int:
    import cv2

    table = {"constant": cv2.BORDER_CONSTANT, "replicate": cv2.BORDER_REPLICATE,
             "reflect": cv2.BORDER_REFLECT_101}
    if border not in table:
        raise ConfigError(f"border: expected one of {sorted(table)}, got {border!r}")
    return table[border]


def _footprint(m: np.ndarray, width: int, height: int) -> tuple[float, float, float, float]:
    """Bounding box (continuous) of a ``width x height`` frame mapped by ``m``."""
    corners = np.array([[-0.5, -0.5], [width - 0.5, -0.5], [width - 0.5, height - 0.5], [-0.5, height - 0.5]])
    pts = apply_affine(m, corners)
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    return float(x0), float(y0), float(x1), float(y1)


def resample(
    src: np.ndarray,
    matrix: np.ndarray,
    dsize: tuple[int, int],
    *,
    interpolation: Interpolation = "linear",
    border: Border = "constant",
    border_value: float | Sequence[float] = 0,
) -> np.ndarray:
    """Resample ``src`` into a ``dsize = (width, height)`` frame with ``matrix`` (src -> dst).

    Like ``cv2.warpAffine(src, matrix, dsize)``, but reads only the part of ``src`` the output
    needs, shrinks it first with area averaging when the output is more than ~1.4x smaller
    (no aliasing), and accepts any number of channels. ``border`` extends ``src`` past **its
    own** edges: ``"constant"`` (``border_value``), ``"replicate"`` or ``"reflect"``
    (mirror without repeating the edge pixel).

    Args:
        src: ``(H, W)`` or ``(H, W, C)`` array, uint8 / float32 / float64.
        matrix: ``(2, 3)`` source -> destination pixel matrix.
        dsize: output ``(width, height)``.

    Returns:
        ``(height, width[, C])`` array of ``src``'s dtype.
    """
    import cv2

    dw, dh = int(dsize[0]), int(dsize[1])
    m = np.asarray(matrix, dtype=np.float64)
    h, w = src.shape[:2]
    flag, bmode = _cv2_flag(interpolation), _cv2_border(border)
    scale = matrix_scale(m)
    # the part of src the output reads, with a margin for the interpolation kernel
    sx0, sy0, sx1, sy1 = _footprint(invert_affine(m), dw, dh)
    factor = 1.0 if scale >= _PREFILTER_BELOW else scale / 0.8
    margin = 4.0 / factor + 2.0
    x0, y0 = max(0, int(math.floor(sx0 - margin))), max(0, int(math.floor(sy0 - margin)))
    x1, y1 = min(w, int(math.ceil(sx1 + margin)) + 1), min(h, int(math.ceil(sy1 + margin)) + 1)
    if border == "reflect":  # reads past an edge mirror pixels inside it: keep those in the part read
        if sx0 - margin < 0:
            x1 = max(x1, min(w, int(math.ceil(margin - sx0)) + 1))
        if sy0 - margin < 0:
            y1 = max(y1, min(h, int(math.ceil(margin - sy0)) + 1))
        if sx1 + margin > w - 1:
            x0 = min(x0, max(0, int(math.floor(2 * (w - 1) - sx1 - margin))))
        if sy1 + margin > h - 1:
            y0 = min(y0, max(0, int(math.floor(2 * (h - 1) - sy1 - margin))))
    if x1 - x0 < 2 or y1 - y0 < 2:  # output entirely outside src: extrapolate from all of it
        x0, y0, x1, y1 = 0, 0, w, h
    roi = src[y0:y1, x0:x1]
    to_dst = compose(m, translation(x0, y0))
    if factor < 1.0:
        rw, rh = x1 - x0, y1 - y0
        nw, nh = max(2, round(rw * factor)), max(2, round(rh * factor))
        roi = cv2.resize(roi, (nw, nh), interpolation=cv2.INTER_AREA)
        to_dst = compose(to_dst, invert_affine(resize_matrix(nw / rw, nh / rh)))
    roi = np.ascontiguousarray(roi)
    channels = 1 if roi.ndim == 2 else roi.shape[2]
    value: tuple[float, ...]
    if isinstance(border_value, (int, float, np.number)):
        value = (float(border_value),) * 4
    else:
        value = tuple(float(v) for v in border_value)
    if channels <= 4:
        out = cv2.warpAffine(roi, to_dst, (dw, dh), flags=flag, borderMode=bmode,
                             borderValue=(value + (0.0,) * 4)[:4])
        if roi.ndim == 3 and out.ndim == 2:
            out = out[:, :, None]
        return out
    parts = []
    for c in range(0, channels, 4):
        part = cv2.warpAffine(np.ascontiguousarray(roi[:, :, c:c + 4]), to_dst, (dw, dh), flags=flag,
                              borderMode=bmode, borderValue=(value[c:c + 4] + (0.0,) * 4)[:4])
        parts.append(part if part.ndim == 3 else part[:, :, None])
    return np.concatenate(parts, axis=2)


def crop_to_image_matrix(aligned_or_inverse: AlignedFace | np.ndarray, crop_hw: tuple[int, int]) -> np.ndarray:
    """The ``(2, 3)`` affine matrix from the pixels of a crop of size ``crop_hw`` = ``(h, w)`` to
    photo pixels: an :class:`AlignedFace`'s inverse, rescaled when the crop is not at the
    alignment size (e.g. a face model's output at another resolution), or a given matrix, checked.

    Raises:
        ConfigError: not an AlignedFace, nor a finite non-singular ``(2, 3)`` matrix.
    """
    from .types import AlignedFace

    if isinstance(aligned_or_inverse, AlignedFace):
        size = aligned_or_inverse.size
        ch, cw = crop_hw
        if (ch, cw) == (size, size):
            return aligned_or_inverse.inverse
        return compose(aligned_or_inverse.inverse, resize_matrix(size / cw, size / ch))
    m = np.asarray(aligned_or_inverse, dtype=np.float64)
    if m.shape != (2, 3) or not np.all(np.isfinite(m)):
        raise ConfigError(f"aligned_or_inverse: expected an AlignedFace or a finite (2, 3) matrix, got shape {m.shape}")
    if matrix_scale(m) < 1e-9:
        raise ConfigError("aligned_or_inverse: the matrix is singular (it maps the crop onto a line or a point)")
    return m


def _image_hw(image_shape: Sequence[int] | np.ndarray) -> tuple[int, int]:
    shape = image_shape.shape if isinstance(image_shape, np.ndarray) else tuple(image_shape)
    if len(shape) not in (2, 3) or int(shape[0]) < 1 or int(shape[1]) < 1:
        raise ConfigError(f"image_shape: expected (H, W) or (H, W, C), got {tuple(shape)}")
    return int(shape[0]), int(shape[1])


def image_region(crop_to_image: np.ndarray, crop_hw: tuple[int, int],
                 hw: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """Integer photo region ``(x0, y0, x1, y1)`` (exclusive ends, clipped to a photo of size
    ``hw`` = ``(H, W)``) that a crop of size ``crop_hw`` mapped by ``crop_to_image`` covers,
    with a 1-2 px margin for interpolation; ``None`` when it falls outside the photo."""
    fx0, fy0, fx1, fy1 = _footprint(crop_to_image, crop_hw[1], crop_hw[0])
    x0, y0 = max(0, int(math.floor(fx0)) - 1), max(0, int(math.floor(fy0)) - 1)
    x1, y1 = min(hw[1], int(math.ceil(fx1)) + 2), min(hw[0], int(math.ceil(fy1)) + 2)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def warp_to_image(
    crop: np.ndarray,
    aligned_or_inverse: AlignedFace | np.ndarray,
    image_shape: Sequence[int] | np.ndarray,
    *,
    interpolation: Interpolation = "linear",
    border: Border = "constant",
) -> np.ndarray:
    """Warp a crop (or a mask of the crop) back into the frame of the original image.

    Args:
        crop: ``(h, w)`` or ``(h, w, C)`` array, uint8, float32/64 or bool (bool is returned as
            float32). It may be of another size than the aligned crop (e.g. a stylized crop at
            512 px for a 256-px alignment): it is taken to cover the same square.
        aligned_or_inverse: the :class:`AlignedFace` the crop belongs to, or a ``(2, 3)``
            matrix mapping ``crop`` pixels to image pixels (``AlignedFace.inverse`` for a crop
            of the aligned size).
        image_shape: ``(H, W)`` or ``(H, W, C)`` of the original image (or the image itself).
        interpolation: ``"nearest"``, ``"linear"`` or ``"cubic"``.
        border: how the crop extends past its edges: ``"constant"`` (zeros, default) or
            ``"replicate"``.

    Returns:
        ``(H, W[, C])`` array, the crop's dtype, zero where the crop does not reach.
    """
    if not isinstance(crop, np.ndarray) or crop.ndim not in (2, 3) or crop.size == 0:
        raise InvalidImageError(f"crop: expected an (h, w) or (h, w, C) array, got {type(crop).__name__}"
                                f"{'' if not isinstance(crop, np.ndarray) else ' of shape ' + str(crop.shape)}")
    if crop.dtype == np.bool_:
        crop = crop.astype(np.float32)
    elif crop.dtype not in (np.uint8, np.float32, np.float64):
        raise InvalidImageError(f"crop: expected dtype uint8, float32, float64 or bool, got {crop.dtype}")
    hw = _image_hw(image_shape)
    crop_hw = (int(crop.shape[0]), int(crop.shape[1]))
    to_image = crop_to_image_matrix(aligned_or_inverse, crop_hw)
    out = np.zeros(hw + crop.shape[2:], dtype=crop.dtype)
    region = image_region(to_image, crop_hw, hw)
    if region is None:
        return out
    x0, y0, x1, y1 = region
    m = compose(translation(-x0, -y0), to_image)
    out[y0:y1, x0:x1] = resample(crop, m, (x1 - x0, y1 - y0), interpolation=interpolation, border=border)
    return out


def _as_alpha(mask: Any, name: str) -> np.ndarray:
    """A mask as float32 in [0, 1], read the way every facetoon function reads a soft mask
    (:func:`facetoon.blend.mask.as_alpha`: bool, uint8 0..255 or 0/1, float [0, 1])."""
    from ..blend.mask import as_alpha  # lazy: facetoon.blend builds on facetoon.face

    return as_alpha(mask, name)


def paste_back(image: Any, crop: Any, aligned: AlignedFace, mask: np.ndarray | None = None) -> np.ndarray:
    """Composite a (stylized) face crop over the original image: a plain alpha blend.

    The crop is warped back with ``aligned.inverse`` and blended with the alpha
    ``aligned.mask * mask`` warped the same way, so padded crop pixels never land in the photo.
    No feathering or colour matching (see the blending module for those).

    Args:
        image: the original image, ``(H, W, 3)`` uint8 RGB (gray is expanded) or a path.
        crop: ``(h, w, 3)`` uint8 RGB crop covering the aligned square; any size.
        aligned: the :class:`AlignedFace` the crop was made from.
        mask: optional ``(h', w')`` alpha of the crop, e.g. a face-shaped mask; any size
            (resized to the crop). Read like every facetoon mask
            (:func:`facetoon.blend.mask.as_alpha`): bool; uint8 ``0..255``, or 0/1 when it holds
            only those values; float in ``[0, 1]`` (a float mask clearly outside is refused).

    Returns:
        A new ``(H, W, 3)`` uint8 RGB image.
    """
    import cv2

    from .types import AlignedFace

    if not isinstance(aligned, AlignedFace):
        raise ConfigError(f"aligned: expected an AlignedFace, got {type(aligned).__name__}")
    img = as_rgb(as_image(image, "image"))
    if img.shape[:2] != tuple(aligned.image_shape):
        raise InvalidImageError(f"image: shape {img.shape[:2]} differs from the image the face was aligned in "
                                f"{tuple(aligned.image_shape)}")
    rgb = as_rgb(as_image(crop, "crop"))
    ch, cw = rgb.shape[:2]
    alpha: np.ndarray = aligned.mask.astype(np.float32)
    if alpha.shape != (ch, cw):
        alpha = cv2.resize(alpha, (cw, ch), interpolation=cv2.INTER_LINEAR)
    if mask is not None:
        extra = _as_alpha(mask, "mask")
        if extra.shape != (ch, cw):
            extra = cv2.resize(extra, (cw, ch), interpolation=cv2.INTER_LINEAR)
        alpha = alpha * extra
    to_image = crop_to_image_matrix(aligned, (ch, cw))
    out = img.copy()
    region = image_region(to_image, (ch, cw), img.shape[:2])
    if region is None:
        return out
    x0, y0, x1, y1 = region
    m = compose(translation(-x0, -y0), to_image)
    size = (x1 - x0, y1 - y0)
    warped = resample(rgb, m, size, interpolation="cubic", border="replicate").astype(np.float32)
    a = resample(alpha, m, size, interpolation="linear", border="constant")[:, :, None]
    base = out[y0:y1, x0:x1].astype(np.float32)
    out[y0:y1, x0:x1] = np.clip(base + (warped - base) * a + 0.5, 0, 255).astype(np.uint8)
    return out
