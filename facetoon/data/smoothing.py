"""Edge-smoothed copies of anime style images (CartoonGAN's edge-promoting data, used by AnimeGAN).

The discriminator learns that crisp edges are part of the anime style by being shown the same
anime images with their edges blurred, labelled *fake*. :func:`edge_smooth` makes one:

1. Canny edges of the grayscale image (hysteresis thresholds 100 and 200);
2. the edge map dilated with a ``kernel_size`` x ``kernel_size`` square (5: a few pixels around
   every edge);
3. the image blurred with a ``kernel_size`` Gaussian (sigma from the size, as OpenCV derives it;
   reflected borders);
4. blurred pixels replace the original **only where the dilated edge map is set**; everything
   else is untouched.

:func:`smooth_directory` does this for a folder in parallel over processes, skips outputs that
already exist (and are newer than their input, and were made with the same ``size`` and
``kernel_size``, recorded in the folder's ``.facetoon-smooth.json``), and writes each file
atomically, so an interrupted run can simply be restarted.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._fileutil import atomic_write_bytes, make_folder
from ..errors import ConfigError, DataError, InvalidImageError
from ..io import IMAGE_EXTENSIONS, list_images

__all__ = ["edge_smooth", "smooth_file", "smooth_directory", "SmoothReport"]

log = logging.getLogger(__name__)


def edge_smooth(
    image: np.ndarray,
    kernel_size: int = 5,
    canny_low: int = 100,
    canny_high: int = 200,
) -> np.ndarray:
    """Blur ``image`` ``(H, W, 3)`` uint8 RGB around its edges only; returns a new uint8 RGB array."""
    import cv2

    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        desc = (f"dtype {image.dtype}, shape {image.shape}" if isinstance(image, np.ndarray)
                else type(image).__name__)
        raise InvalidImageError(f"edge_smooth expects an (H, W, 3) uint8 RGB array, got {desc}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ConfigError(f"kernel_size must be a positive odd number, got {kernel_size}")
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    edges = cv2.Canny(gray, canny_low, canny_high)
    mask = cv2.dilate(edges, np.ones((kernel_size, kernel_size), np.uint8)) > 0
    blurred = cv2.GaussianBlur(image.astype(np.float32), (kernel_size, kernel_size), 0,
                               borderType=cv2.BORDER_REFLECT_101)
    out = image.copy()
    out[mask] = np.clip(np.rint(blurred[mask]), 0, 255).astype(np.uint8)
    return out


def smooth_file(src: str | os.PathLike[str], dst: str | os.PathLike[str], size: int | None = None,
                kernel_size: int = 5) -> Path:
    """Read ``src``, optionally resize to ``size`` x ``size`` (as the official scripts do), smooth,
    write ``dst`` atomically."""
    from ..io import read_image, write_image

    image = read_image(Path(src))
    if size is not None:
        import cv2

        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    return write_image(edge_smooth(image, kernel_size), Path(dst), quality=95)


#: the settings the smoothed images of a folder were made with (a change remakes them all)
SETTINGS_FILE = ".facetoon-smooth.json"


def _settings_changed(dst_dir: Path, settings: dict[str, int | None]) -> bool:
    """Whether ``dst_dir`` records settings other than ``settings`` (no record: unknown, False)."""
    try:
        recorded = json.loads((dst_dir / SETTINGS_FILE).read_text())
    except (OSError, ValueError):
        return False
    return bool(recorded != settings)


def _is_done(src: Path, dst: Path) -> bool:
    try:
        return dst.stat().st_size > 0 and dst.stat().st_mtime >= src.stat().st_mtime
    except FileNotFoundError:
        return False


def _work(args: tuple[str, str, int | None, int]) -> tuple[str, str | None]:
    src, dst, size, kernel = args
    try:
        smooth_file(src, dst, size, kernel)
        return src, None
    except Exception as exc:  # noqa: BLE001 - reported per file, the batch continues
        return src, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


@dataclass
class SmoothReport:
    """What :func:`smooth_directory` did: files written, skipped (already done) and failed."""

    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: dict[Path, str] = field(default_factory=dict)


def smooth_directory(
    style_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    workers: int | None = None,
    size: int | None = None,
    kernel_size: int = 5,
    overwrite: bool = False,
    files: Sequence[Path] | None = None,
) -> SmoothReport:
    """Write the edge-smoothed copy of every image of ``style_dir`` to ``out_dir`` (same file names).

    ``workers`` processes (default: all cores; 1 runs in this process). Existing outputs newer
    than their input are skipped unless ``overwrite``, or unless the folder's
    ``.facetoon-smooth.json`` records another ``size`` or ``kernel_size``. Files that fail are collected in the
    report (the others are still written).

    Raises:
        ConfigError: bad ``workers``, ``size`` or ``kernel_size`` (checked before any work), or
            ``out_dir`` is the style folder.
        DataError: ``style_dir`` is missing or holds no images.
        OutputError: a file stands where ``out_dir`` or one of its parents should be.
    """
    if workers is not None and workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    if size is not None and size < 8:
        raise ConfigError(f"size must be >= 8, got {size}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ConfigError(f"kernel_size must be a positive odd number (e.g. 3, 5, 7), got {kernel_size}")
    src_dir, dst_dir = Path(style_dir), Path(out_dir)
    if not src_dir.is_dir():
        raise DataError("style folder not found", path=src_dir)
    sources = list(files) if files is not None else list_images(src_dir, required=False)
    if not sources:
        raise DataError(f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) in the style folder", path=src_dir)
    if src_dir.resolve() == dst_dir.resolve():
        raise ConfigError(f"output folder must differ from the style folder ({src_dir})")
    make_folder(dst_dir)
    settings = {"size": size, "kernel_size": kernel_size}
    if not overwrite and _settings_changed(dst_dir, settings):
        log.warning("%s was made with other settings than %s: remaking every image", dst_dir, settings)
        overwrite = True
    report = SmoothReport()
    todo: list[tuple[str, str, int | None, int]] = []
    for src in sources:
        dst = dst_dir / src.name
        if not overwrite and _is_done(src, dst):
            report.skipped.append(dst)
        else:
            todo.append((str(src), str(dst), size, kernel_size))
    n = workers if workers is not None else (os.cpu_count() or 1)
    log.info("edge-smoothing %d images (%d already done) with %d worker(s)",
             len(todo), len(report.skipped), n)
    if n == 1 or len(todo) <= 1:
        _collect(map(_work, todo), report, dst_dir, len(todo))
    else:
        with ProcessPoolExecutor(max_workers=min(n, len(todo))) as pool:
            chunks = max(1, len(todo) // (8 * n))
            _collect(pool.map(_work, todo, chunksize=chunks), report, dst_dir, len(todo))
    # recorded once all are made: an interrupted remake is redone in full next time
    atomic_write_bytes(dst_dir / SETTINGS_FILE, (json.dumps(settings) + "\n").encode())
    return report


def _collect(
    results: Iterable[tuple[str, str | None]], report: SmoothReport, dst_dir: Path, total: int
) -> None:
    from tqdm import tqdm

    for src, error in tqdm(results, total=total, desc="smooth", unit="img", disable=None, leave=False):
        if error is None:
            report.written.append(dst_dir / Path(src).name)
        else:
            report.failed[Path(src)] = error
