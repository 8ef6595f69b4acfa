"""Unpaired image data for two-domain training (selfie2anime layout: trainA/, trainB/).

Reproducibility is by construction: the ``i``-th sample drawn from a domain is a pure function of
``(seed, domain, i)`` — which file (a seeded permutation per pass over the folder) and which
augmentation (a seeded generator). A run resumed at step ``s`` therefore sees exactly the
images an uninterrupted run would, whatever the number of loader workers, and each
distributed rank draws its own disjoint indices.

Images come out as ``(3, S, S)`` float tensors, RGB in [-1, 1].
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..errors import DataError
from ..io import list_images

__all__ = [
    "list_images",
    "split_holdout",
    "Augment",
    "DomainSampler",
    "UnpairedDataset",
    "PhotoStyleDataset",
    "StepSampler",
    "make_loader",
    "load_image_tensor",
]

log = logging.getLogger(__name__)


def split_holdout(files: Sequence[Path], n_holdout: int, seed: int) -> tuple[list[Path], list[Path]]:
    """Split ``files`` into (train, holdout) with a seeded shuffle; stable for a given seed."""
    if n_holdout <= 0:
        return list(files), []
    if n_holdout >= len(files):
        raise DataError(f"cannot hold out {n_holdout} of {len(files)} images")
    order = np.random.default_rng(seed).permutation(len(files))
    hold = sorted(files[i] for i in order[:n_holdout])
    keep = sorted(files[i] for i in order[n_holdout:])
    return keep, hold


def _read_rgb(path: Path) -> np.ndarray:
    from ..io import read_image

    return read_image(path)


def load_image_tensor(path: Path, size: int) -> torch.Tensor:
    """``(3, size, size)`` RGB in [-1, 1]: the image resized (bilinear) without augmentation."""
    from PIL import Image

    img = Image.fromarray(_read_rgb(path)).resize((size, size), Image.Resampling.BILINEAR)
    return _to_tensor(np.asarray(img))


def _to_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float().div_(127.5).sub_(1.0)


@dataclass(frozen=True)
class Augment:
    """U-GAT-IT's augmentation: random horizontal flip, resize to ``size + margin``, random crop.

    ``margin=30`` is the paper's; ``margin=0`` disables cropping.
    """

    size: int
    margin: int = 30
    flip: bool = True

    def __call__(self, rgb: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        from PIL import Image

        img = Image.fromarray(rgb)
        if self.flip and rng.random() < 0.5:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        big = self.size + self.margin
        img = img.resize((big, big), Image.Resampling.BILINEAR)
        x, y = (int(v) for v in rng.integers(0, self.margin + 1, size=2))
        return _to_tensor(np.asarray(img)[y:y + self.size, x:x + self.size])


class DomainSampler:
    """The ``i``-th file of a domain: a fresh seeded permutation for every pass over the files."""

    def __init__(self, n_files: int, seed: int, domain: int) -> None:
        self.n = n_files
        self.seed = seed
        self.domain = domain
        self._cache: dict[int, np.ndarray] = {}

    def __call__(self, i: int) -> int:
        epoch, pos = divmod(i, self.n)
        perm = self._cache.get(epoch)
        if perm is None:
            perm = np.random.default_rng([self.seed, self.domain, epoch]).permutation(self.n)
            self._cache = {epoch: perm}  # keep one pass in memory
        return int(perm[pos])


class UnpairedDataset(Dataset):
    """Map-style dataset: sample ``i`` -> ``(image_a (3,S,S), image_b (3,S,S))`` in [-1, 1], RGB."""

    def __init__(self, files_a: Sequence[Path], files_b: Sequence[Path], augment: Augment, seed: int) -> None:
        if not files_a or not files_b:
            raise DataError("both domains need at least one image")
        self.files = (list(files_a), list(files_b))
        self.augment = augment
        self.seed = seed
        self.samplers = (DomainSampler(len(files_a), seed, 0), DomainSampler(len(files_b), seed, 1))

    def __len__(self) -> int:  # effectively infinite; the sampler decides
        return 2**62

    def _get(self, domain: int, i: int) -> torch.Tensor:
        path = self.files[domain][self.samplers[domain](i)]
        rng = np.random.default_rng([self.seed, domain, i, 7])
        return self.augment(_read_rgb(path), rng)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._get(0, i), self._get(1, i)


class StepSampler(Sampler[int]):
    """Yields the sample indices of steps ``start_step, start_step + 1, ...`` for one rank.

    Step ``s`` of rank ``r`` (of ``world`` ranks) with batch ``b`` uses samples
    ``(s * world + r) * b ... + b - 1``.
    """

    def __init__(self, start_step: int, batch_size: int, rank: int = 0, world_size: int = 1,
                 total_steps: int | None = None) -> None:
        self.start = start_step
        self.batch = batch_size
        self.rank = rank
        self.world = world_size
        self.total = total_steps

    def __iter__(self) -> Iterator[int]:
        step = self.start
        while self.total is None or step < self.total:
            base = (step * self.world + self.rank) * self.batch
            yield from range(base, base + self.batch)
            step += 1

    def __len__(self) -> int:
        if self.total is None:
            return 2**62
        return max(0, self.total - self.start) * self.batch


def make_loader(dataset: Dataset, sampler: StepSampler, batch_size: int, num_workers: int) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        pin_memory=torch.cuda.is_available(),
        drop_last=True,
    )


class PhotoStyleDataset(Dataset):
    """AnimeGAN samples: ``i`` -> ``(photo, style, smooth)``, each ``(3, S, S)`` RGB in [-1, 1].

    Photos and style images are drawn independently (unpaired); a style image and its
    edge-smoothed copy share the file index and the augmentation, so they stay aligned.
    """

    def __init__(self, photos: Sequence[Path], styles: Sequence[Path], smooths: Sequence[Path],
                 augment: Augment, seed: int) -> None:
        if not photos or not styles:
            raise DataError("need at least one photo and one style image")
        if len(styles) != len(smooths):
            raise DataError(f"{len(styles)} style images but {len(smooths)} smoothed copies")
        self.photos, self.styles, self.smooths = list(photos), list(styles), list(smooths)
        self.augment = augment
        self.seed = seed
        self.samplers = (DomainSampler(len(self.photos), seed, 0), DomainSampler(len(self.styles), seed, 1))

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        photo = self.augment(_read_rgb(self.photos[self.samplers[0](i)]),
                             np.random.default_rng([self.seed, 0, i, 7]))
        j = self.samplers[1](i)
        style = self.augment(_read_rgb(self.styles[j]), np.random.default_rng([self.seed, 1, i, 7]))
        smooth = self.augment(_read_rgb(self.smooths[j]), np.random.default_rng([self.seed, 1, i, 7]))
        return photo, style, smooth
