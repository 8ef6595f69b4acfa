"""Adam as the papers use it, with PyTorch's fused implementation where it runs.

``torch.optim.Adam(fused=True)`` computes the same update as the default for-loop implementation
(within float rounding; tested) in one kernel over all parameters instead of a Python loop over
them. It runs on CPU and CUDA float parameters; elsewhere the default implementation is used.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

__all__ = ["adam", "set_lr", "use_fused"]


def _fusable(params: Iterable[torch.Tensor]) -> bool:
    return all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)


def adam(params: Iterable[nn.Parameter], *, lr: float, betas: tuple[float, float],
         weight_decay: float = 0.0) -> torch.optim.Adam:
    """``torch.optim.Adam`` (L2 weight decay added to the gradient, as the official codes use),
    fused where the parameters allow it."""
    params = list(params)
    return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay,
                            fused=True if _fusable(params) else None)


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group of ``opt`` (the trainers' schedules, per step)."""
    for group in opt.param_groups:
        group["lr"] = lr


def use_fused(opt: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """After ``opt.load_state_dict(...)``: keep the fused implementation (a checkpoint written by a
    non-fused optimiser carries ``fused=None`` in its parameter groups)."""
    for group in opt.param_groups:
        if isinstance(opt, torch.optim.Adam) and _fusable(group["params"]):
            group["fused"], group["foreach"] = True, None
            for p in group["params"]:  # fused kernels want the step count as a float tensor on p's device
                state = opt.state.get(p)
                if state and "step" in state and torch.is_tensor(state["step"]):
                    state["step"] = state["step"].to(device=p.device, dtype=torch.float32)
    return opt
