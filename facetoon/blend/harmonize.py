"""Colour and tone harmonisation of a stylized face to the stylized scene around it.

The face model and the scene model render the same photo pixels with different palettes. Where
the face mask fades out, both renderings of the *same* pixels are available: the stylized crop
(warped back) and the stylized background. :func:`harmonize` uses that band to correct the face:

1. **global match** — per channel of CIE Lab (a perceptual colour space: L in [0, 100], a/b
   about [-128, 127]), the face's mean and standard deviation over the band are matched to the
   background's over the same pixels: ``x' = (x - mu_face) * g + mu_bg`` with the gain ``g``
   = ``sigma_bg / sigma_face`` clamped to ``[1 / max_gain, max_gain]``;
2. **local offset** (``local=True``) — the remaining low-frequency difference (background minus
   matched face, Lab) along the band is smoothed by normalised Gaussian convolution (scale: the
   feather width) and added to the face near its boundary, fading out towards the interior, so
   the two renderings also agree locally where the transition happens.

``amount`` scales both corrections (0 = the face as the model drew it). Arrays are ``float32``
RGB in ``[0, 255]`` (``uint8`` accepted), masks alphas read by
:func:`facetoon.blend.mask.as_alpha` (float ``[0, 1]``, uint8 ``0..255`` or 0/1, bool); all of
the same ``(h, w)`` — callers pass the region around one face, not the whole photo.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from .mask import as_alpha

__all__ = ["ColourStats", "rgb_to_lab", "lab_to_rgb", "band_weights", "lab_stats", "harmonize"]

# mask levels counted as the transition band
_LOW, _HIGH = 0.02, 0.98


@dataclass(frozen=True)
class ColourStats:
    """Lab mean and standard deviation over a set of pixels, ``(3,)`` float64 each."""

    mean: np.ndarray
    std: np.ndarray
    count: int


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """``(h, w, 3)`` RGB in ``[0, 255]`` (uint8 or float) -> float32 Lab (L 0..100, D65)."""
    import cv2

    x = np.ascontiguousarray(rgb, dtype=np.float32) * np.float32(1.0 / 255.0)
    return cv2.cvtColor(x, cv2.COLOR_RGB2Lab)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """float32 Lab -> float32 RGB in ``[0, 255]`` (clipped)."""
    import cv2

    rgb = cv2.cvtColor(np.ascontiguousarray(lab, dtype=np.float32), cv2.COLOR_Lab2RGB)
    return np.clip(rgb * 255.0, 0.0, 255.0)


def band_weights(alpha: np.ndarray, available: np.ndarray | None = None, outside: float = 0.0) -> np.ndarray:
    """Weights of the pixels where both renderings are compared: the mask's transition band.

    Args:
        alpha: ``(h, w)`` soft face mask; masks are read by :func:`~facetoon.blend.mask.as_alpha`.
        available: ``(h, w)`` where the warped face crop has real pixels (1) or none (0).
        outside: also include pixels up to this many pixels outside the mask (where the crop
            still has pixels).

    Returns:
        ``(h, w)`` float32 in ``{0, 1}``.
    """
    alpha = as_alpha(alpha, "alpha")
    band = (alpha > _LOW) & (alpha < _HIGH)
    if outside > 0:
        import cv2

        zero = (alpha <= _LOW).astype(np.uint8)
        dist = cv2.distanceTransform(zero, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        band |= (zero > 0) & (dist <= outside)
    if available is not None:
        band &= as_alpha(available, "available", alpha.shape) > 0.999
    return band.astype(np.float32)


def lab_stats(lab: np.ndarray, weights: np.ndarray) -> ColourStats:
    """Weighted Lab mean and standard deviation; ``count`` = number of pixels with weight > 0."""
    sel = weights > 0
    if not sel.any():
        return ColourStats(np.zeros(3), np.ones(3), 0)
    x = lab[sel].astype(np.float64)
    w = weights[sel].astype(np.float64)
    total = float(w.sum())
    mean = (x * w[:, None]).sum(axis=0) / total
    var = (((x - mean) ** 2) * w[:, None]).sum(axis=0) / total
    return ColourStats(mean, np.sqrt(np.maximum(var, 0.0)), int(sel.sum()))


def _normalised_blur(values: np.ndarray, weights: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-weighted average of ``values`` where ``weights`` > 0, spread around; and its support.

    For wide kernels the blur runs on a copy shrunk so that ``sigma`` is 4 pixels there (a
    low-frequency field loses nothing by it), then comes back with bilinear interpolation.
    """
    import cv2

    h, w = weights.shape
    num = values * weights[:, :, None]
    den = weights
    f = max(1.0, sigma / 4.0)
    if f > 1.5:
        size = (max(2, round(w / f)), max(2, round(h / f)))
        num = cv2.resize(num, size, interpolation=cv2.INTER_AREA)
        den = cv2.resize(den, size, interpolation=cv2.INTER_AREA)
        s = sigma * size[0] / w
    else:
        s = sigma
    num = cv2.GaussianBlur(num, (0, 0), sigmaX=s, sigmaY=s, borderType=cv2.BORDER_REPLICATE)
    den = cv2.GaussianBlur(den, (0, 0), sigmaX=s, sigmaY=s, borderType=cv2.BORDER_REPLICATE)
    if f > 1.5:
        num = cv2.resize(num, (w, h), interpolation=cv2.INTER_LINEAR)
        den = cv2.resize(den, (w, h), interpolation=cv2.INTER_LINEAR)
    field = num / np.maximum(den, 1e-6)[:, :, None]
    return field, den


def harmonize(
    face: np.ndarray,
    background: np.ndarray,
    alpha: np.ndarray,
    *,
    width: float,
    available: np.ndarray | None = None,
    amount: float = 1.0,
    max_gain: float = 1.5,
    local: bool = True,
    min_pixels: int = 32,
) -> np.ndarray:
    """Return ``face`` with its colours matched to ``background`` around the mask (see module doc).

    Args:
        face: ``(h, w, 3)`` the stylized face warped into the photo frame, RGB ``[0, 255]``.
        background: ``(h, w, 3)`` the stylized scene at the same pixels, RGB ``[0, 255]``.
        alpha: ``(h, w)`` soft face mask, read by :func:`~facetoon.blend.mask.as_alpha`: float
            in ``[0, 1]``, uint8 ``0..255`` (or 0/1 when it holds only those) or bool.
        width: the feather width of the mask in pixels; sets the band and the smoothing scale.
        available: ``(h, w)`` 1 where the warped crop has pixels (inside the crop square and the
            photo), a mask read like ``alpha``; the band is limited to where it is ~1.
        amount: strength of the correction in ``[0, 1]``.
        max_gain: clamp of the per-channel contrast gain.
        local: also apply the smoothed local offset near the boundary.
        min_pixels: below this many band pixels the face is returned unchanged.

    Returns:
        ``(h, w, 3)`` float32 RGB in ``[0, 255]``.

    Raises:
        InvalidImageError: a mask of another dtype or range (see ``alpha``).
        ConfigError: bad settings, or the arrays' shapes differ.
    """
    import cv2

    if not 0.0 <= amount <= 1.0:
        raise ConfigError(f"amount: expected a value in [0, 1], got {amount!r}")
    if max_gain < 1.0:
        raise ConfigError(f"max_gain: expected >= 1, got {max_gain!r}")
    alpha = as_alpha(alpha, "alpha")
    if available is not None:
        available = as_alpha(available, "available")
    if face.shape != background.shape or face.shape[:2] != alpha.shape \
            or (available is not None and available.shape != alpha.shape):
        raise ConfigError(f"harmonize: shapes differ: face {face.shape}, background {background.shape}, "
                          f"alpha {alpha.shape}"
                          + ("" if available is None else f", available {available.shape}"))
    out = np.asarray(face, dtype=np.float32)
    if amount == 0.0:
        return out.copy()
    width = max(1.0, float(width))
    band = band_weights(alpha, available, outside=0.5 * width)
    if int((band > 0).sum()) < min_pixels:
        return out.copy()
    lab_f = rgb_to_lab(out)
    lab_b = rgb_to_lab(background)
    sf, sb = lab_stats(lab_f, band), lab_stats(lab_b, band)
    gain = np.clip(sb.std / np.maximum(sf.std, 1e-3), 1.0 / max_gain, max_gain)
    gain = 1.0 + amount * (gain - 1.0)
    shift = sf.mean + amount * (sb.mean - sf.mean)
    matched = ((lab_f - sf.mean) * gain + shift).astype(np.float32)
    if local:
        diff = (lab_b - matched).astype(np.float32)
        field, support = _normalised_blur(diff, band, sigma=width)
        # weight of the local correction: 1 on and outside the band, fading over one width into
        # the face's core, and only where the band is near (support of the blurred band)
        core = (alpha >= _HIGH).astype(np.uint8)
        depth = cv2.distanceTransform(core, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        fade = np.exp(-((depth / width) ** 2))
        near = np.clip(support / max(float(support.max()), 1e-6) * 4.0, 0.0, 1.0)
        matched += (amount * fade * near)[:, :, None].astype(np.float32) * field
    return lab_to_rgb(matched)
