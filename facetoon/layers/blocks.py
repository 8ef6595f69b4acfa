"""Convolution blocks with reflection padding, as used by U-GAT-IT's ResNet generator.

All blocks take and return ``(B, C, H, W)`` feature maps.
"""

from __future__ import annotations

from typing import Callable

from torch import Tensor, nn

from .norms import AdaILN

__all__ = ["ConvNormAct", "ResnetBlock", "ResnetAdaILNBlock"]


class ConvNormAct(nn.Sequential):
    """Reflection pad -> conv (no bias) -> norm -> activation.

    ``padding`` is the reflection padding; with ``kernel_size=k`` and ``stride=1``, ``(k - 1) // 2``
    keeps the size.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        norm_layer: Callable[[int], nn.Module] = nn.InstanceNorm2d,
        act_layer: Callable[[], nn.Module] | None = nn.ReLU,
        bias: bool = False,
    ) -> None:
        layers: list[nn.Module] = []
        if padding:
            layers.append(nn.ReflectionPad2d(padding))
        layers.append(nn.Conv2d(in_channels, out_channels, kernel_size, stride, 0, bias=bias))
        layers.append(norm_layer(out_channels))
        if act_layer is not None:
            layers.append(act_layer())
        super().__init__(*layers)


class ResnetBlock(nn.Module):
    """Residual block: two reflection-padded 3x3 convs with instance norm, ReLU between."""

    def __init__(self, dim: int, bias: bool = False) -> None:
        super().__init__()
        self.body = nn.Sequential(
            ConvNormAct(dim, dim, 3, padding=1, bias=bias),
            ConvNormAct(dim, dim, 3, padding=1, bias=bias, act_layer=None),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResnetAdaILNBlock(nn.Module):
    """Residual block whose two normalisations are :class:`AdaILN` driven by ``gamma``/``beta``.

    ``forward(x (B, C, H, W), gamma (B, C), beta (B, C)) -> (B, C, H, W)``.
    """

    def __init__(self, dim: int, bias: bool = False) -> None:
        super().__init__()
        self.pad1 = nn.ReflectionPad2d(1)
        self.conv1 = nn.Conv2d(dim, dim, 3, 1, 0, bias=bias)
        self.norm1 = AdaILN(dim)
        self.relu1 = nn.ReLU(inplace=True)
        self.pad2 = nn.ReflectionPad2d(1)
        self.conv2 = nn.Conv2d(dim, dim, 3, 1, 0, bias=bias)
        self.norm2 = AdaILN(dim)

    def forward(self, x: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
        out = self.relu1(self.norm1(self.conv1(self.pad1(x)), gamma, beta))
        out = self.norm2(self.conv2(self.pad2(out)), gamma, beta)
        return x + out
