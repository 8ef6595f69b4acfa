"""Kernel Inception Distance on MobileNetV2 features (facetoon's quality bar metric).

KID (Binkowski et al., ICLR 2018) is the squared maximum mean discrepancy between two feature
sets under the cubic polynomial kernel ``k(x, y) = (x . y / d + 1) ** 3`` (``d`` = feature
dimension), estimated without bias, averaged over random subsets. facetoon computes it on the
pooled 1280-d features of the ImageNet MobileNetV2 (see :mod:`facetoon.metrics.features`) and
reports it multiplied by 100 ("KIDx100"): about 150 for raw selfies against anime faces, under 2
between two sets of anime faces.

The MMD part is pure numpy (float64). :func:`kid` works on feature arrays; :func:`kid_between_folders`
reads two image folders, extracts features and calls :func:`kid`.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..errors import ConfigError, DataError

__all__ = [
    "KIDResult",
    "KIDReport",
    "polynomial_kernel",
    "mmd2_unbiased",
    "kid",
    "kid_between_folders",
    "validation_kid_x100",
]

log = logging.getLogger(__name__)

MAX_SUBSET_SIZE = 1000
# feature sets up to this size get one Gram matrix each, shared by all subsets
_PRECOMPUTE_LIMIT = 6000


class KIDResult(NamedTuple):
    """KID mean and standard deviation over subsets, in raw units (multiply by 100 for KIDx100),
    and the number of subsets they were computed over (1 when a subset is the whole of both sets)."""

    mean: float
    std: float
    n_subsets: int = 1

    @property
    def mean_x100(self) -> float:
        return 100.0 * self.mean

    @property
    def std_x100(self) -> float:
        return 100.0 * self.std

    def __str__(self) -> str:
        return f"KIDx100 = {self.mean_x100:.2f} ± {self.std_x100:.2f}"


_USE_EXTRACTOR = "compute features of images with facetoon.metrics.FeatureExtractor (or extract_features) first"


def _as_features(x: Any, name: str) -> np.ndarray:
    """(N, D) float64 features, or :class:`ConfigError` naming ``name`` (e.g. for image paths)."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name}: kid() takes numeric (N, D) feature arrays, got a {type(x).__name__} "
                          f"that is not one ({str(exc).splitlines()[0]}); {_USE_EXTRACTOR}") from None
    if arr.ndim != 2:
        raise ConfigError(f"{name}: features must be a 2-D (N, D) array, got shape {arr.shape}; "
                          f"{_USE_EXTRACTOR}")
    if not np.isfinite(arr).all():
        raise ConfigError(f"{name}: features contain NaN or infinite values")
    return arr


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``(x @ y.T / d + 1) ** 3`` for (N, D) and (M, D) arrays -> (N, M)."""
    d = x.shape[1]
    return (x @ y.T / d + 1.0) ** 3


def _mmd2_from_sums(sum_xx: float, sum_yy: float, sum_xy: float, m: int, n: int) -> float:
    """Unbiased MMD^2 from kernel sums that exclude the diagonals of K_xx and K_yy."""
    return sum_xx / (m * (m - 1)) + sum_yy / (n * (n - 1)) - 2.0 * sum_xy / (m * n)


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased squared MMD between (m, D) and (n, D) samples under :func:`polynomial_kernel`.

    ``mean_{i != j} k(x_i, x_j) + mean_{i != j} k(y_i, y_j) - 2 mean_{i, j} k(x_i, y_j)``;
    its expectation is 0 when both samples come from the same distribution (it can be negative).
    """
    x = _as_features(x, "x")
    y = _as_features(y, "y")
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ConfigError(f"the unbiased MMD needs at least 2 samples per set, got {m} and {n}")
    if x.shape[1] != y.shape[1]:
        raise ConfigError(f"feature dimensions differ: {x.shape[1]} and {y.shape[1]}")
    kxx = polynomial_kernel(x, x)
    kyy = polynomial_kernel(y, y)
    kxy = polynomial_kernel(x, y)
    return _mmd2_from_sums(kxx.sum() - np.trace(kxx), kyy.sum() - np.trace(kyy), kxy.sum(), m, n)


def kid(
    features_a: Any,
    features_b: Any,
    n_subsets: int = 100,
    subset_size: int | None = None,
    seed: int = 0,
) -> KIDResult:
    """KID between two feature sets: mean and std of the unbiased MMD^2 over random subsets.

    Args:
        features_a: (n_a, D) features of set A (e.g. stylised selfies), any float dtype.
        features_b: (n_b, D) features of set B (e.g. anime faces).
        n_subsets: number of random subset pairs (100 in the quality bar).
        subset_size: images per subset, drawn without replacement from each set; default
            ``min(1000, n_a, n_b)``. When it equals both set sizes every subset is the whole set
            and the std is 0.
        seed: seed of the subset sampling (numpy ``default_rng``).

    Returns:
        :class:`KIDResult` ``(mean, std)`` in raw units; ``.mean_x100`` is the reported KIDx100.

    Raises:
        ConfigError (a ValueError): not numeric (N, D) arrays (e.g. image paths: extract features
            with :class:`facetoon.metrics.FeatureExtractor` first), NaN/inf, bad shapes, fewer
            than 2 features per set, or a subset larger than a set.
    """
    a = _as_features(features_a, "features_a")
    b = _as_features(features_b, "features_b")
    if a.shape[1] != b.shape[1]:
        raise ConfigError(
            f"feature dimensions differ: {a.shape[1]} (features_a) and {b.shape[1]} (features_b)")
    n_a, n_b = len(a), len(b)
    if n_a < 2 or n_b < 2:
        raise ConfigError(f"KID needs at least 2 images per set, got {n_a} and {n_b}")
    m = min(MAX_SUBSET_SIZE, n_a, n_b) if subset_size is None else int(subset_size)
    if m < 2 or m > min(n_a, n_b):
        raise ConfigError(f"subset_size must be in 2..{min(n_a, n_b)} (the smaller set), got {m}")
    if n_subsets < 1:
        raise ConfigError(f"n_subsets must be at least 1, got {n_subsets}")
    if m == n_a == n_b:  # every subset is the whole of both sets: one gives the mean, the std is 0
        n_subsets = 1
    rng = np.random.default_rng(seed)
    precompute = max(n_a, n_b) <= _PRECOMPUTE_LIMIT
    if precompute:
        kaa, kbb, kab = polynomial_kernel(a, a), polynomial_kernel(b, b), polynomial_kernel(a, b)
    values = np.empty(n_subsets)
    for i in range(n_subsets):
        ia = np.sort(rng.choice(n_a, m, replace=False))
        ib = np.sort(rng.choice(n_b, m, replace=False))
        if precompute:
            sub_aa = kaa[np.ix_(ia, ia)]
            sub_bb = kbb[np.ix_(ib, ib)]
            sum_ab = kab[np.ix_(ia, ib)].sum()
        else:
            xa, xb = a[ia], b[ib]
            sub_aa, sub_bb = polynomial_kernel(xa, xa), polynomial_kernel(xb, xb)
            sum_ab = polynomial_kernel(xa, xb).sum()
        values[i] = _mmd2_from_sums(
            sub_aa.sum() - np.trace(sub_aa), sub_bb.sum() - np.trace(sub_bb), sum_ab, m, m
        )
    return KIDResult(float(values.mean()), float(values.std()), n_subsets)


def validation_kid_x100(features_a: Any, features_b: Any, n_subsets: int = 100, seed: int = 0) -> dict[str, float]:
    """The trainers' validation KID: ``{"kid_x100": mean}`` (as :func:`kid`), plus ``"kid_x100_std"``
    only when the subsets differ: with as many images on both sides (<= 1000) every subset is the
    whole of both sets and there is no spread to report."""
    result = kid(features_a, features_b, n_subsets=n_subsets, seed=seed)
    stats = {"kid_x100": result.mean_x100}
    if not len(features_a) == len(features_b) <= MAX_SUBSET_SIZE:
        stats["kid_x100_std"] = result.std_x100
    return stats


@dataclass(frozen=True)
class KIDReport:
    """The outcome of :func:`kid_between_folders` (KID values in raw units; see ``.result``)."""

    result: KIDResult
    n_a: int
    n_b: int
    subset_size: int
    n_subsets: int
    backend: str
    seconds: float

    def __str__(self) -> str:
        return f"{self.result} ({self.n_a}, {self.n_b} images)"

    def as_dict(self) -> dict[str, Any]:
        return {
            "kid_x100_mean": self.result.mean_x100,
            "kid_x100_std": self.result.std_x100,
            "n_a": self.n_a,
            "n_b": self.n_b,
            "subset_size": self.subset_size,
            "n_subsets": self.n_subsets,
            "backend": self.backend,
            "seconds": self.seconds,
        }


def kid_between_folders(
    dir_a: str | os.PathLike[str],
    dir_b: str | os.PathLike[str],
    *,
    n_subsets: int = 100,
    subset_size: int | None = None,
    limit: int | None = None,
    backend: str = "litert",
    seed: int = 0,
    model_path: str | os.PathLike[str] | None = None,
    batch_size: int = 32,
    progress: bool = False,
) -> KIDReport:
    """KID between the images of two folders (sorted file names; first ``limit`` of each if given).

    Features come from :func:`facetoon.metrics.features.extract_features` with ``backend``
    ("litert": the quantised TFLite reference; "torch": the float PyTorch port). Raises
    :class:`DataError` for a missing or empty folder or one with fewer than 2 images.
    """
    from .features import extract_features, list_images

    start = time.perf_counter()
    sets = []
    for folder in (dir_a, dir_b):
        files = list_images(folder)
        if limit is not None:
            files = files[:limit]
        if len(files) < 2:
            raise DataError(f"KID needs at least 2 images, found {len(files)}", path=folder)
        sets.append(files)
    if subset_size is not None and not 2 <= subset_size <= min(len(s) for s in sets):
        raise DataError(
            f"--subset-size {subset_size} must be in 2..{min(len(s) for s in sets)} "
            "(images in the smaller set)",
            path=dir_a if len(sets[0]) <= len(sets[1]) else dir_b,
        )
    feats = [
        extract_features(files, backend=backend, model_path=model_path, batch_size=batch_size,
                         progress=progress)
        for files in sets
    ]
    result = kid(feats[0], feats[1], n_subsets=n_subsets, subset_size=subset_size, seed=seed)
    m = subset_size or min(MAX_SUBSET_SIZE, len(sets[0]), len(sets[1]))
    seconds = time.perf_counter() - start
    log.info("KID %s vs %s: %s in %.1f s", Path(dir_a).name, Path(dir_b).name, result, seconds)
    return KIDReport(result, len(sets[0]), len(sets[1]), m, result.n_subsets, backend, seconds)
