"""Unpaired image data for two-domain training (selfie2anime layout: trainA/, trainB/).

Reproducibility is by construction: the ``i``-th sample drawn from a domain is a pure function of
``(seed, domain, i)`` — which file (a seeded permutation per pass over the folder) and which
augmentation (a seeded generator). A run resumed at step ``s`` therefore sees exactly the
images an uninterrupted run would, whatever the number of loader workers, and each
distributed rank draws its own disjoint indices.

Images come out as ``(3, S, S)`` float tensors, RGB in [-1, 1]. Non-square images are not
distorted: their centre square is used (the short side scaled to the size, the long side cropped).

A bad file does not stop training: a sample whose image cannot be read, or is blank (one colour:
nothing to learn, and constant maps under instance norm), is replaced by the next file of the same
domain (file index + 1, wrapping), which is again a pure function of the sample index, so an
exact resume stays exact. Each bad file is logged once (per loader process) with the reason and
kept in ``dataset.bad_files`` for the trainer to report; the per-file state lives in shared memory,
so the main process sees what the loader workers found. When every file of a domain is bad, or
more than half of the files drawn so far, :class:`~facetoon.errors.DataError` names the folder.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..errors import DataError, FacetoonError, first_line
from ..io import list_images

if TYPE_CHECKING:
    from PIL import Image

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
    "usable_images",
]

log = logging.getLogger(__name__)


def _folder_of(files: Sequence[Path]) -> Path | None:
    """The folder holding ``files`` (their common parent), ``None`` for no files."""
    if not files:
        return None
    parents = {str(Path(f).parent) for f in files}
    return Path(parents.pop() if len(parents) == 1 else os.path.commonpath(sorted(parents)))


def split_holdout(files: Sequence[Path], n_holdout: int, seed: int) -> tuple[list[Path], list[Path]]:
    """Split ``files`` into (train, holdout) with a seeded shuffle; stable for a given seed.

    Raises:
        DataError: ``n_holdout`` would leave no training image; names the folder and the option.
    """
    if n_holdout <= 0:
        return list(files), []
    if n_holdout >= len(files):
        raise DataError(f"cannot hold out {n_holdout} of {len(files)} images for validation; lower it with "
                        f"--set holdout=N (0 = no validation)", path=_folder_of(files))
    order = np.random.default_rng(seed).permutation(len(files))
    hold = sorted(files[i] for i in order[:n_holdout])
    keep = sorted(files[i] for i in order[n_holdout:])
    return keep, hold


def usable_images(files: Sequence[Path], what: str) -> list[Path]:
    """``files`` without those that cannot be read, each dropped with a warning naming it and
    ``what`` they were for (e.g. ``"validation (trainA held out)"``): validation and sample images are
    read at every validation, so one broken file would otherwise stop the run each time."""
    kept = []
    for path in files:
        try:
            _read_rgb(Path(path))
        except (FacetoonError, OSError, ValueError) as exc:
            log.warning("%s: unreadable %s image, left out: %s", path, what,
                        getattr(exc, "reason", None) or first_line(exc))
            continue
        kept.append(Path(path))
    return kept


def _read_rgb(path: Path) -> np.ndarray:
    from ..io import read_image

    return read_image(path)


def _resize_square(img: Image.Image, side: int) -> Image.Image:
    """``img`` resized (bilinear) to ``side`` x ``side``; a non-square image is first cropped to
    its centre square (its short side scaled to ``side``, the long side cut), so nothing is distorted."""
    from PIL import Image

    w, h = img.size
    if w != h:
        m = min(w, h)
        left, top = (w - m) // 2, (h - m) // 2
        img = img.crop((left, top, left + m, top + m))
    return img.resize((side, side), Image.Resampling.BILINEAR)


def load_image_tensor(path: Path, size: int) -> torch.Tensor:
    """``(3, size, size)`` RGB in [-1, 1]: the image resized (bilinear) without augmentation (a
    non-square image: its centre square)."""
    from PIL import Image

    return _to_tensor(np.asarray(_resize_square(Image.fromarray(_read_rgb(path)), size)))


def _to_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float().div_(127.5).sub_(1.0)


@dataclass(frozen=True)
class Augment:
    """U-GAT-IT's augmentation: random horizontal flip, resize to ``size + margin`` square, random
    ``size`` crop. A non-square image keeps its aspect ratio: its short side is scaled to
    ``size + margin`` and the long side centre-cropped (the random draws are the same as for a
    square image).

    ``margin=30`` is the paper's; ``margin=0`` disables the random crop.
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
        img = _resize_square(img, big)
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


# per-file state of a _Domain, one byte per entry in shared memory (loader workers set it too)
_OK, _BAD, _DRAWN, _SMALL_WARNED = 1, 2, 4, 8
_MIN_DRAWN = 20  # files drawn before "more than half are bad" stops the run (or all, if fewer)


def _shared_flags(n: int) -> torch.Tensor:
    flags = torch.zeros(n, dtype=torch.uint8)
    try:
        flags.share_memory_()
    except (RuntimeError, OSError):  # no shared memory: each process keeps its own state
        log.debug("no shared memory for the bad-file state; loader workers will not report to the trainer")
    return flags


class _Domain:
    """The files of one domain for sampling, with the bad-file replacement rule.

    Each entry is a tuple of paths read together (an image, or a style image and its smoothed
    copy); an entry is bad when any of its files is. ``size`` is the training size (tiny images
    are upscaled, with a warning when a side is below half of it).
    """

    def __init__(self, entries: Sequence[tuple[Path, ...]], sampler: DomainSampler, size: int) -> None:
        self.entries = [tuple(Path(p) for p in e) for e in entries]
        self.sampler = sampler
        self.size = size
        self.folder = _folder_of([e[0] for e in self.entries])
        self.flags = _shared_flags(len(self.entries))
        self.reasons: dict[Path, str] = {}  # bad files met in this process -> reason

    def _check(self, path: Path) -> tuple[np.ndarray | None, str]:
        """``(rgb, "")``, or ``(None, reason)`` when ``path`` is unusable."""
        try:
            rgb = _read_rgb(path)
        except (FacetoonError, OSError, ValueError) as exc:
            return None, getattr(exc, "reason", None) or first_line(exc)
        if rgb.size == 0 or not np.ptp(rgb.reshape(-1, rgb.shape[-1]), axis=0).any():
            return None, "blank image (one colour)"
        return rgb, ""

    def _read_entry(self, k: int) -> list[np.ndarray] | None:
        images = []
        for path in self.entries[k]:
            rgb, reason = self._check(path)
            if rgb is None:
                self.reasons[path] = reason
                self.flags[k] |= _BAD
                log.warning("%s: bad training image, skipped: %s", path, reason)
                return None
            h, w = rgb.shape[:2]
            if min(h, w) * 2 < self.size and not int(self.flags[k]) & _SMALL_WARNED:
                self.flags[k] |= _SMALL_WARNED
                log.warning("%s: small training image (%d x %d px, upscaled to %d)", path, w, h, self.size)
            images.append(rgb)
        self.flags[k] |= _OK
        return images

    def _too_many_bad(self) -> DataError | None:
        flags = self.flags.numpy()
        drawn = int(np.count_nonzero(flags & _DRAWN))
        bad = int(np.count_nonzero((flags & (_DRAWN | _BAD)) == _DRAWN | _BAD))
        if drawn >= min(len(flags), _MIN_DRAWN) and bad * 2 > drawn:
            return self._error(f"{bad} of {drawn} images drawn so far are unreadable or blank")
        return None

    def _error(self, what: str) -> DataError:
        example = next(iter(sorted(self.bad_files.items())), None)
        first = f" (e.g. {example[0].name}: {example[1]})" if example else ""
        return DataError(f"{what}{first}; fix or remove them", path=self.folder)

    def read(self, i: int) -> list[np.ndarray]:
        """The images of sample ``i``: its file, or the next usable one when it is bad."""
        n = len(self.entries)
        start = self.sampler(i)
        if not int(self.flags[start]) & _DRAWN:
            self.flags[start] |= _DRAWN
        for step in range(n):
            k = (start + step) % n
            if int(self.flags[k]) & _BAD:
                continue
            images = self._read_entry(k)
            if images is not None:
                if step:
                    error = self._too_many_bad()
                    if error is not None:
                        raise error
                return images
        raise self._error(f"none of the {n} images can be used for training")

    @property
    def bad_files(self) -> dict[Path, str]:
        """Bad files found so far (by any loader process) -> reason."""
        found = {}
        for k in np.flatnonzero(self.flags.numpy() & _BAD):
            entry = self.entries[int(k)]
            known = [p for p in entry if p in self.reasons]
            if known:
                found[known[0]] = self.reasons[known[0]]
                continue
            for path in entry:  # found by a loader worker: read again for the reason
                rgb, reason = self._check(path)
                if rgb is None:
                    found[path] = reason
                    break
            else:
                found[entry[0]] = "could not be read during training"
        return found


class UnpairedDataset(Dataset):
    """Map-style dataset: sample ``i`` -> ``(image_a (3,S,S), image_b (3,S,S))`` in [-1, 1], RGB.

    A bad image is replaced by the next one of its domain (see the module docstring);
    :attr:`bad_files` lists those found.
    """

    def __init__(self, files_a: Sequence[Path], files_b: Sequence[Path], augment: Augment, seed: int) -> None:
        if not files_a or not files_b:
            raise DataError("both domains need at least one image")
        self.files = (list(files_a), list(files_b))
        self.augment = augment
        self.seed = seed
        self.samplers = (DomainSampler(len(files_a), seed, 0), DomainSampler(len(files_b), seed, 1))
        self.domains = tuple(_Domain([(p,) for p in files], sampler, augment.size)
                             for files, sampler in zip(self.files, self.samplers))

    def __len__(self) -> int:  # effectively infinite; the sampler decides
        return 2**62

    @property
    def bad_files(self) -> dict[Path, str]:
        """Unreadable or blank files found so far (in any loader process) -> reason; they are skipped."""
        return {**self.domains[0].bad_files, **self.domains[1].bad_files}

    def _get(self, domain: int, i: int) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, domain, i, 7])
        return self.augment(self.domains[domain].read(i)[0], rng)

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
    edge-smoothed copy share the file index and the augmentation, so they stay aligned (a style
    image whose copy has another shape, made at a smaller size, is first resized to the copy's
    shape, so that both are resampled alike and differ only at the edges; the official AnimeGANv2
    code draws the smoothed images through a loader of their own, so its batches pair a style
    image with another image's smoothed copy: each loss term averages over the same images
    either way). When
    the smooth copies were made at another size than ``augment.size`` (their folder's record says
    so), one warning gives the command that remakes them. A bad
    photo, or a style image whose file or smoothed copy is bad, is replaced by the next one (see
    the module docstring); :attr:`bad_files` lists those found.
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
        self.domains = (_Domain([(p,) for p in self.photos], self.samplers[0], augment.size),
                        _Domain(list(zip(self.styles, self.smooths)), self.samplers[1], augment.size))
        style_dir, smooth_dir = _folder_of(self.styles), _folder_of(self.smooths)
        if style_dir is not None and smooth_dir is not None:
            from ..data.smoothing import smooth_size_warning

            warning = smooth_size_warning(style_dir, smooth_dir, augment.size)
            if warning:
                log.warning("%s", warning)

    def __len__(self) -> int:
        return 2**62

    @property
    def bad_files(self) -> dict[Path, str]:
        """Unreadable or blank files found so far (in any loader process) -> reason; they are skipped."""
        return {**self.domains[0].bad_files, **self.domains[1].bad_files}

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        (photo_rgb,) = self.domains[0].read(i)
        style_rgb, smooth_rgb = self.domains[1].read(i)
        if style_rgb.shape != smooth_rgb.shape:  # copy made at another size: resample both alike
            from PIL import Image

            size = (smooth_rgb.shape[1], smooth_rgb.shape[0])
            style_rgb = np.asarray(Image.fromarray(style_rgb).resize(size, Image.Resampling.BILINEAR))
        photo = self.augment(photo_rgb, np.random.default_rng([self.seed, 0, i, 7]))
        style = self.augment(style_rgb, np.random.default_rng([self.seed, 1, i, 7]))
        smooth = self.augment(smooth_rgb, np.random.default_rng([self.seed, 1, i, 7]))
        return photo, style, smooth
