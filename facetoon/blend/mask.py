"""Soft face masks: the face-and-hair region of an aligned crop, feathered.

Convention: a mask is a ``float32`` array in ``[0, 1]`` (1 = take the face). Crop masks are
``(size, size)`` in the pixel frame of an :class:`~facetoon.face.AlignedFace` crop; image masks
are ``(H, W)`` in the frame of the photo (warped with the crop's inverse matrix). Points are
``(x, y)`` with pixel centres at integers.

Masks given to facetoon
-----------------------
Every public function that takes a mask reads it with :func:`as_alpha` (a soft **alpha**:
opacity per pixel) or :func:`as_support` (a binary **support**: where something applies), so
all accept the same inputs, ``(h, w)`` or ``(h, w, 1)``:

* ``bool``: ``False`` / ``True`` = 0 / 1;
* ``uint8`` (or another integer type): ``0..255`` = opacity ``v / 255`` — except a mask holding
  only the values 0 and 1 (the usual binary mask of OpenCV code, of ``np.where`` and of
  :func:`face_region`), which is read as 0 / 1;
* float (16, 32 or 64 bits): ``[0, 1]``; up to 0.25 outside (interpolation overshoot) is
  clipped, further out (a mask of ``0..255`` or ``-1..1`` floats) is refused.

A support is where that alpha is > 0. Anything else (another dtype, NaN, not an ``(h, w)``
array) raises :class:`~facetoon.errors.InvalidImageError` naming the argument; a mask whose size
differs from the image it goes with is a :class:`~facetoon.errors.ConfigError` in
:func:`~facetoon.blend.harmonize.harmonize`, :func:`~facetoon.blend.seam.seam_score` and
:func:`crop_face_mask` (an :class:`~facetoon.errors.InvalidImageError` in ``poisson_blend``,
``band_weights`` and ``paste_back``, which check it with the mask).

Shape
-----
The region follows the face, not the crop square:

* **below** the eyes, the jaw line (iBUG points 0-16), pushed out from the face centre by
  ``side`` (sides) and ``chin`` (chin) times the face width, so cheeks, ears and chin are in;
* **above**, half an ellipse over the head whose horizontal semi-axis is the widened jaw and
  whose height is ``hair`` times the eye-line-to-chin distance: forehead and hair;
* **clipped** to the crop (minus ``edge`` pixels, where a generator's padding shows) and to the
  crop's valid pixels (:attr:`AlignedFace.mask`: padding is never pasted).

For 5-point landmarks the jaw line is the default template's mean jaw (measured on the
selfie2anime selfies with the 68-point model) fitted to the five points by a similarity
transform; aligned crops follow that template, so it is close to the face's real outline.

Feathering
----------
Inside the region the mask rises from 0 at the boundary to 1 at a depth of ``feather`` times the
face width (a smoothstep of the Euclidean distance to the boundary), so the transition width is
proportional to the face size in the photo, whatever the crop resolution. Where the region is
cut by the image border (padding) the mask stays hard: the photo ends there anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError, InvalidImageError
from ..face.geometry import apply_affine, estimate_similarity
from ..face.template import DEFAULT_TEMPLATE, FaceTemplate

__all__ = ["MaskShape", "DEFAULT_SHAPE", "as_alpha", "as_support", "face_outline", "face_region", "feather",
           "crop_face_mask"]

# fixed-point bits for sub-pixel polygon filling (cv2.fillPoly ``shift``)
_SHIFT = 4
_JAW = slice(0, 17)
# float masks may leave [0, 1] by this much (cubic resampling overshoots ~11%) and are clipped
_OVERSHOOT = 0.25


def as_alpha(mask: Any, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """A mask given to facetoon as an ``(h, w)`` float32 alpha in ``[0, 1]`` (see the module doc:
    bool; uint8 ``0..255``, or 0 / 1 when it holds only those; float in ``[0, 1]``).

    Args:
        mask: ``(h, w)`` or ``(h, w, 1)`` bool, uint8 or float array.
        name: the argument's name, for error messages.
        shape: the required ``(h, w)``, if any.

    Raises:
        InvalidImageError: not such an array, of another shape or dtype, with NaN or infinite
            values, or float values clearly outside ``[0, 1]``.
    """
    if not isinstance(mask, np.ndarray) or mask.ndim not in (2, 3) or mask.size == 0 \
            or (mask.ndim == 3 and mask.shape[2] != 1):
        got = f"shape {mask.shape}" if isinstance(mask, np.ndarray) else type(mask).__name__
        raise InvalidImageError(f"{name}: expected an (h, w) mask array, got {got}")
    m = mask[:, :, 0] if mask.ndim == 3 else mask
    if shape is not None and m.shape != tuple(shape[:2]):
        raise InvalidImageError(f"{name}: expected shape {tuple(shape[:2])}, got {mask.shape}")
    if m.dtype == np.bool_:
        return m.astype(np.float32)
    if np.issubdtype(m.dtype, np.integer):  # uint8, or e.g. int64 from np.where: 0..255 or 0 / 1
        low, top = int(m.min()), int(m.max())
        if low < 0 or top > 255:
            raise InvalidImageError(f"{name}: an integer mask must lie in 0..255 (or be 0 / 1), got values "
                                    f"in [{low}, {top}]")
        return m.astype(np.float32) if top <= 1 else m.astype(np.float32) / np.float32(255.0)
    if not np.issubdtype(m.dtype, np.floating):
        raise InvalidImageError(f"{name}: expected a bool, integer (0..255) or float ([0, 1]) mask, "
                                f"got dtype {m.dtype}")
    lo, hi = float(m.min()), float(m.max())
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise InvalidImageError(f"{name}: holds NaN or infinite values")
    if lo < -_OVERSHOOT or hi > 1.0 + _OVERSHOOT:
        raise InvalidImageError(f"{name}: a float mask must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}] "
                                f"(divide a 0..255 mask by 255; pass uint8 or bool masks as they are)")
    return np.clip(m.astype(np.float32), 0.0, 1.0)


def as_support(mask: Any, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """A mask given to facetoon as an ``(h, w)`` bool support: where :func:`as_alpha` is > 0
    (bool as is; any non-zero uint8; float > 0). Same inputs and errors as :func:`as_alpha`."""
    return as_alpha(mask, name, shape) > 0.0


@dataclass(frozen=True)
class MaskShape:
    """Proportions of the face mask, as fractions of the face width (jaw point 0 to 16).

    Attributes:
        hair: height of the head ellipse above the eye line, as a multiple of the eye-line
            to chin distance (1.0 reaches about the top of the skull).
        side: outward push of the jaw line at the sides (ears, side hair).
        chin: outward push of the jaw line at the chin (keeps the chin outline in).
        feather: width of the soft transition inside the boundary.
        edge: pixels at the crop border left out (generator border effects), in a 256-px crop;
            scaled with the crop size.
    """

    hair: float = 1.0
    side: float = 0.16
    chin: float = 0.05
    feather: float = 0.12
    edge: float = 2.0

    def __post_init__(self) -> None:
        for name in ("hair", "side", "chin", "feather", "edge"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
                raise ConfigError(f"MaskShape.{name}: expected a finite number >= 0, got {value!r}")
        if self.feather <= 0:
            raise ConfigError(f"MaskShape.feather: expected > 0, got {self.feather!r}")


DEFAULT_SHAPE = MaskShape()


def _outline_points(landmarks: np.ndarray, size: int, template: FaceTemplate) -> np.ndarray:
    """68 iBUG points in crop pixels: the landmarks themselves, or the template fitted to 5."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.ndim != 2 or lm.shape[1] != 2 or not np.all(np.isfinite(lm)):
        raise ConfigError(f"landmarks: expected finite (N, 2) crop coordinates, got shape {lm.shape}")
    if len(lm) == 68:
        return lm
    if len(lm) == 5:
        fit = estimate_similarity(template.points("dlib5", size), lm)
        return apply_affine(fit, template.points("ibug68", size))
    raise ConfigError(f"landmarks: expected 5 (dlib) or 68 (iBUG) points, got {len(lm)}")


def face_outline(
    landmarks: np.ndarray,
    size: int,
    shape: MaskShape = DEFAULT_SHAPE,
    *,
    template: FaceTemplate = DEFAULT_TEMPLATE,
    arc_points: int = 24,
) -> tuple[np.ndarray, float]:
    """Closed polygon ``(K, 2)`` (crop pixels) around face and hair, and the face width.

    Args:
        landmarks: ``(5, 2)`` or ``(68, 2)`` landmarks in crop pixels
            (:attr:`AlignedFace.landmarks`).
        size: side of the crop.
        shape: proportions (see :class:`MaskShape`).

    Returns:
        ``(polygon, face_width)``; the polygon runs along the widened jaw from the image-left
        ear to the image-right ear, then over the head back to the start.
    """
    pts = _outline_points(landmarks, size, template)
    jaw = pts[_JAW]
    left, right = jaw[0], jaw[-1]
    centre = 0.5 * (left + right)
    across = right - left
    width = float(np.hypot(*across))
    if width < 1e-6:
        raise ConfigError("landmarks: degenerate face (zero width)")
    ux = across / width                      # image-right along the eye line
    uy = np.array([-ux[1], ux[0]])           # downwards (towards the chin)
    rel = jaw - centre
    along, down = rel @ ux, rel @ uy
    # push the jaw outwards: sideways at the ears, downwards at the chin
    t = np.clip(down / max(float(down.max()), 1e-6), 0.0, 1.0)  # 0 at the ears, 1 at the chin
    push = (shape.side * (1.0 - t) ** 2 + shape.chin * (1.0 - (1.0 - t) ** 2)) * width
    norm = np.hypot(along, down)
    norm[norm < 1e-6] = 1.0
    along2 = along + push * along / norm
    down2 = down + push * down / norm
    lower = centre + along2[:, None] * ux + down2[:, None] * uy
    # the head: half an ellipse above the eye line, from the right end back to the left end
    half_w = 0.5 * (abs(float(along2[-1])) + abs(float(along2[0])))
    height = shape.hair * float(max(down.max(), 1e-6))
    theta = np.linspace(0.0, np.pi, arc_points + 2)[1:-1]
    mid = centre + 0.5 * (float(along2[-1]) + float(along2[0])) * ux
    upper = mid + (np.cos(theta) * half_w)[:, None] * ux - (np.sin(theta) * height)[:, None] * uy
    return np.concatenate([lower, upper], axis=0), width


def face_region(polygon: np.ndarray, size: int, edge: float = 0.0) -> np.ndarray:
    """Binary ``(size, size)`` uint8 mask (1 inside) of ``polygon``, minus ``edge`` pixels at the
    crop border."""
    import cv2

    region = np.zeros((size, size), dtype=np.uint8)
    fixed = np.round(np.asarray(polygon, dtype=np.float64) * (1 << _SHIFT)).astype(np.int32)
    cv2.fillPoly(region, [fixed], 1, lineType=cv2.LINE_8, shift=_SHIFT)
    e = int(round(edge))
    if e > 0:
        region[:e] = 0
        region[-e:] = 0
        region[:, :e] = 0
        region[:, -e:] = 0
    return region


def feather(region: np.ndarray, width: float) -> np.ndarray:
    """Soft mask from a binary region: 0 at its boundary, smoothstep to 1 at depth ``width``.

    Args:
        region: ``(h, w)`` support, read by :func:`as_support` (bool, uint8 or float; non-zero
            inside). Pixels outside the array count as outside.
        width: transition width in pixels (> 0).

    Returns:
        ``(h, w)`` float32 in ``[0, 1]``; exactly 0 outside the region.
    """
    import cv2

    if width <= 0:
        raise ConfigError(f"feather width must be > 0 pixels, got {width!r}")
    inside = np.pad(as_support(region, "region").astype(np.uint8), 1)
    # distance of each inside pixel to the nearest outside pixel centre; the boundary lies
    # half a pixel before it
    dist = cv2.distanceTransform(inside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
    t = np.clip((dist - 0.5) / float(width), 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)


def crop_face_mask(
    landmarks: np.ndarray,
    size: int,
    valid: np.ndarray | None = None,
    shape: MaskShape = DEFAULT_SHAPE,
    *,
    template: FaceTemplate = DEFAULT_TEMPLATE,
) -> np.ndarray:
    """The soft face-and-hair mask of an aligned crop.

    Args:
        landmarks: ``(5, 2)`` or ``(68, 2)`` landmarks in crop pixels.
        size: side of the crop.
        valid: ``(size, size)`` alpha of real (non-padded) pixels (:attr:`AlignedFace.mask`;
            read by :func:`as_alpha`: float ``[0, 1]``, uint8 or bool); multiplied in, so
            padding gets weight 0.
        shape: proportions (see :class:`MaskShape`).

    Returns:
        ``(size, size)`` float32 in ``[0, 1]``.
    """
    if not isinstance(size, (int, np.integer)) or size < 8:
        raise ConfigError(f"size: expected an integer >= 8, got {size!r}")
    polygon, width = face_outline(landmarks, int(size), shape, template=template)
    region = face_region(polygon, int(size), edge=shape.edge * size / 256.0)
    mask = feather(region, max(1.0, shape.feather * width))
    if valid is not None:
        v = as_alpha(valid, "valid")
        if v.shape != mask.shape:
            raise ConfigError(f"valid: expected shape {mask.shape}, got {v.shape}")
        mask = mask * v
    return mask
