"""Load the official CartoonGAN release (``<Style>_net_G_float.pth``) into :mod:`facetoon.models.cartoongan`.

The release is a plain ``state_dict`` of 94 float32 tensors. Name map (official -> facetoon):

======================  =====================  ==========================================
official                facetoon               layer
======================  =====================  ==========================================
conv01_1                stem_conv              7x7 conv 3->64 (reflection pad 3)
in01_1.scale/shift      stem_norm.scale/shift  instance norm
conv02_1, conv02_2      down1.conv1, .conv2    3x3/2 conv 64->128, 3x3 conv
in02_1                  down1.norm
conv03_1, conv03_2      down2.conv1, .conv2    3x3/2 conv 128->256, 3x3 conv
in03_1                  down2.norm
convNN_1, convNN_2      res.{NN-4}.conv1/2     residual blocks, NN = 04 .. 11
inNN_1, inNN_2          res.{NN-4}.norm1/2
deconv01_1, deconv01_2  up1.deconv, up1.conv   3x3/2 transposed conv 256->128, 3x3 conv
in12_1                  up1.norm
deconv02_1, deconv02_2  up2.deconv, up2.conv   128->64
in13_1                  up2.norm
deconv03_1              out_conv               7x7 conv 64->3 (reflection pad 3)
======================  =====================  ==========================================

Any other name, a missing tensor or a shape that differs raises :class:`WeightsError`.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import torch

from ..models.cartoongan import Generator
from .common import load_state_dict_file, load_strict, remap_state_dict, sha256_file

__all__ = ["official_to_facetoon_key", "facetoon_to_official_key", "load_official_cartoongan",
           "convert_cartoongan", "OFFICIAL_STYLES"]

log = logging.getLogger(__name__)

OFFICIAL_STYLES = ("Hayao", "Hosoda", "Paprika", "Shinkai")

_FIXED = {
    "conv01_1": "stem_conv",
    "in01_1": "stem_norm",
    "conv02_1": "down1.conv1",
    "conv02_2": "down1.conv2",
    "in02_1": "down1.norm",
    "conv03_1": "down2.conv1",
    "conv03_2": "down2.conv2",
    "in03_1": "down2.norm",
    "deconv01_1": "up1.deconv",
    "deconv01_2": "up1.conv",
    "in12_1": "up1.norm",
    "deconv02_1": "up2.deconv",
    "deconv02_2": "up2.conv",
    "in13_1": "up2.norm",
    "deconv03_1": "out_conv",
}
_PARAMS = {"conv": ("weight", "bias"), "in": ("scale", "shift")}
_RES = re.compile(r"^(conv|in)(0[4-9]|1[01])_([12])$")


def official_to_facetoon_key(key: str) -> str | None:
    """``"conv05_2.weight"`` -> ``"res.1.conv2.weight"``; ``None`` for a name not in the release."""
    layer, _, param = key.partition(".")
    kind = "in" if layer.startswith("in") else "conv"
    if param not in _PARAMS[kind]:
        return None
    if layer in _FIXED:
        return f"{_FIXED[layer]}.{param}"
    m = _RES.match(layer)
    if m is None:
        return None
    block = int(m.group(2)) - 4
    name = ("norm" if m.group(1) == "in" else "conv") + m.group(3)
    return f"res.{block}.{name}.{param}"


def facetoon_to_official_key(key: str) -> str:
    """Inverse of :func:`official_to_facetoon_key` (for messages and for exporting)."""
    module, _, param = key.rpartition(".")
    for official, ours in _FIXED.items():
        if module == ours:
            return f"{official}.{param}"
    m = re.match(r"^res\.(\d+)\.(conv|norm)([12])$", module)
    if m:
        kind = "in" if m.group(2) == "norm" else "conv"
        return f"{kind}{int(m.group(1)) + 4:02d}_{m.group(3)}.{param}"
    return key


def load_official_cartoongan(path: str | os.PathLike[str]) -> Generator:
    """Build a :class:`~facetoon.models.cartoongan.Generator` from an official release file.

    The returned model (eval mode, float32, CPU) takes and returns RGB in [-1, 1]; it flips to the
    release's BGR internally. Raises :class:`WeightsError` on a missing, truncated or mismatching file.
    """
    p = Path(path)
    state = load_state_dict_file(p)
    ours = remap_state_dict(state, official_to_facetoon_key, path=p)
    model = Generator(n_res_blocks=8, bgr_weights=True)
    load_strict(model, ours, path=p, describe=facetoon_to_official_key)
    log.debug("loaded CartoonGAN release %s (%d tensors)", p, len(state))
    return model.eval()


def _style_from_name(path: Path) -> str | None:
    for style in OFFICIAL_STYLES:
        if path.name.lower().startswith(style.lower()):
            return style
    return None


def convert_cartoongan(
    src: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    dtype: torch.dtype | None = None,
) -> Path:
    """Convert an official release file to a facetoon weights folder (config.json + model.safetensors)."""
    from ..models.serialization import save_pretrained

    p = Path(src)
    model = load_official_cartoongan(p)
    meta = {
        "source": "official CartoonGAN release (Chen, Lai, Liu, CVPR 2018), MIT licence",
        "source_file": p.name,
        "source_sha256": sha256_file(p),
        "style": _style_from_name(p),
        "input": "RGB in [-1, 1] (BGR handled inside the model)",
    }
    return save_pretrained(model, out_dir, dtype=dtype, meta=meta)
