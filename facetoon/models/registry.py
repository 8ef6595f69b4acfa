"""A registry of named model architectures: one place to create a model.

Model classes register themselves with :func:`register_model`; :func:`create_model` builds one
by name with keyword arguments, :func:`list_models` lists the names. Every registered class
records its constructor arguments in ``self.config`` (a JSON-able dict), which is what
:mod:`facetoon.models.serialization` writes beside the weights.
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
from typing import Any, Callable, TypeVar

from torch import nn

from ..errors import ConfigError

__all__ = ["register_model", "create_model", "list_models", "get_model_class"]

_REGISTRY: dict[str, type[nn.Module]] = {}
# modules whose import registers architectures; imported on first lookup
_MODEL_MODULES = (
    "facetoon.models.ugatit",
    "facetoon.models.animegan",
    "facetoon.models.cartoongan",
    "facetoon.models.discriminators",
)
_loaded = False

M = TypeVar("M", bound=type[nn.Module])


def register_model(name: str) -> Callable[[M], M]:
    """Class decorator: make ``cls`` creatable as ``create_model(name, **kwargs)``."""

    def decorator(cls: M) -> M:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"model name {name!r} is already registered")
        _REGISTRY[name] = cls
        cls.arch = name  # type: ignore[attr-defined]
        return cls

    return decorator


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    for module in _MODEL_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:  # a model family not built yet
            if exc.name != module:
                raise
    _loaded = True


def get_model_class(name: str) -> type[nn.Module]:
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown model architecture {name!r}; known: {', '.join(sorted(_REGISTRY))}"
        ) from None


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the architecture registered as ``name`` with randomly initialised weights.

    ``name``: one of :func:`list_models` (``"ugatit_generator"``, ``"ugatit_discriminator"``,
    ``"animegan"``, ``"animegan_discriminator"``, ``"cartoongan"``); ``kwargs``: that class's
    constructor options. For trained weights use :func:`facetoon.models.load_pretrained`.

    The size options (the constructor arguments with an ``int`` default: ``ngf``, ``ndf``,
    ``n_res``, ``n_layers``, ``img_size``, ``channels``, ``n_res_blocks``, ``in_channels``...)
    must be integers >= 1.

    Raises:
        ConfigError: an unknown name, arguments the class does not take, or invalid values.
    """
    cls = get_model_class(name)
    params = inspect.signature(cls).parameters
    for key, value in kwargs.items():
        default = params[key].default if key in params else None
        if isinstance(default, int) and not isinstance(default, bool) \
                and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"bad arguments for model {name!r}: {key} must be an integer >= 1, got {value!r}")
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad arguments for model {name!r}: {exc}") from None


def list_models(pattern: str = "*") -> list[str]:
    """Registered architecture names matching the shell-style ``pattern``."""
    _ensure_loaded()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))
