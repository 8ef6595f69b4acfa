"""Training configurations: dataclasses, read from TOML, overridable from the command line.

A config is a flat dataclass whose fields are the hyper-parameters, each with its paper
default and a comment. :func:`load_config` reads a TOML file (a ``[train]`` table, and then
nothing else, or the options at the top level), applies ``key=value`` overrides (values parsed as
TOML, so ``lr=2e-4``, ``light=true``, ``name="x"`` or bare strings work) and rejects unknown keys,
stray tables or wrong types with a :class:`~facetoon.errors.ConfigError` that names the config file
when the file is at fault (an unknown key with the closest valid ones). :func:`save_config` writes the
resolved config as TOML, except the options a config class derives from others when they are left
unset (its ``placeholders()``, e.g. AnimeGAN's loss weights): those keep their placeholder, so that
they are derived afresh when the config is read back with other settings.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import tomllib
from pathlib import Path
from typing import Any, Sequence, TypeVar, get_type_hints

from ..errors import ConfigError

__all__ = ["load_config", "save_config", "config_to_dict", "parse_overrides"]

C = TypeVar("C")


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["lr=2e-4", "light=true", "name=run1"]`` -> ``{"lr": 0.0002, "light": True, "name": "run1"}``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()  # a bare string
        out[key] = value
    return out


def _coerce(cls_name: str, key: str, value: Any, annotation: Any) -> Any:
    target = annotation if isinstance(annotation, type) else None
    if target is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    # bool is a subclass of int in Python: `iterations = true` must not pass as 1
    wrong_bool = isinstance(value, bool) and target is not bool
    if target is not None and (wrong_bool or not isinstance(value, target)):
        raise ConfigError(f"{cls_name}.{key} must be {target.__name__}, got {value!r}")
    return value


def _read_toml(p: Path) -> dict[str, Any]:
    """The options of the config file ``p``: its ``[train]`` table (which must then be all the file
    holds: a misspelt table or a key beside it would otherwise be ignored without a word), or its
    top-level keys."""
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("config file not found", path=p) from None
    except IsADirectoryError:
        raise ConfigError("config file is a folder", path=p) from None
    except UnicodeDecodeError:
        raise ConfigError("config file is not UTF-8 text", path=p) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML ({exc})", path=p) from None
    if "train" not in doc:
        tables = sorted(k for k, v in doc.items() if isinstance(v, dict))
        if tables:
            raise ConfigError(f"unknown table(s) {', '.join(f'[{t}]' for t in tables)} (options go in "
                              f"a [train] table or at the top level)", path=p)
        return doc
    train = doc["train"]
    if not isinstance(train, dict):
        raise ConfigError(f"'train' must be a table ([train]), got {train!r}", path=p)
    stray = sorted(k for k in doc if k != "train")
    if stray:
        names = ", ".join(f"[{k}]" if isinstance(doc[k], dict) else k for k in stray)
        raise ConfigError(f"{names} outside the [train] table (all options go in [train])", path=p)
    return dict(train)


def load_config(
    cls: type[C],
    path: str | os.PathLike[str] | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    base: dict[str, Any] | None = None,
    base_source: str | os.PathLike[str] | None = None,
) -> C:
    """Build ``cls`` from its defaults, then ``base`` (e.g. the config saved in a checkpoint,
    ``base_source``), then the TOML file at ``path``, then ``overrides``.

    A :class:`~facetoon.errors.ConfigError` names the file (or ``base_source``) whose values are
    at fault: an unknown key or a wrong type, or values the config class refuses on their own
    (before the later sources were applied)."""
    layers: list[tuple[str | None, dict[str, Any]]] = []
    if base:
        layers.append((None if base_source is None else str(base_source), dict(base)))
    if path is not None:
        layers.append((str(path), _read_toml(Path(path))))
    if overrides:
        layers.append((None, dict(overrides)))
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for source, layer in layers:
        unknown = sorted(set(layer) - names)
        if unknown:
            raise ConfigError(f"unknown {cls.__name__} option(s): {', '.join(unknown)} "
                              f"({_suggest(unknown, names)})", path=source)
        try:
            layer.update({k: _coerce(cls.__name__, k, v, hints[k]) for k, v in layer.items()})
        except ConfigError as exc:
            raise ConfigError(exc.reason, path=source) from None
    values: dict[str, Any] = {}
    for _, layer in layers:
        values.update(layer)
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        message = f"invalid {cls.__name__}: {exc}"
    # the file at fault: the first source whose values, over those before it, the class refuses
    # (a value of a later source may only be refused in combination with an earlier one)
    so_far: dict[str, Any] = {}
    for source, layer in layers[:-1]:
        so_far.update(layer)
        try:
            cls(**so_far)
        except (TypeError, ValueError):
            raise ConfigError(message, path=source) from None
    source = layers[-1][0] if layers else None
    raise ConfigError(message, path=source) from None


def _suggest(unknown: list[str], names: set[str]) -> str:
    """The valid options closest to the ``unknown`` ones, or all of them if none is close."""
    close = list(dict.fromkeys(m for key in unknown for m in difflib.get_close_matches(key, sorted(names), n=3)))
    return f"did you mean {', '.join(close)}?" if close else f"valid: {', '.join(sorted(names))}"


def config_to_dict(config: Any, placeholders: bool = False) -> dict[str, Any]:
    """The options of ``config`` as resolved; with ``placeholders``, those the config derived from
    other options (its ``placeholders()``, if it has the method) as the placeholder they were given as."""
    data = dataclasses.asdict(config)
    if placeholders and hasattr(config, "placeholders"):
        data.update(config.placeholders())
    return data


def save_config(config: Any, path: str | os.PathLike[str]) -> None:
    """Write the config as TOML (atomically): the resolved values, except placeholders (see
    :func:`config_to_dict`), whose lines end with a comment giving their resolved value."""
    import tomli_w

    from .._fileutil import atomic_write_bytes

    resolved = config_to_dict(config)
    data = {k: v for k, v in config_to_dict(config, placeholders=True).items() if v is not None}
    lines = []
    for line in tomli_w.dumps({"train": data}).splitlines():
        key = line.partition(" = ")[0]
        lines.append(f"{line}  # resolved: {resolved[key]!r}" if data.get(key) != resolved.get(key) else line)
    atomic_write_bytes(Path(path), ("\n".join(lines) + "\n").encode())
