"""facetoon: portrait photos and videos to anime.

Importing ``facetoon`` is cheap: torch, dlib and the models are imported only when a function
that needs them is first used (attributes below resolve lazily). The subpackages resolve lazily
too: ``facetoon.io.set_max_pixels`` or ``facetoon.models.save_pretrained`` work after a plain
``import facetoon``, importing the subpackage on first access.

    >>> import facetoon
    >>> out = facetoon.stylize("portrait.jpg")   # doctest: +SKIP

Side effect of the import: ``THP_MEM_ALLOC_ENABLE=1`` is put in ``os.environ`` unless the variable
is already set (``setdefault``: an explicit value, e.g. ``0`` to opt out, wins). torch reads it
once, at its first CPU allocation, and then serves large buffers from transparent huge pages (far
fewer page faults for the hundreds-of-MB activations of the scene models). It must be set before
that first allocation, so it cannot wait until a model is used; it has no effect if torch has
already allocated, and child processes inherit it.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import (
    ConfigError,
    DataError,
    FacetoonError,
    ImageTooLargeError,
    InvalidImageError,
    NoFaceError,
    OutputError,
    TrainingError,
    VideoError,
    WeightsError,
)

# Big activations (hundreds of MB at 1080p) are allocated afresh by every op; with transparent huge
# pages torch's CPU allocator has them mapped in 2 MB instead of 4 kB pages: far fewer page faults
# (compare benchmarks/bench_background.py with and without --no-thp). torch reads this once, at its
# first allocation: it works when facetoon is imported before torch (as the CLI does); an explicit
# user value wins.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

# public name -> module that defines it (imported on first access)
_LAZY: dict[str, str] = {
    "read_image": "facetoon.io",
    "write_image": "facetoon.io",
    "read_image_with_alpha": "facetoon.io",
    "iter_image_files": "facetoon.io",
    "detect_faces": "facetoon.face",
    "align_face": "facetoon.face",
    "paste_back": "facetoon.face",
    "Face": "facetoon.face",
    "AlignedFace": "facetoon.face",
    "stylize": "facetoon.pipeline",
    "Stylizer": "facetoon.pipeline",
    "StylizeResult": "facetoon.pipeline",
    "stylize_video": "facetoon.video",
    "create_model": "facetoon.models",
    "list_models": "facetoon.models",
    "load_pretrained": "facetoon.models",
}

# public submodules, imported on first attribute access (``facetoon.io``, ``facetoon.models``, ...)
_SUBMODULES: tuple[str, ...] = (
    "background", "blend", "cli", "convert", "cpuinfo", "data", "errors", "face", "io", "layers",
    "losses", "metrics", "models", "ops", "pipeline", "runtime", "train", "video", "viz",
)

__all__ = [
    "__version__",
    "FacetoonError",
    "InvalidImageError",
    "ImageTooLargeError",
    "NoFaceError",
    "WeightsError",
    "ConfigError",
    "DataError",
    "VideoError",
    "TrainingError",
    "OutputError",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:  # importing sets the attribute: later accesses skip this function
        return importlib.import_module(f"{__name__}.{name}")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'facetoon' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*__all__, *_SUBMODULES})


if TYPE_CHECKING:  # pragma: no cover
    # noqa: F401 below: names re-exported lazily through __getattr__
    from . import (  # noqa: F401
        background, blend, cli, convert, cpuinfo, data, face, io, layers, losses, metrics, models, ops,
        pipeline, runtime, train, video, viz,
    )
    from .face import AlignedFace, Face, align_face, detect_faces, paste_back  # noqa: F401
    from .io import iter_image_files, read_image, read_image_with_alpha, write_image  # noqa: F401
    from .models import create_model, list_models, load_pretrained  # noqa: F401
    from .pipeline import Stylizer, StylizeResult, stylize  # noqa: F401
    from .video import stylize_video  # noqa: F401
