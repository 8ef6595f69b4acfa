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

Small differences from the official script (AnimeGANv2 ``tools/edge_smooth.py``), none of them
in the steps above: it stretches every image to ``size`` x ``size`` with OpenCV's default
(bilinear) resize and reads the colour and the grayscale image separately, truncating the blend
to uint8; :func:`smooth_file` keeps the aspect ratio (area resampling), takes the grayscale image
from the resized colour one and rounds.

:func:`smooth_directory` does this for a folder in parallel over processes and writes each file
atomically. The folder's ``.facetoon-smooth.json`` records the ``size`` and ``kernel_size`` used
and, per output, a hash of the style image it was made from; an output is skipped only when it
exists and its record matches (a style image replaced by another file, whatever its timestamp, is
redone). The record is also written when a run is interrupted, so a restart redoes little.

Training should see the smoothing at its own scale: make the copies with ``size`` = the training
``img_size`` (:func:`smooth_size_warning` says when they were not).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._fileutil import atomic_write_bytes, make_folder
from ..errors import ConfigError, DataError, InvalidImageError
from ..io import IMAGE_EXTENSIONS, WRITE_FORMATS, list_images

__all__ = ["edge_smooth", "smooth_file", "smooth_directory", "SmoothReport", "SETTINGS_FILE",
           "unwritable_images", "smooth_size_warning"]

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
    """Read ``src``, optionally resize it so that its short side is ``size`` (aspect ratio kept;
    a square image becomes ``size`` x ``size``, as in the official scripts), smooth, write ``dst``
    atomically."""
    from ..io import read_image, write_image

    image = read_image(Path(src))
    if size is not None:
        import cv2

        h, w = image.shape[:2]
        scale = size / min(h, w)
        image = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    return write_image(edge_smooth(image, kernel_size), Path(dst), quality=95)


def unwritable_images(files: Iterable[Path]) -> list[Path]:
    """The ``files`` whose extension the smooth copy (same file name) cannot be written in, e.g.
    ``.gif``: convert them to PNG."""
    return [p for p in files if p.suffix.lower() not in WRITE_FORMATS]


def _names(files: Sequence[Path], n: int = 5) -> str:
    shown = ", ".join(p.name for p in files[:n])
    return shown + (f" and {len(files) - n} more" if len(files) > n else "")


#: the record of a smooth folder: ``{"size": ..., "kernel_size": ..., "sources": {name: hash}}``
#: (the settings all its images were made with, and the hash of the style image of each)
SETTINGS_FILE = ".facetoon-smooth.json"


def _read_record(dst_dir: Path) -> dict | None:
    try:
        record = json.loads((dst_dir / SETTINGS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _digest(path: Path) -> str:
    """A hash of the file's bytes (blake2b, 128 bits)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, lambda: hashlib.blake2b(digest_size=16)).hexdigest()


def _is_done(dst: Path, digest: str, made_from: dict[str, str]) -> bool:
    """``dst`` exists and is recorded as made from a source with hash ``digest``."""
    try:
        return made_from.get(dst.name) == digest and dst.stat().st_size > 0
    except FileNotFoundError:
        return False


def smooth_size_warning(style_dir: Path, smooth_dir: Path, img_size: int) -> str | None:
    """Why the smooth copies in ``smooth_dir`` do not suit training at ``img_size`` (made at another
    ``size``, or at the source size of images whose short side is not ``img_size``), with the
    command that remakes them; ``None`` when they suit or nothing is recorded (made elsewhere)."""
    record = _read_record(smooth_dir)
    if record is None or "size" not in record or record["size"] == img_size:
        return None
    if record["size"] is None:
        from PIL import Image

        sides = set()
        for path in list_images(smooth_dir, required=False)[:5]:
            try:
                with Image.open(path) as im:
                    sides.add(min(im.size))
            except OSError:
                continue
        if sides <= {img_size}:
            return None
        made = f"at the source size (short side {', '.join(map(str, sorted(sides)))} px)"
    else:
        made = f"at size {record['size']}"
    return (f"{smooth_dir}: the smooth copies were made {made}, not at the training img_size {img_size} "
            f"(rescaled, their smoothing is much weaker or stronger than intended); remake them with: "
            f"facetoon prepare-smooth {style_dir} {smooth_dir} --size {img_size}")


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

    ``workers`` processes (default: all cores; 1 runs in this process). ``size``: resize first so
    that the short side is ``size`` px; use the training ``img_size``. An existing output is skipped
    when the folder's ``.facetoon-smooth.json`` records it as made from the same style image (by
    hash) with the same ``size`` and ``kernel_size``, unless ``overwrite``. Files that fail are
    collected in the report (the others are still written).

    Raises:
        ConfigError: bad ``workers``, ``size`` or ``kernel_size`` (checked before any work), or
            ``out_dir`` is the style folder.
        DataError: ``style_dir`` is missing, holds no images, or holds images whose smooth copy
            cannot be written under the same name (e.g. ``.gif``: convert them to PNG).
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
    bad = unwritable_images(sources)
    if bad:
        raise DataError(f"{len(bad)} style image(s) cannot have a smooth copy of the same name "
                        f"({', '.join(sorted({p.suffix.lower() for p in bad}))} cannot be written): "
                        f"{_names(bad)}; convert them to PNG", path=src_dir)
    make_folder(dst_dir)
    settings = {"size": size, "kernel_size": kernel_size}
    record = _read_record(dst_dir) or {}
    made_from: dict[str, str] = record.get("sources") or {}
    if {k: record.get(k) for k in settings} != settings:
        if record:
            log.warning("%s was made with other settings than %s: remaking every image", dst_dir, settings)
        made_from = {}
    report = SmoothReport()
    todo: list[tuple[str, str, int | None, int]] = []
    digests: dict[str, str] = {}
    for src in sources:
        dst = dst_dir / src.name
        try:
            digests[src.name] = _digest(src)
        except OSError as exc:
            report.failed[src] = f"{type(exc).__name__}: {exc.strerror or exc}"
            continue
        if not overwrite and _is_done(dst, digests[src.name], made_from):
            report.skipped.append(dst)
        else:
            made_from.pop(src.name, None)
            todo.append((str(src), str(dst), size, kernel_size))
    n = workers if workers is not None else (os.cpu_count() or 1)
    log.info("edge-smoothing %d images (%d already done) with %d worker(s)",
             len(todo), len(report.skipped), n)

    def save_record() -> None:
        data = {**settings, "sources": dict(sorted(made_from.items()))}
        atomic_write_bytes(dst_dir / SETTINGS_FILE, (json.dumps(data, indent=0) + "\n").encode())

    # the record follows the work (every 30 s, and when the run ends or is interrupted): a restart
    # redoes only what is not recorded
    try:
        if n == 1 or len(todo) <= 1:
            _collect(map(_work, todo), report, dst_dir, len(todo), made_from, digests, save_record)
        else:
            with ProcessPoolExecutor(max_workers=min(n, len(todo))) as pool:
                chunks = max(1, len(todo) // (8 * n))
                _collect(pool.map(_work, todo, chunksize=chunks), report, dst_dir, len(todo),
                         made_from, digests, save_record)
    except BaseException:
        try:  # keep what was made (an interrupt, a full disk...), but raise the error that stopped it
            save_record()
        except OSError as exc:
            log.warning("%s: could not record the smoothed copies made so far: %s", dst_dir, exc)
        raise
    save_record()
    return report


def _collect(
    results: Iterable[tuple[str, str | None]], report: SmoothReport, dst_dir: Path, total: int,
    made_from: dict[str, str], digests: dict[str, str], save_record: Callable[[], None],
) -> None:
    from tqdm import tqdm

    saved = time.monotonic()
    for src, error in tqdm(results, total=total, desc="smooth", unit="img", disable=None, leave=False):
        name = Path(src).name
        if error is None:
            report.written.append(dst_dir / name)
            made_from[name] = digests[name]
        else:
            report.failed[Path(src)] = error
        if time.monotonic() - saved > 30:
            save_record()
            saved = time.monotonic()
