"""``facetoon convert FORMAT IN OUT_DIR``: import foreign checkpoints as facetoon weights folders.

* ``cartoongan``: an official CartoonGAN release file (``Hayao_net_G_float.pth`` etc.);
* ``animegan-v2``: an AnimeGANv2 generator state dict of the widely used PyTorch port.

The output folder holds ``config.json`` + ``model.safetensors`` and loads with
``facetoon.load_pretrained(OUT_DIR)``.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "run"]

FORMATS = ("cartoongan", "animegan-v2")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "convert",
        help="convert a foreign checkpoint (CartoonGAN release, AnimeGANv2 port) to facetoon weights",
        description="Convert a foreign generator checkpoint into a facetoon weights folder "
        "(config.json + model.safetensors). The file is read with torch.load(weights_only=True); "
        "any unknown, missing or wrongly shaped tensor is an error.",
    )
    p.add_argument("format", choices=FORMATS, metavar="FORMAT", help=f"one of: {', '.join(FORMATS)}")
    p.add_argument("src", metavar="IN", help="the foreign .pth/.pt file")
    p.add_argument("out_dir", metavar="OUT_DIR", help="output weights folder")
    p.add_argument("--fp16", action="store_true", help="store the weights in float16 (half the size)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import logging

    import torch

    dtype = torch.float16 if args.fp16 else None
    if args.format == "cartoongan":
        from ..convert.cartoongan import convert_cartoongan

        out = convert_cartoongan(args.src, args.out_dir, dtype=dtype)
    else:
        from ..convert.animegan import convert_animegan_v2_port

        out = convert_animegan_v2_port(args.src, args.out_dir, dtype=dtype)
    logging.getLogger("facetoon").info("wrote %s (config.json + model.safetensors)", out)
    print(out)
    return 0
