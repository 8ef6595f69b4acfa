"""U-GAT-IT losses (Kim et al., ICLR 2020, section 2.2), as pure functions.

Every discriminator returns ``(patch_logits, cam_logits, heatmap)``; the adversarial terms are
least-squares GAN losses on both the patch logits and the CAM logits. With
:class:`UGATITLossWeights` at the paper's values (adversarial 1, cycle 10, identity 10,
CAM 1000) the generator objective of one direction is

``adv * sum_D [LS(D(fake)) + LS(D_cam(fake))] + cycle * L1(cyc, x) + identity * L1(idt, x)
+ cam * [BCE(eta_s(x_src), 1) + BCE(eta_s(x_tgt), 0)]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "UGATITLossWeights",
    "lsgan_loss",
    "discriminator_adversarial_loss",
    "generator_adversarial_loss",
    "generator_cam_loss",
]

DiscOutput = tuple[Tensor, Tensor, Tensor]  # (patch logits, CAM logits, heatmap)


@dataclass(frozen=True)
class UGATITLossWeights:
    adv: float = 1.0
    cycle: float = 10.0
    identity: float = 10.0
    cam: float = 1000.0


def lsgan_loss(pred: Tensor, target: float) -> Tensor:
    """Least-squares GAN loss: mean of ``(pred - target)^2`` (computed in float32)."""
    return F.mse_loss(pred.float(), torch.full_like(pred, target, dtype=torch.float32))


def discriminator_adversarial_loss(real: Sequence[DiscOutput], fake: Sequence[DiscOutput]) -> Tensor:
    """Sum over discriminators of LS(real patch, 1) + LS(fake patch, 0) + the same on CAM logits."""
    total = torch.zeros((), device=real[0][0].device)
    for (r_logit, r_cam, _), (f_logit, f_cam, _) in zip(real, fake, strict=True):
        total = total + lsgan_loss(r_logit, 1.0) + lsgan_loss(f_logit, 0.0)
        total = total + lsgan_loss(r_cam, 1.0) + lsgan_loss(f_cam, 0.0)
    return total


def generator_adversarial_loss(fake: Sequence[DiscOutput]) -> Tensor:
    """Sum over discriminators of LS(fake patch, 1) + LS(fake CAM, 1)."""
    total = torch.zeros((), device=fake[0][0].device)
    for logit, cam, _ in fake:
        total = total + lsgan_loss(logit, 1.0) + lsgan_loss(cam, 1.0)
    return total


def generator_cam_loss(cam_on_source: Tensor, cam_on_target: Tensor) -> Tensor:
    """The generator's CAM loss for one generator ``G: S -> T``.

    ``cam_on_source``: ``(B, 2)`` CAM logits of ``G`` on images of its source domain (the
    translation; label 1). ``cam_on_target``: on images of its target domain (the identity
    mapping; label 0). Binary cross-entropy with logits, in float32.
    """
    s, t = cam_on_source.float(), cam_on_target.float()
    return (F.binary_cross_entropy_with_logits(s, torch.ones_like(s))
            + F.binary_cross_entropy_with_logits(t, torch.zeros_like(t)))
