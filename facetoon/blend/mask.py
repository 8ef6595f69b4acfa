"""Soft face masks: the face-and-hair region of an aligned crop, feathered.

Convention: a mask is a ``float32`` array in ``[0, 1]`` (1 = take the face). Crop masks are
``(size, size)`` in the pixel frame of an :class:`~facetoon.face.AlignedFace` crop; image masks
are ``(H, W)`` in the frame of the photo (warped with the crop's inverse matrix). Points are
``(x, y)`` with pixel centres at integers.

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

import numpy as np

from ..errors import ConfigError
from ..face.geometry import apply_affine, estimate_similarity
from ..face.template import DEFAULT_TEMPLATE, FaceTemplate

__all__ = ["MaskShape", "DEFAULT_SHAPE", "face_outline", "face_region", "feather", "crop_face_mask"]

# fixed-point bits for sub-pixel polygon filling (cv2.fillPoly ``shift``)
_SHIFT = 4
_JAW = slice(0, 17)


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
        region: ``(h, w)`` array, non-zero inside. Pixels outside the array count as outside.
        width: transition width in pixels (> 0).

    Returns:
        ``(h, w)`` float32 in ``[0, 1]``; exactly 0 outside the region.
    """
    import cv2

    if width <= 0:
        raise ConfigError(f"feather width must be > 0 pixels, got {width!r}")
    inside = np.pad((np.asarray(region) > 0).astype(np.uint8), 1)
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
        valid: ``(size, size)`` float fraction of real (non-padded) pixels
            (:attr:`AlignedFace.mask`); multiplied in, so padding gets weight 0.
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
        v = np.asarray(valid, dtype=np.float32)
        if v.shape != mask.shape:
            raise ConfigError(f"valid: expected shape {mask.shape}, got {v.shape}")
        mask = mask * np.clip(v, 0.0, 1.0)
    return mask
