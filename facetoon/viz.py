"""Debug drawings for notebooks: faces, landmarks, the alignment template and crop grids.

Every function takes an image (``(H, W, 3)`` uint8 RGB, or ``(H, W)`` gray) and returns a **new**
``(H, W, 3)`` uint8 RGB array; the input is never modified. Colours are RGB tuples. OpenCV is
imported when a function is called, so importing this module is cheap.

    >>> import facetoon, facetoon.viz as viz
    >>> faces = facetoon.detect_faces(img)                               # doctest: +SKIP
    >>> viz.draw_faces(img, faces)                                       # doctest: +SKIP
    >>> viz.draw_crop_grid(img, facetoon.align_face(img, faces[0]))      # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import InvalidImageError

if TYPE_CHECKING:
    from .face import AlignedFace, Face, FaceTemplate

__all__ = [
    "caption",
    "draw_boxes",
    "draw_crop_grid",
    "draw_faces",
    "draw_landmarks",
    "draw_template",
]

Color = tuple[int, int, int]
GREEN: Color = (0, 220, 0)
RED: Color = (230, 40, 40)
YELLOW: Color = (255, 210, 0)
CYAN: Color = (0, 200, 255)
_NAMED_COLORS: dict[str, Color] = {
    "left_eye": (0, 160, 255),
    "right_eye": (0, 160, 255),
    "nose": (255, 120, 0),
    "mouth_left": (255, 0, 160),
    "mouth_right": (255, 0, 160),
}
_SHIFT = 4  # sub-pixel drawing: coordinates are multiplied by 2**_SHIFT


def _canvas(image: Any) -> np.ndarray:
    """A fresh RGB uint8 copy to draw on."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in (2, 3) or image.size == 0:
        raise InvalidImageError(f"image: expected a uint8 (H, W) or (H, W, 3) array, got {type(image).__name__}"
                                + (f" {image.dtype} {image.shape}" if isinstance(image, np.ndarray) else ""))
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    if image.shape[2] != 3:
        raise InvalidImageError(f"image: expected 1 or 3 channels, got shape {image.shape}")
    return np.ascontiguousarray(image).copy()


def _thickness(img: np.ndarray, thickness: int | None) -> int:
    return thickness if thickness is not None else max(1, round(max(img.shape[:2]) / 400))


def _fixed(points: np.ndarray) -> np.ndarray:
    """Float pixel coordinates -> int32 fixed point for cv2's ``shift`` argument."""
    return np.round(np.asarray(points, dtype=np.float64) * (1 << _SHIFT)).astype(np.int32)


def _polyline(img: np.ndarray, pts: np.ndarray, color: Color, thickness: int, closed: bool = True) -> None:
    import cv2

    cv2.polylines(img, [_fixed(pts).reshape(-1, 1, 2)], closed, color, thickness, cv2.LINE_AA, _SHIFT)


def _dots(img: np.ndarray, pts: np.ndarray, color: Color, radius: float) -> None:
    import cv2

    r = max(1, round(radius * (1 << _SHIFT)))
    for p in _fixed(pts):
        cv2.circle(img, (int(p[0]), int(p[1])), r, color, -1, cv2.LINE_AA, _SHIFT)


def _label(img: np.ndarray, text: str, org: tuple[float, float], color: Color, scale: float) -> None:
    import cv2

    x, y = int(round(org[0])), int(round(org[1]))
    cv2.putText(img, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1, cv2.LINE_AA)


def caption(image: np.ndarray, text: str, *, scale: float | None = None) -> np.ndarray:
    """The image with ``text`` in white on a black box at its top-left corner (figure panels).

    Args:
        image: ``(H, W, 3)`` uint8 RGB or ``(H, W)`` gray.
        text: one line of ASCII text (OpenCV's Hershey font).
        scale: font scale; default ``max(0.45, W / 700)``, readable from 128 px to 2k px wide.
    """
    import cv2

    out = _canvas(image)
    if scale is None:
        scale = max(0.45, out.shape[1] / 700.0)
    thick = max(1, int(round(scale * 2)))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    cv2.rectangle(out, (0, 0), (tw + 12, th + base + 10), (0, 0, 0), -1)
    cv2.putText(out, text, (6, th + 5), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return out


def draw_boxes(image: np.ndarray, boxes: Iterable[Sequence[float]], *, color: Color = GREEN,
               thickness: int | None = None, labels: Sequence[str] | None = None) -> np.ndarray:
    """Draw ``(x0, y0, x1, y1)`` boxes (continuous pixel coordinates), optionally labelled."""
    img = _canvas(image)
    t = _thickness(img, thickness)
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        _polyline(img, np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]), color, t)
        if labels is not None and i < len(labels):
            _label(img, labels[i], (x0, y0 - 4), color, 0.4 * t)
    return img


def draw_landmarks(image: np.ndarray, landmarks: np.ndarray, *, color: Color = RED,
                   radius: float | None = None) -> np.ndarray:
    """Draw ``(N, 2)`` landmark points."""
    img = _canvas(image)
    _dots(img, np.asarray(landmarks, dtype=np.float64).reshape(-1, 2), color,
          radius if radius is not None else max(1.0, max(img.shape[:2]) / 350))
    return img


def draw_faces(image: np.ndarray, faces: Sequence[Face], *, boxes: bool = True, landmarks: bool = True,
               points: bool = True, labels: bool = True, thickness: int | None = None) -> np.ndarray:
    """Draw each face's box (green), landmarks (red) and named points (estimated ones hollow).

    Labels show the index in ``faces`` (0 = largest), the score and the roll angle.
    """
    import cv2

    img = _canvas(image)
    t = _thickness(img, thickness)
    radius = max(1.0, max(img.shape[:2]) / 350)
    for i, face in enumerate(faces):
        if boxes:
            label = [f"#{i} {face.score:.2f} {face.angle:+.0f}deg"] if labels else None
            img = draw_boxes(img, [face.box], color=GREEN, thickness=t, labels=label)
        if landmarks:
            _dots(img, face.landmarks, RED, radius)
        if points:
            for name, p in face.points.items():
                c = _fixed(p.reshape(1, 2))[0]
                r = max(1, round(2.2 * radius * (1 << _SHIFT)))
                fill = 1 if name in face.estimated else -1
                cv2.circle(img, (int(c[0]), int(c[1])), r, _NAMED_COLORS.get(name, YELLOW), fill, cv2.LINE_AA,
                           _SHIFT)
    return img


def draw_template(template: FaceTemplate | None = None, size: int = 256, image: np.ndarray | None = None,
                  *, scheme: str = "ibug68") -> np.ndarray:
    """Draw a template's landmarks (``scheme``: ``"ibug68"``, ``"dlib5"`` or ``"named"``) at ``size``.

    On ``image`` (e.g. an aligned crop of that size) or on a mid-gray square.
    """
    from .face import DEFAULT_TEMPLATE

    tpl = DEFAULT_TEMPLATE if template is None else template
    img = np.full((size, size, 3), 128, np.uint8) if image is None else _canvas(image)
    pts = tpl.points(scheme, img.shape[0] if image is not None else size)
    _dots(img, pts, YELLOW, max(1.0, img.shape[0] / 200))
    if scheme != "named":
        named = tpl.points("named", img.shape[0] if image is not None else size)
        for name, p in zip(_NAMED_COLORS, named):
            _dots(img, p[None], _NAMED_COLORS[name], max(1.5, img.shape[0] / 90))
    return img


def draw_crop_grid(image: np.ndarray, aligned: AlignedFace | np.ndarray, size: int | None = None, *,
                   grid: int = 4, color: Color = CYAN, thickness: int | None = None) -> np.ndarray:
    """Draw the aligned crop's outline and a ``grid x grid`` grid, projected onto the image.

    Args:
        aligned: an :class:`AlignedFace`, or its ``(2, 3)`` forward matrix (image -> crop)
            together with ``size``.
        size: crop side, needed with a bare matrix.
    """
    from .face import AlignedFace
    from .face.geometry import apply_affine, invert_affine

    img = _canvas(image)
    if isinstance(aligned, AlignedFace):
        inv, n = aligned.inverse, aligned.size
    else:
        if size is None:
            raise ValueError("size: needed when `aligned` is a matrix")
        inv, n = invert_affine(np.asarray(aligned, dtype=np.float64)), int(size)
    t = _thickness(img, thickness)
    lo, hi = -0.5, n - 0.5
    for k in range(grid + 1):
        v = lo + (hi - lo) * k / grid
        width = t if k in (0, grid) else max(1, t // 2)
        _polyline(img, apply_affine(inv, [[lo, v], [hi, v]]), color, width, closed=False)
        _polyline(img, apply_affine(inv, [[v, lo], [v, hi]]), color, width, closed=False)
    # mark the crop's top edge so its orientation is visible
    _polyline(img, apply_affine(inv, [[lo, lo], [hi, lo]]), YELLOW, t + 1, closed=False)
    return img
