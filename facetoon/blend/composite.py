"""Paste stylized face crops into the stylized scene.

Each face is a :class:`FaceLayer`: its stylized crop, the :class:`~facetoon.face.AlignedFace` it
was cut with, and a soft crop mask (:func:`facetoon.blend.mask.crop_face_mask`). For every layer
the crop and the mask go back into the photo frame through the inverse alignment
(``AlignedFace.inverse``; crop pixels -> image pixels; bicubic for the crop, bilinear for the
mask) — only the region the crop covers is touched — then:

* ``mode="soft"`` (default): ``out = scene + (face - scene) * alpha``;
* ``mode="poisson"``: the face is first solved into the scene with OpenCV's Poisson
  ``seamlessClone`` (normal clone) over the mask's support, then blended with ``alpha`` as above;
* ``mode="hard"``: ``alpha`` thresholded at 0.5, no feathering and no harmonisation (a
  baseline for comparisons and tests).

With ``harmonize=True`` the face's colours are first matched to the scene around it
(:func:`facetoon.blend.harmonize.harmonize`).

Order: layers are composited **smallest face first, largest last** (face size = width of the face
in photo pixels), so where faces overlap the larger — usually nearer — face is on top; each face is
harmonized against the scene *including* the faces already pasted. Where ``alpha`` is 0 the output
is the scene, bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ..errors import ConfigError, InvalidImageError
from ..face.geometry import compose, translation
from ..face.types import AlignedFace
from ..face.warp import crop_to_image_matrix, image_region, resample
from .harmonize import harmonize as harmonize_colours
from .mask import DEFAULT_SHAPE, MaskShape, as_support, crop_face_mask, face_outline

__all__ = ["BLEND_MODES", "FaceLayer", "CompositeResult", "make_layer", "composite_faces", "poisson_blend"]

BlendMode = Literal["soft", "poisson", "hard"]
BLEND_MODES: tuple[str, ...] = ("soft", "poisson", "hard")


@dataclass(frozen=True, eq=False)
class FaceLayer:
    """One stylized face ready to paste.

    Attributes:
        crop: ``(s, s, 3)`` uint8 RGB stylized crop covering the aligned square (any ``s``).
        aligned: the :class:`AlignedFace` the crop was made from.
        mask: ``(s, s)`` float32 soft mask in ``[0, 1]`` in crop pixels (valid pixels only).
        feather: feather width of ``mask`` in crop pixels.
        face_width: width of the face (jaw line) in crop pixels.
    """

    crop: np.ndarray
    aligned: AlignedFace
    mask: np.ndarray
    feather: float
    face_width: float

    @property
    def scale(self) -> float:
        """Crop pixels per photo pixel for this crop's resolution."""
        return self.aligned.scale * self.crop.shape[0] / self.aligned.size

    @property
    def size_in_image(self) -> float:
        """Face width in photo pixels (the compositing order key)."""
        return self.face_width / self.scale


@dataclass
class CompositeResult:
    """Output of :func:`composite_faces`.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB composite.
        masks: per layer (in the order given), ``(H, W)`` float32 blend mask in the photo frame.
        order: indices of the layers in compositing order (smallest face first).
        sources: with ``return_sources=True``, per layer ``(face, scene)``: the face as pasted
            (warped, harmonized; ``(H, W, 3)`` uint8, zero outside its crop) and the canvas it
            was pasted on — the inputs :func:`facetoon.blend.seam_score` compares against.
    """

    image: np.ndarray
    masks: list[np.ndarray] = field(default_factory=list)
    order: list[int] = field(default_factory=list)
    sources: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)


def make_layer(crop: np.ndarray, aligned: AlignedFace, shape: MaskShape = DEFAULT_SHAPE) -> FaceLayer:
    """Build the :class:`FaceLayer` of a stylized crop: soft mask from the crop landmarks and
    the valid-pixel mask of the alignment (resized to the crop's resolution)."""
    import cv2

    if not isinstance(crop, np.ndarray) or crop.dtype != np.uint8 or crop.ndim != 3 or crop.shape[2] != 3 \
            or crop.shape[0] != crop.shape[1]:
        raise InvalidImageError(f"crop: expected a square (s, s, 3) uint8 RGB array, got "
                                f"{getattr(crop, 'dtype', type(crop))} {getattr(crop, 'shape', '')}")
    if not isinstance(aligned, AlignedFace):
        raise ConfigError(f"aligned: expected the facetoon.face.AlignedFace the crop was made from "
                          f"(facetoon.face.align_face), got {type(aligned).__name__}")
    s = int(crop.shape[0])
    k = s / aligned.size
    landmarks = (np.asarray(aligned.landmarks, dtype=np.float64) + 0.5) * k - 0.5
    valid = aligned.mask if s == aligned.size \
        else cv2.resize(aligned.mask, (s, s), interpolation=cv2.INTER_LINEAR)
    mask = crop_face_mask(landmarks, s, valid, shape)
    _, width = face_outline(landmarks, s, shape)
    return FaceLayer(crop=crop, aligned=aligned, mask=mask, feather=max(1.0, shape.feather * width),
                     face_width=width)


def poisson_blend(face: np.ndarray, scene: np.ndarray, support: np.ndarray, pad: int = 3) -> np.ndarray:
    """Poisson-solve ``face`` into ``scene`` over the binary ``support`` (``cv2.seamlessClone``).

    Args:
        face, scene: ``(h, w, 3)`` RGB, uint8 or float in ``[0, 255]``.
        support: ``(h, w)`` mask of where the face's gradients are kept; the scene gives the
            boundary values. Read by :func:`facetoon.blend.mask.as_support`: bool, uint8 (0/1 or
            0..255) or float in ``[0, 1]``; inside = non-zero (threshold a soft mask first,
            e.g. ``alpha > 0.02``, for a narrower support).
        pad: pixels of reflected margin added around, so the support never touches the border.

    Returns:
        ``(h, w, 3)`` float32; equal to ``scene`` outside ``support``.

    Raises:
        InvalidImageError: ``face`` and ``scene`` are not RGB arrays of one shape, or
            ``support`` is not a mask of their ``(h, w)``.
    """
    import cv2

    for name, x in (("face", face), ("scene", scene)):
        if not isinstance(x, np.ndarray) or x.ndim != 3 or x.shape[2] != 3 or x.shape != np.shape(face):
            raise InvalidImageError(f"{name}: expected an (h, w, 3) RGB array (face and scene of one shape), "
                                    f"got {getattr(x, 'shape', type(x).__name__)}")
    support = as_support(support, "support", face.shape)
    sc = np.clip(np.rint(scene), 0, 255).astype(np.uint8)
    if not support.any():
        return sc.astype(np.float32)
    fc = np.clip(np.rint(face), 0, 255).astype(np.uint8)
    src = cv2.copyMakeBorder(fc, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
    dst = cv2.copyMakeBorder(sc, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
    m = np.zeros(src.shape[:2], dtype=np.uint8)
    m[pad:-pad, pad:-pad] = support.astype(np.uint8) * 255
    # leave a one-pixel ring of scene around the support inside the padded frame
    m[:pad + 1], m[-pad - 1:], m[:, :pad + 1], m[:, -pad - 1:] = 0, 0, 0, 0
    if not m.any():
        return sc.astype(np.float32)
    bx, by, bw, bh = cv2.boundingRect(m)
    # seamlessClone centres the support's bounding box on `center`: this keeps it in place
    center = (bx + bw // 2, by + bh // 2)
    out = cv2.seamlessClone(src, dst, m, center, cv2.NORMAL_CLONE)
    out = out[pad:-pad, pad:-pad].astype(np.float32)
    keep = ~support
    out[keep] = sc[keep]
    return out


def composite_faces(
    scene: np.ndarray,
    layers: Sequence[FaceLayer],
    *,
    mode: BlendMode = "soft",
    harmonize: bool = True,
    harmonize_amount: float = 1.0,
    return_sources: bool = False,
) -> CompositeResult:
    """Paste every layer into ``scene`` (see the module docstring).

    Args:
        scene: ``(H, W, 3)`` uint8 RGB stylized background (not modified).
        layers: the faces; ``layer.aligned.image_shape`` must equal ``(H, W)``.
        mode: ``"soft"``, ``"poisson"`` or ``"hard"``.
        harmonize: match each face's colours to the scene around it first.
        harmonize_amount: strength of that correction in ``[0, 1]``.
        return_sources: also return each face as pasted and the canvas under it (memory: two
            photo-sized images per face).

    Returns:
        A :class:`CompositeResult` with the composite and the per-face masks in the photo frame.
    """
    if mode not in BLEND_MODES:
        raise ConfigError(f"blend mode: expected one of {list(BLEND_MODES)}, got {mode!r}")
    if not isinstance(scene, np.ndarray) or scene.dtype != np.uint8 or scene.ndim != 3 or scene.shape[2] != 3:
        raise InvalidImageError(f"scene: expected an (H, W, 3) uint8 RGB array, got "
                                f"{getattr(scene, 'dtype', type(scene))} {getattr(scene, 'shape', '')}")
    for i, layer in enumerate(layers):
        if not isinstance(layer, FaceLayer):
            raise ConfigError(f"layers[{i}]: expected a FaceLayer (facetoon.blend.make_layer), "
                              f"got {type(layer).__name__}")
    hw = (int(scene.shape[0]), int(scene.shape[1]))
    out = scene.copy()
    masks = [np.zeros(hw, dtype=np.float32) for _ in layers]
    sources: list[tuple[np.ndarray, np.ndarray]] = [(scene, scene)] * len(layers)
    order = sorted(range(len(layers)), key=lambda i: layers[i].size_in_image)
    for i in order:
        layer = layers[i]
        if tuple(layer.aligned.image_shape) != hw:
            raise ConfigError(f"layer {i}: aligned in an image of shape {tuple(layer.aligned.image_shape)}, "
                              f"scene is {hw}")
        s = int(layer.crop.shape[0])
        to_image = crop_to_image_matrix(layer.aligned, (s, s))
        roi = image_region(to_image, (s, s), hw)
        if roi is None:
            continue
        x0, y0, x1, y1 = roi
        m = compose(translation(-x0, -y0), to_image)
        size = (x1 - x0, y1 - y0)
        alpha = resample(layer.mask, m, size, interpolation="linear", border="constant")
        alpha = np.clip(alpha, 0.0, 1.0)
        if mode == "hard":
            alpha = (alpha >= 0.5).astype(np.float32)
        if not alpha.any():
            continue
        face = resample(layer.crop, m, size, interpolation="cubic", border="replicate").astype(np.float32)
        np.clip(face, 0.0, 255.0, out=face)
        base = out[y0:y1, x0:x1].astype(np.float32)
        if harmonize and mode != "hard":
            valid = layer.aligned.mask
            if valid.shape != (s, s):
                import cv2

                valid = cv2.resize(valid, (s, s), interpolation=cv2.INTER_LINEAR)
            available = resample(valid, m, size, interpolation="linear", border="constant")
            width = layer.feather / layer.scale
            face = harmonize_colours(face, base, alpha, width=width, available=available,
                                     amount=harmonize_amount)
        if mode == "poisson":
            face = poisson_blend(face, base, alpha > 0.02)
        if return_sources:
            pasted = np.zeros_like(scene)
            pasted[y0:y1, x0:x1] = np.clip(np.rint(face), 0, 255).astype(np.uint8)
            sources[i] = (pasted, out.copy())
        a = alpha[:, :, None]
        blended = base + (face - base) * a
        out[y0:y1, x0:x1] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
        masks[i][y0:y1, x0:x1] = alpha
    return CompositeResult(image=out, masks=masks, order=order, sources=sources if return_sources else [])
