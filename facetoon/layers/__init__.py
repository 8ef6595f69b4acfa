"""Small reusable network layers (normalisations, blocks, initialisation) shared by facetoon's models."""

from .blocks import ConvNormAct, ResnetAdaILNBlock, ResnetBlock
from .init import normal_init_
from .norms import ILN, AdaILN, clip_rho, instance_layer_norm

__all__ = [
    "ConvNormAct",
    "ResnetBlock",
    "ResnetAdaILNBlock",
    "AdaILN",
    "ILN",
    "clip_rho",
    "instance_layer_norm",
    "normal_init_",
]
