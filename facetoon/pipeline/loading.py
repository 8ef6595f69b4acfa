"""How the pipeline finds and loads its two models: a torch module, a weights folder, a name in
the weights directory (:func:`facetoon.models.serialization.weights_dir`), ``"animegan"`` /
``"cartoongan"`` with official weights, or ``None``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Union

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, WeightsError
from ..models.serialization import (export_model_folder, load_pretrained, missing_weights_dir_hint,
                                    resolve_weights, weights_dir)

__all__ = [
    "DEFAULT_BACKGROUND_WEIGHTS",
    "DEFAULT_FACE_WEIGHTS",
    "ModelSpec",
    "face_size_of",
    "load_background_model",
    "load_face_model",
    "model_folder",
]


#: named weights (folders of ``weights/``) used when no model is given
DEFAULT_FACE_WEIGHTS = "ugatit-selfie2anime"
DEFAULT_BACKGROUND_WEIGHTS = "animegan-anime"
#: what the pipeline takes as a model: a module, a weights folder or name, or None
ModelSpec = Union[nn.Module, str, "os.PathLike[str]", None]


def model_folder(spec: str | os.PathLike[str], what: str, option: str) -> Path:
    """Resolve a weights folder (path or name); a ``facetoon export`` output gives its model folder
    (``a2b/`` of U-GAT-IT, ``generator/`` of AnimeGAN)."""
    path = export_model_folder(spec)
    if path != Path(spec):
        return path
    try:
        return resolve_weights(spec)
    except WeightsError:
        hint = missing_weights_dir_hint()
        if hint is not None:  # e.g. a regular (non-editable) install: no weights/ folder at all
            raise WeightsError(
                f"{what} weights not found: {os.fspath(spec)!r} is not a folder with config.json + "
                f"model.safetensors, and {hint} (or pass {option}= a weights folder, or a torch model instance)"
            ) from None
        raise WeightsError(
            f"{what} weights not found: {os.fspath(spec)!r} is neither a folder with config.json + "
            f"model.safetensors nor a named model in {weights_dir()} (set FACETOON_WEIGHTS, or pass "
            f"{option}= a weights folder, or a torch model instance)"
        ) from None


#: architectures (registry names) each role accepts from a weights folder
FACE_ARCHS = ("ugatit_generator",)
BACKGROUND_ARCHS = ("animegan", "cartoongan")


def _load_folder(folder: Path, archs: tuple[str, ...]) -> nn.Module:
    """Load ``folder``; a model of another architecture than ``archs`` (e.g. the face model given
    as the scene model) is a WeightsError naming the folder."""
    return load_pretrained(folder, device="cpu", dtype=torch.float32, archs=archs)


def load_face_model(spec: ModelSpec) -> nn.Module | None:
    if spec is None or isinstance(spec, nn.Module):
        return spec
    if not isinstance(spec, (str, os.PathLike)):
        raise ConfigError(f"face_model: expected a torch module, a weights folder or name, or None; "
                          f"got {type(spec).__name__}")
    return _load_folder(model_folder(spec, "face model", "face_model"), FACE_ARCHS)


def load_background_model(spec: ModelSpec, weights: str | os.PathLike[str] | None) -> nn.Module | None:
    """``"animegan"``/``"cartoongan"`` (+ ``weights``), a folder/name, a module or ``None``."""
    if spec is None or isinstance(spec, nn.Module):
        if weights is not None:
            raise ConfigError("background_weights is only used with background_model='animegan' or "
                              "'cartoongan'")
        return spec
    if not isinstance(spec, (str, os.PathLike)):
        raise ConfigError(f"background_model: expected 'animegan', 'cartoongan', a weights folder or name, "
                          f"a torch module or None; got {type(spec).__name__}")
    kind = os.fspath(spec).lower()
    if kind == "none":
        return None
    if kind == "cartoongan":
        if weights is None:
            raise WeightsError("background_model='cartoongan' needs background_weights= the official "
                               "<Style>_net_G_float.pth file or an exported weights folder (none is shipped)")
        path = Path(weights)
        if path.is_file():
            from ..convert.cartoongan import load_official_cartoongan

            return load_official_cartoongan(path)
        return _load_folder(model_folder(path, "CartoonGAN", "background_weights"), ("cartoongan",))
    if kind == "animegan":
        if weights is None:
            return _load_folder(model_folder(DEFAULT_BACKGROUND_WEIGHTS, "default background (AnimeGAN)",
                                             "background_model"), ("animegan",))
        path = Path(weights)
        if path.is_file():
            from ..convert.animegan import load_animegan_v2_port

            return load_animegan_v2_port(path)
        return _load_folder(model_folder(path, "AnimeGAN", "background_weights"), ("animegan",))
    if weights is not None:
        raise ConfigError("background_weights is only used with background_model='animegan' or "
                          "'cartoongan'")
    return _load_folder(model_folder(spec, "background model", "background_model"), BACKGROUND_ARCHS)


def face_size_of(model: nn.Module | None, face_size: int | None) -> int:
    config = getattr(model, "config", None) or {}
    trained = config.get("img_size") if isinstance(config, Mapping) else None
    size = face_size if face_size is not None else int(trained) if trained else 256
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) \
            or not 32 <= size <= 1024 or size % 4:
        raise ConfigError(f"face_size: expected a multiple of 4 in 32..1024, got {size!r}")
    light = config.get("light", True) if isinstance(config, Mapping) else True
    if trained and not light and size != int(trained):
        raise ConfigError(f"face_size: the full (non-light) U-GAT-IT generator runs at {trained} px only, "
                          f"got {size}")
    return int(size)
