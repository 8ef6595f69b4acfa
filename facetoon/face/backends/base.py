"""The face backend interface: a detector plus a landmark model.

A backend only has to do two things on images it is given, at the resolution it is given:
find face boxes (:meth:`FaceBackend.detect`) and measure landmarks in one box
(:meth:`FaceBackend.landmarks`). Everything else — detecting on a downscaled copy, trying
rotated copies for tilted heads, measuring landmarks at full resolution in an upright patch,
de-duplicating, sorting, filtering by size — is done once for all backends by
:func:`facetoon.face.detect_faces`. A new detector is therefore one file: subclass
:class:`FaceBackend` and register it with :func:`facetoon.face.backends.register_backend`.

Boxes are ``(x0, y0, x1, y1)`` floats in continuous pixel coordinates of the image passed in
(pixel centres at integers, so pixel ``(0, 0)`` covers ``[-0.5, 0.5]^2``); ``x1 - x0`` is the
width in pixels.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

__all__ = ["Box", "Detection", "FaceBackend"]

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Detection:
    """A face box found by a detector, in the pixel frame of the image it ran on."""

    box: Box
    score: float


class FaceBackend(ABC):
    """A face detector and a landmark model working on ``uint8`` images.

    Images given to both methods are ``(H, W, 3)`` RGB or ``(H, W)`` grayscale ``uint8``
    arrays; a backend that needs colour converts gray itself.
    """

    #: short name used in logs and stored in :attr:`Face.backend`
    name: str = "base"
    #: smallest face box side (pixels) the detector finds reliably on an image at scale 1 and
    #: ``upsample=0``; :func:`detect_faces` picks the detection scale from it and ``min_size``
    min_face: ClassVar[float] = 80.0

    #: landmark layout returned by :meth:`landmarks`: ``"dlib5"`` or ``"ibug68"`` (see
    #: :mod:`facetoon.face.landmarks`)
    scheme: str = "ibug68"

    @abstractmethod
    def detect(self, image: np.ndarray, *, upsample: int = 0, threshold: float | None = None) -> list[Detection]:
        """Find faces in ``image`` (no landmarks); boxes in ``image`` pixels.

        ``threshold`` overrides the backend's score threshold for this call (used to re-detect
        a face found on a rotated copy, where a weak detection is enough).
        """

    @abstractmethod
    def landmarks(self, image: np.ndarray, box: Box) -> np.ndarray:
        """Landmarks ``(N, 2)`` float64 ``(x, y)`` in ``image`` pixels for the face in ``box``.

        ``box`` is a detector box of an upright face (as returned by :meth:`detect`, possibly
        mapped from another scale).
        """

    def landmarks_many(self, image: np.ndarray, boxes: Sequence[Box]) -> list[np.ndarray]:
        """Landmarks for several boxes of one image (override to batch)."""
        return [self.landmarks(image, box) for box in boxes]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(scheme={self.scheme!r})"
