"""Result types of face detection and alignment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .landmarks import roll_angle

__all__ = ["AlignedFace", "Face"]


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face, in the pixel frame of the image it was found in.

    Coordinates are ``(x, y)`` floats with pixel centres at integers (OpenCV/dlib convention).

    Attributes:
        box: ``(x0, y0, x1, y1)`` axis-aligned box around the detector's box; continuous
            pixel coordinates (pixel ``(0, 0)`` covers ``[-0.5, 0.5]^2``), so ``x1 - x0`` is the
            width. For a face found on a rotated copy it is the bounding box of the rotated
            detector square. May reach outside the image for faces cut by its border.
        landmarks: ``(N, 2)`` float64 landmarks in image pixels, layout given by ``scheme``.
        score: detector confidence (dlib HOG: SVM margin, > 0; MMOD: its confidence).
        points: named points ``left_eye``, ``right_eye`` (eye centres; left = image left),
            ``nose`` (tip), ``mouth_left``, ``mouth_right``, each a ``(2,)`` float64 array.
        estimated: names in ``points`` that the landmark model does not measure and that were
            estimated from the template's mean face (5-point model: nose, mouth corners).
        scheme: landmark layout, ``"dlib5"`` or ``"ibug68"`` (see :mod:`facetoon.face.landmarks`).
        size: side of the detector's (square) box in image pixels; ``min_size`` and the
            largest-first order use it.
        backend: name of the backend that found the face.
    """

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    score: float
    points: Mapping[str, np.ndarray]
    estimated: frozenset[str] = frozenset()
    scheme: str = "dlib5"
    size: float = 0.0
    backend: str = "dlib"

    @property
    def left_eye(self) -> np.ndarray:
        return self.points["left_eye"]

    @property
    def right_eye(self) -> np.ndarray:
        return self.points["right_eye"]

    @property
    def nose(self) -> np.ndarray:
        return self.points["nose"]

    @property
    def mouth_left(self) -> np.ndarray:
        return self.points["mouth_left"]

    @property
    def mouth_right(self) -> np.ndarray:
        return self.points["mouth_right"]

    @property
    def angle(self) -> float:
        """In-plane rotation (roll) in degrees from the eyes; positive = clockwise as displayed."""
        return roll_angle(self.left_eye, self.right_eye)

    def __repr__(self) -> str:
        x0, y0, x1, y1 = self.box
        return (f"Face(box=({x0:.1f}, {y0:.1f}, {x1:.1f}, {y1:.1f}), score={self.score:.2f}, "
                f"angle={self.angle:.1f}, scheme={self.scheme!r}, backend={self.backend!r})")


@dataclass(frozen=True, eq=False)
class AlignedFace:
    """A face crop aligned to a template, and the transforms to go back.

    Matrices follow :mod:`facetoon.face.geometry`: ``(2, 3)`` float64, source -> destination,
    ``(x, y)`` pixel coordinates with pixel centres at integers.

    Attributes:
        image: ``(size, size, 3)`` uint8 RGB crop (padded where it reaches past the image).
        matrix: forward transform, original image pixels -> crop pixels.
        inverse: crop pixels -> original image pixels.
        mask: ``(size, size)`` float32 in ``[0, 1]``: the fraction of each crop pixel that was
            sampled from inside the image (1 = real pixels, 0 = padding).
        landmarks: the face's landmarks mapped into crop pixels, ``(N, 2)`` float64.
        padding: the padding mode used (``"reflect"``, ``"edge"``, ``"constant"`` or ``"blur"``).
        image_shape: ``(H, W)`` of the original image.
        face: the :class:`Face` that was aligned (``None`` when aligned from bare landmarks).
    """

    image: np.ndarray
    matrix: np.ndarray
    inverse: np.ndarray
    mask: np.ndarray
    landmarks: np.ndarray
    padding: str
    image_shape: tuple[int, int]
    face: Face | None = field(default=None, repr=False)

    @property
    def size(self) -> int:
        """Side of the square crop in pixels."""
        return int(self.image.shape[0])

    @property
    def scale(self) -> float:
        """Crop pixels per image pixel."""
        return float(np.sqrt(abs(np.linalg.det(self.matrix[:, :2]))))

    def __repr__(self) -> str:
        return (f"AlignedFace(size={self.size}, scale={self.scale:.3f}, padding={self.padding!r}, "
                f"valid={float(self.mask.mean()):.3f})")
