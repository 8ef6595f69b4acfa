"""Save and load models as a folder: ``config.json`` beside ``model.safetensors``.

``config.json`` holds ``{"arch": <registry name>, "config": <constructor kwargs>,
"facetoon_version": ..., "dtype": ..., "save_id": ..., "meta": {...}}``; the weights are a
safetensors file, so loading never executes code. Weights stored in fp16 are upcast to the
requested dtype on load.

The two files are written one after the other (each atomically), so a crash between them could
leave new weights beside the previous save's ``config.json`` (whose ``meta`` says, e.g., the
training step). Each save therefore writes one random ``save_id`` into both (the safetensors
header's metadata and ``config.json``); :func:`read_config` and :func:`load_pretrained` refuse a
folder whose two ids differ. Folders without an id (older saves) load as before.

Named weights (e.g. ``"ugatit-selfie2anime"``) are folders of the weights directory: the
``FACETOON_WEIGHTS`` environment variable if set, else the ``weights/`` folder of the source
checkout facetoon runs from. That folder is not part of the Python package: a regular
(non-editable) ``pip install`` has no weights directory, and errors about named weights then say
to install editable from a checkout (``pip install -e .``) or to set ``FACETOON_WEIGHTS``.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Collection
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._fileutil import atomic_write_bytes
from .._version import __version__
from ..errors import ConfigError, OutputError, WeightsError, first_line
from ..runtime import resolve_device
from .registry import create_model

__all__ = ["save_pretrained", "load_pretrained", "read_config", "resolve_weights", "weights_dir",
           "missing_weights_dir_hint"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
#: key of the id shared by one save's ``config.json`` and safetensors metadata
SAVE_ID_KEY = "save_id"


def weights_dir() -> Path:
    """The folder that holds facetoon's named weights (it may not exist, see
    :func:`missing_weights_dir_hint`)."""
    env = os.environ.get("FACETOON_WEIGHTS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "weights"


def missing_weights_dir_hint() -> str | None:
    """``None`` when :func:`weights_dir` is a folder; else one line saying why it is missing and
    what to do (for the messages of errors about named weights)."""
    directory = weights_dir()
    if directory.is_dir():
        return None
    if os.environ.get("FACETOON_WEIGHTS"):
        return f"FACETOON_WEIGHTS={directory} is not a folder"
    return (f"there is no weights directory ({directory}): the named weights are the weights/ folder of a "
            f"facetoon source checkout, which a regular pip install does not include; install editable from "
            f"a checkout (pip install -e .) or set FACETOON_WEIGHTS to a weights folder")


def resolve_weights(name_or_path: str | os.PathLike[str]) -> Path:
    """A weights folder from a path, or from a name in :func:`weights_dir`."""
    path = Path(name_or_path)
    if path.is_dir():
        return path
    candidate = weights_dir() / str(name_or_path)
    if candidate.is_dir():
        return candidate
    hint = missing_weights_dir_hint()
    if hint is not None:
        raise WeightsError(f"no weights folder here, and {hint}", path=name_or_path)
    known = sorted(p.name for p in weights_dir().glob("*") if (p / CONFIG_NAME).is_file())
    raise WeightsError(
        f"no weights folder here and no named weights of that name (known: {', '.join(known) or 'none'})",
        path=name_or_path,
    )


#: the model folders inside a ``facetoon export`` output, in order of preference: U-GAT-IT's
#: selfie -> anime generator, AnimeGAN's generator
EXPORT_MODEL_FOLDERS = ("a2b", "generator")


def export_model_folder(path: str | os.PathLike[str]) -> Path:
    """``path`` itself, or, for a ``facetoon export`` output (no ``config.json`` of its own), its
    model folder (``a2b/`` or ``generator/``, see :data:`EXPORT_MODEL_FOLDERS`)."""
    path = Path(path)
    if path.is_dir() and not (path / CONFIG_NAME).is_file():
        for name in EXPORT_MODEL_FOLDERS:
            if (path / name / CONFIG_NAME).is_file():
                return path / name
    return path


def save_pretrained(
    model: nn.Module,
    directory: str | os.PathLike[str],
    *,
    dtype: torch.dtype | None = None,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` (a registered architecture) as ``config.json`` + ``model.safetensors``.

    ``dtype=torch.float16`` halves the file; floating tensors are cast, others kept. Both files
    are written atomically, weights first, and carry the same random ``save_id`` so that a
    reader can tell when a crash between the two writes left them from different saves.

    Raises:
        WeightsError: ``model`` is not a registered facetoon model.
        OutputError: ``directory`` is an existing file or cannot be created.
    """
    from safetensors.torch import save

    arch = getattr(model, "arch", None)
    config = getattr(model, "config", None)
    if arch is None or config is None:
        raise WeightsError(f"{type(model).__name__} is not a registered facetoon model")
    out = Path(directory)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError("the output folder is an existing file", path=out) from None
    except OSError as exc:
        raise OutputError(f"cannot create the output folder: {first_line(exc)}", path=out) from None
    state = {}
    for key, tensor in model.state_dict().items():
        t = tensor.detach().to("cpu")
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        state[key] = t.contiguous()
    save_id = uuid.uuid4().hex
    atomic_write_bytes(out / WEIGHTS_NAME, save(state, metadata={"arch": arch, SAVE_ID_KEY: save_id}))
    doc = {
        "arch": arch,
        "config": config,
        "facetoon_version": __version__,
        "dtype": str(dtype or next(iter(state.values())).dtype).replace("torch.", ""),
        SAVE_ID_KEY: save_id,
        "meta": meta or {},
    }
    atomic_write_bytes(out / CONFIG_NAME, (json.dumps(doc, indent=2) + "\n").encode())
    return out


def read_config(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed ``config.json`` of a weights folder (a path or a named folder; for a
    ``facetoon export`` output, of its model folder, see :func:`export_model_folder`).

    Raises:
        WeightsError: ``config.json`` is missing or malformed, or it and ``model.safetensors``
            carry different save ids (they are from different saves: the folder's ``meta`` does
            not describe its weights).
    """
    path = export_model_folder(resolve_weights(directory)) / CONFIG_NAME
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        inner = sorted(p.parent.name for p in path.parent.glob(f"*/{CONFIG_NAME}"))
        hint = f" (pass one of its model folders: {', '.join(inner)})" if inner else ""
        raise WeightsError(f"config.json is missing{hint}", path=path.parent) from None
    except json.JSONDecodeError as exc:
        raise WeightsError(f"config.json is not valid JSON ({exc.msg}, line {exc.lineno})", path=path) from None
    if not isinstance(doc, dict) or "arch" not in doc or "config" not in doc:
        raise WeightsError("config.json lacks 'arch' or 'config'", path=path)
    if not isinstance(doc["arch"], str) or not isinstance(doc["config"], dict):
        raise WeightsError("config.json: 'arch' must be a string and 'config' an object", path=path)
    config_id = doc.get(SAVE_ID_KEY)
    weights_id = _weights_save_id(path.parent / WEIGHTS_NAME) if config_id is not None else None
    if weights_id is not None and weights_id != config_id:
        raise WeightsError("config.json and model.safetensors are from different saves (a save interrupted "
                           "between the two files?); save the model again", path=path.parent)
    return doc


def _weights_save_id(file: Path) -> str | None:
    """The save id in a safetensors file's header metadata; ``None`` when it has none, or when the
    file is missing or unreadable (:func:`load_pretrained` reports that when it reads the tensors)."""
    from safetensors import SafetensorError, safe_open

    if not file.is_file():
        return None
    try:
        with safe_open(str(file), framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError):
        return None
    return metadata.get(SAVE_ID_KEY)


def load_pretrained(
    name_or_path: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | str = torch.float32,
    archs: Collection[str] | None = None,
) -> nn.Module:
    """Build the architecture named in ``config.json`` and load its safetensors weights.

    ``name_or_path``: a weights folder (``config.json`` + ``model.safetensors``), a
    ``facetoon export`` output (its ``a2b/`` or ``generator/`` model folder is loaded, see
    :func:`export_model_folder`), or the name of a folder in :func:`weights_dir`
    (``$FACETOON_WEIGHTS``, else the checkout's ``weights/``), e.g. ``"ugatit-selfie2anime"``.
    ``archs``: the registry names accepted (``None``: any); a folder of another architecture is
    refused before its weights are read. ``device``: as :func:`facetoon.runtime.resolve_device`
    takes it (``"cpu"``, ``"cuda"``, ``"auto"``...). ``dtype``: a floating torch dtype, or its
    name (``"float32"``, ``"float16"``, ``"bfloat16"``).

    Returns the model in eval mode on ``device`` with floating tensors in ``dtype``. The image
    generators take and return RGB ``(B, 3, H, W)`` float tensors in [-1, 1]; the U-GAT-IT
    generator also returns its CAM logits and attention heatmap.
    Raises :class:`WeightsError` on a missing file, mismatching tensors, a ``config.json`` and
    ``model.safetensors`` from different saves (see :func:`read_config`), or an architecture
    outside ``archs``; :class:`~facetoon.errors.ConfigError` on an invalid or unavailable
    ``device`` or a ``dtype`` that is not a floating torch dtype.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    dev = resolve_device(device)
    dtype = _floating_dtype(dtype)
    folder = export_model_folder(resolve_weights(name_or_path))
    doc = read_config(folder)
    if archs is not None and doc["arch"] not in archs:
        raise WeightsError(f"holds a {doc['arch']!r} model; expected {' or '.join(repr(a) for a in archs)}",
                           path=folder)
    try:
        model = create_model(doc["arch"], **doc["config"])
    except (ConfigError, ValueError, TypeError, RuntimeError) as exc:  # e.g. a hand-edited ngf = -1
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"config.json does not describe a valid {doc['arch']!r} model ({first})",
                           path=folder / CONFIG_NAME) from None
    file = folder / WEIGHTS_NAME
    if not file.is_file():
        raise WeightsError("model.safetensors is missing", path=folder)
    try:
        state = load_file(str(file))
    except (SafetensorError, OSError) as exc:
        raise WeightsError(f"cannot read safetensors file ({exc})", path=file) from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensors (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} (e.g. {unexpected[0]})")
        if wrong:
            parts.append(f"wrong shape for {len(wrong)} (e.g. {wrong[0]})")
        raise WeightsError(f"weights do not match {doc['arch']}: " + "; ".join(parts), path=file)
    state = {k: (v.to(expected[k].dtype) if v.is_floating_point() else v) for k, v in state.items()}
    model.load_state_dict(state)
    return model.to(device=dev, dtype=dtype).eval()


#: the ``dtype`` names :func:`load_pretrained` accepts
DTYPE_NAMES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _floating_dtype(dtype: Any) -> torch.dtype:
    """``dtype`` (a floating torch dtype or one of :data:`DTYPE_NAMES`) as a torch dtype; raises
    :class:`ConfigError` naming the argument otherwise."""
    if isinstance(dtype, str) and dtype in DTYPE_NAMES:
        return DTYPE_NAMES[dtype]
    if isinstance(dtype, torch.dtype) and dtype.is_floating_point:
        return dtype
    raise ConfigError(f"dtype: expected a floating torch dtype (e.g. torch.float16) or one of "
                      f"{', '.join(repr(n) for n in DTYPE_NAMES)}, got {dtype!r}")
