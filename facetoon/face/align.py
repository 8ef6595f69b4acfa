"""Align a face to a template: similarity transform, crop, scale and pad.

Convention
----------
``AlignedFace.matrix`` maps **original image pixels to crop pixels** (source -> destination,
the matrix ``cv2.warpAffine`` takes); ``AlignedFace.inverse`` maps crop pixels back. Points are
``(x, y)``, origin at the top-left pixel, pixel centres at integers (pixel ``(0, 0)`` covers
``[-0.5, 0.5]^2``). The transform is a similarity — rotation, uniform scale, translation — fitted
by least squares (Umeyama) from the face's measured landmarks to the template's.

Padding
-------
Where the crop reaches past the image, its pixels are invented; ``AlignedFace.mask`` says which
(1 = from the image, 0 = padding, fractional on the boundary) so a blend never pastes them.

* ``"reflect"`` — mirror the image at its edge (without repeating the edge pixel); near a face
  cut by the border this mirrors facial features (a second eye, half a mouth);
* ``"edge"`` — repeat the edge pixels outward (streaks);
* ``"constant"`` — a flat colour (``fill``);
* ``"blur"`` (default) — the edge pixels repeated outward, increasingly blurred with the
  distance from the image edge (fully blurred from ``size/8`` pixels out): no mirrored features,
  no hard streaks, no flat block. Against the real pixels beyond a cut edge of trainA selfies it
  is the closest of the four modes (mean abs error 35 levels vs 36 edge, 50 reflect, 110
  constant; ``python benchmarks/bench_faces.py --no-speed --padding``), and selfie2anime crops,
  which the face model was trained on, contain no padding at all.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from ..errors import ConfigError
from ._image import as_image
from .geometry import apply_affine, estimate_similarity, invert_affine, matrix_scale
from .landmarks import ALIGN_INDICES, NAMES, scheme_of
from .template import DEFAULT_TEMPLATE, FaceTemplate
from .types import AlignedFace, Face
from .warp import resample

__all__ = ["DEFAULT_PADDING", "PADDING_MODES", "align_face", "alignment_matrix", "crop_with_matrix", "valid_mask"]

Padding = Literal["reflect", "edge", "constant", "blur"]
PADDING_MODES: tuple[str, ...] = ("reflect", "edge", "constant", "blur")
DEFAULT_PADDING: Padding = "blur"


def alignment_matrix(face: Face | np.ndarray, size: int = 256,
                     template: FaceTemplate | np.ndarray = DEFAULT_TEMPLATE) -> np.ndarray:
    """The ``(2, 3)`` similarity matrix mapping image pixels to a ``size`` crop.

    Args:
        face: a :class:`Face`, or landmarks ``(N, 2)`` in image pixels (5 = dlib 5-point,
            68 = iBUG layout).
        size: side of the crop in pixels.
        template: a :class:`FaceTemplate`, or target positions ``(N, 2)`` for every landmark
            in ``size``-crop pixels.

    Raises:
        ConfigError: the landmarks and the template do not match, or the fit is degenerate.
    """
    if isinstance(face, Face):
        lm, scheme = np.asarray(face.landmarks, dtype=np.float64), face.scheme
    else:
        lm = np.asarray(face, dtype=np.float64)
        if lm.ndim != 2 or lm.shape[1] != 2:
            raise ConfigError(f"face: expected a Face or (N, 2) landmarks, got shape {lm.shape}")
        scheme = scheme_of(lm)
    if not np.all(np.isfinite(lm)):
        raise ConfigError("face: landmarks contain NaN or inf")
    if isinstance(template, FaceTemplate):
        if scheme in ALIGN_INDICES:
            idx = ALIGN_INDICES[scheme]
            src, dst = lm[idx], template.points(scheme, size)[idx]
        elif isinstance(face, Face):  # another layout: fit the measured named points
            names = [n for n in NAMES if n not in face.estimated]
            src = np.array([face.points[n] for n in names])
            dst = np.array([template.named_point(n, size)[0] for n in names])
        else:
            raise ConfigError(f"face: {len(lm)} landmarks match no template layout (5 or 68); pass a Face "
                              "with named points or template=(N, 2) target points")
    else:
        dst = np.asarray(template, dtype=np.float64)
        if dst.shape != lm.shape:
            raise ConfigError(f"template: expected {lm.shape} target points for these landmarks, got {dst.shape}")
        src = lm
    try:
        return estimate_similarity(src, dst)
    except ValueError as exc:
        raise ConfigError(f"face: {exc}") from None


def valid_mask(matrix: np.ndarray, size: int, image_shape: tuple[int, int]) -> np.ndarray:
    """``(size, size)`` float32 fraction of each crop pixel that lies inside the image.

    Computed from the geometry, not by warping: a crop pixel whose footprint straddles the
    image border gets the covered fraction (a one-crop-pixel ramp), 1 inside, 0 outside.
    """
    h, w = image_shape
    inv = invert_affine(matrix)
    step = 1.0 / matrix_scale(matrix)  # image pixels per crop pixel
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    u = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    v = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]

    def cover(t: np.ndarray, extent: int) -> np.ndarray:
        inside = np.minimum(t + 0.5, extent - 0.5 - t)  # signed distance to the nearest edge
        return np.clip(inside / step + 0.5, 0.0, 1.0)

    return (cover(u, w) * cover(v, h)).astype(np.float32)


def _blur_padding(crop: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Blend edge-replicated padding towards a strong blur of itself with the distance from the
    image (weight 0 at the edge, 1 from size/8 pixels out; Gaussian sigma size/16)."""
    import cv2

    size = crop.shape[0]
    outside = (mask < 0.999).astype(np.uint8)
    if not outside.any():
        return crop
    dist = cv2.distanceTransform(outside, cv2.DIST_L2, 3)
    ramp = max(2.0, size / 8.0)
    weight = np.clip(dist / ramp, 0.0, 1.0)[:, :, None].astype(np.float32)
    sigma = max(1.0, size / 16.0)
    blurred = cv2.GaussianBlur(crop, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT_101)
    out = crop.astype(np.float32) * (1.0 - weight) + blurred.astype(np.float32) * weight
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _fill_colour(fill: Any) -> tuple[float, float, float]:
    """``fill`` (a gray level or an RGB triple, 0..255) as three floats; ConfigError otherwise."""
    numbers = (int, float, np.number)
    if isinstance(fill, numbers) and not isinstance(fill, bool):
        values: tuple[Any, ...] = (fill,) * 3
    elif isinstance(fill, (tuple, list, np.ndarray)) and len(fill) == 3 \
            and all(isinstance(v, numbers) and not isinstance(v, bool) for v in fill):
        values = tuple(fill)
    else:
        raise ConfigError(f"fill: expected a gray level or an (R, G, B) triple of numbers 0..255, got {fill!r}")
    r, g, b = (float(v) for v in values)
    if not all(0.0 <= v <= 255.0 for v in (r, g, b)):
        raise ConfigError(f"fill: expected values in 0..255, got {fill!r}")
    return r, g, b


def crop_with_matrix(image: Any, matrix: np.ndarray, size: int = 256, padding: Padding = DEFAULT_PADDING,
                     fill: int | tuple[int, int, int] = 0) -> tuple[np.ndarray, np.ndarray]:
    """Resample the ``size x size`` crop of ``matrix`` (image -> crop) with padding.

    Returns ``(crop, mask)``: ``(size, size, 3)`` uint8 RGB and ``(size, size)`` float32 in
    ``[0, 1]``. Useful to crop with a matrix smoothed over video frames.
    """
    img = as_image(image, "image")
    if padding not in PADDING_MODES:
        raise ConfigError(f"padding: expected one of {list(PADDING_MODES)}, got {padding!r}")
    if not isinstance(size, (int, np.integer)) or not 8 <= size <= 4096:
        raise ConfigError(f"size: expected an integer 8..4096, got {size!r}")
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (2, 3) or not np.all(np.isfinite(m)) or matrix_scale(m) <= 0:
        raise ConfigError(f"matrix: expected a finite invertible (2, 3) matrix, got shape {m.shape}")
    size = int(size)
    border = {"reflect": "reflect", "blur": "replicate", "edge": "replicate", "constant": "constant"}[padding]
    fill_value = _fill_colour(fill)
    crop = resample(img, m, (size, size), interpolation="cubic", border=border,  # type: ignore[arg-type]
                    border_value=fill_value)
    if crop.ndim == 2:
        crop = np.repeat(crop[:, :, None], 3, axis=2)
    elif crop.shape[2] == 1:
        crop = np.repeat(crop, 3, axis=2)
    mask = valid_mask(m, size, img.shape[:2])
    if padding == "blur":
        crop = _blur_padding(crop, mask)
    return np.ascontiguousarray(crop), mask


def align_face(
    image: Any,
    face: Face | np.ndarray,
    size: int = 256,
    template: FaceTemplate | np.ndarray = DEFAULT_TEMPLATE,
    padding: Padding = DEFAULT_PADDING,
    *,
    fill: int | tuple[int, int, int] = 0,
) -> AlignedFace:
    """Crop ``face`` out of ``image``, rotated, scaled and padded to the template's framing.

    Args:
        image: ``(H, W, 3)`` uint8 RGB or ``(H, W)`` gray array (the crop is always RGB), or a
            path / anything :func:`facetoon.io.read_image` reads.
        face: a :class:`Face` from :func:`detect_faces`, or its ``(N, 2)`` landmarks.
        size: side of the square crop in pixels.
        template: where the landmarks should land; the default reproduces the selfie2anime
            training crops.
        padding: ``"blur"`` (default), ``"reflect"``, ``"edge"`` or ``"constant"`` (see the
            module docstring); the padded area is reported in ``mask`` whatever the mode.
        fill: colour of ``"constant"`` padding (gray level or RGB).

    Returns:
        An :class:`AlignedFace`: crop, forward/inverse matrices, valid mask, crop landmarks.

    Raises:
        InvalidImageError: ``image`` is not an image.
        ConfigError: bad ``size``/``padding``/``template`` or unusable landmarks.
    """
    img = as_image(image, "image")
    if not isinstance(face, (Face, np.ndarray)):
        raise ConfigError(f"face: expected a Face or an (N, 2) landmark array, got {type(face).__name__}")
    if not isinstance(size, (int, np.integer)) or not 8 <= size <= 4096:
        raise ConfigError(f"size: expected an integer 8..4096, got {size!r}")
    m = alignment_matrix(face, int(size), template)
    crop, mask = crop_with_matrix(img, m, int(size), padding, fill)
    lm = face.landmarks if isinstance(face, Face) else np.asarray(face, dtype=np.float64)
    return AlignedFace(
        image=crop,
        matrix=m,
        inverse=invert_affine(m),
        mask=mask,
        landmarks=apply_affine(m, lm),
        padding=padding,
        image_shape=(int(img.shape[0]), int(img.shape[1])),
        face=face if isinstance(face, Face) else None,
    )
