"""AnimeGAN losses (Chen, Liu, Chen, 2019; and AnimeGANv2), with a pluggable perceptual network.

Notation: ``p`` a photo, ``G(p)`` the generated picture, ``a`` an anime image, ``x`` its grayscale
copy (three equal channels), ``y`` an edge-smoothed anime image (see
:mod:`facetoon.data.smoothing`; AnimeGANv2 feeds its grayscale copy), ``F`` the perceptual
feature map (VGG19 conv4_4 before ReLU as published). All images are RGB ``(B, 3, H, W)`` in [-1, 1].

=====================  =========================================================================
term                   definition (means over all elements)
=====================  =========================================================================
adversarial (G)        ``mean((D(G(p)) - 1)^2)``                                   (LSGAN)
adversarial (D)        ``w_real mean((D(a) - 1)^2) + w_fake mean(D(G(p))^2)
                       + w_gray mean(D(x)^2) + w_smooth mean(D(y)^2)``
content                ``mean|F(p) - F(G(p))|``                                    (L1)
grayscale style        ``mean|Gram(F(G(p))) - Gram(F(x))|``, ``Gram = F^T F / (C H W)``
colour reconstruction  ``mean|Y(G(p)) - Y(p)| + Huber(U(G(p)), U(p)) + Huber(V(G(p)), V(p))``,
                       YUV of the images mapped to [0, 1], Huber with delta 1
total variation (v2)   ``mean(dh^2) / 2 + mean(dw^2) / 2`` of ``G(p)`` (neighbour differences)
=====================  =========================================================================

A training step (the trainer's job) in these terms::

    fake = G(photo)
    d_loss, _ = loss.discriminator_loss(D(anime), D(fake.detach()), D(grayscale_rgb(anime)),
                                        D(grayscale_rgb(smooth)))          # D update
    g_loss, _ = loss.generator_loss(photo, fake, grayscale_rgb(anime), D(fake))  # G update

The generator minimises ``adv_g * adv + content * content + style * style + color * colour
+ tv * tv``; the discriminator minimises ``adv_d * (its weighted sum)``. During the
initialisation phase (first epochs) the generator minimises ``content * content`` only
(:meth:`AnimeGANLoss.init_loss`).

Weights (:class:`AnimeGANLossWeights`; ``preset(name)``):

=============  ====  ====  =======  =====  =====  ===  ===========================  ================
preset         adv   adv   content  style  colour  tv  D: real, fake, gray, smooth  source
               G     D
=============  ====  ====  =======  =====  =====  ===  ===========================  ================
``v1``         300   300   1.5      3      10      0   1, 1, 1, 0.1                 AnimeGAN paper
``v1-code``    300   300   1.5      1.8    10      0   1.5, 1.5, 1.5, 0.8           official v1 code
``v2``         300   300   1.5      2.5    10      1   1.7, 1.7, 1.7, 1.0           official v2 code
``v2-hayao``   300   300   1.5      2.5    15      1   1.2, 1.2, 1.2, 0.8           v2, Hayao
``v2-paprika`` 300   300   2.0      0.6    50      0.1 1.0, 1.0, 1.0, 0.005         v2, Paprika
``v2-shinkai`` 300   300   1.2      2.0    10      1   1.7, 1.7, 1.7, 1.0           v2, Shinkai
=============  ====  ====  =======  =====  =====  ===  ===========================  ================

The defaults of :class:`AnimeGANLossWeights` are the paper's (``v1``). The v2 values are the
defaults and per-style settings documented in the official AnimeGANv2 training script and
loss code (the ``v2`` row is its default configuration, the code's discriminator weights being
the Shinkai ones).

Perceptual networks (any callable ``RGB (B, 3, H, W) in [-1, 1] -> (B, C, h, w)`` works):

* :class:`VGG19Features`: VGG19 up to conv4_4 (before its ReLU), built here and loaded from an
  ImageNet VGG19 weights file the user supplies (torchvision key layout); nothing is downloaded;
* :func:`mobilenet_v2_features`: the ImageNet MobileNetV2 of :mod:`facetoon.models.mobilenet_v2`
  (a stride-8 expansion layer by default);
* :class:`RandomFeatures`: a **random-init** VGG-like stack for tests and smoke runs only; it
  logs a warning, because its features carry no learnt perceptual meaning.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError, InvalidImageError, WeightsError
from ..ops.color import rgb_to_grayscale, rgb_to_yuv

__all__ = [
    "AnimeGANLossWeights",
    "PerceptualNet",
    "AnimeGANLoss",
    "VGG19Features",
    "RandomFeatures",
    "BackboneFeatures",
    "mobilenet_v2_features",
    "lsgan_generator_loss",
    "lsgan_discriminator_loss",
    "content_loss",
    "gram_matrix",
    "style_loss",
    "color_loss",
    "total_variation_loss",
    "grayscale_rgb",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnimeGANLossWeights:
    """Per-term weights; the defaults are the AnimeGAN paper's (see the module table)."""

    adv_g: float = 300.0
    adv_d: float = 300.0
    content: float = 1.5
    style: float = 3.0
    color: float = 10.0
    tv: float = 0.0
    d_real: float = 1.0
    d_fake: float = 1.0
    d_gray: float = 1.0
    d_smooth: float = 0.1

    @classmethod
    def preset(cls, name: str) -> AnimeGANLossWeights:
        """Weights by name: ``v1``, ``v1-code``, ``v2``, ``v2-hayao``, ``v2-paprika``, ``v2-shinkai``."""
        try:
            return _PRESETS[name]
        except KeyError:
            known = ", ".join(_PRESETS)
            raise ConfigError(f"unknown AnimeGAN loss preset {name!r}; known: {known}") from None

    def with_overrides(self, **kwargs: float) -> AnimeGANLossWeights:
        known = {f.name for f in fields(self)}
        bad = sorted(set(kwargs) - known)
        if bad:
            raise ConfigError(f"unknown loss weight(s) {', '.join(bad)}; known: {', '.join(sorted(known))}")
        return replace(self, **{k: float(v) for k, v in kwargs.items()})

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


_PRESETS: dict[str, AnimeGANLossWeights] = {
    "v1": AnimeGANLossWeights(),
    "v1-code": AnimeGANLossWeights(style=1.8, d_real=1.5, d_fake=1.5, d_gray=1.5, d_smooth=0.8),
    "v2": AnimeGANLossWeights(style=2.5, color=10.0, tv=1.0, d_real=1.7, d_fake=1.7, d_gray=1.7,
                              d_smooth=1.0),
    "v2-hayao": AnimeGANLossWeights(style=2.5, color=15.0, tv=1.0, d_real=1.2, d_fake=1.2, d_gray=1.2,
                                    d_smooth=0.8),
    "v2-paprika": AnimeGANLossWeights(content=2.0, style=0.6, color=50.0, tv=0.1, d_real=1.0, d_fake=1.0,
                                      d_gray=1.0, d_smooth=0.005),
    "v2-shinkai": AnimeGANLossWeights(content=1.2, style=2.0, color=10.0, tv=1.0, d_real=1.7, d_fake=1.7,
                                      d_gray=1.7, d_smooth=1.0),
}


class PerceptualNet(Protocol):
    """Maps RGB ``(B, 3, H, W)`` in [-1, 1] to a feature map ``(B, C, h, w)`` (differentiable)."""

    def __call__(self, x: Tensor) -> Tensor: ...


# ---------------------------------------------------------------------------------------------
# pure loss functions


def _check_pair(a: Tensor, b: Tensor, what: str) -> None:
    if a.shape != b.shape:
        raise InvalidImageError(f"{what}: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}")


def lsgan_generator_loss(fake_logits: Tensor) -> Tensor:
    """LSGAN generator term ``mean((D(G(p)) - 1)^2)``."""
    return (fake_logits - 1.0).square().mean()


def lsgan_discriminator_loss(
    real: Tensor, fake: Tensor, gray: Tensor, smooth: Tensor,
    weights: AnimeGANLossWeights = AnimeGANLossWeights(),
) -> tuple[Tensor, dict[str, Tensor]]:
    """Weighted LSGAN discriminator terms (without ``adv_d``); returns ``(sum, parts)``.

    ``real``: logits on anime images (target 1); ``fake``: on generated pictures, ``gray``: on
    grayscale anime, ``smooth``: on edge-smoothed anime (targets 0).
    """
    parts = {
        "d_real": (real - 1.0).square().mean(),
        "d_fake": fake.square().mean(),
        "d_gray": gray.square().mean(),
        "d_smooth": smooth.square().mean(),
    }
    total = (weights.d_real * parts["d_real"] + weights.d_fake * parts["d_fake"]
             + weights.d_gray * parts["d_gray"] + weights.d_smooth * parts["d_smooth"])
    return total, parts


def content_loss(photo_features: Tensor, fake_features: Tensor) -> Tensor:
    """``mean|F(p) - F(G(p))|`` (in float32, like every term here, also under bf16/fp16 autocast)."""
    _check_pair(photo_features, fake_features, "content_loss")
    return (photo_features.float() - fake_features.float()).abs().mean()


def _full_precision(t: Tensor) -> torch.autocast:
    """Autocast switched off on ``t``'s device: matrix products inside run in float32 (autocast
    would run ``bmm``/``einsum`` in bf16 / fp16 whatever the inputs' dtype)."""
    return torch.autocast(t.device.type, enabled=False)


def gram_matrix(features: Tensor) -> Tensor:
    """``(B, C, H, W) -> (B, C, C)``: ``F F^T / (C H W)``, in float32 also under autocast (fp16 would
    overflow: unnormalised Gram entries of deep features exceed 65504)."""
    b, c, h, w = features.shape
    with _full_precision(features):
        f = features.float().reshape(b, c, h * w)
        return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def style_loss(fake_features: Tensor, style_features: Tensor) -> Tensor:
    """Grayscale style loss ``mean|Gram(F(G(p))) - Gram(F(x))|`` (batch sizes must match)."""
    if fake_features.shape[:2] != style_features.shape[:2]:
        raise InvalidImageError(f"style_loss: batch/channels differ, {tuple(fake_features.shape)} vs "
                                f"{tuple(style_features.shape)}")
    return (gram_matrix(fake_features) - gram_matrix(style_features)).abs().mean()


def color_loss(photo: Tensor, fake: Tensor) -> Tensor:
    """Colour reconstruction in YUV: L1 on Y, Huber (delta 1) on U and V; images RGB in [-1, 1]
    (in float32 also under autocast)."""
    _check_pair(photo, fake, "color_loss")
    with _full_precision(photo):
        # [-1, 1] images (tanh outputs, data) mapped to [0, 1]: no range check in the training loop
        p = rgb_to_yuv((photo.float() + 1.0) * 0.5, check=False)
        g = rgb_to_yuv((fake.float() + 1.0) * 0.5, check=False)
        return ((p[:, 0] - g[:, 0]).abs().mean()
                + F.huber_loss(g[:, 1], p[:, 1], delta=1.0)
                + F.huber_loss(g[:, 2], p[:, 2], delta=1.0))


def total_variation_loss(image: Tensor) -> Tensor:
    """``mean(dh^2) / 2 + mean(dw^2) / 2`` over neighbouring pixels of ``(B, C, H, W)`` (in float32)."""
    image = image.float()
    dh = image[..., 1:, :] - image[..., :-1, :]
    dw = image[..., :, 1:] - image[..., :, :-1]
    return 0.5 * dh.square().mean() + 0.5 * dw.square().mean()


def grayscale_rgb(image: Tensor) -> Tensor:
    """RGB ``(B, 3, H, W)`` -> its BT.601 grayscale repeated in three channels (same range)."""
    return rgb_to_grayscale(image).expand_as(image)


# ---------------------------------------------------------------------------------------------
# the combined objective


class AnimeGANLoss(nn.Module):
    """Generator and discriminator objectives of AnimeGAN with a given perceptual network.

    The perceptual network is frozen (no gradients to its parameters) but differentiable with
    respect to its input. Every method returns ``(total, parts)`` where ``parts`` holds the
    unweighted terms (detached) for logging.
    """

    def __init__(
        self, perceptual: Callable[[Tensor], Tensor], weights: AnimeGANLossWeights | None = None
    ) -> None:
        super().__init__()
        self.weights = weights or AnimeGANLossWeights()
        self.perceptual = perceptual
        if isinstance(perceptual, nn.Module):
            perceptual.eval()
            for p in perceptual.parameters():
                p.requires_grad_(False)

    def init_loss(self, photo: Tensor, fake: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Initialisation phase: ``content * content_loss`` only."""
        with torch.no_grad():
            fp = self.perceptual(photo)
        c = content_loss(fp, self.perceptual(fake))
        return self.weights.content * c, {"content": c.detach()}

    def generator_loss(
        self, photo: Tensor, fake: Tensor, anime_gray: Tensor, fake_logits: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Full generator objective.

        ``photo``: the input photos; ``fake``: ``G(photo)``; ``anime_gray``: grayscale anime images
        (RGB, equal channels; same batch size); ``fake_logits``: ``D(fake)``.
        """
        w = self.weights
        with torch.no_grad():
            fp = self.perceptual(photo)
            fx = self.perceptual(anime_gray)
        ff = self.perceptual(fake)
        parts = {
            "adv": lsgan_generator_loss(fake_logits),
            "content": content_loss(fp, ff),
            "style": style_loss(ff, fx),
            "color": color_loss(photo, fake),
            "tv": total_variation_loss(fake) if w.tv else fake.new_zeros((), dtype=torch.float32),
        }
        total = (w.adv_g * parts["adv"] + w.content * parts["content"] + w.style * parts["style"]
                 + w.color * parts["color"] + w.tv * parts["tv"])
        return total, {k: v.detach() for k, v in parts.items()}

    def discriminator_loss(
        self, real_logits: Tensor, fake_logits: Tensor, gray_logits: Tensor, smooth_logits: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """``adv_d *`` the weighted LSGAN terms.

        Feed ``D(anime)``, ``D(G(photo).detach())``, ``D(grayscale_rgb(anime))`` and
        ``D(grayscale_rgb(smooth))``: the paper and both official codes show the discriminator
        the *grayscale* copy of the edge-smoothed anime image (colour-free, so that it does not
        push the generator's colours), and the grayscale anime image as a fake.
        """
        total, parts = lsgan_discriminator_loss(real_logits, fake_logits, gray_logits, smooth_logits,
                                                self.weights)
        return self.weights.adv_d * total, {k: v.detach() for k, v in parts.items()}


# ---------------------------------------------------------------------------------------------
# perceptual networks

# VGG19 convolutions up to conv4_4: (name, in, out); "M" = 2x2 max-pool
_VGG19_CFG: list[tuple[str, int, int] | str] = [
    ("conv1_1", 3, 64), ("conv1_2", 64, 64), "M",
    ("conv2_1", 64, 128), ("conv2_2", 128, 128), "M",
    ("conv3_1", 128, 256), ("conv3_2", 256, 256), ("conv3_3", 256, 256), ("conv3_4", 256, 256), "M",
    ("conv4_1", 256, 512), ("conv4_2", 512, 512), ("conv4_3", 512, 512), ("conv4_4", 512, 512),
]
# index of each conv in torchvision's ``vgg19().features`` Sequential
_TORCHVISION_INDEX = {
    "conv1_1": 0, "conv1_2": 2, "conv2_1": 5, "conv2_2": 7,
    "conv3_1": 10, "conv3_2": 12, "conv3_3": 14, "conv3_4": 16,
    "conv4_1": 19, "conv4_2": 21, "conv4_3": 23, "conv4_4": 25,
    "conv5_1": 28, "conv5_2": 30, "conv5_3": 32, "conv5_4": 34,
}
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class VGG19Features(nn.Module):
    """VGG19 up to ``conv4_4`` (before its ReLU, as AnimeGAN uses): RGB [-1, 1] -> ``(B, 512, H/8, W/8)``.

    ``weights``: path of an ImageNet VGG19 state dict, torchvision layout (``features.0.weight``
    ... ``features.25.bias``; ``classifier.*`` and later conv layers are ignored) or named by
    layer (``conv1_1.weight``...). Read with ``torch.load(weights_only=True)``; the input is
    normalised with the ImageNet mean/std those weights expect. ``None`` leaves the network
    randomly initialised (tests only).
    """

    mean: Tensor  # buffers (ImageNet normalisation), registered in __init__
    std: Tensor

    def __init__(self, weights: str | os.PathLike[str] | None = None) -> None:
        super().__init__()
        layers: dict[str, nn.Module] = {}
        n_pool = 0
        for item in _VGG19_CFG:
            if isinstance(item, str):  # "M"
                layers[f"pool{n_pool + 1}"] = nn.MaxPool2d(2, 2)
                n_pool += 1
            else:
                name, cin, cout = item
                layers[name] = nn.Conv2d(cin, cout, 3, 1, 1)
        self.layers = nn.ModuleDict(layers)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if weights is not None:
            self.load_weights(weights)

    def load_weights(self, path: str | os.PathLike[str]) -> None:
        from ..convert.common import load_state_dict_file

        p = Path(path)
        state: dict[str, Any] = load_state_dict_file(p)
        if "state_dict" in state and isinstance(state.get("state_dict"), dict):  # pragma: no cover
            state = state["state_dict"]
        by_index = {f"features.{i}": name for name, i in _TORCHVISION_INDEX.items()}
        ours: dict[str, Tensor] = {}
        unknown = []
        for key, value in state.items():
            module, _, param = key.rpartition(".")
            name = by_index.get(module, module)
            if name in self.layers and param in ("weight", "bias"):
                ours[f"layers.{name}.{param}"] = value
            elif key.startswith("classifier.") or name in _TORCHVISION_INDEX:
                continue  # fully connected head and conv5_x: not needed for conv4_4
            else:
                unknown.append(key)
        if unknown:
            raise WeightsError(f"not a VGG19 state_dict: unknown tensors {', '.join(unknown[:3])}", path=p)
        from ..convert.common import load_strict

        load_strict(self, ours, path=p)
        log.info("loaded VGG19 weights from %s", p)

    def forward(self, x: Tensor) -> Tensor:
        x = ((x + 1.0) * 0.5 - self.mean) / self.std
        for name, layer in self.layers.items():
            x = layer(x)
            if name == "conv4_4":
                return x
            if name.startswith("conv"):
                x = F.relu(x)
        raise AssertionError("unreachable")  # pragma: no cover


class RandomFeatures(nn.Module):
    """**Random-init fallback** perceptual network (VGG-like, stride 8, 256 channels). Tests only.

    Logs a warning when created: random features make the content and style losses crude
    image statistics rather than perceptual ones.
    """

    def __init__(self, seed: int = 0, channels: int = 256) -> None:
        super().__init__()
        log.warning("AnimeGAN perceptual loss uses a RANDOMLY INITIALISED network (fallback): content and "
                    "style terms are not perceptual; supply VGG19 weights or use MobileNetV2 for real "
                    "training")
        g = torch.Generator().manual_seed(seed)
        widths = [3, 32, 64, 128, channels]
        convs = []
        for i in range(4):
            conv = nn.Conv2d(widths[i], widths[i + 1], 3, 2 if i < 3 else 1, 1)
            with torch.no_grad():
                conv.weight.normal_(0.0, (2.0 / (9 * widths[i])) ** 0.5, generator=g)
                assert conv.bias is not None
                conv.bias.zero_()
            convs.append(conv)
        self.convs = nn.ModuleList(convs)

    def forward(self, x: Tensor) -> Tensor:
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if i < len(self.convs) - 1:
                x = F.relu(x)
        return x


class BackboneFeatures(nn.Module):
    """Adapter: one named intermediate map of a backbone with a ``features(x, layers) -> dict`` API.

    ``preprocess`` maps RGB [-1, 1] to the backbone's input convention.
    """

    def __init__(self, backbone: nn.Module, layer: str, preprocess: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.backbone = backbone
        self.layer = layer
        self.preprocess = preprocess

    def forward(self, x: Tensor) -> Tensor:
        return self.backbone.features(self.preprocess(x), [self.layer])[self.layer]  # type: ignore[operator]


def mobilenet_v2_features(
    layer: str = "block6.expand", tflite: str | os.PathLike[str] | None = None
) -> nn.Module:
    """The ImageNet MobileNetV2 (converted by :mod:`facetoon.models.mobilenet_v2`) as a perceptual net.

    The default layer, ``block6.expand``, is the 192-channel stride-8 expansion map: the same
    resolution as VGG19 conv4_4.
    """
    from ..models.mobilenet_v2 import MobileNetV2Features

    net = MobileNetV2Features.from_tflite(tflite)
    return BackboneFeatures(net, layer, net.normalize_pm1)
