"""Warm start: initialise a trainer's networks from exported weights folders.

Used by every trainer through ``init_from = "FOLDER"`` in its config. FOLDER holds one exported
model folder (``config.json`` + ``model.safetensors``, see :mod:`facetoon.models.serialization`)
per network, named as the trainer names them (U-GAT-IT: ``a2b``, ``b2a``, ``disc_ga`` ...;
AnimeGAN: ``generator``, ``discriminator``; with ``ema_decay > 0`` also ``ema_a2b`` ... /
``ema_generator``, the weight averages) — the layout ``scripts/ship_weights.py`` writes to
``training/<name>/state``. The step count and training time recorded in the first required
network's metadata carry on, so the learning-rate schedule and data order continue; optimiser
moments start afresh (they are not exported). Networks exported at different steps (a re-export
into a folder that kept an earlier export's ``discriminator/``) are refused.
"""

from __future__ import annotations

import logging
from pathlib import Path

from torch import nn

from ..errors import ConfigError
from ..models.serialization import load_pretrained, read_config

__all__ = ["warm_start"]

log = logging.getLogger(__name__)


def warm_start(folder: Path, targets: dict[str, nn.Module],
               required: tuple[str, ...]) -> tuple[int, float, set[str]]:
    """Load ``folder/<name>`` into each ``targets[name]``; return (step, training seconds, names loaded).

    Names in ``required`` must be present; the others start from their random initialisation
    when missing or of another architecture (e.g. a deeper critic for a larger image size). A
    required network whose architecture config differs from the folder's is an error, unless it
    says it accepts those weights (``accepts_weights_of(config)``, e.g. the light U-GAT-IT
    generator at another ``img_size``).
    """
    if not folder.is_dir():
        raise ConfigError(f"init_from: {folder} is not a folder")
    _check_same_step(folder, [name for name in targets if (folder / name).is_dir()])
    loaded_names: set[str] = set()
    for name, module in targets.items():
        if not (folder / name).is_dir():
            if name in required:
                raise ConfigError(f"init_from: {folder / name} not found")
            log.info("init_from: no %s; it starts from random weights", name)
            continue
        loaded = load_pretrained(folder / name)
        expected = getattr(module, "config", None)
        accepts = getattr(module, "accepts_weights_of", None)
        if not (accepts(loaded.config) if callable(accepts) else loaded.config == expected):
            if name in required:
                raise ConfigError(f"init_from: {name} was trained with {loaded.config}, this run uses {expected}")
            log.warning("init_from: %s was trained with %s, this run uses %s: it starts from random weights",
                        name, loaded.config, expected)
            continue
        module.load_state_dict(loaded.state_dict())
        loaded_names.add(name)
        if loaded.config != expected:
            log.info("init_from: loaded %s (trained with %s, continues with %s)", folder / name,
                     loaded.config, expected)
        else:
            log.info("init_from: loaded %s", folder / name)
    meta = read_config(folder / required[0]).get("meta", {})
    step = int(meta.get("step", 0))
    log.info("init_from: continuing at step %d (optimiser moments start afresh)", step)
    return step, float(meta.get("train_hours", 0.0)) * 3600, loaded_names


def _check_same_step(folder: Path, names: list[str]) -> None:
    """A :class:`ConfigError` if the exported networks ``folder/<name>`` record different training
    steps in their metadata (folders without one, e.g. converted weights, are not compared)."""
    steps: dict[str, int] = {}
    for name in names:
        step = read_config(folder / name).get("meta", {}).get("step")
        if step is not None:
            steps[name] = int(step)
    if len(set(steps.values())) > 1:
        listed = ", ".join(f"{name}/ step {step}" for name, step in steps.items())
        raise ConfigError(f"init_from: {folder} holds networks of different training steps ({listed}), e.g. "
                          "from exports into the same folder: export into an empty folder "
                          "(facetoon export MODEL RUN_DIR OUT_DIR --discriminators)")
