"""How the pipeline finds and loads its two models: a torch module, a weights folder, a name in
the weights directory (:func:`facetoon.models.serialization.weights_dir`), ``"animegan"`` /
``"cartoongan"`` with official weights, or ``None``."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, WeightsError
from ..models.serialization import (CONFIG_NAME, WEIGHTS_NAME, export_model_folder, load_pretrained,
                                    missing_weights_dir_hint, resolve_weights, weights_dir)

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


def model_folder(spec: str | os.PathLike[str], what: str, option: str, *, cli_option: str | None = None) -> Path:
    """Resolve a weights folder (path or name); a ``facetoon export`` output gives its model folder
    (``a2b/`` of U-GAT-IT, ``generator/`` of AnimeGAN). ``option``: the argument that named
    ``spec``, for the message of the :class:`WeightsError` raised when it is not found;
    ``cli_option``: the command-line option that sets it (the error's ``cli_reason`` names it)."""
    path = export_model_folder(spec)
    if path != Path(spec):
        return path
    try:
        return resolve_weights(spec)
    except WeightsError:
        name = os.fspath(spec)
        instance = ", or a torch model instance" if option in ("face_model", "background_model") else ""
        hint = missing_weights_dir_hint()
        if hint is not None:  # e.g. a regular (non-editable) install: no weights/ folder at all
            lead = (f"{what} weights not found: {name!r} is not a folder with config.json + model.safetensors, "
                    f"and {hint}")
            tail = "(or pass {} a weights folder{})"
        else:
            lead = (f"{what} weights not found: {name!r} is neither a folder with config.json + "
                    f"model.safetensors nor a named model in {weights_dir()}")
            tail = "(set FACETOON_WEIGHTS, or pass {} a weights folder{})"
        cli = f"{lead} {tail.format(cli_option, '')}" if cli_option else None
        raise _weights_error(f"{lead} {tail.format(option + '=', instance)}", cli) from None


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
    try:
        return _load_folder(model_folder(spec, "face model", "face_model", cli_option="--face-weights"),
                            FACE_ARCHS)
    except WeightsError as exc:
        raise _explained(exc, spec, "face") from None


def load_background_model(spec: ModelSpec, weights: str | os.PathLike[str] | None) -> nn.Module | None:
    """``"animegan"``/``"cartoongan"`` (+ ``weights``), a folder/name, a module or ``None``.

    ``weights`` (``background_weights``): a facetoon weights or export folder (or a named one);
    for ``"animegan"`` also an AnimeGANv2 state dict file of the widely used PyTorch port, for
    ``"cartoongan"`` the official ``<Style>_net_G_float.pth``. Files are read with
    ``torch.load(..., weights_only=True)``: loading never executes pickled code. A path of
    another kind (a facetoon training checkpoint or run folder, the ``model.safetensors`` file of
    a weights folder, weights of the other scene model or of the face model) is a
    :class:`WeightsError` that says what it is and what to pass instead.
    """
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
    if kind in ("animegan", "cartoongan"):
        if weights is None:
            if kind == "cartoongan":
                raise _weights_error(
                    "background_model='cartoongan' needs background_weights= the official "
                    "<Style>_net_G_float.pth file or an exported weights folder (none is shipped)",
                    "--background cartoongan needs --background-weights: the official <Style>_net_G_float.pth "
                    "file or an exported weights folder (none is shipped)")
            return _load_folder(model_folder(DEFAULT_BACKGROUND_WEIGHTS, "default background (AnimeGAN)",
                                             "background_model", cli_option="--background-weights"), ("animegan",))
        try:
            return _load_scene_weights(kind, Path(weights))
        except WeightsError as exc:
            raise _explained(exc, weights, kind) from None
    if weights is not None:
        raise ConfigError("background_weights is only used with background_model='animegan' or "
                          "'cartoongan'")
    try:
        return _load_folder(model_folder(spec, "background model", "background_model",
                                         cli_option="--background-weights"), BACKGROUND_ARCHS)
    except WeightsError as exc:
        raise _explained(exc, spec, "scene") from None


#: suffixes of the foreign state dict files the scene models read (a missing one is "file not found")
STATE_DICT_SUFFIXES = (".pt", ".pth")


def _load_scene_weights(kind: str, path: Path) -> nn.Module:
    """``background_weights`` of ``background_model=kind``: a foreign state dict file, or a folder."""
    if path.is_file() or (not path.exists() and path.suffix.lower() in STATE_DICT_SUFFIXES):
        if kind == "cartoongan":
            from ..convert.cartoongan import load_official_cartoongan

            return load_official_cartoongan(path)
        from ..convert.animegan import load_animegan_v2_port

        return load_animegan_v2_port(path)
    what = "CartoonGAN" if kind == "cartoongan" else "AnimeGAN"
    return _load_folder(model_folder(path, what, "background_weights", cli_option="--background-weights"), (kind,))


# ----------------------------------------------------------------------------- error messages
#
# A path that cannot be loaded is looked at once more (on the error path only) to say what it is
# and what to pass instead. Each message is made twice: naming Python's arguments (the error's
# message) and naming the options of ``facetoon stylize`` / ``facetoon video`` (its
# ``cli_reason``, which the command line prints instead).

#: the placeholders of the messages: Python's argument names, and the command line's options
_PYTHON_NAMES = {
    "face": "face_model",
    "weights": "background_weights",
    "scene": "background_model",
    "animegan": "background_model='animegan'",
    "cartoongan": "background_model='cartoongan'",
    "pipeline": "Stylizer.from_pretrained",
}
_CLI_NAMES = {
    "face": "--face-weights",
    "weights": "--background-weights",
    "scene": "--background-weights",
    "animegan": "--background animegan",
    "cartoongan": "--background cartoongan",
    "pipeline": "--pipeline",
}
#: role -> (the placeholder of the argument that names the path, the architectures it takes)
_ROLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "face": ("face", FACE_ARCHS),
    "animegan": ("weights", ("animegan",)),
    "cartoongan": ("weights", ("cartoongan",)),
    "scene": ("scene", BACKGROUND_ARCHS),
}
#: the file of a Stylizer pipeline folder (facetoon.pipeline.stylizer.PIPELINE_CONFIG; not imported: a cycle)
_PIPELINE_CONFIG = "pipeline.json"
#: registry name of a generator -> the ``facetoon export`` / ``facetoon train`` model that makes it
_TRAINERS = {"animegan": "animegan", "ugatit_generator": "ugatit"}


def _weights_error(reason: str, cli_reason: str | None, path: str | os.PathLike[str] | None = None) -> WeightsError:
    """A WeightsError of ``reason`` (naming Python's arguments) with ``cli_reason``: the same
    message for the command line (naming its options), read by ``facetoon stylize``."""
    exc = WeightsError(reason, path=path)
    setattr(exc, "cli_reason", cli_reason)
    return exc


@dataclass(frozen=True)
class _Found:
    """What a path that did not load is."""

    kind: str  # "weights file", "safetensors", "folder", "checkpoint", "run", "pipeline", "cartoongan release",
    #            "animegan port"
    arch: str | None = None  # the registry name of the generator it holds or trains, if known
    folder: Path | None = None  # the weights folder of a weights file, the run of a checkpoint, a pipeline folder


def _arch_of(folder: Path) -> str | None:
    try:
        arch = json.loads((folder / CONFIG_NAME).read_text()).get("arch")
    except (OSError, ValueError, AttributeError):
        return None
    return arch if isinstance(arch, str) else None


def _is_run(folder: Path) -> bool:
    """A training run folder (``facetoon train --out``): ``config.toml`` and ``checkpoints/``."""
    return (folder / "config.toml").is_file() and (folder / "checkpoints").is_dir()


def _run_arch(run: Path) -> str | None:
    """The generator a run trains, from its ``config.toml`` (``None`` if it does not tell)."""
    import tomllib

    try:
        doc = tomllib.loads((run / "config.toml").read_text())
    except (OSError, ValueError):
        return None
    keys = set(doc.get("train", doc) if isinstance(doc.get("train"), dict) else doc)
    if keys & {"version", "style", "loss_preset"}:
        return "animegan"
    if keys & {"n_res", "light", "cam_weight"}:
        return "ugatit_generator"
    return None


def _identify(path: Path) -> _Found | None:
    """What ``path`` is, when it is something facetoon knows (``None`` otherwise); pickles are
    read with ``weights_only=True`` only."""
    try:
        if path.is_dir():
            return _identify_folder(path)
        if path.is_file():
            return _identify_file(path)
    except OSError:
        pass
    return None


def _identify_folder(path: Path) -> _Found | None:
    if (path / _PIPELINE_CONFIG).is_file():
        return _Found("pipeline", folder=path)
    if path.name == "checkpoints" and _is_run(path.parent):
        path = path.parent
    if _is_run(path):
        return _Found("run", arch=_run_arch(path), folder=path)
    folder = export_model_folder(path)
    if (folder / CONFIG_NAME).is_file():
        return _Found("folder", arch=_arch_of(folder), folder=folder)
    return None


def _identify_file(path: Path) -> _Found | None:
    folder = path.parent
    if path.name in (CONFIG_NAME, WEIGHTS_NAME) or path.suffix.lower() == ".safetensors":
        if (folder / CONFIG_NAME).is_file() and (folder / WEIGHTS_NAME).is_file():
            return _Found("weights file", arch=_arch_of(folder), folder=folder)
        return _Found("safetensors") if path.suffix.lower() == ".safetensors" else None
    if path.name == _PIPELINE_CONFIG:
        return _Found("pipeline", folder=folder)
    if path.name == "config.toml" and _is_run(folder):
        return _Found("run", arch=_run_arch(folder), folder=folder)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - not a torch file: the loader's own message says so
        return None
    if not isinstance(obj, Mapping):
        return None
    if {"step", "trainer", "config"} <= set(obj):  # facetoon.train.loop.Trainer._full_state
        trainer = obj["trainer"]
        arch = None
        if isinstance(trainer, Mapping):
            arch = "animegan" if "gen" in trainer else "ugatit_generator" if "gens" in trainer else None
        if arch is None and isinstance(obj["config"], Mapping):
            keys = set(obj["config"])
            arch = "animegan" if "version" in keys else "ugatit_generator" if "n_res" in keys else None
        run = folder.parent if folder.name == "checkpoints" and (folder.parent / "config.toml").is_file() else None
        return _Found("checkpoint", arch=arch, folder=run)
    if obj and all(isinstance(k, str) for k in obj):
        from ..convert.animegan import port_to_facetoon_key
        from ..convert.cartoongan import official_to_facetoon_key

        if all(official_to_facetoon_key(k) is not None for k in obj):
            return _Found("cartoongan release", arch="cartoongan")
        if all(port_to_facetoon_key(k) is not None for k in obj):
            return _Found("animegan port", arch="animegan")
    return None


def _fix(arch: str | None, role: str, n: Mapping[str, str]) -> str | None:
    """What to do with a model of ``arch`` given in ``role``; ``None`` when ``role`` takes it (or
    the architecture is not a generator the pipeline runs)."""
    if arch is None or arch in _ROLES[role][1]:
        return None
    if arch == "ugatit_generator":
        return f"it is a face model, for {n['face']}"
    if arch not in BACKGROUND_ARCHS:
        return None
    if role == "face":
        return f"it is a scene model, for {n['weights']}" + (f" with {n['cartoongan']}" if arch == "cartoongan" else "")
    return f"use {n[arch]}"  # "animegan" <-> "cartoongan": the other scene model


def _accepts(role: str, n: Mapping[str, str]) -> str:
    """What the argument of ``role`` takes."""
    if role == "face":
        return (f"{n['face']} takes a facetoon weights folder (config.json + model.safetensors), an export "
                f"folder or a named model")
    if role == "animegan":
        return (f"{n['weights']} takes a facetoon weights or export folder, or an AnimeGANv2 state dict "
                f"file of the PyTorch port (.pt/.pth)")
    if role == "cartoongan":
        return (f"{n['weights']} with {n['cartoongan']} takes a facetoon weights or export folder, or the "
                f"official <Style>_net_G_float.pth")
    return (f"{n['scene']} takes 'animegan', 'cartoongan', a facetoon weights or export folder, or a "
            f"named model")


def _export_hint(found: _Found, path: Path, role: str, n: Mapping[str, str]) -> str:
    """``export it first with `facetoon export ...` and pass OUT ...`` for a checkpoint or run."""
    from ..train.checkpoint import latest_checkpoint

    trainer = _TRAINERS.get(found.arch or "") or ("ugatit" if role == "face" else "animegan")
    run = found.folder
    command = f"facetoon export {trainer} {run if run is not None else 'RUN'} OUT"
    if found.kind == "checkpoint" and (run is None or latest_checkpoint(run) != path):
        command += f" --checkpoint {path}"
    fix = _fix(found.arch, role, n)
    to = f"as {n[_ROLES[role][0]]}" if fix is None else f"({fix})"
    hint = f"export it first with `{command}` and pass OUT {to}"
    if run is None:
        hint += " (RUN: the training run folder it comes from)"
    elif found.kind == "run" and latest_checkpoint(run) is None:
        hint += " once it has a checkpoint"
    return hint


def _advice(found: _Found | None, role: str, path: Path, n: Mapping[str, str]) -> str | None:
    """A message that replaces the loader's: what ``path`` is and what to pass instead
    (``None``: nothing better than the loader's own message is known)."""
    if found is None:
        return None
    arg = n[_ROLES[role][0]]
    fix = _fix(found.arch, role, n)
    if found.kind == "weights file":
        return (f"the {path.name} of a facetoon weights folder: pass its folder {found.folder}"
                + (f" ({fix})" if fix else ""))
    if found.kind == "safetensors":
        return f"a safetensors file without the config.json of a weights folder beside it; {_accepts(role, n)}"
    if found.kind == "checkpoint":
        return f"a facetoon training checkpoint, not model weights: {_export_hint(found, path, role, n)}"
    if found.kind == "run":
        return f"a facetoon training run folder, not model weights: {_export_hint(found, path, role, n)}"
    if found.kind == "pipeline":
        assert found.folder is not None
        own = found.folder / ("face" if role == "face" else "background")
        alone = f", or pass its {own.name}/ folder {own} as {arg}" if (own / CONFIG_NAME).is_file() else ""
        return f"a Stylizer pipeline folder ({_PIPELINE_CONFIG}): load it with {n['pipeline']}{alone}"
    if found.kind in ("cartoongan release", "animegan port"):
        what = ("official CartoonGAN weights" if found.kind == "cartoongan release"
                else "AnimeGANv2 weights of the PyTorch port")
        if role == "scene":
            return f"these are {what}: use {n[found.arch or 'animegan']} with this file as {n['weights']}"
        return f"these are {what}: {fix}" if fix is not None else None
    return None


def _explained(exc: WeightsError, spec: str | os.PathLike[str], role: str) -> WeightsError:
    """``exc``, raised while loading ``spec`` in ``role``, with what ``spec`` is and what to pass
    instead, and a ``cli_reason`` (see :func:`_weights_error`)."""
    path = Path(spec)
    if not path.exists():
        try:
            path = resolve_weights(spec)  # a named folder
        except WeightsError:
            pass
    found = _identify(path)
    advice = _advice(found, role, path, _PYTHON_NAMES)
    if advice is not None:
        return _weights_error(advice, _advice(found, role, path, _CLI_NAMES), path=spec)
    cli = getattr(exc, "cli_reason", None)
    if cli is not None:  # model_folder's message: it says what to pass already
        return exc
    fix = _fix(found.arch, role, _PYTHON_NAMES) if found is not None else None
    if fix is not None:  # a weights folder of another architecture
        extra = [fix, _fix(found.arch if found else None, role, _CLI_NAMES)]
    else:
        extra = [_accepts(role, _PYTHON_NAMES), _accepts(role, _CLI_NAMES)]
    return _weights_error(f"{exc.reason}; {extra[0]}", f"{exc.reason}; {extra[1]}", path=exc.path)


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
