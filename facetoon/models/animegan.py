"""AnimeGAN generators (Chen, Liu, Chen, 2019) and AnimeGANv2.

Both generators map an RGB photo to an anime-style RGB picture of the same size:

* input ``(B, 3, H, W)`` float, RGB, values in [-1, 1];
* output ``(B, 3, H, W)`` float, RGB, values in (-1, 1) (``tanh``).

``version="v2"`` is the AnimeGANv2 generator at its published configuration: the same layer
layout, channel widths and parameter count (2,143,552) as the widely used PyTorch port of the
official AnimeGANv2 weights. Its normalisation is a *layer* norm (statistics over C, H, W of
each sample, one affine pair per channel, i.e. ``GroupNorm(1, C)``), strided convs pad the
bottom/right by one reflected pixel, and the decoder resizes back to the exact encoder sizes
with bilinear interpolation. It therefore accepts **any** height and width >= 8
(:attr:`Generator.size_multiple` is 1); nothing needs padding.

``version="v1"`` is the generator of the AnimeGAN paper: convolution blocks (conv, instance norm,
LeakyReLU 0.2), depthwise-separable convolutions (DSConv), two Down-Conv blocks each summing a
stride-2 DSConv branch and a "resize to half, then DSConv" branch, eight identical inverted
residual blocks (1x1 expansion to 512, 3x3 depthwise, linear 1x1 projection to 256, residual
add), two Up-Conv blocks (bilinear resize x2, then DSConv) and a 1x1 conv + ``tanh`` output;
3,956,096 parameters. It needs height and width that are multiples of 4
(:attr:`Generator.size_multiple`); the background stylizer pads (reflect) and crops back.

Both follow the official code (TensorFlow): v1 its ``net/generator.py`` (where it differs from
the paper's figure, e.g. 128 channels in the last Up-Conv, the code wins, as its own comment
says), v2 its AnimeGANv2 release; each starts from its code's weight initialisation
(:func:`official_init_`).

Inference speed: :func:`fuse_for_inference` returns an equivalent, faster module for CPU
inference (same function up to float rounding); see its docstring.
"""

from __future__ import annotations

import logging
from typing import Literal, TypeVar, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError, InvalidImageError
from ..ops.fused import ConvSpec, NormStatsRecorder, affine_, conv2d_reflect, layer_norm_stats
from .registry import register_model

__all__ = ["Generator", "ConvNormLReLU", "InvertedResidual", "DSConv", "count_parameters",
           "FastGeneratorV2", "fuse_for_inference", "official_init_"]

log = logging.getLogger(__name__)

Pad = tuple[int, int, int, int]  # left, right, top, bottom (F.pad order)
NormKind = Literal["layer", "instance"]

LRELU_SLOPE = 0.2
_M = TypeVar("_M", bound=nn.Module)


def _pad4(padding: int | Pad) -> Pad:
    if isinstance(padding, int):
        return (padding, padding, padding, padding)
    return tuple(padding)  # type: ignore[return-value]


def make_norm(kind: NormKind, channels: int) -> nn.Module:
    """``"layer"``: ``GroupNorm(1, C)`` (AnimeGANv2); ``"instance"``: affine ``InstanceNorm2d`` (v1)."""
    if kind == "layer":
        return nn.GroupNorm(1, channels, eps=1e-5, affine=True)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, eps=1e-5, affine=True)
    raise ConfigError(f"norm must be 'layer' or 'instance', got {kind!r}")


class ConvNormLReLU(nn.Module):
    """Reflection pad -> conv -> norm -> LeakyReLU(0.2).  ``(B, Cin, H, W) -> (B, Cout, H', W')``.

    ``padding`` is an int or an ``(left, right, top, bottom)`` tuple of reflected pixels; the
    strided convs of AnimeGAN use ``(0, 1, 0, 1)`` so that a 3x3/2 conv halves even sizes.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | Pad = 1,
        groups: int = 1,
        bias: bool = False,
        norm: NormKind = "layer",
    ) -> None:
        super().__init__()
        self.padding: Pad = _pad4(padding)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, 0, groups=groups, bias=bias)
        self.norm = make_norm(norm, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        if any(self.padding):
            x = F.pad(x, self.padding, mode="reflect")
        return F.leaky_relu(self.norm(self.conv(x)), LRELU_SLOPE)


class InvertedResidual(nn.Module):
    """MobileNetV2-style inverted residual block of AnimeGAN.

    1x1 expansion (conv-norm-LReLU) to ``round(in * expansion)`` channels, 3x3 depthwise
    (conv-norm-LReLU), linear 1x1 projection + norm, residual add when ``in == out``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        expansion: float = 2.0,
        depthwise_bias: bool = True,
        norm: NormKind = "layer",
    ) -> None:
        super().__init__()
        hidden = int(round(in_channels * expansion))
        self.use_residual = in_channels == out_channels
        self.expand = ConvNormLReLU(in_channels, hidden, kernel_size=1, padding=0, norm=norm)
        self.depthwise = ConvNormLReLU(hidden, hidden, groups=hidden, bias=depthwise_bias, norm=norm)
        self.project = nn.Conv2d(hidden, out_channels, 1, bias=False)
        self.project_norm = make_norm(norm, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        out = self.project_norm(self.project(self.depthwise(self.expand(x))))
        return x + out if self.use_residual else out


class DSConv(nn.Module):
    """Depthwise-separable conv of AnimeGAN v1: 3x3 depthwise -> 1x1 -> IN -> LReLU.

    As the official code's ``tf.contrib.layers.separable_conv2d`` with ``normalizer_fn`` and
    ``activation_fn``: no bias, one norm and one activation, after the 1x1 conv.
    ``stride=2`` pads one reflected row/column at the bottom/right and halves even sizes; stride 1
    pads one reflected pixel all round.
    """

    def __init__(
        self, in_channels: int, out_channels: int, stride: int = 1, norm: NormKind = "instance"
    ) -> None:
        super().__init__()
        self.padding: Pad = (0, 1, 0, 1) if stride == 2 else (1, 1, 1, 1)
        self.depthwise = nn.Conv2d(in_channels, in_channels, 3, stride, 0, groups=in_channels,
                                   bias=False)
        self.pointwise = ConvNormLReLU(in_channels, out_channels, 1, padding=0, norm=norm)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise(self.depthwise(F.pad(x, self.padding, mode="reflect")))


class DownConv(nn.Module):
    """v1 Down-Conv: stride-2 DSConv + (bilinear resize to half size -> DSConv), summed."""

    def __init__(self, in_channels: int, out_channels: int, norm: NormKind = "instance") -> None:
        super().__init__()
        self.strided = DSConv(in_channels, out_channels, stride=2, norm=norm)
        self.resized = DSConv(in_channels, out_channels, norm=norm)

    def forward(self, x: Tensor) -> Tensor:
        half = (x.shape[-2] // 2, x.shape[-1] // 2)
        small = F.interpolate(x, size=half, mode="bilinear", align_corners=False)
        return self.strided(x) + self.resized(small)


class UpConv(nn.Module):
    """v1 Up-Conv: bilinear resize x2 -> DSConv (instead of a transposed conv: no checkerboard)."""

    def __init__(self, in_channels: int, out_channels: int, norm: NormKind = "instance") -> None:
        super().__init__()
        self.conv = DSConv(in_channels, out_channels, norm=norm)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False))


def _build_v2() -> nn.ModuleDict:
    # encoder: full -> 1/2 -> 1/4 resolution; decoder: resize back to the exact encoder sizes
    return nn.ModuleDict({
        "stem": nn.Sequential(
            ConvNormLReLU(3, 32, kernel_size=7, padding=3),
            ConvNormLReLU(32, 64, stride=2, padding=(0, 1, 0, 1)),
            ConvNormLReLU(64, 64),
        ),
        "down": nn.Sequential(
            ConvNormLReLU(64, 128, stride=2, padding=(0, 1, 0, 1)),
            ConvNormLReLU(128, 128),
        ),
        "middle": nn.Sequential(
            ConvNormLReLU(128, 128),
            InvertedResidual(128, 256),
            InvertedResidual(256, 256),
            InvertedResidual(256, 256),
            InvertedResidual(256, 256),
            ConvNormLReLU(256, 128),
        ),
        "up1": nn.Sequential(
            ConvNormLReLU(128, 128),
            ConvNormLReLU(128, 128),
        ),
        "up2": nn.Sequential(
            ConvNormLReLU(128, 64),
            ConvNormLReLU(64, 64),
            ConvNormLReLU(64, 32, kernel_size=7, padding=3),
        ),
        "out": nn.Conv2d(32, 3, kernel_size=1, bias=False),
    })


def _build_v1() -> nn.ModuleDict:
    n: NormKind = "instance"
    return nn.ModuleDict({
        "block1": nn.Sequential(
            ConvNormLReLU(3, 64, norm=n),
            ConvNormLReLU(64, 64, norm=n),
            DownConv(64, 128, norm=n),
        ),
        "block2": nn.Sequential(
            ConvNormLReLU(128, 128, norm=n),
            DSConv(128, 128, norm=n),
            DownConv(128, 256, norm=n),
        ),
        "middle": nn.Sequential(
            ConvNormLReLU(256, 256, norm=n),
            *[InvertedResidual(256, 256, depthwise_bias=False, norm=n) for _ in range(8)],
            ConvNormLReLU(256, 256, norm=n),
        ),
        "up2": nn.Sequential(
            UpConv(256, 128, norm=n),
            DSConv(128, 128, norm=n),
            ConvNormLReLU(128, 128, norm=n),
        ),
        "up1": nn.Sequential(
            UpConv(128, 128, norm=n),
            ConvNormLReLU(128, 64, norm=n),
            ConvNormLReLU(64, 64, norm=n),
        ),
        "out": nn.Conv2d(64, 3, kernel_size=1, bias=False),
    })


def official_init_(model: _M, version: Literal["v1", "v2"] = "v2") -> _M:
    """Initialise ``model`` in place as the official AnimeGAN (``"v1"``) or AnimeGANv2 code does.

    Fans are counted as TensorFlow counts them, from its kernel ``[k, k, C_in, C_out]``
    (``[k, k, C, 1]`` for a depthwise conv): ``fan_in = k * k * C_in``, ``fan_out = k * k * C_out``
    (``k * k`` for a depthwise conv). Conv biases 0; norm scales 1, shifts 0.

    * ``"v2"``: every conv weight as ``variance_scaling_initializer()`` (factor 2, fan-in,
      truncated normal): ``N(0, 1.3 * 2 / fan_in)`` cut at two standard deviations. PyTorch's
      default conv init draws about 2.5x smaller weights.
    * ``"v1"``: the TF-contrib layers' default, Glorot uniform, ``U(±sqrt(6 / (fan_in +
      fan_out)))``, except the depthwise convs of the inverted residual blocks, which the v1
      code draws from a truncated normal with std 0.02.

    Returns ``model``.
    """
    if version not in ("v1", "v2"):
        raise ConfigError(f"AnimeGAN version must be 'v1' or 'v2', got {version!r}")
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            taps = m.kernel_size[0] * m.kernel_size[1]
            fan_in = m.in_channels * taps
            fan_out = (m.out_channels // m.groups) * taps
            if version == "v2":
                std = (1.3 * 2.0 / fan_in) ** 0.5
                nn.init.trunc_normal_(m.weight, 0.0, std, -2.0 * std, 2.0 * std)
            else:
                bound = (6.0 / (fan_in + fan_out)) ** 0.5
                nn.init.uniform_(m.weight, -bound, bound)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.GroupNorm, nn.InstanceNorm2d)) and m.affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    if version == "v1":
        for m in model.modules():
            if isinstance(m, InvertedResidual):
                nn.init.trunc_normal_(m.depthwise.conv.weight, 0.0, 0.02, -0.04, 0.04)
    return model


@register_model("animegan")
class Generator(nn.Module):
    """AnimeGAN generator: RGB ``(B, 3, H, W)`` in [-1, 1] -> RGB ``(B, 3, H, W)`` in (-1, 1).

    Args:
        version: ``"v2"`` (AnimeGANv2, 2,143,552 parameters, any H, W >= 8) or ``"v1"`` (the
            paper's generator, H and W multiples of 4).
        align_corners: v2 only: ``align_corners`` of the two bilinear resizes in the decoder.
            ``True`` (default) matches the widely used PyTorch port and its weights.
    """

    def __init__(self, version: Literal["v1", "v2"] = "v2", align_corners: bool = True) -> None:
        super().__init__()
        if version not in ("v1", "v2"):
            raise ConfigError(f"AnimeGAN version must be 'v1' or 'v2', got {version!r}")
        self.config = {"version": version, "align_corners": bool(align_corners)}
        self.version = version
        self.align_corners = bool(align_corners)
        self.net = official_init_(_build_v2() if version == "v2" else _build_v1(), version)

    @property
    def size_multiple(self) -> int:
        """Height and width must be multiples of this (1 = any size)."""
        return 1 if self.version == "v2" else 4

    @property
    def min_size(self) -> int:
        return 8

    def _check(self, x: Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != 3:
            raise InvalidImageError(f"AnimeGAN input must be (B, 3, H, W), got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        m = self.size_multiple
        if h < self.min_size or w < self.min_size or h % m or w % m:
            raise InvalidImageError(
                f"AnimeGAN {self.version} input height/width must be >= {self.min_size}"
                + (f" and multiples of {m}" if m > 1 else "") + f", got {h}x{w}"
            )

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        net = self.net
        if self.version == "v2":
            full = x.shape[-2:]
            x = net["stem"](x)
            half = x.shape[-2:]
            x = net["middle"](net["down"](x))
            x = F.interpolate(x, size=half, mode="bilinear", align_corners=self.align_corners)
            x = net["up1"](x)
            x = F.interpolate(x, size=full, mode="bilinear", align_corners=self.align_corners)
            x = net["up2"](x)
        else:
            x = net["up1"](net["up2"](net["middle"](net["block2"](net["block1"](x)))))
        return torch.tanh(net["out"](x))


def count_parameters(module: nn.Module) -> int:
    """Number of parameters (trainable or not) of ``module``."""
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------------------------------------
# fast inference


class _FusedLayer:
    """One conv (+ layer norm + LeakyReLU) of the fused inference graph, tensors prepared once."""

    __slots__ = ("conv", "gamma", "beta", "eps", "act")

    def __init__(self, conv: nn.Conv2d, norm: nn.Module | None, pad: Pad, act: bool,
                 dtype: torch.dtype) -> None:
        self.conv = ConvSpec.from_conv(conv, pad, dtype)
        self.gamma = self.beta = None
        self.eps = 0.0
        if norm is not None:
            if not isinstance(norm, nn.GroupNorm) or norm.num_groups != 1:
                raise ConfigError("fuse_for_inference supports the layer norm (GroupNorm(1)) of "
                                  "AnimeGANv2 only")
            self.gamma = norm.weight.detach().float().clone()
            self.beta = norm.bias.detach().float().clone()
            self.eps = float(norm.eps)
        self.act = act


class FastGeneratorV2(NormStatsRecorder, nn.Module):
    """Inference-only AnimeGANv2 generator: same function, fewer passes over memory.

    Built by :func:`fuse_for_inference`. ``forward`` takes RGB ``(B, 3, H, W)`` in [-1, 1] (any
    float dtype/layout) and returns RGB ``(B, 3, H, W)`` in (-1, 1) in the compute dtype,
    channels-last. What differs from the training module (all exact rewrites, see
    :mod:`facetoon.ops.fused`):

    * weights are cast to the compute dtype (bfloat16 by default) and channels-last once;
    * each layer norm + LeakyReLU is two in-place passes (``y * a + b`` with the per-sample,
      per-channel affine folded from the statistics and the learnt scale/shift; LeakyReLU),
      with the statistics from two fast native-dtype reductions, instead of the generic
      GroupNorm kernel, a dtype round trip and a separate activation;
    * reflection padding of stride-1 convs is done by letting oneDNN zero-pad and recomputing
      the border strips, instead of materialising a padded copy of every activation.

    Normalisation statistics can be recorded and replayed (``record_norm_stats()``,
    ``replay_norm_stats()``) for tiled inference.
    """

    size_multiple = 1
    min_size = 8

    def __init__(self, model: Generator, dtype: torch.dtype = torch.bfloat16) -> None:
        nn.Module.__init__(self)
        self._init_stats()
        if model.version != "v2":
            raise ConfigError("FastGeneratorV2 needs an AnimeGAN v2 generator")
        self.dtype = dtype
        self.align_corners = model.align_corners
        net = model.net

        def cnl(m: nn.Module) -> _FusedLayer:
            assert isinstance(m, ConvNormLReLU)
            return _FusedLayer(m.conv, m.norm, m.padding, True, dtype)

        def stage(name: str) -> nn.Sequential:  # nn.ModuleDict items are typed as plain nn.Module
            return cast(nn.Sequential, net[name])

        self.stem = [cnl(m) for m in stage("stem")]
        self.down = [cnl(m) for m in stage("down")]
        mid = list(stage("middle"))
        self.mid_in = cnl(mid[0])
        self.irbs = []
        for blk in mid[1:-1]:
            assert isinstance(blk, InvertedResidual)
            self.irbs.append((cnl(blk.expand), cnl(blk.depthwise),
                              _FusedLayer(blk.project, blk.project_norm, (0, 0, 0, 0), False, dtype),
                              blk.use_residual))
        self.mid_out = cnl(mid[-1])
        self.up1 = [cnl(m) for m in stage("up1")]
        self.up2 = [cnl(m) for m in stage("up2")]
        self.out = _FusedLayer(cast(nn.Conv2d, net["out"]), None, (0, 0, 0, 0), False, dtype)

    def _layer(self, x: Tensor, layer: _FusedLayer, residual: Tensor | None = None) -> Tensor:
        y = conv2d_reflect(x, layer.conv)
        mean, var = self._stats_for(y, layer_norm_stats)
        assert layer.gamma is not None and layer.beta is not None
        a = layer.gamma[None, :] * torch.rsqrt(var + layer.eps)[:, None]  # (B, C)
        b = layer.beta[None, :] - mean[:, None] * a
        return affine_(y, a, b, "lrelu" if layer.act else None, LRELU_SLOPE, residual)

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise InvalidImageError(f"AnimeGAN input must be (B, 3, H, W), got shape {tuple(x.shape)}")
        if min(x.shape[-2:]) < self.min_size:
            raise InvalidImageError(f"AnimeGAN input height/width must be >= {self.min_size}, got "
                                    f"{x.shape[-2]}x{x.shape[-1]}")
        self._begin_pass()
        full = x.shape[-2:]
        x = x.to(self.dtype).contiguous(memory_format=torch.channels_last)
        for layer in self.stem:
            x = self._layer(x, layer)
        half = x.shape[-2:]
        for layer in self.down:
            x = self._layer(x, layer)
        x = self._layer(x, self.mid_in)
        for expand, dw, project, residual in self.irbs:
            y = self._layer(self._layer(x, expand), dw)
            x = self._layer(y, project, x if residual else None)
        x = self._layer(x, self.mid_out)
        x = F.interpolate(x, size=half, mode="bilinear", align_corners=self.align_corners)
        for layer in self.up1:
            x = self._layer(x, layer)
        x = F.interpolate(x, size=full, mode="bilinear", align_corners=self.align_corners)
        for layer in self.up2:
            x = self._layer(x, layer)
        return torch.tanh_(conv2d_reflect(x, self.out.conv))


def fuse_for_inference(model: Generator, dtype: torch.dtype = torch.bfloat16) -> FastGeneratorV2:
    """A fast CPU inference module computing the same function as ``model`` (AnimeGAN v2).

    ``dtype=torch.bfloat16`` (default) runs convs and element-wise passes in bfloat16 with
    float32 accumulation (native on CPUs with AVX512-BF16/AMX); ``torch.float32`` keeps full
    precision and still saves the redundant memory passes.
    """
    return FastGeneratorV2(model, dtype).eval()


from . import discriminators as _discriminators  # noqa: E402,F401  (registers "animegan_discriminator")
