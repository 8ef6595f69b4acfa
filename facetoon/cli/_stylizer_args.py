"""Model and stylization options shared by ``facetoon stylize`` and ``facetoon video``.

Not a subcommand (the leading underscore keeps it out of command discovery).
"""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import ConfigError, WeightsError

__all__ = ["add_stylizer_arguments", "stylizer_options", "make_stylizer", "command_line_error"]


def add_stylizer_arguments(p: argparse.ArgumentParser, *, require_face: bool = False) -> None:
    """Add the ``models`` and ``stylization`` argument groups to ``p``."""
    m = p.add_argument_group("models")
    m.add_argument("--face-weights", metavar="PATH", default=None,
                   help="face model: a weights folder (config.json + model.safetensors, or an export "
                        "folder with a2b/) or a named model (default: ugatit-selfie2anime)")
    m.add_argument("--no-faces", action="store_true",
                   help="no face model: the scene model alone stylizes the whole image (no face detection)")
    m.add_argument("--background", choices=("animegan", "cartoongan", "none"), default="animegan",
                   help="scene model: animegan (default, shipped), cartoongan (needs --background-weights) "
                        "or none (keep the photo around the faces)")
    m.add_argument("--background-weights", metavar="PATH", default=None,
                   help="weights of the scene model: a facetoon weights folder (config.json + "
                        "model.safetensors, as facetoon convert writes) or facetoon export output folder; for "
                        "animegan also an AnimeGANv2 state dict file of the widely used PyTorch port (.pt/.pth), "
                        "for cartoongan the official <Style>_net_G_float.pth (a training run or checkpoint: "
                        "export it first, facetoon export animegan RUN OUT)")
    m.add_argument("--background-scale", type=float, default=None, metavar="S",
                   help="speed mode: run the scene model at S x the image size (0 < S <= 1; about 1/S^2 "
                        "faster) and restore edges with a guided filter (default 1: full resolution)")
    m.add_argument("--pipeline", metavar="PATH", default=None,
                   help="a pipeline folder with pipeline.json (see Stylizer.from_pretrained); "
                        "the options above and below override it")
    o = p.add_argument_group("stylization")
    o.add_argument("--strength", type=float, default=None, help="style strength 0..1 (default 1)")
    o.add_argument("--max-faces", type=int, default=None, help="stylize at most N faces (the largest)")
    o.add_argument("--face-size", type=int, default=None,
                   help="side of the face crops (default: the face model's training size)")
    o.add_argument("--min-face-size", type=float, default=None,
                   help="smallest face to find, in pixels (also makes small faces findable)")
    o.add_argument("--detector", default=None, help="face detector backend: dlib (default), dlib-cnn, fan")
    o.add_argument("--blend", choices=("soft", "poisson"), default=None, help="blend mode (default soft)")
    o.add_argument("--no-harmonize", action="store_true",
                   help="keep the face model's colours (no matching to the scene)")
    if require_face:
        o.add_argument("--require-face", action="store_true", help="count photos without a face as failures")
    # default None: with --pipeline, the file's own device and precision stay unless given here
    o.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:N")
    o.add_argument("--precision", choices=("auto", "fp32", "fast"), default=None,
                   help="fp32, fast (bf16/fp16 where supported) or auto (default)")


def stylizer_options(args: argparse.Namespace) -> dict[str, Any]:
    """Constructor arguments of the options given (with --pipeline, these override the file's);
    raises ConfigError naming the option when a value is invalid (no model is loaded)."""
    opts: dict[str, Any] = {k: getattr(args, k) for k in ("device", "precision") if getattr(args, k) is not None}
    if args.no_faces:
        clash = "--face-weights" if args.face_weights is not None else \
            "--require-face" if getattr(args, "require_face", False) else \
            "--background none (nothing would be stylized)" if args.background == "none" else None
        if clash:
            raise ConfigError(f"--no-faces and {clash} exclude each other")
        opts["face_model"] = None
    elif args.face_weights is not None:
        opts["face_model"] = args.face_weights
    if args.background != "animegan" or args.background_weights is not None or args.pipeline is None:
        opts["background_model"] = None if args.background == "none" else args.background
        opts["background_weights"] = args.background_weights
    for key in ("strength", "max_faces", "face_size", "detector", "blend"):
        value = getattr(args, key)
        if value is not None:
            opts[key] = value
    # the command's own process stylizes photo after photo (or frame after frame): keep freed memory
    # mapped for reuse (facetoon.background.retain_freed_memory), about 1.5-2x faster at 1080p;
    # Stylizer.from_pretrained merges these keys into a pipeline file's own background_options
    opts["background_options"] = {"retain_memory": True}
    if args.background_scale is not None:
        if not 0.0 < args.background_scale <= 1.0:
            raise ConfigError(f"--background-scale must be in (0, 1], got {args.background_scale}")
        opts["background_options"]["internal_scale"] = args.background_scale
    if args.no_harmonize:
        opts["harmonize"] = False
    if getattr(args, "require_face", False):
        opts["require_face"] = True
    if args.min_face_size is not None:
        if not args.min_face_size > 0:
            raise ConfigError(f"--min-face-size must be > 0 (pixels), got {args.min_face_size:g}")
        opts["detector_options"] = {"min_size": args.min_face_size}
    return opts


def make_stylizer(args: argparse.Namespace, opts: dict[str, Any] | None = None) -> Any:
    """The :class:`facetoon.Stylizer` the parsed options describe (loads the models); ``opts``:
    :func:`stylizer_options` of ``args`` if already made."""
    from ..pipeline import Stylizer

    if opts is None:
        opts = stylizer_options(args)
    return Stylizer.from_pretrained(args.pipeline, **opts) if args.pipeline else Stylizer(**opts)


def command_line_error(exc: WeightsError) -> WeightsError:
    """The WeightsError ``exc`` of loading the models as the command line says it: its
    ``cli_reason`` (set by facetoon.pipeline.loading: the same message naming the options, e.g.
    ``--background cartoongan`` for ``background_model='cartoongan'``) when it has one, else its
    message with the options that choose the models."""
    cli = getattr(exc, "cli_reason", None)
    if cli is not None:
        return WeightsError(cli, path=exc.path)
    return WeightsError(f"{exc} [command line: --face-weights PATH, --background-weights PATH, "
                        "--background none, --pipeline PATH]")
