"""Landmark layouts and the named points derived from them.

Two layouts ("schemes") are known:

* ``"dlib5"`` — dlib's 5-point model: ``0, 1`` outer and inner corner of the eye on the image's
  right, ``2, 3`` outer and inner corner of the eye on the image's left, ``4`` base of the nose.
* ``"ibug68"`` — the iBUG 300-W 68-point layout (dlib 68-point model, FAN): jaw ``0-16``,
  brows ``17-26``, nose ``27-35`` (tip ``30``), eyes ``36-41`` (image left) and ``42-47``
  (image right), mouth ``48-67`` (corners ``48`` and ``54``).

Named points, in image pixels, are the same for every backend (``left``/``right`` mean the
image's left and right, i.e. ``left_eye`` is the subject's right eye):

``left_eye``, ``right_eye``
    eye centres (mean of the eye's landmarks; for ``dlib5``, the midpoint of its two corners);
``nose``
    nose tip;
``mouth_left``, ``mouth_right``
    mouth corners.

The 5-point model measures no mouth and no nose tip: for ``dlib5`` faces those three named
points are **estimated** — the default template's mean face (measured on selfie2anime trainA
with the 68-point model) is fitted to the five measured points with a similarity transform and
its nose tip and mouth corners are mapped back to the image. They are listed in
``Face.estimated``; the alignment never uses estimated points.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigError
from .geometry import apply_affine, estimate_similarity, invert_affine

if TYPE_CHECKING:
    from .template import FaceTemplate

__all__ = [
    "ALIGN_INDICES",
    "NAMES",
    "SCHEME_SIZES",
    "measured_points",
    "named_points",
    "roll_angle",
    "scheme_of",
]

NAMES: tuple[str, ...] = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
SCHEME_SIZES: dict[str, int] = {"dlib5": 5, "ibug68": 68}

#: landmarks the alignment fits to the template, per scheme: all five dlib points; for 68
#: points brows, nose, eyes and mouth (17-67) — the jaw line (0-16) follows head yaw and the
#: face outline more than the face's position, and makes the fit less stable.
ALIGN_INDICES: dict[str, np.ndarray] = {
    "dlib5": np.arange(5),
    "ibug68": np.arange(17, 68),
}


def scheme_of(landmarks: np.ndarray) -> str:
    """Scheme name for a landmark array by its length (``"custom"`` when unknown)."""
    n = len(landmarks)
    for scheme, size in SCHEME_SIZES.items():
        if size == n:
            return scheme
    return "custom"


def measured_points(landmarks: np.ndarray, scheme: str) -> dict[str, np.ndarray]:
    """Named points a scheme measures directly, ``{name: (2,) float64}`` in image pixels."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if scheme == "dlib5":
        return {"left_eye": lm[2:4].mean(axis=0), "right_eye": lm[0:2].mean(axis=0)}
    if scheme == "ibug68":
        return {
            "left_eye": lm[36:42].mean(axis=0),
            "right_eye": lm[42:48].mean(axis=0),
            "nose": lm[30].copy(),
            "mouth_left": lm[48].copy(),
            "mouth_right": lm[54].copy(),
        }
    raise ConfigError(f"unknown landmark scheme {scheme!r}")


def named_points(
    landmarks: np.ndarray, scheme: str, template: FaceTemplate | None = None
) -> tuple[dict[str, np.ndarray], frozenset[str]]:
    """All five named points and the set of names that are estimated, not measured.

    Missing points are estimated from ``template`` (default: the default template) as explained
    in the module docstring.
    """
    points = measured_points(landmarks, scheme)
    missing = [n for n in NAMES if n not in points]
    if missing:
        if template is None:
            from .template import DEFAULT_TEMPLATE

            template = DEFAULT_TEMPLATE
        idx = ALIGN_INDICES[scheme]
        to_template = estimate_similarity(np.asarray(landmarks, dtype=np.float64)[idx],
                                          template.points(scheme)[idx])
        back = invert_affine(to_template)
        for name in missing:
            points[name] = apply_affine(back, template.named_point(name))[0]
    return {n: points[n] for n in NAMES}, frozenset(missing)


def roll_angle(left_eye: np.ndarray, right_eye: np.ndarray) -> float:
    """In-plane rotation of a face in degrees from its eye centres.

    ``0`` for level eyes; positive when the face is turned **clockwise as displayed** (the
    image-right eye lower than the image-left one). Rotating the image by this angle with
    :func:`facetoon.face.geometry.rotation_about` (counter-clockwise positive) makes it upright.
    """
    dx, dy = float(right_eye[0] - left_eye[0]), float(right_eye[1] - left_eye[1])
    return math.degrees(math.atan2(dy, dx))
