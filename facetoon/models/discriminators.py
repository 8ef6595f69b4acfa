"""The AnimeGAN patch discriminator (v1 and v2), with spectral normalisation as published.

Input: RGB ``(B, 3, H, W)`` in [-1, 1]. Output: patch logits ``(B, 1, H/4, W/4)`` (H, W multiples
of 4), one LSGAN score per overlapping patch, no activation.

Layout at the published configuration (``channels=64``, ``n_layers=3``), every conv 3x3 without
bias and spectrally normalised, LeakyReLU slope 0.2::

    conv 3->32 (stride 1), LReLU
    conv 32->64 (stride 2), LReLU, conv 64->128, norm, LReLU
    conv 128->128 (stride 2), LReLU, conv 128->256, norm, LReLU
    conv 256->256, norm, LReLU
    conv 256->1 (logits)

Stride-1 convs zero-pad one pixel on every side; stride-2 convs pad one pixel at the top and left
only, as TensorFlow's explicit padding of the official code does. ``norm="layer"`` (v2: statistics
over C, H, W, per-channel affine) or ``"instance"`` (v1).

Spectral norm runs one power iteration per forward. In a training step that runs the
discriminator several times (real, fake, grayscale, smoothed), compute the normalised weights
once with ``torch.nn.utils.parametrize.cached()``.
"""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from ..errors import ConfigError, InvalidImageError
from .registry import register_model

__all__ = ["PatchDiscriminator"]


class _Conv(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, sn: bool) -> None:
        super().__init__()
        conv = nn.Conv2d(cin, cout, 3, stride, 0, bias=False)
        nn.init.normal_(conv.weight, 0.0, 0.02)
        self.conv = spectral_norm(conv) if sn else conv
        self.pad = (1, 1, 1, 1) if stride == 1 else (1, 0, 1, 0)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, self.pad))


@register_model("animegan_discriminator")
class PatchDiscriminator(nn.Module):
    """AnimeGAN discriminator: RGB ``(B, 3, H, W)`` in [-1, 1] -> logits ``(B, 1, H/2**(n-1), W/2**(n-1))``.

    Args:
        channels: base width ``ch`` of the official code (the first conv has ``ch // 2``).
        n_layers: ``n_dis`` of the official code (3: two stride-2 stages).
        norm: ``"layer"`` (AnimeGANv2) or ``"instance"`` (AnimeGAN v1).
        spectral: spectral normalisation on every conv (as published).
    """

    def __init__(
        self,
        channels: int = 64,
        n_layers: int = 3,
        norm: Literal["layer", "instance"] = "layer",
        spectral: bool = True,
    ) -> None:
        super().__init__()
        if norm not in ("layer", "instance"):
            raise ConfigError(f"norm must be 'layer' or 'instance', got {norm!r}")
        if n_layers < 1 or channels < 2:
            raise ConfigError(f"need n_layers >= 1 and channels >= 2, got {n_layers}, {channels}")
        self.config = {"channels": channels, "n_layers": n_layers, "norm": norm, "spectral": spectral}

        def make_norm(c: int) -> nn.Module:
            return nn.GroupNorm(1, c) if norm == "layer" else nn.InstanceNorm2d(c, affine=True)

        act = nn.LeakyReLU(0.2)
        ch = channels // 2
        layers: list[nn.Module] = [_Conv(3, ch, 1, spectral), act]
        cin = ch
        for _ in range(1, n_layers):
            layers += [_Conv(cin, ch * 2, 2, spectral), act,
                       _Conv(ch * 2, ch * 4, 1, spectral), make_norm(ch * 4), act]
            cin = ch * 4
            ch *= 2
        layers += [_Conv(cin, ch * 2, 1, spectral), make_norm(ch * 2), act,
                   _Conv(ch * 2, 1, 1, spectral)]
        self.body = nn.Sequential(*layers)
        self.downsampling = 2 ** (n_layers - 1)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise InvalidImageError(f"discriminator input must be (B, 3, H, W), got shape {tuple(x.shape)}")
        return self.body(x)
