"""The one-call API: :func:`stylize` runs an image through a cached :class:`Stylizer`, built once
per set of constructor options.

The cached Stylizer is shared by every thread that uses the same options, and calls on one
Stylizer are serialised (see :class:`Stylizer`): concurrent ``facetoon.stylize`` calls are safe but
run one at a time. For parallel throughput use one :class:`Stylizer` per thread."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Literal, overload

import numpy as np
from PIL import Image
from torch import nn

from ..io import ImageSource
from .image_io import FileOrPIL
from .results import StylizeResult
from .stylizer import Stylizer

__all__ = ["clear_cache", "get_stylizer", "stylize"]


_CALL_OPTIONS = frozenset({"faces", "face_weights", "strength", "max_faces", "require_face", "blend",
                           "harmonize", "return_details"})
_CACHE: OrderedDict[tuple[Any, ...], Stylizer] = OrderedDict()
_CACHE_SIZE = 2
_CACHE_LOCK = threading.Lock()


def _cache_key(options: Mapping[str, Any]) -> tuple[Any, ...]:
    def freeze(v: Any) -> Any:
        if isinstance(v, Mapping):
            return tuple(sorted((k, freeze(x)) for k, x in v.items()))
        if isinstance(v, (list, tuple)):
            return tuple(freeze(x) for x in v)
        if isinstance(v, os.PathLike):
            return os.fspath(v)
        try:
            hash(v)
        except TypeError:
            return ("id", id(v))
        if isinstance(v, nn.Module):
            return ("id", id(v))
        return v

    return tuple(sorted((k, freeze(v)) for k, v in options.items()))


def get_stylizer(**options: Any) -> Stylizer:
    """The cached :class:`Stylizer` for these constructor options (built on first use).

    The last two option sets are kept; models passed as instances are keyed by identity. The
    returned Stylizer is shared with every other caller (any thread) of the same options; its
    calls are serialised, so for parallel throughput build one Stylizer per thread instead.
    """
    key = _cache_key(options)
    with _CACHE_LOCK:
        st = _CACHE.get(key)
        if st is not None:
            _CACHE.move_to_end(key)
            return st
    st = Stylizer(**options)
    with _CACHE_LOCK:
        _CACHE[key] = st
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return st


def clear_cache() -> None:
    """Forget the cached default Stylizers (frees their models)."""
    with _CACHE_LOCK:
        _CACHE.clear()


@overload
def stylize(image: np.ndarray, *, return_details: Literal[False] = ..., **options: Any) -> np.ndarray: ...


@overload
def stylize(image: FileOrPIL, *, return_details: Literal[False] = ..., **options: Any) -> Image.Image: ...


@overload
def stylize(image: ImageSource, *, return_details: Literal[True], **options: Any) -> StylizeResult: ...


def stylize(image: ImageSource, **options: Any) -> Image.Image | np.ndarray | StylizeResult:
    """Stylize a portrait with a cached default :class:`Stylizer`.

    ``options`` are those of :class:`Stylizer` and :meth:`Stylizer.stylize`; the constructor
    options (models, device, precision, face size...) select a Stylizer that is built once and
    reused by later calls with the same options, the per-call ones (``faces``,
    ``face_weights``, ``strength``, ``max_faces``, ``require_face``, ``blend``, ``harmonize``,
    ``return_details``) apply to this call only. Calls from several threads with the same
    constructor options share one Stylizer and run one at a time (see :func:`get_stylizer`).

        >>> out = facetoon.stylize("portrait.jpg", strength=0.8)   # doctest: +SKIP

    Returns:
        The stylized image, of the same size as the (EXIF-oriented) input: a PIL image when given
        a path, bytes, a file object or a PIL image; a ``uint8`` RGB ``(H, W, 3)`` array (RGBA
        ``(H, W, 4)`` when the input had an alpha channel) when given an array; a
        :class:`StylizeResult` with ``return_details=True``. See :meth:`Stylizer.stylize`.

    Raises:
        InvalidImageError: the input is not a readable image.
        WeightsError: the models' weights are missing or do not fit.
        NoFaceError: no face found and ``require_face=True``.
        ConfigError: an invalid option.
    """
    call = {k: v for k, v in options.items() if k in _CALL_OPTIONS}
    build = {k: v for k, v in options.items() if k not in _CALL_OPTIONS}
    return get_stylizer(**build).stylize(image, **call)
