"""Weight initialisation of convolutions and linear layers.

The U-GAT-IT paper (and its TensorFlow release) initialises every convolution and fully connected
weight from a zero-centred normal distribution with standard deviation 0.02 (as DCGAN) and every
bias with 0; its authors' PyTorch release keeps PyTorch's default (Kaiming-uniform) initialisation.
:func:`normal_init_` applies the former to a built network, in place. (AnimeGAN's networks have
their own initialisation, in :mod:`facetoon.models.animegan` and :mod:`facetoon.models.discriminators`.)
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["normal_init_"]

_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear)


@torch.no_grad()
def normal_init_(module: nn.Module, std: float = 0.02) -> int:
    """Weights of every conv / linear layer in ``module`` ~ N(0, ``std``), their biases 0.

    Normalisation layers (instance, layer, ILN/AdaILN ``rho``/``gamma``/``beta``) keep their own
    initial values. A spectrally normalised layer (``torch.nn.utils.parametrizations.spectral_norm``)
    gets its unnormalised weight (``parametrizations.weight.original``) drawn; its power-iteration
    vectors then adapt over the next training forwards, as in the reference implementations, where
    they start random. Draws from torch's global generator (seed it for reproducible weights).

    Returns:
        the number of layers initialised.
    """
    if std <= 0:
        raise ValueError(f"std must be > 0, got {std}")
    count = 0
    for layer in module.modules():
        if not isinstance(layer, _LAYERS):
            continue
        parametrizations = getattr(layer, "parametrizations", None)
        if parametrizations is not None and "weight" in parametrizations:
            weight = parametrizations["weight"].original
        else:
            weight = layer.weight
        weight.normal_(0.0, std)
        if layer.bias is not None:
            layer.bias.zero_()
        count += 1
    return count
