"""2-D affine helpers for face alignment (numpy only).

Convention (used by every matrix in :mod:`facetoon.face`):

* A matrix is a ``(2, 3)`` float64 array ``M`` mapping a **source** point to a **destination**
  point: ``[x', y'] = M @ [x, y, 1]``. It is the matrix you would give ``cv2.warpAffine`` to
  resample the source image into the destination frame.
* Points are ``(x, y)`` = (column, row) in **pixel coordinates**, origin at the top-left pixel,
  with pixel **centres at integers**: the top-left pixel covers ``[-0.5, 0.5]^2`` and its centre
  is ``(0, 0)``. This is OpenCV's convention, dlib's (landmarks are pixel centres) and kornia's
  ``align_corners=True`` one.
* Angles are in degrees; a positive angle rotates **counter-clockwise as displayed** (y points
  down), as ``cv2.getRotationMatrix2D`` does.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "apply_affine",
    "compose",
    "estimate_similarity",
    "invert_affine",
    "matrix_angle",
    "matrix_scale",
    "resize_matrix",
    "rotation_about",
    "translation",
]


def _h(m: ArrayLike) -> np.ndarray:
    """(2, 3) -> (3, 3) homogeneous."""
    return np.vstack([np.asarray(m, dtype=np.float64).reshape(2, 3), [0.0, 0.0, 1.0]])


def compose(*matrices: ArrayLike) -> np.ndarray:
    """Compose affine matrices; ``compose(a, b)`` applies ``b`` first, then ``a`` (like ``a @ b``)."""
    out = np.eye(3)
    for m in matrices:
        out = out @ _h(m)
    return out[:2].copy()


def invert_affine(m: ArrayLike) -> np.ndarray:
    """Inverse of a ``(2, 3)`` affine matrix."""
    return np.linalg.inv(_h(m))[:2].copy()


def apply_affine(m: ArrayLike, points: ArrayLike) -> np.ndarray:
    """Map ``(N, 2)`` points with a ``(2, 3)`` matrix; returns ``(N, 2)`` float64."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    m = np.asarray(m, dtype=np.float64)
    return pts @ m[:, :2].T + m[:, 2]


def translation(tx: float, ty: float) -> np.ndarray:
    """Matrix of a translation by ``(tx, ty)``."""
    return np.array([[1.0, 0.0, tx], [0.0, 1.0, ty]])


def resize_matrix(sx: float, sy: float | None = None) -> np.ndarray:
    """Matrix of a resize by factors ``(sx, sy)`` in the pixel-centre convention.

    A pixel edge at ``-0.5`` stays at ``-0.5``: ``x' = (x + 0.5) * sx - 0.5``. This is how
    ``cv2.resize`` maps coordinates.
    """
    sy = sx if sy is None else sy
    return np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5]])


def rotation_about(center: tuple[float, float], angle: float, scale: float = 1.0) -> np.ndarray:
    """Rotation by ``angle`` degrees (counter-clockwise as displayed) and ``scale`` about ``center``.

    Same matrix as ``cv2.getRotationMatrix2D(center, angle, scale)``.
    """
    a = math.radians(angle)
    alpha, beta = scale * math.cos(a), scale * math.sin(a)
    cx, cy = float(center[0]), float(center[1])
    return np.array(
        [
            [alpha, beta, (1.0 - alpha) * cx - beta * cy],
            [-beta, alpha, beta * cx + (1.0 - alpha) * cy],
        ]
    )


def matrix_scale(m: ArrayLike) -> float:
    """Isotropic scale of an affine matrix: ``sqrt(|det(M[:, :2])|)``."""
    return math.sqrt(abs(float(np.linalg.det(np.asarray(m, dtype=np.float64)[:, :2]))))


def matrix_angle(m: ArrayLike) -> float:
    """Rotation angle (degrees, counter-clockwise as displayed) of a similarity matrix."""
    m = np.asarray(m, dtype=np.float64)
    return math.degrees(math.atan2(-m[1, 0], m[0, 0]))


def estimate_similarity(src: ArrayLike, dst: ArrayLike) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping ``src`` to ``dst``.

    Uses scikit-image's Umeyama estimate. ``src`` and ``dst`` are ``(N, 2)`` with ``N >= 2``;
    returns the ``(2, 3)`` float64 matrix ``M`` minimising ``sum |M(src) - dst|^2``.

    Raises:
        ValueError: fewer than two points, mismatched shapes or degenerate (coincident) points.
    """
    from skimage.transform import SimilarityTransform

    a = np.asarray(src, dtype=np.float64)
    b = np.asarray(dst, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] != 2 or len(a) < 2:
        raise ValueError(f"need two matching (N, 2) point sets, N >= 2; got {a.shape} and {b.shape}")
    if hasattr(SimilarityTransform, "from_estimate"):  # scikit-image >= 0.26
        tf = SimilarityTransform.from_estimate(a, b)
        ok = bool(tf)
    else:  # pragma: no cover - older scikit-image
        tf = SimilarityTransform()
        ok = bool(tf.estimate(a, b))
    params = getattr(tf, "params", None) if ok else None
    if params is None or not np.all(np.isfinite(params)) or abs(np.linalg.det(params[:2, :2])) < 1e-12:
        raise ValueError("cannot fit a similarity transform to these points (degenerate)")
    return np.asarray(params[:2], dtype=np.float64).copy()
