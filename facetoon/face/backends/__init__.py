"""Face backends by name.

Built-in names:

* ``"dlib"`` — dlib's HOG frontal face detector and a dlib shape predictor (5 points by
  default, public domain; 68 points with ``landmarks="68"``, non-commercial licence). Fast on
  CPU; the default.
* ``"dlib-cnn"`` — dlib's CNN (MMOD) face detector with the same shape predictors; more robust
  to pose and blur, much slower on CPU.
* ``"fan"`` — dlib's HOG detector for boxes and the FAN 2D network of the ``face-alignment``
  package for 68 landmarks; needs its weights on disk (see
  :mod:`facetoon.face.backends.fan_backend`).

Backend modules are imported only when their name is first used, and instances are cached per
``(name, options)`` so models load once per process (thread-safe). To add a detector, write one
module with a :class:`FaceBackend` subclass and call :func:`register_backend`.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import Any

from ...errors import ConfigError
from .base import Box, Detection, FaceBackend

__all__ = [
    "Box",
    "Detection",
    "FaceBackend",
    "available_backends",
    "get_backend",
    "register_backend",
]

# name -> (module, class name, fixed constructor options)
_BUILTIN: dict[str, tuple[str, str, dict[str, Any]]] = {
    "dlib": ("facetoon.face.backends.dlib_backend", "DlibBackend", {"detector": "hog"}),
    "dlib-cnn": ("facetoon.face.backends.dlib_backend", "DlibBackend", {"detector": "cnn"}),
    "fan": ("facetoon.face.backends.fan_backend", "FanBackend", {}),
}
_FACTORIES: dict[str, Callable[..., FaceBackend]] = {}
_INSTANCES: dict[tuple[str, tuple[tuple[str, Any], ...]], FaceBackend] = {}
_LOCK = threading.RLock()  # re-entrant: a backend may build another one


def register_backend(name: str, factory: Callable[..., FaceBackend]) -> None:
    """Make ``factory(**options)`` available as ``detect_faces(..., backend=name)``."""
    with _LOCK:
        _FACTORIES[name] = factory


def available_backends() -> list[str]:
    """Names accepted by :func:`get_backend` (whether or not their weights are present)."""
    return sorted({*_BUILTIN, *_FACTORIES})


def _factory(name: str) -> Callable[..., FaceBackend]:
    if name in _FACTORIES:
        return _FACTORIES[name]
    if name in _BUILTIN:
        module, cls_name, fixed = _BUILTIN[name]
        cls = getattr(importlib.import_module(module), cls_name)
        return lambda **options: cls(**{**fixed, **options})
    raise ConfigError(f"backend: unknown face backend {name!r}; choose one of {available_backends()}")


def get_backend(name: str | FaceBackend, **options: Any) -> FaceBackend:
    """Return a cached backend instance for ``name`` and constructor ``options``.

    A :class:`FaceBackend` instance is returned as is (``options`` must then be empty).

    Raises:
        ConfigError: unknown name or bad options.
        WeightsError: the backend's model files are missing.
    """
    if isinstance(name, FaceBackend):
        if options:
            raise ConfigError(f"backend: options {sorted(options)} need a backend name, not an instance")
        return name
    if not isinstance(name, str):
        raise ConfigError(f"backend: expected a name or a FaceBackend, got {type(name).__name__}")
    key = (name, tuple(sorted(options.items())))
    with _LOCK:
        backend = _INSTANCES.get(key)
        if backend is None:
            backend = _factory(name)(**options)
            _INSTANCES[key] = backend
    return backend
