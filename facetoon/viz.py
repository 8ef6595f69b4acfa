"""Debug drawings for notebooks: faces, landmarks, the alignment template and crop grids.

Every function takes an image the way :func:`facetoon.detect_faces` does (``(H, W, 3)`` uint8
RGB or ``(H, W)`` gray array, or anything :func:`facetoon.io.read_image` reads: path, bytes, PIL
image, float ``[0, 1]`` or 16-bit array) and returns a **new** ``(H, W, 3)`` uint8 RGB array; the
input is never modified. Colours are RGB tuples. Faces are what the library returns: a
:class:`~facetoon.face.Face` (:func:`facetoon.detect_faces`), a
:class:`~facetoon.pipeline.FaceDetails` (``Stylizer.stylize(..., return_details=True).faces``),
or a list of either. OpenCV is imported when a function is called, so importing this module is
cheap.

    >>> import facetoon, facetoon.viz as viz
    >>> faces = facetoon.detect_faces(img)                               # doctest: +SKIP
    >>> viz.draw_faces(img, faces)                                       # doctest: +SKIP
    >>> viz.draw_crop_grid(img, facetoon.align_face(img, faces[0]))      # doctest: +SKIP
    >>> res = facetoon.Stylizer().stylize(img, return_details=True)     # doctest: +SKIP
    >>> viz.draw_faces(img, res.faces), viz.draw_crop_grid(img, res.faces[0])  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ConfigError
from .face._image import as_image, as_rgb

if TYPE_CHECKING:
    from .face import AlignedFace, Face, FaceTemplate
    from .pipeline.results import FaceDetails

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
    """A fresh ``(H, W, 3)`` RGB uint8 copy to draw on, of anything :func:`facetoon.detect_faces`
    reads (:class:`~facetoon.errors.InvalidImageError` otherwise)."""
    img = as_image(image, "image")
    return as_rgb(img) if img.ndim == 2 else np.array(img, order="C")


def _faces(faces: Any) -> list[Face]:
    """The :class:`Face` list of a Face, a FaceDetails (anything with a ``.face`` Face), or a
    sequence of those."""
    from .face import Face

    def one(item: Any, name: str) -> Face:
        face = item if isinstance(item, Face) else getattr(item, "face", None)
        if not isinstance(face, Face):
            raise ConfigError(f"{name}: expected a facetoon.face.Face (detect_faces) or a FaceDetails "
                              f"(Stylizer.stylize(..., return_details=True).faces), got {type(item).__name__}")
        return face

    if isinstance(faces, Face) or isinstance(getattr(faces, "face", None), Face):
        return [one(faces, "faces")]
    if isinstance(faces, (str, bytes, np.ndarray)) or not isinstance(faces, Iterable):
        raise ConfigError(f"faces: expected a Face, a FaceDetails or a list of them, got {type(faces).__name__}")
    return [one(item, f"faces[{i}]") for i, item in enumerate(faces)]


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


def caption(image: Any, text: str, *, scale: float | None = None) -> np.ndarray:
    """The image with ``text`` in white on a black box at its top-left corner (figure panels).

    Args:
        image: ``(H, W, 3)`` uint8 RGB, ``(H, W)`` gray, or anything else the module doc lists.
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


def draw_boxes(image: Any, boxes: Iterable[Sequence[float]], *, color: Color = GREEN,
               thickness: int | None = None, labels: Sequence[str] | None = None) -> np.ndarray:
    """Draw ``(x0, y0, x1, y1)`` boxes (continuous pixel coordinates), optionally labelled."""
    img = _canvas(image)
    t = _thickness(img, thickness)
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        _polyline(img, np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]), color, t)
        if labels is not None and i < len(labels):
            _label(img, labels[i], (x0, y0 - 4), color, 0.4 * t)
    return img


def draw_landmarks(image: Any, landmarks: np.ndarray, *, color: Color = RED,
                   radius: float | None = None) -> np.ndarray:
    """Draw ``(N, 2)`` landmark points."""
    img = _canvas(image)
    _dots(img, np.asarray(landmarks, dtype=np.float64).reshape(-1, 2), color,
          radius if radius is not None else max(1.0, max(img.shape[:2]) / 350))
    return img


def draw_faces(image: Any, faces: Face | FaceDetails | Iterable[Face | FaceDetails], *, boxes: bool = True,
               landmarks: bool = True, points: bool = True, labels: bool = True,
               thickness: int | None = None) -> np.ndarray:
    """Draw each face's box (green), landmarks (red) and named points (estimated ones hollow).

    Labels show the index in ``faces`` (0 = largest), the score and the roll angle.

    Args:
        image: the photo the faces were found in (see the module doc for the accepted inputs).
        faces: a :class:`~facetoon.face.Face`, a :class:`~facetoon.pipeline.FaceDetails`, or a
            list of either (``detect_faces(...)``, ``result.faces``).

    Raises:
        InvalidImageError: ``image`` is not an image.
        ConfigError: ``faces`` holds something else.
    """
    import cv2

    items = _faces(faces)
    img = _canvas(image)
    t = _thickness(img, thickness)
    radius = max(1.0, max(img.shape[:2]) / 350)
    for i, face in enumerate(items):
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


def draw_template(template: FaceTemplate | None = None, size: int = 256, image: Any = None,
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


def draw_crop_grid(image: Any, aligned: AlignedFace | FaceDetails | np.ndarray, size: int | None = None, *,
                   grid: int = 4, color: Color = CYAN, thickness: int | None = None) -> np.ndarray:
    """Draw the aligned crop's outline and a ``grid x grid`` grid, projected onto the image.

    Args:
        image: the photo the face was aligned in (see the module doc for the accepted inputs).
        aligned: an :class:`AlignedFace` (:func:`facetoon.align_face`), a
            :class:`~facetoon.pipeline.FaceDetails` (its ``.aligned``), or the ``(2, 3)``
            forward matrix (image -> crop) together with ``size``.
        size: crop side, needed with a bare matrix.

    Raises:
        InvalidImageError: ``image`` is not an image.
        ConfigError: ``aligned`` is none of the above, or a matrix comes without ``size``.
    """
    from .face import AlignedFace, Face
    from .face.geometry import apply_affine, invert_affine

    if isinstance(getattr(aligned, "aligned", None), AlignedFace):  # FaceDetails
        aligned = aligned.aligned  # type: ignore[union-attr]
    if isinstance(aligned, AlignedFace):
        inv, n = aligned.inverse, aligned.size
    else:
        if isinstance(aligned, Face):
            raise ConfigError("aligned: got a Face, which has no crop: pass facetoon.align_face(image, face) "
                              "or a FaceDetails")
        m = np.asarray(aligned, dtype=np.float64) if isinstance(aligned, (np.ndarray, list, tuple)) else None
        if m is None or m.shape != (2, 3) or not np.all(np.isfinite(m)):
            got = f"shape {m.shape}" if m is not None else type(aligned).__name__
            raise ConfigError(f"aligned: expected an AlignedFace, a FaceDetails or a finite (2, 3) matrix, got {got}")
        if size is None:
            raise ConfigError("size: needed with a bare (2, 3) matrix as `aligned` (the crop side in pixels); "
                              "or pass the AlignedFace itself")
        inv, n = invert_affine(m), int(size)
    img = _canvas(image)
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
