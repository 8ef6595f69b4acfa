"""Instance-Layer normalisation layers of U-GAT-IT (Kim et al., ICLR 2020).

For a feature map ``x`` of shape ``(B, C, H, W)``:

* instance-normalised ``x_I = (x - mean_HW) / sqrt(var_HW + eps)`` (statistics per sample and channel),
* layer-normalised ``x_L = (x - mean_CHW) / sqrt(var_CHW + eps)`` (statistics per sample),
* mixed ``rho * x_I + (1 - rho) * x_L`` with a learnable per-channel ``rho`` in [0, 1],
* then an affine ``gamma * . + beta``: learnable parameters in :class:`ILN`, given per sample by
  the generator's MLP in :class:`AdaILN`.

Variances are unbiased (divide by n - 1), as in the reference implementation of the paper.
``rho`` is kept in [0, 1] by :func:`clip_rho`, called after every generator update.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["instance_layer_norm", "AdaILN", "ILN", "clip_rho"]


def instance_layer_norm(x: Tensor, rho: Tensor, eps: float = 1e-5) -> Tensor:
    """Mix instance and layer normalisation of ``x``.

    Args:
        x: ``(B, C, H, W)`` features.
        rho: ``(1, C, 1, 1)`` (or broadcastable) weight of the instance-normalised part, in [0, 1].
        eps: added to the variances.

    Returns:
        ``(B, C, H, W)``: ``rho * IN(x) + (1 - rho) * LN(x)``, without affine transform.
    """
    if x.dim() != 4:
        raise ValueError(f"instance_layer_norm expects (B, C, H, W), got shape {tuple(x.shape)}")
    # statistics in (at least) float32 even under bf16 autocast: var of bf16 activations is too
    # coarse; float64 inputs stay float64
    xf = x if x.dtype in (torch.float32, torch.float64) else x.float()
    in_var, in_mean = torch.var_mean(xf, dim=(2, 3), keepdim=True)
    ln_var, ln_mean = torch.var_mean(xf, dim=(1, 2, 3), keepdim=True)
    out_in = (xf - in_mean) * torch.rsqrt(in_var + eps)
    out_ln = (xf - ln_mean) * torch.rsqrt(ln_var + eps)
    rho = rho.to(xf.dtype)
    return (rho * out_in + (1.0 - rho) * out_ln).to(x.dtype)


class AdaILN(nn.Module):
    """Adaptive Instance-Layer Normalisation: ILN with per-sample ``gamma``/``beta``.

    ``forward(x (B, C, H, W), gamma (B, C), beta (B, C)) -> (B, C, H, W)``.
    ``rho`` starts at 0.9 (mostly instance normalisation), as in the reference implementation.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, rho_init: float = 0.9) -> None:
        super().__init__()
        self.eps = eps
        self.rho = nn.Parameter(torch.full((1, num_features, 1, 1), rho_init))

    def forward(self, x: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
        out = instance_layer_norm(x, self.rho, self.eps)
        return out * gamma[:, :, None, None] + beta[:, :, None, None]


class ILN(nn.Module):
    """Instance-Layer Normalisation with learnable ``gamma``/``beta`` (used in the up-sampling path).

    ``rho`` starts at 0 (layer normalisation), ``gamma`` at 1 and ``beta`` at 0.
    """

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.rho = nn.Parameter(torch.zeros(1, num_features, 1, 1))
        self.gamma = nn.Parameter(torch.ones(1, num_features, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, num_features, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return instance_layer_norm(x, self.rho, self.eps) * self.gamma + self.beta


@torch.no_grad()
def clip_rho(module: nn.Module, low: float = 0.0, high: float = 1.0) -> None:
    """Clamp the ``rho`` of every :class:`AdaILN`/:class:`ILN` inside ``module`` to [low, high]."""
    for m in module.modules():
        if isinstance(m, (AdaILN, ILN)):
            m.rho.clamp_(low, high)
