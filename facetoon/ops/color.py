"""Colour-space conversions as pure, differentiable tensor functions (kornia style).

Every function takes a float tensor of shape ``(*, 3, H, W)`` (any number of leading batch
dimensions; channel axis third from last) and returns a tensor of the same dtype and device.
Channel order is **RGB** unless a name says otherwise. Value conventions:

==================  ===========================  ==============================================
function            input                        output
==================  ===========================  ==============================================
rgb_to_grayscale    RGB, any range (linear)      ``(*, 1, H, W)`` luma, same range as input
rgb_to_yuv          RGB in [0, 1] (checked >= 0) Y in [0, 1], U in [-0.436, 0.436],
                                                 V in [-0.615, 0.615] (analog BT.601 YUV)
yuv_to_rgb          YUV as above                 RGB (in [0, 1] for in-gamut YUV)
rgb_to_lab          sRGB in [0, 1] (checked)     L in [0, 100], a, b about [-128, 127] (D65)
lab_to_rgb          Lab as above                 sRGB, clipped to [0, 1]
rgb_to_bgr          RGB                          BGR (channel flip, its own inverse)
==================  ===========================  ==============================================

The luma weights (0.299, 0.587, 0.114) are those of ITU-R BT.601; :func:`rgb_to_grayscale`
works on [-1, 1] tensors unchanged because the weights sum to one.

The [0, 1] inputs of :func:`rgb_to_yuv` and :func:`rgb_to_lab` are **checked**: facetoon's model
tensors (:func:`facetoon.io.to_tensor`, every generator's output) are in [-1, 1], and such a
tensor would otherwise give wrong colours silently. Values below ``-1e-3`` raise
:class:`~facetoon.errors.InvalidImageError` (convert with ``(x + 1) / 2``), and so do values above
``1 + 1e-3`` for :func:`rgb_to_lab`, which would clamp them (a [0, 255] image: ``x / 255``);
:func:`rgb_to_yuv` is linear and passes values above 1 through (e.g. a brightness-shifted image
in a loss). Smaller excursions (rounding, interpolation) are accepted; ``rgb_to_lab`` clamps them.

    >>> import torch
    >>> from facetoon.ops.color import rgb_to_yuv, yuv_to_rgb
    >>> x = torch.rand(2, 3, 4, 5)
    >>> torch.allclose(yuv_to_rgb(rgb_to_yuv(x)), x, atol=1e-5)
    True
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import InvalidImageError

__all__ = [
    "rgb_to_grayscale",
    "grayscale_to_rgb",
    "rgb_to_yuv",
    "yuv_to_rgb",
    "rgb_to_lab",
    "lab_to_rgb",
    "rgb_to_bgr",
    "RgbToGrayscale",
    "RgbToYuv",
    "YuvToRgb",
    "RgbToLab",
    "LabToRgb",
]

_LUMA = (0.299, 0.587, 0.114)
# analog YUV (BT.601 primaries), rows Y, U, V; the coefficients TensorFlow's rgb_to_yuv uses
_RGB2YUV = (
    (0.299, 0.587, 0.114),
    (-0.14714119, -0.28886916, 0.43601035),
    (0.61497538, -0.51496512, -0.10001026),
)
# linear sRGB -> CIE XYZ (D65) and the D65 white point
_RGB2XYZ = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
_WHITE_D65 = (0.950456, 1.0, 1.088754)
# how far outside [0, 1] an RGB input of rgb_to_yuv / rgb_to_lab may go (rounding, interpolation)
_RANGE_TOLERANCE = 1e-3


def _check_image(image: Tensor, name: str, channels: int = 3) -> None:
    if not isinstance(image, Tensor):
        raise InvalidImageError(f"{name}: expected a torch.Tensor, got {type(image).__name__}")
    if image.dim() < 3 or image.shape[-3] != channels:
        raise InvalidImageError(f"{name}: expected shape (*, {channels}, H, W), got {tuple(image.shape)}")
    if not image.is_floating_point():
        raise InvalidImageError(f"{name}: expected a floating tensor, got {image.dtype}")


def _check_unit_range(image: Tensor, name: str, upper: bool) -> None:
    """Refuse an RGB input clearly below 0 (a [-1, 1] model tensor) or, with ``upper``, clearly
    above 1 (a [0, 255] image)."""
    if image.numel() == 0 or torch.jit.is_tracing() or torch.compiler.is_compiling():
        return
    lo, hi = (float(v) for v in torch.aminmax(image.detach()))
    if lo < -_RANGE_TOLERANCE or (upper and hi > 1.0 + _RANGE_TOLERANCE):
        raise InvalidImageError(
            f"{name}: expected RGB in [0, 1], got values in [{lo:.4g}, {hi:.4g}]; convert a [-1, 1] "
            f"tensor (facetoon.io.to_tensor, a model's output) with (x + 1) / 2, a [0, 255] one with x / 255")


def _mix(image: Tensor, matrix: Tensor) -> Tensor:
    """Apply a 3x3 colour matrix over the channel axis of ``(*, 3, H, W)``."""
    return torch.einsum("ij,...jhw->...ihw", matrix.to(image), image)


def rgb_to_grayscale(image: Tensor) -> Tensor:
    """BT.601 luma ``0.299 R + 0.587 G + 0.114 B``: ``(*, 3, H, W) -> (*, 1, H, W)``."""
    _check_image(image, "rgb_to_grayscale(image)")
    r, g, b = image.unbind(-3)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(-3)


def grayscale_to_rgb(image: Tensor) -> Tensor:
    """Repeat a ``(*, 1, H, W)`` grey image into three equal channels ``(*, 3, H, W)``."""
    _check_image(image, "grayscale_to_rgb(image)", channels=1)
    return image.expand(*image.shape[:-3], 3, *image.shape[-2:])


def rgb_to_yuv(image: Tensor, *, check: bool = True) -> Tensor:
    """``(*, 3, H, W)`` RGB in [0, 1] -> ``(*, 3, H, W)`` YUV (Y in [0, 1], U in [-0.436, 0.436],
    V in [-0.615, 0.615]; analog BT.601).

    The transform is linear: values above 1 pass through (scaled alike). ``check=False`` skips the
    range check (a device sync), for callers whose input is in [0, 1] by construction (losses).

    Raises:
        InvalidImageError: not a floating ``(*, 3, H, W)`` tensor, or values below -1e-3 (e.g. a
            [-1, 1] model tensor: pass ``(x + 1) / 2``).
    """
    _check_image(image, "rgb_to_yuv(image)")
    if check:
        _check_unit_range(image, "rgb_to_yuv(image)", upper=False)
    return _mix(image, torch.tensor(_RGB2YUV, dtype=torch.float64))


def yuv_to_rgb(image: Tensor) -> Tensor:
    """``(*, 3, H, W)`` YUV -> RGB: the inverse of :func:`rgb_to_yuv` (exact matrix inverse; no
    clipping, so RGB is in [0, 1] for in-gamut YUV)."""
    _check_image(image, "yuv_to_rgb(image)")
    return _mix(image, torch.linalg.inv(torch.tensor(_RGB2YUV, dtype=torch.float64)))


def _srgb_to_linear(c: Tensor) -> Tensor:
    return torch.where(c > 0.04045, ((c.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4, c / 12.92)


def _linear_to_srgb(c: Tensor) -> Tensor:
    return torch.where(c > 0.0031308, 1.055 * c.clamp_min(0.0031308) ** (1 / 2.4) - 0.055, 12.92 * c)


def rgb_to_lab(image: Tensor) -> Tensor:
    """``(*, 3, H, W)`` sRGB in [0, 1] -> ``(*, 3, H, W)`` CIE L*a*b* (D65): L in [0, 100], a and
    b about [-128, 127].

    Raises:
        InvalidImageError: not a floating ``(*, 3, H, W)`` tensor, or values more than 1e-3
            outside [0, 1] (e.g. a [-1, 1] model tensor: pass ``(x + 1) / 2``); smaller
            excursions are clamped.
    """
    _check_image(image, "rgb_to_lab(image)")
    _check_unit_range(image, "rgb_to_lab(image)", upper=True)
    xyz = _mix(_srgb_to_linear(image.clamp(0.0, 1.0)), torch.tensor(_RGB2XYZ, dtype=torch.float64))
    white = torch.tensor(_WHITE_D65, dtype=image.dtype, device=image.device).view(3, 1, 1)
    t = xyz / white
    eps = (6.0 / 29.0) ** 3
    f = torch.where(t > eps, t.clamp_min(eps) ** (1.0 / 3.0), t / (3 * (6.0 / 29.0) ** 2) + 4.0 / 29.0)
    fx, fy, fz = f.unbind(-3)
    return torch.stack((116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)), dim=-3)


def lab_to_rgb(image: Tensor, clip: bool = True) -> Tensor:
    """``(*, 3, H, W)`` CIE L*a*b* (D65) -> sRGB; clipped to [0, 1] unless ``clip=False``."""
    _check_image(image, "lab_to_rgb(image)")
    L, a, b = image.unbind(-3)
    fy = (L + 16.0) / 116.0
    f = torch.stack((fy + a / 500.0, fy, fy - b / 200.0), dim=-3)
    delta = 6.0 / 29.0
    t = torch.where(f > delta, f**3, 3 * delta**2 * (f - 4.0 / 29.0))
    white = torch.tensor(_WHITE_D65, dtype=image.dtype, device=image.device).view(3, 1, 1)
    lin = _mix(t * white, torch.linalg.inv(torch.tensor(_RGB2XYZ, dtype=torch.float64)))
    rgb = _linear_to_srgb(lin)
    return rgb.clamp(0.0, 1.0) if clip else rgb


def rgb_to_bgr(image: Tensor) -> Tensor:
    """Swap the first and last channel: RGB <-> BGR, ``(*, 3, H, W)``."""
    _check_image(image, "rgb_to_bgr(image)")
    return image.flip(-3)


class RgbToGrayscale(nn.Module):
    """Module form of :func:`rgb_to_grayscale`."""

    def forward(self, image: Tensor) -> Tensor:
        return rgb_to_grayscale(image)


class RgbToYuv(nn.Module):
    """Module form of :func:`rgb_to_yuv`."""

    def forward(self, image: Tensor) -> Tensor:
        return rgb_to_yuv(image)


class YuvToRgb(nn.Module):
    """Module form of :func:`yuv_to_rgb`."""

    def forward(self, image: Tensor) -> Tensor:
        return yuv_to_rgb(image)


class RgbToLab(nn.Module):
    """Module form of :func:`rgb_to_lab`."""

    def forward(self, image: Tensor) -> Tensor:
        return rgb_to_lab(image)


class LabToRgb(nn.Module):
    """Module form of :func:`lab_to_rgb`."""

    def __init__(self, clip: bool = True) -> None:
        super().__init__()
        self.clip = clip

    def forward(self, image: Tensor) -> Tensor:
        return lab_to_rgb(image, self.clip)
