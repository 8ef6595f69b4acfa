"""Quality metrics: KID on the pooled features of the ImageNet MobileNetV2.

``facetoon.metrics.kid`` holds the numpy MMD part (:func:`kid`, :func:`kid_between_folders`);
``facetoon.metrics.features`` turns images into the 1280-d features with the quantised TFLite
reference ("litert" backend) or the float PyTorch port ("torch" backend). Importing this package
loads neither torch nor the TFLite runtime; they are imported when features are first extracted.

    >>> from facetoon.metrics import extract_features, kid          # doctest: +SKIP
    >>> fa = extract_features(stylised, backend="torch")           # (N, 1280)
    >>> fb = extract_features(anime_paths, backend="torch")
    >>> kid(fa, fb).mean_x100                                       # KIDx100

The CLI equivalent: ``facetoon eval kid A_DIR B_DIR``.
"""

from __future__ import annotations

import importlib
from typing import Any

from .kid import KIDReport, KIDResult, kid, kid_between_folders, mmd2_unbiased, polynomial_kernel

__all__ = [
    "KIDResult",
    "KIDReport",
    "kid",
    "kid_between_folders",
    "mmd2_unbiased",
    "polynomial_kernel",
    "extract_features",
    "FeatureExtractor",
    "list_images",
]


# names of facetoon.metrics.features, which is imported on first access (it imports PIL)
_FEATURE_NAMES = ("extract_features", "FeatureExtractor", "list_images", "get_extractor")


def __getattr__(name: str) -> Any:
    if name == "features" or name in _FEATURE_NAMES:
        features = importlib.import_module(f"{__name__}.features")
        return features if name == "features" else getattr(features, name)
    raise AttributeError(f"module 'facetoon.metrics' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*__all__, *_FEATURE_NAMES, "features", "kid"})
