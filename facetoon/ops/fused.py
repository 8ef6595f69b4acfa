"""Building blocks of the fused CPU inference graphs (AnimeGANv2, CartoonGAN): exact rewrites of
"reflection-padded conv -> whole-map normalisation -> activation" that make fewer passes over memory.

Conventions: feature maps are ``(B, C, H, W)``, normally channels-last (NHWC in memory) and
bfloat16 or float32. Statistics are returned in float32.

* :func:`conv2d_reflect`: a conv with reflection padding without materialising the padded input
  (for stride 1 and symmetric padding): oneDNN zero-pads internally, then the thin border strips
  are recomputed from reflection-padded slices, which gives exactly the reflection-padded result.
* :func:`layer_norm_stats` / :func:`instance_norm_stats`: mean and biased variance over
  (C, H, W) per sample, or over (H, W) per sample and channel, from the fast native-dtype
  reductions (float32 accumulation inside, one rounding per image row) summed in float64.
* :func:`affine_`: ``y * a + b`` per sample and channel in place, optionally followed by
  LeakyReLU/ReLU in place, or added to a residual.
* :class:`NormStatsRecorder`: record the statistics of one pass and replay them on later passes
  (tiled inference, see :class:`facetoon.ops.tiling.NormStatsCache`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ConvSpec", "conv2d_reflect", "layer_norm_stats", "instance_norm_stats", "affine_",
           "NormStatsRecorder"]

Pad = tuple[int, int, int, int]  # left, right, top, bottom (F.pad order)


@dataclass
class ConvSpec:
    """A prepared conv: weights in the compute dtype and channels-last, padding, stride, groups."""

    weight: Tensor
    bias: Tensor | None
    stride: int = 1
    pad: Pad = (0, 0, 0, 0)
    groups: int = 1
    transposed: bool = False
    output_padding: int = 0
    transposed_padding: int = 0

    @classmethod
    def from_conv(cls, conv: nn.Conv2d | nn.ConvTranspose2d, pad: Pad | int, dtype: torch.dtype) -> ConvSpec:
        p = (pad, pad, pad, pad) if isinstance(pad, int) else cast(Pad, tuple(pad))
        w = conv.weight.detach().to(dtype)
        transposed = isinstance(conv, nn.ConvTranspose2d)
        w = w.contiguous() if transposed else w.contiguous(memory_format=torch.channels_last)
        b = None if conv.bias is None else conv.bias.detach().to(dtype)
        # a transposed conv's padding is always an int tuple (only nn.Conv2d accepts "same"/"valid")
        tpad = cast(int, conv.padding[0]) if transposed else 0
        return cls(w, b, conv.stride[0], p, conv.groups, transposed,
                   conv.output_padding[0] if transposed else 0, tpad)


def conv2d_reflect(x: Tensor, spec: ConvSpec) -> Tensor:
    """``conv(reflect_pad(x))`` for a :class:`ConvSpec` (plain conv if ``spec.pad`` is all zero)."""
    w, b, g, s = spec.weight, spec.bias, spec.groups, spec.stride
    if spec.transposed:
        return F.conv_transpose2d(x, w, b, s, spec.transposed_padding, spec.output_padding, g)
    left, right, top, bottom = spec.pad
    if not any(spec.pad):
        return F.conv2d(x, w, b, s, 0, 1, g)
    p = left
    h, wd = x.shape[-2:]
    k = w.shape[-1]
    if s == 2 and k == 3 and spec.pad == (0, 1, 0, 1) and h >= 3 and wd >= 3:
        return _conv_s2_pad_after(x, spec)
    if s == 2 and k == 3 and spec.pad == (1, 1, 1, 1) and h % 2 == 0 and wd % 2 == 0 and min(h, wd) >= 4:
        return _conv_s2_pad_both(x, spec)
    if s != 1 or not (left == right == top == bottom) or h < 2 * p + 1 or wd < 2 * p + 1:
        return F.conv2d(F.pad(x, spec.pad, mode="reflect"), w, b, s, 0, 1, g)
    y = F.conv2d(x, w, b, 1, p, 1, g)
    y[..., :p, :] = F.conv2d(F.pad(x[..., : 2 * p, :], (p, p, p, 0), mode="reflect"), w, b, 1, 0, 1, g)
    y[..., h - p:, :] = F.conv2d(F.pad(x[..., h - 2 * p:, :], (p, p, 0, p), mode="reflect"), w, b, 1, 0, 1, g)
    y[..., :, :p] = F.conv2d(F.pad(x[..., :, : 2 * p], (p, 0, p, p), mode="reflect"), w, b, 1, 0, 1, g)
    y[..., :, wd - p:] = F.conv2d(F.pad(x[..., :, wd - 2 * p:], (0, p, p, p), mode="reflect"),
                                  w, b, 1, 0, 1, g)
    return y


def _conv_s2_pad_after(x: Tensor, spec: ConvSpec) -> Tensor:
    """3x3/2 conv of ``x`` reflection-padded by one pixel at the bottom and right (AnimeGAN).

    Only the last output row/column can touch the padding: the rest is a plain valid conv, the
    last row and column come from two thin reflection-padded strips. The strips are two outputs
    thick (the last one is kept): oneDNN's bf16 kernels of torch 2.13 return garbage for a 3x3/2
    conv whose output is one column wide (seen on AMX CPUs), see :func:`_strip_start`.
    """
    w, b, g = spec.weight, spec.bias, spec.groups
    n, _, h, wd = x.shape
    ho, wo = (h - 2) // 2 + 1, (wd - 2) // 2 + 1  # sizes with the padding
    hv, wv = (h - 3) // 2 + 1, (wd - 3) // 2 + 1  # sizes without it
    if (hv, wv) == (ho, wo):
        return F.conv2d(x, w, b, 2, 0, 1, g)
    y = torch.empty(n, w.shape[0], ho, wo, dtype=x.dtype, device=x.device,
                    memory_format=torch.channels_last)
    y[..., :hv, :wv] = F.conv2d(x, w, b, 2, 0, 1, g)
    if ho > hv:
        r = _strip_start(ho)
        strip = F.pad(x[..., 2 * r:, :], (0, 1, 0, 1), mode="reflect")
        y[..., ho - 1:, :] = F.conv2d(strip, w, b, 2, 0, 1, g)[..., -1:, :]
    if wo > wv:
        c = _strip_start(wo)
        strip = F.pad(x[..., :, 2 * c:], (0, 1, 0, 1), mode="reflect")
        y[..., :, wo - 1:] = F.conv2d(strip, w, b, 2, 0, 1, g)[..., :, -1:]
    return y


def _strip_start(n_out: int) -> int:
    """First output index of a border strip that is two outputs thick (one if only one exists).

    Works around a oneDNN bug (torch 2.13.0 CPU, bf16, AMX): a 3x3 stride-2 conv whose output is
    a single column wide and about 16 or more rows tall returns wrong values or NaN. Two outputs
    thick avoids that shape; the extra output costs one more strip of MACs.
    """
    return max(n_out - 2, 0)


def _conv_s2_pad_both(x: Tensor, spec: ConvSpec) -> Tensor:
    """3x3/2 conv of ``x`` (even H, W) reflection-padded by one pixel on every side (CartoonGAN).

    With even sizes the bottom/right padding is never read; oneDNN zero-pads, and the first
    output row and column (the only ones that read the top/left padding) are recomputed.
    """
    w, b, g = spec.weight, spec.bias, spec.groups
    y = F.conv2d(x, w, b, 2, 1, 1, g)
    # strips two outputs thick, the first kept (see _strip_start: one-column bf16 outputs are wrong)
    y[..., :1, :] = F.conv2d(F.pad(x[..., :4, :], (1, 1, 1, 0), mode="reflect"), w, b, 2, 0, 1, g)[..., :1, :]
    y[..., :, :1] = F.conv2d(F.pad(x[..., :, :4], (1, 0, 1, 1), mode="reflect"), w, b, 2, 0, 1, g)[..., :, :1]
    return y


def layer_norm_stats(y: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and biased variance over (C, H, W) of each sample: two float32 ``(B,)`` tensors."""
    b, c, h, w = y.shape
    n = c * h * w
    if y.is_contiguous(memory_format=torch.channels_last):
        rows = y.permute(0, 2, 3, 1).reshape(b * h, w * c)  # one image row per line
    elif y.is_contiguous():
        rows = y.reshape(b * c * h, w)
    else:
        var, mean = torch.var_mean(y.float().reshape(b, -1), dim=1, correction=0)
        return mean, var
    s1 = rows.sum(dim=1).double().view(b, -1).sum(dim=1)
    s2 = torch.linalg.vector_norm(rows, dim=1).double().square().view(b, -1).sum(dim=1)
    mean = s1 / n
    var = (s2 / n - mean.square()).clamp_min(0.0)
    return mean.float(), var.float()


def instance_norm_stats(y: Tensor, out_dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """Mean and biased variance over (H, W) of each sample and channel: two ``(B, C)`` tensors in
    ``out_dtype``.

    ``y``: ``(B, C, H, W)``, channels-last for the fast path (float32 or bfloat16; other layouts
    and dtypes are reduced in float64). The mean is one native-dtype reduction (float32
    accumulation, one rounding per image row) summed in float64. The variance is that of ``y``
    centred on this mean (rounded to ``y``'s dtype), from reductions of the centred copy and of
    its square (in place), so channels whose mean is large against their spread keep an accurate
    variance. The mean is not corrected by the mean of the centred copy: in bfloat16 the rounding
    of ``y - mean`` is biased when ``|mean|`` is large against the spread, and that correction
    would carry the bias. No ``vector_norm`` (slow over a non-innermost dimension).
    """
    b, c, h, w = y.shape
    n = h * w
    if not y.is_contiguous(memory_format=torch.channels_last) or y.dtype not in (torch.float32, torch.bfloat16):
        var, mean = torch.var_mean(y.double(), dim=(2, 3), correction=0)
        return mean.to(out_dtype), var.to(out_dtype)
    nhwc = y.permute(0, 2, 3, 1)  # (B, H, W, C), contiguous
    mean = nhwc.sum(dim=2).double().sum(dim=1) / n
    centred = nhwc - mean.to(y.dtype)[:, None, None, :]
    d1 = centred.sum(dim=2).double().sum(dim=1) / n
    d2 = centred.square_().sum(dim=2).double().sum(dim=1) / n
    return mean.to(out_dtype), (d2 - d1.square()).clamp_min(0.0).to(out_dtype)


def affine_(
    y: Tensor,
    scale: Tensor,
    shift: Tensor,
    act: str | None = None,
    slope: float = 0.2,
    residual: Tensor | None = None,
) -> Tensor:
    """``y * scale + shift`` (+ ``residual``), then ``act`` (``"lrelu"``, ``"relu"`` or ``None``).

    ``scale``/``shift``: ``(B, C)`` (any float dtype). Works in place on ``y`` unless a residual
    is given (then the result is written into a new tensor: ``residual + shift + y * scale``).
    """
    a = scale.to(y.dtype)[:, :, None, None]
    b = shift.to(y.dtype)[:, :, None, None]
    if residual is not None:
        out = residual + b
        torch.addcmul(out, y, a, out=out)
    else:
        out = torch.addcmul(b, y, a, out=y)
    if act == "lrelu":
        torch._C._nn.leaky_relu_(out, slope)
    elif act == "relu":
        torch.relu_(out)
    return out


class NormStatsRecorder:
    """Mixin: statistics of every normalisation call, recorded in order on one pass and replayed later."""

    def _init_stats(self) -> None:
        self._mode: str | None = None
        self._stats: list[tuple[Tensor, Tensor]] = []
        self._cursor = 0

    def _begin_pass(self) -> None:
        self._cursor = 0
        if self._mode == "record":
            self._stats = []

    def _stats_for(self, y: Tensor, compute: object) -> tuple[Tensor, Tensor]:
        if self._mode == "replay":
            stats = self._stats[self._cursor]
            self._cursor += 1
            return stats
        stats = compute(y)  # type: ignore[operator]
        if self._mode == "record":
            self._stats.append(stats)
        return stats

    def record_norm_stats(self) -> _StatsMode:
        """Context manager: the next forward passes record their normalisation statistics."""
        return _StatsMode(self, "record")

    def replay_norm_stats(self) -> _StatsMode:
        """Context manager: forward passes use the recorded statistics instead of their own."""
        if not self._stats:
            raise RuntimeError("replay_norm_stats() before a recording pass")
        return _StatsMode(self, "replay")


class _StatsMode:
    def __init__(self, owner: NormStatsRecorder, mode: str) -> None:
        self.owner, self.mode = owner, mode

    def __enter__(self) -> NormStatsRecorder:
        self.owner._mode = self.mode
        return self.owner

    def __exit__(self, *exc: object) -> None:
        self.owner._mode = None
