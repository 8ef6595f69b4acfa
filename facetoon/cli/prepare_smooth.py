"""``facetoon prepare-smooth STYLE_DIR OUT_DIR``: edge-smoothed copies of anime style images.

Runs :func:`facetoon.data.smoothing.smooth_directory`: Canny edges, dilated, Gaussian blur at
edge pixels only; parallel over processes; files already done are skipped; atomic writes.
``--size`` should be the training ``img_size`` (as in the official AnimeGAN scripts): smoothing
made at a larger size mostly vanishes when training downsizes the copies.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "prepare-smooth", help="make the edge-smoothed copies of anime style images (AnimeGAN data)",
        description="Write an edge-smoothed copy of every image of STYLE_DIR into OUT_DIR (same file "
        "names): Canny edges, dilated, Gaussian-blurred at the edge pixels only. Give --size the training "
        "img_size (e.g. --size 256), as the official AnimeGAN scripts do. Files already done (same "
        "style image, same settings) are skipped, so an interrupted run can be restarted.",
    )
    p.add_argument("style_dir", metavar="STYLE_DIR",
                   help="folder of anime style images (e.g. data/Hayao/style)")
    p.add_argument("out_dir", metavar="OUT_DIR", help="output folder (e.g. data/Hayao/smooth)")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    p.add_argument("--size", type=int, default=None,
                   help="resize first so that the short side is SIZE px; use the training img_size, "
                   "as the official scripts do (default: keep the source size, whose smoothing mostly "
                   "vanishes when training downsizes the copies)")
    p.add_argument("--kernel-size", type=int, default=5, help="dilation and Gaussian kernel size (default 5)")
    p.add_argument("--overwrite", action="store_true", help="redo files that already exist")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import logging
    from pathlib import Path

    from .._fileutil import not_a_folder, not_a_folder_reason
    from ..data.smoothing import smooth_directory
    from ..errors import ConfigError, DataError, OutputError

    # the OUT_DIR blocker named as the command line names it (smooth_directory checks its settings
    # before any work too; their messages get the option's name below)
    blocker = not_a_folder(Path(args.out_dir))
    if blocker is not None:
        raise OutputError("OUT_DIR is a file, not a folder" if blocker == Path(args.out_dir)
                          else f"OUT_DIR cannot be made: {not_a_folder_reason(blocker)}", path=args.out_dir)
    try:
        report = smooth_directory(args.style_dir, args.out_dir, workers=args.workers, size=args.size,
                                  kernel_size=args.kernel_size, overwrite=args.overwrite)
    except ConfigError as exc:
        name = next((k for k in ("kernel_size", "workers", "size") if exc.reason.startswith(f"{k} must")), None)
        if name is None:
            raise
        raise ConfigError(f"--{name.replace('_', '-')}{exc.reason[len(name):]}", path=exc.path) from None
    log = logging.getLogger("facetoon")
    log.info("smooth: %d written, %d already done, %d failed -> %s", len(report.written),
             len(report.skipped), len(report.failed), args.out_dir)
    if report.failed:
        first, why = next(iter(report.failed.items()))
        raise DataError(f"{len(report.failed)} image(s) could not be smoothed, e.g. {first}: {why}")
    return 0
