"""Exponential moving average (EMA) of a network's weights, for evaluation and export.

GAN generators trained with batch 1 move a lot from one step to the next (colour casts come and
go, textures flicker). The average ``w_ema <- d * w_ema + (1 - d) * w`` over the last
~``1 / (1 - decay)`` steps is a steadier generator. ``d = min(decay, (1 + n) / (10 + n))``
after ``n`` updates (the warm-up of TensorFlow's ``ExponentialMovingAverage(num_updates=...)``),
so that an average started at step 0 is not dominated by the first, untrained weights. It
changes no training update: the networks, losses and optimisers train exactly as without it;
only validation, sample grids and exported weights use the average. Neither U-GAT-IT nor
AnimeGAN uses one (``ema_decay = 0``, the papers' setting, is the default), and our U-GAT-IT
configs leave it off too: on our face model the average scored worse than the trained weights (see
the header of ``configs/ugatit_selfie2anime_cpu.toml``); the scene model's
``configs/animegan_anime_cpu_distil.toml`` uses 0.999.

A thin wrapper of :class:`torch.optim.swa_utils.AveragedModel` (it keeps the copy and the update
count) with that warmed-up EMA as its averaging function (``torch._foreach_lerp_``, as torch's own
``get_ema_multi_avg_fn``). Buffers are copied from the source, not averaged.
"""

from __future__ import annotations

import logging
from typing import Any, Union

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

from ..errors import ConfigError

__all__ = ["WeightAverage", "ema_factor"]

log = logging.getLogger(__name__)

TensorList = Union[tuple[Tensor, ...], list[Tensor]]  # what AveragedModel passes its averaging function


def ema_factor(decay: float, updates: int) -> float:
    """The weight of the old average in the update after ``updates`` updates: ``min(decay, (1+n)/(10+n))``."""
    return min(decay, (1.0 + updates) / (10.0 + updates))


class WeightAverage:
    """An EMA copy of ``source``: parameters averaged, buffers copied.

    ``module`` is the averaged network, same class, device, dtype and memory format as
    ``source``, never trained. Until the first :meth:`update` (or after :meth:`restart`) it is
    not an average yet; the first update copies ``source``.
    """

    def __init__(self, source: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ConfigError(f"ema_decay must be in (0, 1), got {decay}")
        self.decay = decay

        @torch.no_grad()
        def average(averaged: TensorList, current: TensorList, n_averaged: Tensor | int) -> None:
            torch._foreach_lerp_(averaged, current, 1.0 - ema_factor(decay, int(n_averaged)))

        self._avg = AveragedModel(source, multi_avg_fn=average, use_buffers=False)
        self._avg.requires_grad_(False)

    @property
    def module(self) -> nn.Module:
        return self._avg.module

    @property
    def updates(self) -> int:
        """How many updates the average holds (0: not started)."""
        return int(self._avg.n_averaged)

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

    def mark_started(self, updates: int) -> None:
        """Declare ``module``'s weights, loaded from elsewhere, to be an average of ``updates`` (>= 1) updates."""
        self._avg.n_averaged.fill_(max(1, int(updates)))

    def state_dict(self) -> dict[str, Any]:
        """The averaged weights (``module.*``), the update count and the decay they were made with."""
        return {**self._avg.state_dict(), "decay": self.decay}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        state = dict(state)
        decay = state.pop("decay", None)
        if decay is not None and float(decay) != self.decay:
            log.warning("the weight average was kept with decay %g; it continues with %g", float(decay), self.decay)
        self._avg.load_state_dict(state)
