"""U-GAT-IT networks (Kim, Kim, Kang, Lee: "U-GAT-IT: Unsupervised Generative Attentional Networks
with Adaptive Layer-Instance Normalization for Image-to-Image Translation", ICLR 2020).

Generator: encoder (7x7 conv, two stride-2 down-samplings, residual blocks with instance norm),
the class activation map (CAM) attention module, an MLP that produces ``gamma``/``beta`` for the
AdaILN residual blocks of the decoder, an up-sampling path with ILN, a 7x7 conv and tanh.

Discriminator: spectrally normalised 4x4 convs with LeakyReLU(0.2), a CAM head and a final
4x4 conv producing a patch map. The paper uses a global (``n_layers=7``) and a local
(``n_layers=5``) discriminator per domain.

Parameter counts equal those of the authors' PyTorch release (tested): light generator
(ngf 64, 4 residual blocks, 256 px) 10,589,888; full generator 278,959,808; global
discriminator 53,130,176; local discriminator 3,290,560.

Convention: images are ``(B, 3, H, W)`` RGB in [-1, 1].
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from ..errors import InvalidImageError
from ..layers import ConvNormAct, ILN, ResnetAdaILNBlock, ResnetBlock
from .registry import register_model

__all__ = ["Generator", "Discriminator", "MIN_SIZE", "check_generator_input"]

#: smallest height/width the generator accepts: the reflection padding of the 3x3 convs at 1/4
#: resolution needs feature maps of at least 2x2
MIN_SIZE = 8


def check_generator_input(x: Tensor, *, light: bool, img_size: int, in_channels: int = 3,
                          dtype: torch.dtype | None = None) -> None:
    """Raise :class:`~facetoon.errors.InvalidImageError` unless the U-GAT-IT generator runs on ``x``.

    ``x`` must be a floating-point ``(B, in_channels, H, W)`` tensor with ``H`` and ``W`` multiples
    of 4 and at least :data:`MIN_SIZE`; the full (non-light) generator runs at ``img_size`` only.
    ``dtype``: the generator's weight dtype, which ``x`` must have too unless autocast is on for
    ``x``'s device. The one input check of :class:`Generator` and of its fused form,
    :class:`facetoon.models.ugatit_fast.FastGenerator`.
    """
    if not isinstance(x, Tensor) or not x.is_floating_point():
        what = f"a {x.dtype} tensor" if isinstance(x, Tensor) else type(x).__name__
        raise InvalidImageError(f"U-GAT-IT input must be a float tensor in [-1, 1], got {what}")
    if dtype is not None and x.dtype != dtype and not torch.is_autocast_enabled(x.device.type):
        raise InvalidImageError(f"U-GAT-IT input must be {str(dtype).replace('torch.', '')} like the model's "
                                f"weights, got {str(x.dtype).replace('torch.', '')}")
    if x.dim() != 4 or x.shape[1] != in_channels:
        raise InvalidImageError(f"U-GAT-IT input must be (B, {in_channels}, H, W), got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if h % 4 or w % 4:
        raise InvalidImageError(f"U-GAT-IT generator needs H and W multiples of 4, got {h}x{w}")
    if h < MIN_SIZE or w < MIN_SIZE:
        raise InvalidImageError(f"U-GAT-IT generator needs H and W of at least {MIN_SIZE}, got {h}x{w}")
    if not light and (h != img_size or w != img_size):
        raise InvalidImageError(f"the full U-GAT-IT generator runs at {img_size}px only, "
                                f"got {h}x{w}; use light=True for other sizes")


def _cam_attention(x: Tensor, gap_fc: nn.Linear, gmp_fc: nn.Linear) -> tuple[Tensor, Tensor]:
    """The CAM module's pooling branch.

    Global average- and max-pooled features go through bias-free one-unit linear layers (the
    auxiliary classifier); the feature map is re-weighted by each classifier's weights.

    Args:
        x: ``(B, C, H, W)`` features.

    Returns:
        ``(features (B, 2C, H, W), cam_logit (B, 2))``.
    """
    gap_logit = gap_fc(F.adaptive_avg_pool2d(x, 1).flatten(1))
    gmp_logit = gmp_fc(F.adaptive_max_pool2d(x, 1).flatten(1))
    gap = x * _unnormalised_weight(gap_fc).view(1, -1, 1, 1)
    gmp = x * _unnormalised_weight(gmp_fc).view(1, -1, 1, 1)
    return torch.cat([gap, gmp], dim=1), torch.cat([gap_logit, gmp_logit], dim=1)


def _unnormalised_weight(fc: nn.Linear) -> Tensor:
    """The classifier's weight as stored: for a spectral-normalised layer (the discriminators'),
    the raw weight before normalisation. The official implementation re-weights the features by
    ``list(fc.parameters())[0]``, which under spectral norm is that raw weight, while the logit
    uses the normalised one; we do the same."""
    parametrizations = getattr(fc, "parametrizations", None)
    if parametrizations is not None and "weight" in parametrizations:
        return parametrizations["weight"].original
    return fc.weight


@register_model("ugatit_generator")
class Generator(nn.Module):
    """U-GAT-IT ResNet generator with CAM attention and AdaILN.

    Args:
        ngf: channels after the first conv (64 in the paper).
        n_res: residual blocks in the encoder and in the decoder (4 in the paper's release).
        img_size: training image size; the full (non-light) MLP flattens a feature map of
            ``img_size // 4`` squared, so the full model only runs at that size.
        light: pool the features before the gamma/beta MLP (the "light" model); runs at any
            size that is a multiple of 4, from :data:`MIN_SIZE` up.
        in_channels, out_channels: 3 (RGB).

    ``forward(x (B, 3, H, W) in [-1, 1])`` returns ``(image (B, 3, H, W) in [-1, 1],
    cam_logit (B, 2), heatmap (B, 1, H/4, W/4))``; ``x`` has the dtype of the weights (float32
    unless cast) or runs under autocast. Another input shape or dtype raises
    :class:`~facetoon.errors.InvalidImageError` (:func:`check_generator_input`).
    """

    def __init__(
        self,
        ngf: int = 64,
        n_res: int = 4,
        img_size: int = 256,
        light: bool = False,
        in_channels: int = 3,
        out_channels: int = 3,
    ) -> None:
        super().__init__()
        self.config = dict(ngf=ngf, n_res=n_res, img_size=img_size, light=light,
                           in_channels=in_channels, out_channels=out_channels)
        self.light = light
        self.img_size = img_size
        self.in_channels = in_channels
        dim = ngf * 4
        self.encoder = nn.Sequential(
            ConvNormAct(in_channels, ngf, 7, padding=3),
            ConvNormAct(ngf, ngf * 2, 3, stride=2, padding=1),
            ConvNormAct(ngf * 2, dim, 3, stride=2, padding=1),
            *[ResnetBlock(dim) for _ in range(n_res)],
        )
        # CAM: auxiliary classifiers on pooled features, then a 1x1 conv back to `dim`
        self.gap_fc = nn.Linear(dim, 1, bias=False)
        self.gmp_fc = nn.Linear(dim, 1, bias=False)
        self.conv1x1 = nn.Conv2d(dim * 2, dim, 1, 1, bias=True)
        # gamma / beta MLP
        mlp_in = dim if light else (img_size // 4) * (img_size // 4) * dim
        self.mlp = nn.Sequential(
            nn.Linear(mlp_in, dim, bias=False), nn.ReLU(True),
            nn.Linear(dim, dim, bias=False), nn.ReLU(True),
        )
        self.gamma = nn.Linear(dim, dim, bias=False)
        self.beta = nn.Linear(dim, dim, bias=False)
        self.decoder_blocks = nn.ModuleList(ResnetAdaILNBlock(dim) for _ in range(n_res))
        up: list[nn.Module] = []
        for mult in (4, 2):
            up += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                ConvNormAct(ngf * mult, ngf * mult // 2, 3, padding=1, norm_layer=ILN),
            ]
        up += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7, 1, 0, bias=False), nn.Tanh()]
        self.upsample = nn.Sequential(*up)

    def accepts_weights_of(self, config: dict) -> bool:
        """Whether weights saved with ``config`` load into this generator (warm start).

        The light generator has no size-dependent parameter, so its weights carry over to another
        ``img_size`` (e.g. a 128 px phase continued at 256 px); everything else must match.
        """
        if self.light and config.get("light"):
            return {**config, "img_size": self.img_size} == self.config
        return config == self.config

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        check_generator_input(x, light=self.light, img_size=self.img_size, in_channels=self.in_channels,
                              dtype=self.gamma.weight.dtype)
        feats = self.encoder(x)
        feats, cam_logit = _cam_attention(feats, self.gap_fc, self.gmp_fc)
        feats = F.relu(self.conv1x1(feats))
        heatmap = feats.sum(dim=1, keepdim=True)
        style = F.adaptive_avg_pool2d(feats, 1).flatten(1) if self.light else feats.flatten(1)
        style = self.mlp(style)
        gamma, beta = self.gamma(style), self.beta(style)
        for block in self.decoder_blocks:
            feats = block(feats, gamma, beta)
        return self.upsample(feats), cam_logit, heatmap


@register_model("ugatit_discriminator")
class Discriminator(nn.Module):
    """U-GAT-IT multi-scale patch discriminator with a CAM head.

    Args:
        ndf: channels of the first conv (64 in the paper).
        n_layers: 7 for the global, 5 for the local discriminator. The input is down-sampled
            ``n_layers - 2`` times by stride-2 convs; the receptive field grows with it.
        in_channels: 3 (RGB).

    ``forward(x (B, 3, H, W) in [-1, 1])`` returns ``(patch_logits (B, 1, h, w),
    cam_logit (B, 2), heatmap (B, 1, h', w'))``. Spectral normalisation wraps every conv and
    the CAM classifiers; each training-mode forward runs one power iteration of it (wrapping
    several forwards in ``torch.nn.utils.parametrize.cached()`` would normalise each weight once
    for all of them; facetoon's trainer does not, see the README).
    """

    def __init__(self, ndf: int = 64, n_layers: int = 5, in_channels: int = 3) -> None:
        super().__init__()
        if n_layers < 3:
            raise ValueError(f"n_layers must be >= 3, got {n_layers}")
        self.config = dict(ndf=ndf, n_layers=n_layers, in_channels=in_channels)

        def conv(cin: int, cout: int, stride: int, bias: bool = True) -> list[nn.Module]:
            return [nn.ReflectionPad2d(1), spectral_norm(nn.Conv2d(cin, cout, 4, stride, 0, bias=bias))]

        layers = conv(in_channels, ndf, 2) + [nn.LeakyReLU(0.2, True)]
        for i in range(1, n_layers - 2):
            mult = 2 ** (i - 1)
            layers += conv(ndf * mult, ndf * mult * 2, 2) + [nn.LeakyReLU(0.2, True)]
        mult = 2 ** (n_layers - 3)
        layers += conv(ndf * mult, ndf * mult * 2, 1) + [nn.LeakyReLU(0.2, True)]
        self.features = nn.Sequential(*layers)
        dim = ndf * mult * 2
        # spectral_norm is typed to return nn.Module; it returns the same nn.Linear, parametrized
        self.gap_fc = cast(nn.Linear, spectral_norm(nn.Linear(dim, 1, bias=False)))
        self.gmp_fc = cast(nn.Linear, spectral_norm(nn.Linear(dim, 1, bias=False)))
        self.conv1x1 = nn.Conv2d(dim * 2, dim, 1, 1, bias=True)
        self.leaky_relu = nn.LeakyReLU(0.2, True)
        self.classifier = nn.Sequential(*conv(dim, 1, 1, bias=False))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        feats = self.features(x)
        feats, cam_logit = _cam_attention(feats, self.gap_fc, self.gmp_fc)
        feats = self.leaky_relu(self.conv1x1(feats))
        heatmap = feats.sum(dim=1, keepdim=True)
        return self.classifier(feats), cam_logit, heatmap
