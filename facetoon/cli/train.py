"""``facetoon train ugatit|animegan --data DIR --out RUN_DIR [--config FILE] [--resume] [--set key=value ...]``.

Multi-GPU / multi-process: ``torchrun --nproc_per_node=N -m facetoon train ugatit ...``.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

log = logging.getLogger(__name__)

# model name -> (trainer module, config class, trainer class)
TRAINERS = {
    "ugatit": ("facetoon.train.ugatit", "UGATITConfig", "UGATITTrainer"),
    "animegan": ("facetoon.train.animegan", "AnimeGANConfig", "AnimeGANTrainer"),
}
# model name -> (what it trains, its --data layout, a --set example of its options)
_HELP = {
    "ugatit": ("U-GAT-IT (faces)", "trainA/ (photos) and trainB/ (anime), optionally testA/ and testB/ "
               "for the samples and validation", "lr=2e-4 light=true"),
    "animegan": ("AnimeGAN (scenes)", "train_photo/, STYLE/style/ and STYLE/smooth/ (facetoon prepare-smooth), "
                 "optionally val/ photos for the samples and validation", "g_lr=1e-5 loss_preset=v2-hayao"),
}


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a model (U-GAT-IT faces, AnimeGAN scenes)",
        description="Train a model from a config file plus key=value overrides. The resolved config "
                    "is saved as RUN_DIR/config.toml; checkpoints, logs and samples go to RUN_DIR. "
                    "See facetoon train MODEL --help for a model's data layout and options.",
    )
    models = p.add_subparsers(dest="model", metavar="MODEL", required=True, parser_class=type(p))
    for model in sorted(TRAINERS):
        what, layout, example = _HELP[model]
        sub = models.add_parser(model, help=f"train {what}", description=(
            f"Train {what} from a config file plus key=value overrides. The resolved config is saved as "
            "RUN_DIR/config.toml; checkpoints, logs and samples go to RUN_DIR."))
        _add_arguments(sub, layout, example)
    p.set_defaults(func=run)


def _add_arguments(p: argparse.ArgumentParser, layout: str, example: str) -> None:
    p.add_argument("--data", required=True, help=f"data folder: {layout}")
    p.add_argument("--out", required=True, help="run folder for checkpoints, logs, samples")
    p.add_argument("--config", help="TOML config file (a [train] table); see configs/. With --resume "
                                    "and no --config, RUN_DIR/config.toml is used; with --resume FILE, the "
                                    "config saved in that checkpoint, with --config and --set applied on top")
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="CHECKPOINT",
                   help="continue from the latest checkpoint in RUN_DIR (or the given file, whose saved "
                        "config is then the starting point of the config)")
    p.add_argument("--export", metavar="DIR", help="after training, export the generators to DIR")
    p.add_argument("--fp16", action="store_true", help="export weights in float16")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help=f"config overrides (the options of the config files), e.g. --set {example}")
    # facetoon.cli gives every command these; after the model, only its parser reads them
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks and debug logging")
    p.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                   help="only print warnings and errors")


def run(args: argparse.Namespace) -> int:
    import importlib
    from pathlib import Path

    from ..train.config import config_to_dict, load_config, parse_overrides

    module_name, config_name, trainer_name = TRAINERS[args.model]
    module = importlib.import_module(module_name)
    config_cls = getattr(module, config_name)
    config_file = args.config
    base, base_source = None, None
    saved = Path(args.out) / "config.toml"
    if args.resume is not True and args.resume:
        # --resume FILE: the networks must be built as that checkpoint's were, whatever the defaults,
        # the run folder (often a new one) or its config.toml say: start from the checkpoint's config
        base = _checkpoint_config(config_cls, Path(args.resume))
        if base is not None:
            base_source = args.resume
            log.info("--resume: using the config saved in %s (%s on top)", args.resume,
                     f"--config {config_file} and any --set overrides" if config_file else "any --set overrides")
    if base is None and config_file is None and args.resume and saved.is_file():
        # resuming without --config: start from the run's own resolved config, not the defaults
        config_file = saved
        log.info("--resume: using the run's config %s (plus any --set overrides)", saved)
    config = load_config(config_cls, config_file, parse_overrides(args.overrides), base=base,
                         base_source=base_source)
    if args.dry_run:
        for key, value in config_to_dict(config).items():
            print(f"{key} = {value!r}")
        return 0
    trainer = getattr(module, trainer_name)(config, args.data, args.out, resume=args.resume)
    try:
        step = trainer.fit()
        if args.export and trainer.dist.is_main:
            from .export import export_into

            out = export_into(trainer, Path(args.export), fp16=args.fp16)
            log.info("exported step %d to %s", step, out)
    finally:
        trainer.close()
    return 0


def _checkpoint_config(config_cls: type, checkpoint: Any) -> dict[str, Any] | None:
    """The options of ``config_cls`` saved in ``checkpoint`` (``None`` if it saved none): what the
    weights trained with. Options this version no longer has are dropped (with a note in the log),
    and so are the runtime-only ones (device, precision, logging, checkpoint schedule...: they
    describe the machine that trained, not the model; the defaults, --config and --set give them)."""
    import dataclasses

    from ..train.checkpoint import checkpoint_config
    from ..train.loop import RUNTIME_ONLY_KEYS

    saved = checkpoint_config(checkpoint, placeholders=True)  # a --set loss_preset re-derives its weights
    if saved is None:
        log.warning("--resume: %s holds no saved config: the config is resolved as for --resume without "
                    "a file", checkpoint)
        return None
    names = {f.name for f in dataclasses.fields(config_cls)}
    dropped = sorted(set(saved) - names)
    if dropped:
        log.info("--resume: options of %s that %s no longer has are dropped: %s", checkpoint,
                 config_cls.__name__, ", ".join(dropped))
    return {k: v for k, v in saved.items() if k in names and k not in RUNTIME_ONLY_KEYS}
