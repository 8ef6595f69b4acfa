"""A measurable seam: gradient energy along a mask boundary against what is around it.

A visible seam is an edge that belongs to neither picture. :func:`seam_score` measures the
gradient energy ``|dL|^2 + |da|^2 + |db|^2`` (Sobel, CIE Lab units, per pixel) of a composite on
the **transition band** of the blend mask — the pixels within ``band`` pixels of its ``level``
contour plus the soft part of the mask (``0.02 < mask < 0.98``) — and compares it with:

* the **rings** beside the band: up to ``ring`` pixels further inside (the face) and outside (the
  scene). ``ratio = band / mean(inside, outside)`` is about 1 (or less) when the boundary is no
  busier than its surroundings;
* when the two sources are given (``face``, ``scene``: the warped face and the scene it was
  pasted on), the energy **they** have on the same band, mixed by the mask:
  ``excess = band / mean_band(mask * E_face + (1 - mask) * E_scene)``. Content edges that happen
  to lie on the boundary (a jaw line, a hair outline) are in the sources too and cancel out;
  what remains is the seam itself. For two sources that agree, the composite's gradient is the
  mask-weighted mix of theirs, whose energy is at most this reference (convexity): ``excess``
  is then <= 1; a mismatch across the boundary adds ``|face - scene|^2 |grad mask|^2``.

A hard paste of a mismatched face concentrates the whole step ``d`` in one pixel (energy
``~d^2``); a feathered transition of width ``w`` spreads it as ``(d / w)^2`` per pixel, and
colour harmonisation shrinks ``d`` itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, InvalidImageError
from .mask import as_alpha

__all__ = ["SeamScore", "gradient_energy", "seam_score"]

_LOW, _HIGH = 0.02, 0.98


@dataclass(frozen=True)
class SeamScore:
    """Mean gradient energies (Lab units squared per pixel) on a mask's transition band.

    Attributes:
        band: mean energy of the composite on the transition band.
        inside: mean energy on the ring inside the band (the face).
        outside: mean energy on the ring outside the band (the scene).
        reference: mean over the band of ``mask * E_face + (1 - mask) * E_scene`` (``nan``
            without sources).
        band_pixels: number of band pixels.
    """

    band: float
    inside: float
    outside: float
    reference: float
    band_pixels: int

    @property
    def ratio(self) -> float:
        """``band / mean(inside, outside)``: ~1 or less = no seam, well above 1 = a visible seam."""
        ref = 0.5 * (self.inside + self.outside)
        if ref > 0:
            return self.band / ref
        return math.inf if self.band > 0 else 1.0

    @property
    def excess(self) -> float:
        """``band / reference``: <= 1 = no more energy than the sources have there (``nan`` without them)."""
        if math.isnan(self.reference):
            return math.nan
        if self.reference > 0:
            return self.band / self.reference
        return math.inf if self.band > 0 else 1.0


def gradient_energy(image: np.ndarray) -> np.ndarray:
    """``(h, w)`` float32 ``sum_c (gx^2 + gy^2)`` over the Lab channels of an RGB uint8/float image."""
    import cv2

    from .harmonize import rgb_to_lab

    lab = rgb_to_lab(image)
    gx = cv2.Sobel(lab, cv2.CV_32F, 1, 0, ksize=3, scale=0.125, borderType=cv2.BORDER_REFLECT_101)
    gy = cv2.Sobel(lab, cv2.CV_32F, 0, 1, ksize=3, scale=0.125, borderType=cv2.BORDER_REFLECT_101)
    return (gx * gx + gy * gy).sum(axis=2)


def _check_rgb(x: object, name: str, hw: tuple[int, ...] | None = None) -> np.ndarray:
    if not isinstance(x, np.ndarray) or x.ndim != 3 or x.shape[2] != 3:
        got = getattr(x, "shape", type(x).__name__)
        raise InvalidImageError(f"{name}: expected an (H, W, 3) RGB array, got {got}")
    if hw is not None and x.shape[:2] != hw:
        raise InvalidImageError(f"{name}: expected shape {hw + (3,)}, got {x.shape}")
    return x


def seam_score(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    face: np.ndarray | None = None,
    scene: np.ndarray | None = None,
    band: float = 3.0,
    ring: float = 12.0,
    level: float = 0.5,
) -> SeamScore:
    """Gradient energy of ``image`` on the transition band of ``mask`` (see the module doc).

    Args:
        image: ``(H, W, 3)`` RGB uint8 (or float in ``[0, 255]``) composite to judge.
        mask: ``(H, W)`` blend mask, read by :func:`facetoon.blend.mask.as_alpha` (float in
            ``[0, 1]``, bool, or uint8 0..255 — or 0/1 when it holds only those): the soft mask
            of a blend, or the 0/1 mask of a hard paste.
        face, scene: optional ``(H, W, 3)`` sources of the composite (face warped into the photo
            frame, and the scene); enable :attr:`SeamScore.excess`.
        band: half-width in pixels of the band around the ``level`` contour.
        ring: width in pixels of the inside and outside reference rings.
        level: the contour level.

    Returns:
        A :class:`SeamScore`; all zeros (``ratio`` 1) when the mask has no contour.
    """
    import cv2

    image = _check_rgb(image, "image")
    hw = image.shape[:2]
    if np.shape(mask)[:2] != hw:
        raise ConfigError(f"mask: expected shape {hw}, got {np.shape(mask)}")
    m = as_alpha(mask, "mask")
    if band <= 0 or ring <= 0:
        raise ConfigError(f"band and ring must be > 0 pixels, got band={band!r}, ring={ring!r}")
    if (face is None) != (scene is None):
        raise ConfigError("seam_score: pass both face and scene, or neither")
    nan = math.nan
    inside = m >= level
    if not inside.any() or inside.all():
        return SeamScore(0.0, 0.0, 0.0, nan if face is None else 0.0, 0)
    # the bounding box of the mask's support plus the rings
    ys, xs = np.nonzero(m > _LOW)
    pad = int(math.ceil(band + ring)) + 3
    y0, y1 = max(0, ys.min() - pad), min(hw[0], ys.max() + pad + 1)
    x0, x1 = max(0, xs.min() - pad), min(hw[1], xs.max() + pad + 1)
    mm = m[y0:y1, x0:x1]
    ins = inside[y0:y1, x0:x1].astype(np.uint8)
    d_in = cv2.distanceTransform(ins, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    d_out = cv2.distanceTransform(1 - ins, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    # distance to the contour, which lies half a pixel from the nearest pixel across it
    dist = np.where(ins > 0, d_in, d_out) - 0.5
    b = (dist <= band) | ((mm > _LOW) & (mm < _HIGH))
    d_band = cv2.distanceTransform((~b).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    near = (~b) & (d_band <= ring)
    r_in = near & (ins > 0)
    r_out = near & (ins == 0)
    sl = (slice(y0, y1), slice(x0, x1))
    energy = gradient_energy(np.asarray(image[sl], dtype=np.float32))

    def mean(e: np.ndarray, sel: np.ndarray) -> float:
        return float(e[sel].mean()) if sel.any() else 0.0

    reference = nan
    if face is not None and scene is not None:
        f = _check_rgb(face, "face", hw)
        s = _check_rgb(scene, "scene", hw)
        e_ref = mm * gradient_energy(np.asarray(f[sl], dtype=np.float32)) \
            + (1.0 - mm) * gradient_energy(np.asarray(s[sl], dtype=np.float32))
        reference = mean(e_ref, b)
    return SeamScore(mean(energy, b), mean(energy, r_in), mean(energy, r_out), reference, int(b.sum()))
