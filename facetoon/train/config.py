"""Training configurations: dataclasses, read from TOML, overridable from the command line.

A config is a flat dataclass whose fields are the hyper-parameters, each with its paper
default and a comment. :func:`load_config` reads a TOML file (``[train]`` table or top level),
applies ``key=value`` overrides (values parsed as TOML, so ``lr=2e-4``, ``light=true``,
``name="x"`` or bare strings work) and rejects unknown keys or wrong types with a
:class:`~facetoon.errors.ConfigError`. :func:`save_config` writes the resolved config as TOML.
"""

from __future__ import annotations

import dataclasses
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


def load_config(
    cls: type[C],
    path: str | os.PathLike[str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> C:
    """Build ``cls`` from its defaults, then the TOML file at ``path``, then ``overrides``."""
    values: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            doc = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError("config file not found", path=p) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"invalid TOML ({exc})", path=p) from None
        values.update(doc.get("train", doc))
    values.update(overrides or {})
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} option(s): {', '.join(unknown)}")
    values = {k: _coerce(cls.__name__, k, v, hints[k]) for k, v in values.items()}
    try:
        config = cls(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid {cls.__name__}: {exc}") from None
    return config


def config_to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def save_config(config: Any, path: str | os.PathLike[str]) -> None:
    """Write the resolved config as TOML (atomically)."""
    import tomli_w

    from .._fileutil import atomic_write_bytes

    data = {k: v for k, v in config_to_dict(config).items() if v is not None}
    atomic_write_bytes(Path(path), tomli_w.dumps({"train": data}).encode())
