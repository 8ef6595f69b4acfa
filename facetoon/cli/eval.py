"""``facetoon eval``: quality metrics on folders of images.

``facetoon eval kid A_DIR B_DIR`` prints ``KIDx100 = m ± s (n_a, n_b images)``: the kernel
inception distance on pooled MobileNetV2 features (see :mod:`facetoon.metrics.kid`).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["register", "run_kid"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "eval", help="measure quality metrics (KID) between image folders",
        description="Measure quality metrics between folders of images.",
    )
    metrics = parser.add_subparsers(dest="metric", metavar="METRIC")
    kid = metrics.add_parser(
        "kid", help="KIDx100 on pooled MobileNetV2 features",
        description="Kernel inception distance x100 between two image folders, on the pooled 1280-d "
        "features of the ImageNet MobileNetV2 (224x224 bicubic uint8 input, cubic polynomial kernel, "
        "unbiased MMD^2, mean ± std over random subsets).",
    )
    kid.add_argument("dir_a", metavar="A_DIR", help="first image folder (e.g. stylised selfies)")
    kid.add_argument("dir_b", metavar="B_DIR", help="second image folder (e.g. anime faces)")
    kid.add_argument("--subsets", type=int, default=100, help="number of random subsets (default 100)")
    kid.add_argument("--subset-size", type=int, default=None,
                     help="images per subset (default min(1000, n_a, n_b))")
    kid.add_argument("--limit", type=int, default=None,
                     help="use only the first N images of each folder (sorted by name)")
    kid.add_argument("--backend", choices=("litert", "torch"), default="litert",
                     help="feature network: the quantised TFLite reference (litert, default) "
                     "or the float PyTorch port (torch)")
    kid.add_argument("--seed", type=int, default=0, help="seed of the subset sampling (default 0)")
    kid.add_argument("--model", default=None,
                     help="path of mobilenet_v2_1.0_224_quant.tflite (default: $FACETOON_MOBILENET_V2 "
                     "or ../shared/models/mobilenet_v2/)")
    kid.add_argument("--batch-size", type=int, default=32, help="images per forward pass (torch backend)")
    kid.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    kid.add_argument("--json", action="store_true", help="print the result as one JSON object")
    kid.set_defaults(func=run_kid)
    parser.set_defaults(func=lambda args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def run_kid(args: argparse.Namespace) -> int:
    """Handler of ``facetoon eval kid``; returns the exit status."""
    from ..errors import ConfigError
    from ..metrics.kid import kid_between_folders

    for flag, value, low in (("--subsets", args.subsets, 1), ("--limit", args.limit, 2),
                             ("--batch-size", args.batch_size, 1), ("--threads", args.threads, 1)):
        if value is not None and value < low:
            raise ConfigError(f"{flag} must be at least {low}, got {value}")
    if args.subset_size is not None and args.subset_size < 2:
        raise ConfigError(f"--subset-size must be at least 2, got {args.subset_size}")
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    report = kid_between_folders(
        args.dir_a, args.dir_b,
        n_subsets=args.subsets, subset_size=args.subset_size, limit=args.limit,
        backend=args.backend, seed=args.seed, model_path=args.model,
        batch_size=args.batch_size, progress=sys.stderr.isatty(),
    )
    if args.json:
        print(json.dumps(report.as_dict()))
    else:
        subsets = f"{report.n_subsets} subset{'' if report.n_subsets == 1 else 's'}"
        print(f"{report}  [{report.backend}, {subsets} of {report.subset_size}, "
              f"{report.seconds:.1f} s]")
    return 0
