"""What a pipeline call returns with ``return_details=True``: :class:`StylizeResult`, one
:class:`FaceDetails` per face."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from ..face import AlignedFace, Face

__all__ = ["FaceDetails", "StylizeResult"]


def _brief(value: Any) -> str:
    """A short description of an array (``uint8(512, 512, 3)``) or PIL image, for the reprs."""
    if isinstance(value, np.ndarray):
        return f"{value.dtype}{value.shape}"
    if isinstance(value, Image.Image):
        return f"PIL.Image(mode={value.mode!r}, size={value.size})"
    return repr(value)


@dataclass(eq=False, repr=False)
class FaceDetails:
    """What the pipeline did with one face (for notebooks and debugging).

    Attributes:
        face: the detection (:class:`~facetoon.face.Face`; box and landmarks in photo pixels).
        aligned: the :class:`~facetoon.face.AlignedFace` (crop, matrices, valid mask).
        stylized: ``(S, S, 3)`` uint8 RGB output of the face model for ``aligned.image``.
        heatmap: ``(S, S)`` float32 in ``[0, 1]``: the face model's CAM attention map,
            upsampled to the crop size and min-max normalised (``None`` for models without one).
        crop_mask: ``(S, S)`` float32 soft blend mask in crop pixels.
        mask: ``(H, W)`` float32 soft blend mask in photo pixels (this face's own mask; a larger
            face pasted later may cover part of it).
    """

    face: Face
    aligned: AlignedFace
    stylized: np.ndarray
    heatmap: np.ndarray | None
    crop_mask: np.ndarray
    mask: np.ndarray

    @property
    def landmarks(self) -> np.ndarray:
        """``(N, 2)`` landmarks in photo pixels."""
        return self.face.landmarks

    @property
    def crop(self) -> np.ndarray:
        """``(S, S, 3)`` uint8 RGB aligned photo crop the face model saw."""
        return self.aligned.image

    def __repr__(self) -> str:
        return (f"FaceDetails(face={self.face!r}, aligned={self.aligned!r}, stylized={_brief(self.stylized)}, "
                f"heatmap={_brief(self.heatmap)}, crop_mask={_brief(self.crop_mask)}, mask={_brief(self.mask)})")


@dataclass(eq=False, repr=False)
class StylizeResult:
    """Typed result of ``Stylizer.stylize(..., return_details=True)``.

    Attributes:
        image: the output, of the type the call returns without details (PIL image for PIL,
            path or bytes input; ``uint8`` array ``(H, W, 3)`` RGB, or ``(H, W, 4)`` RGBA when
            the input had transparency, for array input).
        faces: one :class:`FaceDetails` per stylized face: largest first when detected, in the
            given order with ``faces=``.
        background: ``(H, W, 3)`` uint8 RGB output of the scene model at full style (the photo
            itself when there is no scene model).
        photo: ``(H, W, 3)`` uint8 RGB input as read (EXIF-rotated, gray expanded, transparency
            composited over white).
        alpha: ``(H, W)`` uint8 alpha of the input, or ``None``.
        strength: the style strength used.
        timings: seconds per stage (``read``, ``detect``, ``background``, ``faces``, ``blend``,
            ``total``).
    """

    image: Image.Image | np.ndarray
    faces: list[FaceDetails]
    background: np.ndarray
    photo: np.ndarray
    alpha: np.ndarray | None
    strength: float
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def array(self) -> np.ndarray:
        """The output as a ``uint8`` array (``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA)."""
        return np.asarray(self.image)

    def __repr__(self) -> str:
        timings = {k: round(v, 3) for k, v in self.timings.items()}
        return (f"StylizeResult(image={_brief(self.image)}, faces=[{len(self.faces)} FaceDetails], "
                f"background={_brief(self.background)}, photo={_brief(self.photo)}, alpha={_brief(self.alpha)}, "
                f"strength={self.strength}, timings={timings})")
