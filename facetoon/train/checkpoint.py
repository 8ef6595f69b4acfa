"""Training checkpoints: atomic writes, the last K kept, safe loading.

A checkpoint is a dict of tensors, state dicts and plain values written with ``torch.save`` to
``RUN_DIR/checkpoints/step_XXXXXXXX.pt`` via a temporary file and ``os.replace``, so a crash
never leaves a half-written checkpoint. Loading uses ``weights_only=True``.

Checkpoints of steps after the one a run resumed at belong to an abandoned future: they are moved
aside into ``checkpoints/abandoned_after_XXXXXXXX/`` (:func:`set_aside_checkpoints`), never deleted,
so that pruning and a later ``--resume`` see the resumed branch only.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import torch

from .._fileutil import atomic_open
from ..errors import WeightsError

__all__ = ["save_checkpoint", "list_checkpoints", "latest_checkpoint", "set_aside_checkpoints", "load_checkpoint",
           "checkpoint_config"]

log = logging.getLogger(__name__)
_NAME = re.compile(r"^step_(\d{8})\.pt$")


def list_checkpoints(run_dir: str | os.PathLike[str]) -> list[Path]:
    """Checkpoints of a run, oldest first."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if _NAME.match(p.name))


def latest_checkpoint(run_dir: str | os.PathLike[str]) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def save_checkpoint(state: dict[str, Any], run_dir: str | os.PathLike[str], step: int, keep: int = 3) -> Path:
    """Write ``state`` atomically as the checkpoint of ``step``; delete all but the last ``keep``."""
    folder = Path(run_dir) / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step_{step:08d}.pt"
    with atomic_open(path, suffix=".pt") as f:
        torch.save(state, f)
    for old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
    log.info("checkpoint saved: %s", path)
    return path


def _best_step(best_json: Path) -> int | None:
    """The step recorded in ``checkpoints/best.json``, or ``None`` (absent or unreadable)."""
    try:
        return int(json.loads(best_json.read_text())["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def set_aside_checkpoints(run_dir: str | os.PathLike[str], after_step: int) -> list[Path]:
    """Move the checkpoints of steps after ``after_step`` (an abandoned future: the run resumed at
    ``after_step``) into a new folder ``checkpoints/abandoned_after_<after_step>/`` (suffixed ``_2``,
    ``_3``, ... if taken), with ``best.pt`` and ``best.json`` when the best state is of such a step;
    returns their new paths, oldest first, and logs a WARNING naming them."""
    newer = [p for p in list_checkpoints(run_dir) if int(p.stem.removeprefix("step_")) > after_step]
    folder_in = Path(run_dir) / "checkpoints"
    best_step = _best_step(folder_in / "best.json")
    if best_step is not None and best_step > after_step:
        newer += [p for p in (folder_in / "best.pt", folder_in / "best.json") if p.exists()]
    if not newer:
        return []
    base = folder_in / f"abandoned_after_{after_step:08d}"
    folder, n = base, 1
    while folder.exists():
        n += 1
        folder = base.with_name(f"{base.name}_{n}")
    folder.mkdir()
    moved = []
    for p in newer:
        os.replace(p, folder / p.name)  # a rename within one folder tree: atomic, nothing copied
        moved.append(folder / p.name)
    log.warning("resumed at step %d: moved the checkpoints of later steps (an abandoned run) aside to %s: %s",
                after_step, folder, ", ".join(p.name for p in newer))
    return moved


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (no pickled code is executed)."""
    p = Path(path)
    if not p.is_file():
        raise WeightsError("checkpoint not found", path=p)
    try:
        return torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - corrupt/truncated/foreign files
        lines = str(exc).strip().splitlines()
        detail = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
        raise WeightsError(f"cannot read checkpoint ({detail})", path=p) from None


def checkpoint_config(path: str | os.PathLike[str], placeholders: bool = False) -> dict[str, Any] | None:
    """The config saved in a checkpoint (``None`` if it has none), read without loading its tensors
    (memory-mapped: about a second, where :func:`load_checkpoint` reads everything): the values it
    trained with, or with ``placeholders`` those left to a placeholder as such (e.g. AnimeGAN's
    ``-1`` = the preset's weight; see ``AnimeGANConfig.placeholders``)."""
    p = Path(path)
    if not p.is_file():
        raise WeightsError("checkpoint not found", path=p)
    try:
        state = torch.load(p, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # noqa: BLE001 - corrupt/truncated/foreign files
        lines = str(exc).strip().splitlines()
        detail = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
        raise WeightsError(f"cannot read checkpoint ({detail})", path=p) from None
    config = state.get("config") if isinstance(state, dict) else None
    if not isinstance(config, dict):
        return None
    given = state.get("config_placeholders") if placeholders else None
    return {**config, **given} if isinstance(given, dict) else dict(config)
