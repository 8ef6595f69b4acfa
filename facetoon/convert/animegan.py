"""Load AnimeGANv2 generators saved by the widely used PyTorch port into :mod:`facetoon.models.animegan`.

The port's ``state_dict`` names (``block_a`` ... ``out_layer``) map one to one onto
``Generator(version="v2")``:

===========================================  ======================================
port                                         facetoon
===========================================  ======================================
``block_a.{i}.1.weight``                     ``net.stem.{i}.conv.weight``
``block_a.{i}.2.{weight,bias}``              ``net.stem.{i}.norm.{weight,bias}``
``block_b.{i}.*``                            ``net.down.{i}.*`` (same pattern)
``block_c.0.*``, ``block_c.5.*``             ``net.middle.0.*``, ``net.middle.5.*``
``block_c.{1-4}.layers.0.1.weight``          ``net.middle.{i}.expand.conv.weight``
``block_c.{1-4}.layers.0.2.*``               ``net.middle.{i}.expand.norm.*``
``block_c.{1-4}.layers.1.1.{weight,bias}``   ``net.middle.{i}.depthwise.conv.*``
``block_c.{1-4}.layers.1.2.*``               ``net.middle.{i}.depthwise.norm.*``
``block_c.{1-4}.layers.2.weight``            ``net.middle.{i}.project.weight``
``block_c.{1-4}.layers.3.*``                 ``net.middle.{i}.project_norm.*``
``block_d.{i}.*``, ``block_e.{i}.*``         ``net.up1.{i}.*``, ``net.up2.{i}.*``
``out_layer.0.weight``                       ``net.out.weight``
===========================================  ======================================

Unknown names, missing tensors or wrong shapes raise :class:`WeightsError`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from ..models.animegan import Generator
from .common import load_state_dict_file, load_strict, remap_state_dict, sha256_file

__all__ = ["port_to_facetoon_key", "load_animegan_v2_port", "convert_animegan_v2_port"]

_BLOCKS = {"block_a": "stem", "block_b": "down", "block_c": "middle", "block_d": "up1", "block_e": "up2"}
_CNL = re.compile(r"^(block_[a-e])\.(\d+)\.([12])\.(weight|bias)$")
_IRB = re.compile(r"^block_c\.([1-4])\.layers\.(?:([01])\.([12])|([23]))\.(weight|bias)$")
_IRB_PART = {"0": "expand", "1": "depthwise"}


def port_to_facetoon_key(key: str) -> str | None:
    """``"block_c.2.layers.1.1.bias"`` -> ``"net.middle.2.depthwise.conv.bias"``; ``None`` if unknown."""
    if key == "out_layer.0.weight":
        return "net.out.weight"
    m = _IRB.match(key)
    if m:
        block, part, sub, tail, param = m.groups()
        if part is not None:
            return f"net.middle.{block}.{_IRB_PART[part]}.{'conv' if sub == '1' else 'norm'}.{param}"
        return f"net.middle.{block}.{'project' if tail == '2' else 'project_norm'}.{param}"
    m = _CNL.match(key)
    if m:
        block, idx, sub, param = m.groups()
        if block == "block_c" and idx not in ("0", "5"):
            return None
        return f"net.{_BLOCKS[block]}.{idx}.{'conv' if sub == '1' else 'norm'}.{param}"
    return None


def load_animegan_v2_port(path: str | os.PathLike[str]) -> Generator:
    """Build ``Generator("v2")`` from a port ``.pt``/``.pth`` state dict (eval mode, float32)."""
    p = Path(path)
    state = load_state_dict_file(p)
    model = Generator(version="v2", align_corners=True)
    load_strict(model, remap_state_dict(state, port_to_facetoon_key, path=p), path=p)
    return model.eval()


def convert_animegan_v2_port(src: str | os.PathLike[str], out_dir: str | os.PathLike[str], *,
                             dtype: torch.dtype | None = None) -> Path:
    """Convert a port state dict to a facetoon weights folder (config.json + model.safetensors)."""
    from ..models.serialization import save_pretrained

    p = Path(src)
    model = load_animegan_v2_port(p)
    meta = {"source": "AnimeGANv2 generator in the PyTorch port's state_dict layout",
            "source_file": p.name, "source_sha256": sha256_file(p)}
    return save_pretrained(model, out_dir, dtype=dtype, meta=meta)
