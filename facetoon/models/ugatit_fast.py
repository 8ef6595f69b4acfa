"""Fast CPU inference for the U-GAT-IT generator (:class:`facetoon.models.ugatit.Generator`).

:func:`fuse_for_inference` turns a trained generator into :class:`FastGenerator`, an
inference-only module computing the same function with fewer passes over memory, in the manner
of the fused AnimeGAN/CartoonGAN graphs (see :mod:`facetoon.ops.fused`):

* conv weights are cast once to the compute dtype (bfloat16 by default) and channels-last;
* every normalisation (the encoder's instance norms, the decoder's AdaILN, the up-sampling
  path's ILN) becomes its statistics plus ONE in-place pass ``y * a + b`` (then ReLU, or added to
  the residual), with ``a``, ``b`` per sample and channel folded from the statistics, ``rho``,
  ``gamma`` and ``beta``. The layer-norm statistics of ILN/AdaILN (over C, H, W) are derived
  from the per-channel instance statistics: the mean of the channel means, and the law of total
  variance for the variance. Variances follow :mod:`facetoon.layers.norms` exactly: biased for
  the encoder's ``nn.InstanceNorm2d``, unbiased (``n - 1``) for ILN/AdaILN, ``eps`` added to the
  variance;
* the statistics come from :func:`facetoon.ops.fused.instance_norm_stats` (fast native-dtype reductions, float64 sums);
* reflection-padded convs of large maps use :func:`facetoon.ops.fused.conv2d_reflect` (no
  padded copy); small maps (the 1/4-resolution residual blocks) are padded, which oneDNN runs
  faster;
* each "nearest x2 up-sampling -> reflection pad -> 3x3 conv" is four 2x2 convs of the
  replicate-padded low-resolution map, interleaved (no up-sampled copy, 2.25x fewer
  multiply-accumulates), see :func:`_subpixel_weight`;
* the CAM module's two re-weighted copies of the features, their concatenation and the 1x1 conv
  are folded into one 1x1 conv (``W[:, :C] * w_gap + W[:, C:] * w_gmp``);
* the vector head (CAM logits, the gamma/beta MLP) runs in float32, out of autocast.

All of these are exact rewrites: in float32 the outputs equal the reference's within ~1e-5
(float rounding); in bfloat16 they are as close to the float32 reference as the bf16 autocast
path of the reference module is (tested). At 256 px (light, ngf 64, batch 1) on a 2-core AMX
CPU the fused bf16 module takes about a third of the time of the reference under bf16 autocast.

Conventions: images are ``(B, 3, H, W)`` RGB in [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..layers import ILN, AdaILN, ConvNormAct, ResnetAdaILNBlock, ResnetBlock
from ..ops.fused import ConvSpec, affine_, conv2d_reflect, instance_norm_stats
from .ugatit import MIN_SIZE, Generator, _unnormalised_weight, check_generator_input

__all__ = ["FastGenerator", "fuse_for_inference"]

#: stride-1 reflection-padded convs of inputs up to this size (bytes) pad a copy of the input;
#: larger inputs use conv2d_reflect (measured on a 2-core AMX CPU: 64x64x256 maps are ~20% faster
#: padded, full-resolution maps are not)
PAD_COPY_BYTES = 4 << 20


@dataclass
class _NormSpec:
    """One normalisation, folded to ``y * a + b`` per (sample, channel) at run time.

    ``rho is None``: instance norm (biased variance) with an optional affine ``gamma``/``beta``
    (``(C,)``, float64). Otherwise ILN/AdaILN: ``rho`` ``(C,)`` float64; ``gamma``/``beta`` the
    ILN's learnt ``(C,)`` (``None`` for AdaILN, where they come per sample from the MLP).
    """

    eps: float
    rho: Tensor | None = None
    gamma: Tensor | None = None
    beta: Tensor | None = None


@dataclass
class _Layer:
    """A reflection-padded conv followed by a normalisation."""

    conv: ConvSpec
    norm: _NormSpec


def _owned(t: Tensor, dtype: torch.dtype) -> Tensor:
    """A copy of ``t`` in ``dtype`` that shares no memory with it (a cast to the same dtype does)."""
    return t.detach().to(dtype, copy=True)


def _conv_spec(pad: nn.Module | None, conv: nn.Module, dtype: torch.dtype) -> ConvSpec:
    if not isinstance(conv, nn.Conv2d) or conv.padding not in ((0, 0), 0) or conv.dilation != (1, 1) \
            or conv.stride[0] != conv.stride[1] or conv.padding_mode != "zeros":
        raise ConfigError(f"fuse_for_inference: unexpected conv layer {conv}")
    if pad is None:
        pads = (0, 0, 0, 0)
    elif isinstance(pad, nn.ReflectionPad2d):
        pads = cast("tuple[int, int, int, int]", tuple(pad.padding))
    else:
        raise ConfigError(f"fuse_for_inference: expected a ReflectionPad2d before the conv, got {pad}")
    weight = _owned(conv.weight, dtype).contiguous(memory_format=torch.channels_last)
    bias = None if conv.bias is None else _owned(conv.bias, dtype)
    return ConvSpec(weight, bias, conv.stride[0], pads, conv.groups)


def _norm_spec(norm: nn.Module) -> _NormSpec:
    def vec(t: Tensor) -> Tensor:
        return t.detach().double().flatten().clone()

    if isinstance(norm, nn.InstanceNorm2d):
        if norm.track_running_stats:
            raise ConfigError("fuse_for_inference: instance norms with running statistics are not supported")
        if norm.affine:
            assert norm.weight is not None and norm.bias is not None
            return _NormSpec(float(norm.eps), gamma=vec(norm.weight), beta=vec(norm.bias))
        return _NormSpec(float(norm.eps))
    if isinstance(norm, ILN):
        return _NormSpec(float(norm.eps), vec(norm.rho), vec(norm.gamma), vec(norm.beta))
    if isinstance(norm, AdaILN):
        return _NormSpec(float(norm.eps), vec(norm.rho))
    raise ConfigError(f"fuse_for_inference: unsupported normalisation {type(norm).__name__}")


def _conv_norm_act(block: nn.Module, dtype: torch.dtype, act: bool) -> _Layer:
    """A :class:`ConvNormAct` (reflection pad -> conv -> norm -> ReLU or nothing)."""
    if not isinstance(block, ConvNormAct):
        raise ConfigError(f"fuse_for_inference: expected a ConvNormAct, got {type(block).__name__}")
    layers = list(block)
    pad = layers.pop(0) if isinstance(layers[0], nn.ReflectionPad2d) else None
    has_act = len(layers) == 3
    if len(layers) not in (2, 3) or has_act != act or (has_act and not isinstance(layers[2], nn.ReLU)):
        raise ConfigError(f"fuse_for_inference: unexpected ConvNormAct layout {block}")
    return _Layer(_conv_spec(pad, layers[0], dtype), _norm_spec(layers[1]))


def _subpixel_weight(conv: nn.Conv2d) -> Tensor:
    """The 3x3 conv of a nearest x2 up-sampled, reflection-padded (1 px) input as 2x2 convs.

    Reflection padding by one pixel of a nearest x2 up-sampling equals the up-sampling of the
    input replicate-padded by one pixel (cropped), so output pixel ``(2i + r, 2j + s)`` only
    reads the 2x2 input pixels ``(i + r .. i + r + 1, j + s .. j + s + 1)`` of the
    replicate-padded input, each with a sum of the 3x3 taps that land on it. Returns the
    ``(4 * Cout, Cin, 2, 2)`` float64 weights of the phases ``(r, s) = (0, 0), (0, 1), (1, 0),
    (1, 1)`` in this order; a 2x2 conv of the padded input gives each phase at offset ``(r, s)``.
    2.25x fewer multiply-accumulates than the up-sampled 3x3 conv.
    """
    w = conv.weight.detach().double()

    def taps(t: Tensor, phase: int, dim: int) -> Tensor:
        a, b, c = t.unbind(dim)
        return torch.stack((a, b + c) if phase == 0 else (a + b, c), dim)

    return torch.cat([taps(taps(w, r, 2), s, 3) for r in (0, 1) for s in (0, 1)], dim=0)


def _linear(fc: nn.Module) -> Tensor:
    if not isinstance(fc, nn.Linear) or fc.bias is not None:
        raise ConfigError(f"fuse_for_inference: expected a bias-free nn.Linear, got {fc}")
    return _owned(fc.weight, torch.float32)


class FastGenerator(nn.Module):
    """Inference-only U-GAT-IT generator: the same function as :class:`Generator`, fewer memory passes.

    Built by :func:`fuse_for_inference` (see the module docstring for what is fused).

    ``forward(x)`` takes RGB ``(B, 3, H, W)`` in [-1, 1] (any float dtype and memory layout;
    ``H`` and ``W`` multiples of 4 and at least 8, or exactly the training size for the full
    generator) and returns, like :meth:`Generator.forward`:

    * ``image``: RGB ``(B, 3, H, W)`` in [-1, 1] (tanh), in the compute dtype, channels-last;
    * ``cam_logit``: ``(B, 2)`` float32, the CAM classifier's logits (average-, max-pooled);
    * ``heatmap``: ``(B, 1, H/4, W/4)`` float32 (>= 0), the channel sum of the attention features.

    Runs under ``torch.no_grad`` with autocast disabled (the compute dtype is fixed at fusion).
    The tensors are prepared once on the generator's device; it does not follow later changes to
    the generator's weights (fuse again).
    """

    size_multiple = 4
    min_size = MIN_SIZE

    def __init__(self, model: Generator, dtype: torch.dtype = torch.bfloat16) -> None:
        super().__init__()
        if not isinstance(model, Generator):
            raise ConfigError(f"fuse_for_inference needs a U-GAT-IT Generator, got {type(model).__name__}")
        if dtype not in (torch.float32, torch.bfloat16):
            raise ConfigError(f"fuse_for_inference: compute dtype must be float32 or bfloat16, got {dtype}")
        self.dtype = dtype
        self.light = model.light
        self.img_size = model.img_size
        self.in_channels = model.in_channels
        enc = list(model.encoder)
        n_down = 3
        if len(enc) < n_down or not all(isinstance(b, ResnetBlock) for b in enc[n_down:]):
            raise ConfigError("fuse_for_inference: unexpected U-GAT-IT encoder layout")
        self.encoder_in = [_conv_norm_act(b, dtype, act=True) for b in enc[:n_down]]
        self.encoder_res = []
        for blk in enc[n_down:]:
            body = list(cast(ResnetBlock, blk).body)
            self.encoder_res.append((_conv_norm_act(body[0], dtype, act=True),
                                     _conv_norm_act(body[1], dtype, act=False)))

        # CAM: logits from the classifiers (as the reference: the weights the layers use), and the
        # features re-weighted by the stored weights, concatenated, 1x1 conv -> one folded 1x1 conv
        self.gap_w = _linear(model.gap_fc)  # (1, C)
        self.gmp_w = _linear(model.gmp_fc)
        dim = self.gap_w.shape[1]
        conv1x1 = model.conv1x1
        if tuple(conv1x1.weight.shape) != (dim, 2 * dim, 1, 1) or conv1x1.groups != 1 \
                or conv1x1.padding not in ((0, 0), 0) or conv1x1.stride != (1, 1):
            raise ConfigError("fuse_for_inference: unexpected CAM 1x1 conv")
        w = conv1x1.weight.detach().double()[:, :, 0, 0]
        wg = _unnormalised_weight(model.gap_fc).detach().double()[0]
        wm = _unnormalised_weight(model.gmp_fc).detach().double()[0]
        folded = (w[:, :dim] * wg[None, :] + w[:, dim:] * wm[None, :])[:, :, None, None]
        bias = None if conv1x1.bias is None else _owned(conv1x1.bias, dtype)
        self.cam_conv = ConvSpec(folded.to(dtype).contiguous(memory_format=torch.channels_last), bias)

        # gamma / beta MLP (float32: (B, C) vectors, except the full model's flattened map)
        mlp = list(model.mlp)
        if len(mlp) != 4 or not isinstance(mlp[1], nn.ReLU) or not isinstance(mlp[3], nn.ReLU):
            raise ConfigError("fuse_for_inference: unexpected gamma/beta MLP layout")
        self.mlp = [_linear(mlp[0]), _linear(mlp[2])]
        self.gamma_w = _linear(model.gamma)
        self.beta_w = _linear(model.beta)

        self.decoder = []
        for blk in model.decoder_blocks:
            if not isinstance(blk, ResnetAdaILNBlock):
                raise ConfigError("fuse_for_inference: unexpected U-GAT-IT decoder block")
            self.decoder.append((_Layer(_conv_spec(blk.pad1, blk.conv1, dtype), _norm_spec(blk.norm1)),
                                 _Layer(_conv_spec(blk.pad2, blk.conv2, dtype), _norm_spec(blk.norm2))))

        # up-sampling: nearest x2 -> reflection pad 1 -> 3x3 conv, as four 2x2 convs (sub-pixel)
        up = list(model.upsample)
        self.up: list[tuple[ConvSpec, _NormSpec]] = []
        while up and isinstance(up[0], nn.Upsample):
            resize = cast(nn.Upsample, up.pop(0))
            if resize.mode != "nearest" or resize.size is not None or resize.scale_factor not in (2, 2.0):
                raise ConfigError(f"fuse_for_inference: unexpected up-sampling {resize}")
            block = up.pop(0)
            layer = _conv_norm_act(block, dtype, act=True)
            conv = next(m for m in block.children() if isinstance(m, nn.Conv2d))
            if layer.conv.pad != (1, 1, 1, 1) or layer.conv.stride != 1 or conv.kernel_size != (3, 3) \
                    or conv.groups != 1:
                raise ConfigError(f"fuse_for_inference: unexpected up-sampling conv {conv}")
            weight = _subpixel_weight(conv).to(dtype).contiguous(memory_format=torch.channels_last)
            bias = None if conv.bias is None else conv.bias.detach().repeat(4).to(dtype)
            self.up.append((ConvSpec(weight, bias), layer.norm))
        if len(up) != 3 or not isinstance(up[2], nn.Tanh):
            raise ConfigError("fuse_for_inference: unexpected U-GAT-IT output layers")
        self.out_conv = _conv_spec(up[0], up[1], dtype)

    # ------------------------------------------------------------------ normalisation

    @staticmethod
    def _fold(y: Tensor, norm: _NormSpec, gamma: Tensor | None = None,
              beta: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Per-(sample, channel) ``a``, ``b`` (``(B, C)`` float64) with ``norm(y) == y * a + b``.

        ``gamma``/``beta``: ``(B, C)`` AdaILN parameters (for an AdaILN ``norm``).
        """
        mean, var = instance_norm_stats(y, torch.float64)  # (B, C), biased variance over H, W
        if norm.rho is None:
            a = torch.rsqrt(var + norm.eps)
            b = -mean * a
            if norm.gamma is not None and norm.beta is not None:
                a = a * norm.gamma
                b = b * norm.gamma + norm.beta
            return a, b
        n = y.shape[2] * y.shape[3]
        n_all = n * y.shape[1]
        # layer statistics over (C, H, W) from the channel statistics (equal counts per channel)
        ln_mean = mean.mean(dim=1, keepdim=True)
        ln_var = var.mean(dim=1, keepdim=True) + (mean - ln_mean).square().mean(dim=1, keepdim=True)
        # unbiased variances, as facetoon.layers.norms (torch.var_mean's default correction)
        in_r = torch.rsqrt(var * (n / (n - 1)) + norm.eps)
        ln_r = torch.rsqrt(ln_var * (n_all / (n_all - 1)) + norm.eps)
        rho = norm.rho[None, :]
        scale = rho * in_r + (1.0 - rho) * ln_r
        offset = rho * mean * in_r + (1.0 - rho) * ln_mean * ln_r
        if norm.gamma is not None and norm.beta is not None:  # ILN
            g, bt = norm.gamma[None, :], norm.beta[None, :]
        else:  # AdaILN
            assert gamma is not None and beta is not None
            g, bt = gamma.double(), beta.double()
        return g * scale, bt - g * offset

    @staticmethod
    def _conv(x: Tensor, spec: ConvSpec) -> Tensor:
        """``conv(reflect_pad(x))``: small inputs are padded (a cheap copy, and oneDNN is faster on
        the padded map than on the zero-padded conv plus border strips); larger ones use
        :func:`facetoon.ops.fused.conv2d_reflect` (no padded copy of the big map)."""
        if spec.stride == 1 and any(spec.pad) and x.numel() * x.element_size() <= PAD_COPY_BYTES:
            return F.conv2d(F.pad(x, spec.pad, mode="reflect"), spec.weight, spec.bias, 1, 0, 1, spec.groups)
        return conv2d_reflect(x, spec)

    def _layer(self, x: Tensor, layer: _Layer, act: str | None, residual: Tensor | None = None,
               gamma: Tensor | None = None, beta: Tensor | None = None) -> Tensor:
        y = self._conv(x, layer.conv)
        a, b = self._fold(y, layer.norm, gamma, beta)
        return affine_(y, a, b, act, residual=residual)

    def _up_layer(self, x: Tensor, spec: ConvSpec, norm: _NormSpec) -> Tensor:
        """ILN(conv3x3(reflect_pad1(nearest_x2(x)))) then ReLU, from the sub-pixel weights ``spec``."""
        b, _, h, w = x.shape
        z = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), spec.weight, spec.bias)  # (B, 4C, h+1, w+1)
        c = z.shape[1] // 4
        zn = z.permute(0, 2, 3, 1)
        out = torch.empty(b, 2 * h, 2 * w, c, dtype=z.dtype, device=z.device)
        phases = out.view(b, h, 2, w, 2, c)
        for r in (0, 1):
            for s in (0, 1):
                k = 2 * r + s
                phases[:, :, r, :, s, :] = zn[:, r:r + h, s:s + w, k * c:(k + 1) * c]
        y = out.permute(0, 3, 1, 2)  # (B, C, 2h, 2w), channels-last
        a, shift = self._fold(y, norm)
        return affine_(y, a, shift, "relu")

    # ------------------------------------------------------------------ forward

    @torch.no_grad()
    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        check_generator_input(x, light=self.light, img_size=self.img_size, in_channels=self.in_channels)
        with torch.autocast(x.device.type, enabled=False):
            return self._forward(x.to(self.dtype).contiguous(memory_format=torch.channels_last))

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        for layer in self.encoder_in:
            x = self._layer(x, layer, "relu")
        for first, second in self.encoder_res:
            x = self._layer(self._layer(x, first, "relu"), second, None, residual=x)

        # CAM attention; logits of the pooled features in float32
        gap = x.mean(dim=(2, 3), dtype=torch.float32)
        gmp = x.amax(dim=(2, 3)).float()
        cam_logit = torch.cat([F.linear(gap, self.gap_w), F.linear(gmp, self.gmp_w)], dim=1)
        feats = torch.relu_(conv2d_reflect(x, self.cam_conv))
        heatmap = feats.sum(dim=1, keepdim=True, dtype=torch.float32)

        style = feats.mean(dim=(2, 3), dtype=torch.float32) if self.light else feats.float().flatten(1)
        for weight in self.mlp:
            style = torch.relu_(F.linear(style, weight))
        gamma, beta = F.linear(style, self.gamma_w), F.linear(style, self.beta_w)

        x = feats
        for first, second in self.decoder:
            y = self._layer(x, first, "relu", gamma=gamma, beta=beta)
            x = self._layer(y, second, None, residual=x, gamma=gamma, beta=beta)
        for spec, norm in self.up:
            x = self._up_layer(x, spec, norm)
        image = torch.tanh_(self._conv(x, self.out_conv))
        return image, cam_logit, heatmap.contiguous()


def fuse_for_inference(generator: Generator, dtype: torch.dtype = torch.bfloat16) -> FastGenerator:
    """A fast CPU inference module computing the same function as ``generator``.

    Args:
        generator: a U-GAT-IT :class:`Generator` (light or full), in any mode; its weights are
            copied (cast to ``dtype``), later changes to it are not followed.
        dtype: compute dtype of the convs and element-wise passes. ``torch.bfloat16`` (default)
            is native on CPUs with AVX512-BF16/AMX (float32 accumulation, statistics in float32);
            ``torch.float32`` keeps full precision and still saves the redundant memory passes.
            Other dtypes are refused.

    Returns:
        A :class:`FastGenerator` in eval mode: RGB ``(B, 3, H, W)`` in [-1, 1] ->
        ``(image (B, 3, H, W) in [-1, 1], cam_logit (B, 2), heatmap (B, 1, H/4, W/4))``.

    Raises:
        ConfigError: ``generator`` is not a U-GAT-IT generator of the standard layout, or
            ``dtype`` is not supported.
    """
    return FastGenerator(generator, dtype).eval()
