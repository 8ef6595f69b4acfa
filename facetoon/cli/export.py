"""``facetoon export ugatit|animegan RUN_DIR OUT_DIR``: checkpoint -> safetensors + config.json.

OUT_DIR gets one model folder per network; model folders of an earlier export that this one does
not rewrite (e.g. ``discriminator/`` after an export without ``--discriminators``) are named in a
warning (``facetoon train --export`` too): they may be of another step, and ``init_from`` refuses
such a mix.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from .train import TRAINERS

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "export", help="export trained generators as safetensors + config.json",
        description="Load the latest (or given) checkpoint of RUN_DIR and write the inference "
                    "models to OUT_DIR, loadable with facetoon.load_pretrained / Stylizer.")
    p.add_argument("model", choices=sorted(TRAINERS))
    p.add_argument("run_dir", help="the training run folder")
    p.add_argument("out_dir", help="where to write the exported models")
    p.add_argument("--checkpoint", help="a checkpoint file (default: the latest in RUN_DIR)")
    p.add_argument("--fp16", action="store_true", help="store weights in float16 (half the size)")
    p.add_argument("--discriminators", action="store_true",
                   help="export the training state init_from reads: the trained generators, the "
                        "discriminators and, with ema_decay, the weight averages as ema_* (without "
                        "it: the generators for inference, i.e. the averages when there are any)")
    p.add_argument("--data", help="with --samples: the data folder, if it moved since training")
    p.add_argument("--samples", metavar="JPG", help="also write the sample grid of this checkpoint to JPG")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import importlib

    from ..errors import ConfigError
    from ..train.checkpoint import checkpoint_config, latest_checkpoint
    from ..train.config import load_config

    run_dir = Path(args.run_dir)
    if not (run_dir / "config.toml").is_file():
        raise ConfigError("not a training run folder (no config.toml)", path=run_dir)
    checkpoint = Path(args.checkpoint) if args.checkpoint else latest_checkpoint(run_dir)
    if checkpoint is None:
        raise ConfigError("no checkpoint in this run folder", path=run_dir)
    module_name, config_name, trainer_name = TRAINERS[args.model]
    module = importlib.import_module(module_name)
    config_cls = getattr(module, config_name)
    names = {f.name for f in dataclasses.fields(config_cls)}
    # exporting runs on the CPU in fp32; the exported metadata records the checkpoint's own config
    # (Trainer.trained_config: the device and precision it trained with, not these)
    overrides = {"device": "cpu", "precision": "fp32"}
    if "init_from" in names:
        overrides["init_from"] = ""  # the checkpoint holds the weights; don't re-read a warm start
    # the networks are built from the config saved with the checkpoint (the run's config.toml may have
    # changed since, e.g. for --checkpoint best.pt of an earlier step); config.toml if it has none
    saved = checkpoint_config(checkpoint)
    config = None
    if saved is not None:
        try:
            config = load_config(config_cls, None, {**{k: v for k, v in saved.items() if k in names}, **overrides})
        except ConfigError:  # e.g. an option of an older version that is no longer valid
            config = None
    if config is None:
        config = load_config(config_cls, run_dir / "config.toml", overrides)
    # the networks come from the checkpoint alone; only the sample grid needs the data (and, for
    # AnimeGAN, its loss networks and teacher are then loaded too)
    data = (args.data or _data_dir_of(run_dir)) if args.samples else None
    import tempfile

    # the trainer writes its resolved config into its run folder: point it at a scratch folder so
    # that exporting never rewrites the run's own config.toml (which --resume reads)
    with tempfile.TemporaryDirectory(prefix="facetoon-export-") as scratch:
        trainer = getattr(module, trainer_name)(config, data, scratch, resume=checkpoint)
        out = export_into(trainer, Path(args.out_dir), fp16=args.fp16, discriminators=args.discriminators)
        if args.samples:
            from ..io import write_image

            write_image(trainer.sample_grid(), args.samples)
    print(f"exported step {trainer.step} to {out}")
    return 0


def _data_dir_of(run_dir: Any) -> str:
    from ..errors import ConfigError

    marker = run_dir / "data_dir.txt"
    if not marker.is_file():
        raise ConfigError("the run folder does not record its data folder; pass --data", path=run_dir)
    return marker.read_text().strip()


def export_into(trainer: Any, out_dir: Path, **options: Any) -> Path:
    """``trainer.export(out_dir, **options)``, with a warning naming the model folders of ``out_dir``
    that it did not rewrite (left by an earlier export)."""
    before = _model_folders(out_dir)
    out: Path = trainer.export(out_dir, **options)
    stale = sorted((name, _step_of(doc)) for name, doc in _model_folders(out_dir).items() if before.get(name) == doc)
    if stale:
        log.warning("%s still holds %s of an earlier export, which this one (step %d) did not write: delete "
                    "them or export into an empty folder (init_from refuses networks of different steps)",
                    out, ", ".join(f"{name}/ (step {step})" for name, step in stale), trainer.step)
    return out


def _step_of(config_json: bytes) -> str:
    """The training step an exported model's config.json records ("?" if none)."""
    import json

    try:
        return str(json.loads(config_json)["meta"]["step"])
    except (ValueError, KeyError, TypeError):
        return "?"


def _model_folders(out: Path) -> dict[str, bytes]:
    """The model folders in ``out`` -> the bytes of their config.json (a new save id at every save)."""
    return {p.parent.name: p.read_bytes() for p in out.glob("*/config.json")} if out.is_dir() else {}
