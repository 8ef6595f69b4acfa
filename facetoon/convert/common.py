"""Shared helpers of the checkpoint converters: safe loading and strict key/shape matching.

Public: besides the converters, :class:`facetoon.losses.animegan.VGG19Features` reads the VGG19
weights a user supplies with :func:`load_state_dict_file` and :func:`load_strict`.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn

from ..errors import WeightsError

__all__ = ["load_state_dict_file", "remap_state_dict", "load_strict", "sha256_file"]


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_state_dict_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a ``state_dict`` saved with ``torch.save`` (``weights_only=True``: no code runs).

    Raises :class:`WeightsError` when the file is missing, unreadable, truncated, not a mapping of
    names to tensors, or holds non-finite values.
    """
    p = Path(path)
    if not p.is_file():
        raise WeightsError("weights file not found", path=p)
    if p.stat().st_size == 0:
        raise WeightsError("weights file is empty", path=p)
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any file: the legacy unpickler raises KeyError, IndexError...
        text = str(exc).strip()
        if isinstance(exc, pickle.UnpicklingError) and "WeightsUnpickler error:" in text:
            # torch's message suggests weights_only=False, which would run the file's code: not here
            detail = text.partition("WeightsUnpickler error:")[2].strip().splitlines()
            raise WeightsError("cannot read as a torch state_dict: not a .pt/.pth file, or one that holds objects "
                               f"other than tensors ({detail[0] if detail else 'unsupported content'}); facetoon "
                               "reads with torch.load(weights_only=True) and never runs code from a file",
                               path=p) from None
        lines = text.splitlines()
        first = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
        raise WeightsError(f"cannot read as a torch state_dict (truncated or not a .pth file?): {first}",
                           path=p) from None
    if not isinstance(obj, Mapping):
        raise WeightsError(f"expected a state_dict (a mapping of names to tensors), got {type(obj).__name__}",
                           path=p)
    if {"step", "trainer", "config"} <= set(obj):  # facetoon.train's checkpoints
        raise WeightsError("a facetoon training checkpoint, not a state_dict of model weights: export its run "
                           "first (facetoon export animegan|ugatit RUN OUT)", path=p)
    out: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise WeightsError(f"entry {key!r} is not a named tensor ({type(value).__name__})", path=p)
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise WeightsError(f"tensor {key!r} holds NaN or infinite values", path=p)
        out[key] = value
    return out


def remap_state_dict(
    state: Mapping[str, torch.Tensor],
    rename: Callable[[str], str | None],
    *,
    path: str | os.PathLike[str] | None = None,
) -> dict[str, torch.Tensor]:
    """Rename every key with ``rename`` (returns ``None`` for a key it does not know: an error)."""
    out: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, value in state.items():
        new = rename(key)
        if new is None:
            unknown.append(key)
        else:
            out[new] = value
    if unknown:
        raise WeightsError(
            f"{len(unknown)} tensor(s) of unknown name, e.g. {', '.join(sorted(unknown)[:3])}"
            " (not the expected checkpoint format?)", path=path)
    return out


def load_strict(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    *,
    path: str | os.PathLike[str] | None = None,
    describe: Callable[[str], str] = lambda k: k,
) -> None:
    """Load ``state`` into ``model``: every tensor must be present, known and of the right shape.

    ``describe`` maps a model key back to the foreign name for the error message.
    """
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if tuple(state[k].shape) != tuple(expected[k].shape))
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} tensor(s): {', '.join(describe(k) for k in missing[:4])}"
                        + (" ..." if len(missing) > 4 else ""))
    if unexpected:
        problems.append(f"unexpected {len(unexpected)}: {', '.join(unexpected[:4])}")
    if wrong:
        k = wrong[0]
        problems.append(f"wrong shape for {len(wrong)}, e.g. {describe(k)} is {tuple(state[k].shape)}, "
                        f"expected {tuple(expected[k].shape)}")
    if problems:
        raise WeightsError("; ".join(problems), path=path)
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})
