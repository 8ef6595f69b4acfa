"""CartoonGAN generator (Chen, Lai, Liu, CVPR 2018), as in the official pretrained release.

Public convention (like every facetoon scene model): input RGB ``(B, 3, H, W)`` in [-1, 1],
output RGB ``(B, 3, H, W)`` in (-1, 1). The official weights were trained on **BGR** input; the
model flips the channels internally (``bgr_weights=True``), so callers never see BGR.

Architecture (names of the official ``state_dict`` in brackets, see
:mod:`facetoon.convert.cartoongan` for the loader):

* ``stem``: reflection pad 3, 7x7 conv 3->64 [conv01_1], instance norm [in01_1], ReLU;
* ``down1``: 3x3/2 conv 64->128 [conv02_1], 3x3 conv 128->128 [conv02_2], IN [in02_1], ReLU;
* ``down2``: 3x3/2 conv 128->256 [conv03_1], 3x3 conv [conv03_2], IN [in03_1], ReLU;
* eight residual blocks [conv04 .. conv11]: reflection pad 1, 3x3 conv, IN, ReLU, reflection
  pad 1, 3x3 conv, IN, add;
* ``up1``: 3x3/2 transposed conv 256->128 (padding 1, output padding 1) [deconv01_1], 3x3 conv
  [deconv01_2], IN [in12_1], ReLU; ``up2`` likewise 128->64 [deconv02_*, in13_1];
* ``out``: reflection pad 3, 7x7 conv 64->3 [deconv03_1], tanh.

Every plain conv (the strided ones and those after the transposed convs included) pads by
reflection: 3 pixels for the 7x7 convs, 1 for the 3x3 convs: so the model matches the reference
output that comes with the weights in ``../shared`` to 1 level. (Zero padding there, as in
the PyTorch test code Yijunmaverick/CartoonGAN-Test-Pytorch-Torch, changes the output by up to
215 levels near the borders.) The
instance norm is the release's own: ``(x - mean) / (std + 1e-9) * scale + shift``
with the biased standard deviation over H, W. Height and width must be multiples of 4
(:attr:`Generator.size_multiple`). 11,129,667 parameters.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import InvalidImageError
from ..ops.fused import ConvSpec, NormStatsRecorder, affine_, conv2d_reflect, instance_norm_stats
from .registry import register_model

__all__ = ["Generator", "CartoonInstanceNorm", "instance_norm_std_eps", "FastCartoonGAN",
           "fuse_for_inference"]


def instance_norm_std_eps(
    x: Tensor, scale: Tensor, shift: Tensor, eps: float = 1e-9, stats: tuple[Tensor, Tensor] | None = None
) -> Tensor:
    """CartoonGAN's instance norm: ``(x - mean) / (std_biased + eps) * scale + shift``.

    ``x``: ``(B, C, H, W)``; ``scale``, ``shift``: ``(C,)``. Statistics per sample and channel over
    H, W, computed in float32 (also for bf16 input); ``stats=(mean, var)`` (each ``(B, C)``)
    replaces them (tiled inference).
    """
    xf = x.float()
    if stats is None:
        var, mean = torch.var_mean(xf, dim=(2, 3), correction=0)
    else:
        mean, var = stats
    inv = scale.float() / (var.sqrt() + eps)  # (B, C)
    out = xf * inv[:, :, None, None] + (shift.float() - mean * inv)[:, :, None, None]
    return out.to(x.dtype)


class CartoonInstanceNorm(nn.Module):
    """Affine instance normalisation with the release's epsilon placement; params ``scale``/``shift``."""

    def __init__(self, channels: int, eps: float = 1e-9) -> None:
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.ones(channels))
        self.shift = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        return instance_norm_std_eps(x, self.scale, self.shift, self.eps)

    def compute_stats(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(mean, var)`` per sample and channel, each ``(B, C)`` float32."""
        var, mean = torch.var_mean(x.float(), dim=(2, 3), correction=0)
        return mean, var

    def apply_stats(self, x: Tensor, stats: tuple[Tensor, Tensor]) -> Tensor:
        return instance_norm_std_eps(x, self.scale, self.shift, self.eps, stats)


class _ResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3)
        self.norm1 = CartoonInstanceNorm(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3)
        self.norm2 = CartoonInstanceNorm(channels)

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.norm1(self.conv1(F.pad(x, (1, 1, 1, 1), mode="reflect"))))
        y = self.norm2(self.conv2(F.pad(y, (1, 1, 1, 1), mode="reflect")))
        return x + y


class _DownBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, 2)
        self.conv2 = nn.Conv2d(cout, cout, 3)
        self.norm = CartoonInstanceNorm(cout)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(F.pad(x, (1, 1, 1, 1), mode="reflect"))
        return F.relu(self.norm(self.conv2(F.pad(x, (1, 1, 1, 1), mode="reflect"))))


class _UpBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.deconv = nn.ConvTranspose2d(cin, cout, 3, 2, 1, 1)
        self.conv = nn.Conv2d(cout, cout, 3)
        self.norm = CartoonInstanceNorm(cout)

    def forward(self, x: Tensor) -> Tensor:
        x = self.deconv(x)
        return F.relu(self.norm(self.conv(F.pad(x, (1, 1, 1, 1), mode="reflect"))))


@register_model("cartoongan")
class Generator(nn.Module):
    """CartoonGAN generator: RGB ``(B, 3, H, W)`` in [-1, 1] -> RGB ``(B, 3, H, W)`` in (-1, 1).

    Args:
        n_res_blocks: residual blocks (8 in the release).
        bgr_weights: the weights expect BGR input and produce BGR output (True for the official
            release); the model then flips channels on the way in and out.
    """

    size_multiple = 4
    min_size = 8

    def __init__(self, n_res_blocks: int = 8, bgr_weights: bool = True) -> None:
        super().__init__()
        self.config = {"n_res_blocks": int(n_res_blocks), "bgr_weights": bool(bgr_weights)}
        self.bgr_weights = bool(bgr_weights)
        self.stem_conv = nn.Conv2d(3, 64, 7)
        self.stem_norm = CartoonInstanceNorm(64)
        self.down1 = _DownBlock(64, 128)
        self.down2 = _DownBlock(128, 256)
        self.res = nn.Sequential(*[_ResBlock(256) for _ in range(n_res_blocks)])
        self.up1 = _UpBlock(256, 128)
        self.up2 = _UpBlock(128, 64)
        self.out_conv = nn.Conv2d(64, 3, 7)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise InvalidImageError(f"CartoonGAN input must be (B, 3, H, W), got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if h % 4 or w % 4 or h < self.min_size or w < self.min_size:
            raise InvalidImageError(
                f"CartoonGAN input height/width must be multiples of 4 and >= 8, got {h}x{w}")
        if self.bgr_weights:
            x = x.flip(1)
        x = F.relu(self.stem_norm(self.stem_conv(F.pad(x, (3, 3, 3, 3), mode="reflect"))))
        x = self.up2(self.up1(self.res(self.down2(self.down1(x)))))
        x = torch.tanh(self.out_conv(F.pad(x, (3, 3, 3, 3), mode="reflect")))
        return x.flip(1) if self.bgr_weights else x


# ---------------------------------------------------------------------------------------------
# fast inference


class FastCartoonGAN(NormStatsRecorder, nn.Module):
    """Inference-only CartoonGAN generator: the same function with fewer passes over memory.

    Built by :func:`fuse_for_inference`; RGB ``(B, 3, H, W)`` in [-1, 1] -> RGB in (-1, 1), in the
    compute dtype, channels-last. Weights are cast once; each instance norm + ReLU is two
    in-place passes with statistics from fast reductions; stride-1 reflection padding is done
    without a padded copy (see :mod:`facetoon.ops.fused`). Statistics can be recorded/replayed
    for tiled inference.
    """

    size_multiple = 4
    min_size = 8

    def __init__(self, model: Generator, dtype: torch.dtype = torch.bfloat16) -> None:
        nn.Module.__init__(self)
        self._init_stats()
        self.dtype = dtype
        self.bgr = model.bgr_weights

        def spec(conv: nn.Conv2d | nn.ConvTranspose2d, pad: int) -> ConvSpec:
            return ConvSpec.from_conv(conv, pad, dtype)

        def norm(n: CartoonInstanceNorm) -> tuple[Tensor, Tensor, float]:
            return n.scale.detach().float().clone(), n.shift.detach().float().clone(), n.eps

        self.stem = (spec(model.stem_conv, 3), norm(model.stem_norm))
        self.down = [(spec(d.conv1, 1), spec(d.conv2, 1), norm(d.norm)) for d in (model.down1, model.down2)]
        res_blocks = cast("Iterable[_ResBlock]", model.res)  # an nn.Sequential of _ResBlock
        self.res = [(spec(r.conv1, 1), norm(r.norm1), spec(r.conv2, 1), norm(r.norm2)) for r in res_blocks]
        self.up = [(spec(u.deconv, 0), spec(u.conv, 1), norm(u.norm)) for u in (model.up1, model.up2)]
        self.out = spec(model.out_conv, 3)

    def _norm(self, y: Tensor, params: tuple[Tensor, Tensor, float], act: str | None,
              residual: Tensor | None = None) -> Tensor:
        scale, shift, eps = params
        mean, var = self._stats_for(y, instance_norm_stats)
        a = scale[None, :] / (var.sqrt() + eps)  # (B, C)
        b = shift[None, :] - mean * a
        return affine_(y, a, b, act, residual=residual)

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise InvalidImageError(f"CartoonGAN input must be (B, 3, H, W), got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if h % 4 or w % 4 or h < self.min_size or w < self.min_size:
            raise InvalidImageError(
                f"CartoonGAN input height/width must be multiples of 4 and >= 8, got {h}x{w}")
        self._begin_pass()
        if self.bgr:
            x = x.flip(1)
        x = x.to(self.dtype).contiguous(memory_format=torch.channels_last)
        x = self._norm(conv2d_reflect(x, self.stem[0]), self.stem[1], "relu")
        for conv1, conv2, n in self.down:
            x = self._norm(conv2d_reflect(conv2d_reflect(x, conv1), conv2), n, "relu")
        for conv1, n1, conv2, n2 in self.res:
            y = self._norm(conv2d_reflect(x, conv1), n1, "relu")
            x = self._norm(conv2d_reflect(y, conv2), n2, None, residual=x)
        for deconv, conv, n in self.up:
            x = self._norm(conv2d_reflect(conv2d_reflect(x, deconv), conv), n, "relu")
        x = torch.tanh_(conv2d_reflect(x, self.out))
        return x.flip(1) if self.bgr else x


def fuse_for_inference(model: Generator, dtype: torch.dtype = torch.bfloat16) -> FastCartoonGAN:
    """A fast CPU inference module computing the same function as ``model`` (see :class:`FastCartoonGAN`)."""
    return FastCartoonGAN(model, dtype).eval()
