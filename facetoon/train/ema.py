"""Exponential moving average (EMA) of a network's weights, for evaluation and export.

GAN generators trained with batch 1 move a lot from one step to the next (colour casts come and
go, textures flicker). The average ``w_ema <- decay * w_ema + (1 - decay) * w`` over the last
~``1 / (1 - decay)`` steps is a steadier generator. It changes no training update: the networks,
losses and optimisers train exactly as without it; only validation, sample grids and exported
weights use the average. Neither U-GAT-IT nor AnimeGAN uses one (``ema_decay = 0``, the papers'
setting); our CPU configs turn it on.

A thin wrapper of :class:`torch.optim.swa_utils.AveragedModel` with its EMA averaging function.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

__all__ = ["WeightAverage"]


class WeightAverage:
    """An EMA copy of ``source`` (parameters and buffers).

    ``module`` is the averaged network, same class, device, dtype and memory format as
    ``source``, never trained. Until the first :meth:`update` (or after :meth:`restart`) it is
    not an average yet; the first update copies ``source``.
    """

    def __init__(self, source: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1), got {decay}")
        self.decay = decay
        self._avg = AveragedModel(source, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
        self._avg.requires_grad_(False)

    @property
    def module(self) -> nn.Module:
        return self._avg.module

    @property
    def started(self) -> bool:
        """Whether the average holds weights of ``source`` (at least one update or a loaded state)."""
        return int(self._avg.n_averaged) > 0

    @torch.no_grad()
    def update(self, source: nn.Module) -> None:
        """Fold ``source``'s current weights into the average (the first call copies them)."""
        self._avg.update_parameters(source)

    def restart(self) -> None:
        """Forget the average: the next :meth:`update` copies the source again."""
        self._avg.n_averaged.zero_()

    def mark_started(self) -> None:
        """Declare ``module``'s weights, loaded from elsewhere, to be the running average."""
        if not self.started:
            self._avg.n_averaged.fill_(1)

    def state_dict(self) -> dict[str, Any]:
        return self._avg.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._avg.load_state_dict(state)
