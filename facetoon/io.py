"""Image input/output: read anything into RGB ``uint8``, write atomically, convert to tensors.

Conventions used throughout facetoon:

* an **image array** is a C-contiguous ``numpy.ndarray`` of shape ``(H, W, 3)``, dtype ``uint8``,
  channels in **RGB** order (never BGR), values 0..255;
* an **alpha mask** is ``(H, W)`` ``uint8``, 0 = transparent, 255 = opaque (straight, not
  premultiplied);
* a **model tensor** is ``float32`` of shape ``(B, 3, H, W)``, RGB, values in ``[-1, 1]``
  (see :func:`to_tensor` / :func:`to_image`).

Reading (:func:`read_image`, :func:`read_image_with_alpha`) accepts a path (``str`` or
``os.PathLike``), ``bytes``/``bytearray``/``memoryview``, a binary file object, a
``PIL.Image.Image`` or a ``numpy`` array, and applies these rules:

* **EXIF orientation** (tag 274, values 2-8) is applied, so pixels come out the way viewers show
  them.
* **Modes** are converted to RGB: ``1``/``L`` are replicated to three channels; ``P`` goes
  through its palette; ``CMYK``/``YCbCr``/``LAB``/``HSV`` use Pillow's conversion (embedded ICC
  profiles are not applied); 16-bit ``I;16*`` and ``I`` are read as 0..65535 and scaled to
  0..255 with rounding (``round(v / 257)``, values outside 0..65535 clipped); ``F`` (float) is
  read as 0..1 like float arrays. Pillow itself reduces 16-bit RGB(A) PNGs to 8 bits.
  The ``tRNS`` transparent colour of a 16-bit gray image is ignored.
* **Transparency** (``RGBA``, ``LA``, ``PA``, palette or ``tRNS`` transparency) is
  composited over **white** for the RGB result. :func:`read_image_with_alpha` also returns the
  alpha mask (``None`` when the image is fully opaque) so a pipeline can re-attach it, and
  ``read_image(..., keep_alpha=True)`` returns the un-composited ``(H, W, 4)`` RGBA array.
* **Animated** images (GIF, APNG, WebP, multi-page TIFF): the first frame is used and a warning
  is logged. Multi-picture JPEGs (MPO, as written by many phones) silently use the main picture.
* **Pixel budget**: the size declared in the file header is checked *before* any pixel is
  decoded; larger images raise :class:`~facetoon.errors.ImageTooLargeError`. The budget is
  ``max_pixels=`` per call, else :func:`set_max_pixels`, else the ``FACETOON_MAX_PIXELS``
  environment variable (a positive integer, or ``none``), else :data:`DEFAULT_MAX_PIXELS`.
* **Formats** decoded: JPEG, PNG, WebP, GIF, BMP, TIFF, PPM/PGM/PBM and AVIF (when Pillow has
  it). Other Pillow plugins (e.g. EPS, which runs Ghostscript) are deliberately not tried.
* Every failure raises :class:`~facetoon.errors.InvalidImageError` with a one-line message that
  starts with the file name (``<bytes>``, ``<array>``... for in-memory inputs).

``numpy`` array inputs follow a fixed rule: ``uint8`` is taken as is; ``uint16`` is scaled like
a 16-bit file; ``float16/32/64`` must lie in ``[0, 1]`` (a tiny overshoot of up to half a level,
1/510, is clipped) and is scaled by 255 with rounding; shapes ``(H, W)`` gray, ``(H, W, 1)``,
``(H, W, 3)`` RGB and ``(H, W, 4)`` RGBA are accepted. Anything else raises
:class:`~facetoon.errors.InvalidImageError` naming the dtype and shape. Arrays are already in
memory, so the pixel budget does not apply to them.

Importing this module loads only ``numpy`` and ``Pillow``; ``torch`` is imported inside
:func:`to_tensor` and :func:`to_image`.
"""

from __future__ import annotations

import contextlib
import glob
import io
import logging
import os
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, Literal, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ._fileutil import create_temp, link_no_clobber, make_folder, same_file
from .errors import (ConfigError, DataError, FacetoonError, ImageTooLargeError, InvalidImageError, OutputError,
                     first_line)

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "WRITE_FORMATS",
    "ImageSource",
    "get_max_pixels",
    "set_max_pixels",
    "read_image",
    "read_image_with_alpha",
    "composite_over_white",
    "source_label",
    "readable_formats",
    "pillow_pixel_budget",
    "exif_orientation",
    "write_image",
    "to_tensor",
    "to_image",
    "iter_image_files",
    "list_images",
]

log = logging.getLogger(__name__)

#: Built-in pixel budget: 80 megapixels (e.g. 10000 x 8000). It sits below Pillow's own
#: decompression-bomb warning threshold (~89.5 MP), so Pillow never warns about an image we accept.
DEFAULT_MAX_PIXELS: Final[int] = 80_000_000
#: Environment variable that sets the pixel budget (a positive integer, or ``none`` / ``0``).
MAX_PIXELS_ENV: Final[str] = "FACETOON_MAX_PIXELS"

#: File extensions (lower case, with the dot) that :func:`iter_image_files` picks up in folders.
IMAGE_EXTENSIONS: Final[frozenset[str]] = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm", ".pgm", ".pbm",
     ".avif"}
)
#: Output extension -> Pillow format name used by :func:`write_image`.
WRITE_FORMATS: Final[dict[str, str]] = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}
# Pillow plugins read_image tries, in this order (filtered by what this Pillow build provides).
_READ_FORMATS: Final[tuple[str, ...]] = (
    "JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "PPM", "AVIF",
)

ImageSource = Union[
    str, "os.PathLike[str]", bytes, bytearray, memoryview, IO[bytes], Image.Image, np.ndarray
]
MaxPixels = Union[int, None, Literal["default"]]

_UNSET: Final = object()
_max_pixels_override: Any = _UNSET
_pillow_guard_lock = threading.RLock()
_ALPHA_MODES: Final = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_WIDE_GRAY_MODES: Final = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})


# --------------------------------------------------------------------------- pixel budget


def _check_budget_value(value: object, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ConfigError(f"{what} must be a positive integer or None (no limit), got {value!r}")
    return int(value)


def get_max_pixels() -> int | None:
    """The pixel budget in force when ``max_pixels="default"``; ``None`` means no limit.

    Order: :func:`set_max_pixels` if called, else ``$FACETOON_MAX_PIXELS``, else
    :data:`DEFAULT_MAX_PIXELS`.
    """
    if _max_pixels_override is not _UNSET:
        return _max_pixels_override
    env = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not env:
        return DEFAULT_MAX_PIXELS
    if env.lower() in {"none", "0", "unlimited"}:
        return None
    try:
        value = int(env.replace("_", ""))
    except ValueError:
        value = -1
    if value <= 0:
        raise ConfigError(f"{MAX_PIXELS_ENV} must be a positive integer or 'none', got {env!r}")
    return value


def set_max_pixels(value: MaxPixels) -> None:
    """Set the process-wide pixel budget: an ``int``, ``None`` (no limit), or ``"default"``
    to go back to ``$FACETOON_MAX_PIXELS`` / :data:`DEFAULT_MAX_PIXELS`."""
    global _max_pixels_override
    if isinstance(value, str) and value == "default":
        _max_pixels_override = _UNSET
    else:
        _max_pixels_override = _check_budget_value(value, "set_max_pixels(value)")


def _resolve_budget(max_pixels: MaxPixels) -> int | None:
    if isinstance(max_pixels, str) and max_pixels == "default":
        return get_max_pixels()
    return _check_budget_value(max_pixels, "max_pixels")


def _too_large(label: str, size: tuple[int, int], budget: int) -> ImageTooLargeError:
    w, h = size
    return ImageTooLargeError(
        f"image declares {w}x{h} = {w * h:,} pixels, over the pixel budget of {budget:,} "
        f"(raise it with max_pixels=... or {MAX_PIXELS_ENV}=...)",
        path=label,
    )


@contextlib.contextmanager
def pillow_pixel_budget(budget: int | None) -> Iterator[None]:
    """Context manager: let ``budget`` (pixels, ``None`` = no limit), not Pillow's global
    ``MAX_IMAGE_PIXELS``, decide what is too large, for the ``Image.open`` calls inside it.

    When the budget is within Pillow's limit nothing changes. When it is larger (or ``None``),
    Pillow's guard is switched off for the duration of this read, under a lock, so that Pillow
    does not refuse an image the caller explicitly allowed; the caller's own check of the declared
    size (:func:`read_image` checks it right after the header is parsed) is then the only guard.
    Use it with :func:`get_max_pixels` to open a file the way :func:`read_image` does::

        with pillow_pixel_budget(get_max_pixels()), Image.open(path, formats=readable_formats()) as im:
            ...
    """
    pil_limit = Image.MAX_IMAGE_PIXELS
    if pil_limit is None or (budget is not None and budget <= pil_limit):
        yield
        return
    with _pillow_guard_lock:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


# --------------------------------------------------------------------------- reading


def _corrupt(label: str, what: str, exc: BaseException) -> InvalidImageError:
    """One-line error for a file Pillow could not parse or decode."""
    msg = first_line(exc)
    if "truncated" in msg.lower() or isinstance(exc, EOFError):
        return InvalidImageError(f"image data is truncated (file cut short?): {msg}", path=label)
    kind = "" if isinstance(exc, OSError) else f"{type(exc).__name__}: "
    return InvalidImageError(f"{what}: {kind}{msg}", path=label)


def source_label(src: object) -> str:
    """How messages name an image source: its path, a file object's name, or ``<bytes>``,
    ``<array>``, ``<PIL image>``, ``<file object>``."""
    if isinstance(src, (str, os.PathLike)):
        return os.fspath(src)
    if isinstance(src, (bytes, bytearray, memoryview)):
        return "<bytes>"
    if isinstance(src, np.ndarray):
        return "<array>"
    if isinstance(src, Image.Image):
        return getattr(src, "filename", "") or "<PIL image>"
    name = getattr(src, "name", None)
    return name if isinstance(name, str) and name else "<file object>"


def readable_formats() -> list[str]:
    """Pillow format names :func:`read_image` decodes with this Pillow build, in the order they are
    tried (pass as ``Image.open(..., formats=readable_formats())``)."""
    Image.init()
    return [f for f in _READ_FORMATS if f in Image.OPEN]


def _open_stream(src: object, label: str) -> IO[bytes]:
    """A seekable binary stream over a path, a bytes-like object or a file object."""
    if isinstance(src, (str, os.PathLike)):
        path = Path(src)
        try:
            st = path.stat()
        except FileNotFoundError:
            raise InvalidImageError("no such file", path=label) from None
        except OSError as exc:
            raise InvalidImageError(f"cannot access file: {exc.strerror or exc}", path=label) from None
        if path.is_dir():
            raise InvalidImageError("is a directory, not an image file", path=label)
        if st.st_size == 0:
            raise InvalidImageError("empty file (0 bytes)", path=label)
        try:
            return open(path, "rb")
        except OSError as exc:
            raise InvalidImageError(f"cannot open file: {exc.strerror or exc}", path=label) from None
    if isinstance(src, (bytes, bytearray, memoryview)):
        if len(src) == 0:
            raise InvalidImageError("empty input (0 bytes)", path=label)
        return io.BytesIO(src)
    # a file object: read from its current position to the end
    try:
        data = src.read()  # type: ignore[attr-defined]
    except Exception as exc:  # noqa: BLE001 - any failing reader is a bad source
        raise InvalidImageError(f"cannot read file object: {first_line(exc)}", path=label) from None
    if isinstance(data, str):
        raise InvalidImageError("file object is in text mode; open it with 'rb'", path=label)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidImageError(
            f"file object returned {type(data).__name__}, expected bytes", path=label
        )
    if len(data) == 0:
        raise InvalidImageError("empty input (0 bytes)", path=label)
    return io.BytesIO(data)


def _decode(im: Image.Image, label: str, budget: int | None, *, from_file: bool) -> Image.Image:
    """Check the budget, pick the first frame, decode fully and apply EXIF orientation."""
    if budget is not None and im.width * im.height > budget:
        raise _too_large(label, im.size, budget)
    if from_file and getattr(im, "is_animated", False):
        if im.format == "MPO":
            log.debug("%s: multi-picture JPEG, using the main picture", label)
        else:
            log.warning("%s: animated %s image, using its first frame", label, im.format)
        im.seek(0)
    try:
        im.load()
    except Image.DecompressionBombError:
        raise _too_large(label, im.size, budget or 0) from None
    except Exception as exc:  # noqa: BLE001 - corrupt files raise all sorts of errors in plugins
        raise _corrupt(label, "cannot decode image", exc) from None
    orientation = exif_orientation(im, label)
    if orientation in (2, 3, 4, 5, 6, 7, 8):
        im = ImageOps.exif_transpose(im)
    return im


def exif_orientation(im: Image.Image, label: str = "<PIL image>") -> int:
    """The EXIF orientation tag of an opened image (1 = upright; 2-8 are undone by
    :func:`read_image`); 1, with a warning naming ``label``, when the EXIF data is unreadable."""
    try:
        return int(im.getexif().get(274, 1))
    except Exception as exc:  # noqa: BLE001 - broken EXIF must not make the pixels unreadable
        log.warning("%s: unreadable EXIF data ignored (%s)", label, first_line(exc))
        return 1


def _pil_to_arrays(im: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """RGB ``(H, W, 3)`` uint8 (not composited) and alpha ``(H, W)`` uint8 or ``None``."""
    mode = im.mode
    if mode in _WIDE_GRAY_MODES:
        gray = _scale_16bit(np.asarray(im))
        return np.repeat(gray[:, :, None], 3, axis=2), None
    if mode == "F":
        gray = _scale_unit_float(np.asarray(im, dtype=np.float32), clip_all=True)
        return np.repeat(gray[:, :, None], 3, axis=2), None
    if mode in _ALPHA_MODES or "transparency" in im.info:
        rgba = np.array(im.convert("RGBA"))
        return np.ascontiguousarray(rgba[:, :, :3]), np.ascontiguousarray(rgba[:, :, 3])
    rgb = np.array(im if mode == "RGB" else im.convert("RGB"))
    return rgb, None


def _scale_16bit(a: np.ndarray) -> np.ndarray:
    """0..65535 integers -> 0..255 uint8, rounding (``round(v / 257)``); outside values clipped."""
    v = np.clip(a, 0, 65535).astype(np.uint32)
    return ((v * 255 + 32767) // 65535).astype(np.uint8)


def _scale_unit_float(a: np.ndarray, *, clip_all: bool = False, label: str = "<array>") -> np.ndarray:
    """Floats in [0, 1] -> 0..255 uint8 with rounding. NaN/inf and values outside [0, 1] (by
    more than half a level) raise, unless ``clip_all`` (Pillow mode ``F``: NaN -> 0, clip)."""
    a = np.asarray(a, dtype=np.float32)
    if clip_all:
        a = np.nan_to_num(a, nan=0.0, posinf=1.0, neginf=0.0)
    else:
        if not np.isfinite(a).all():
            raise InvalidImageError("float image contains NaN or infinite values", path=label)
        lo, hi = float(a.min()), float(a.max())
        tol = 1.0 / 510.0
        if lo < -tol or hi > 1.0 + tol:
            raise InvalidImageError(
                f"float image values must lie in [0, 1], got [{lo:.4g}, {hi:.4g}] "
                "(for [-1, 1] model outputs use facetoon.io.to_image)",
                path=label,
            )
    return np.rint(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8)


def _array_to_arrays(arr: np.ndarray, label: str) -> tuple[np.ndarray, np.ndarray | None]:
    shape = tuple(arr.shape)
    ok_shape = (arr.ndim == 2 or (arr.ndim == 3 and shape[2] in (1, 3, 4))) and all(shape[:2])
    if not ok_shape:
        raise InvalidImageError(
            f"unsupported array shape {shape} (dtype {arr.dtype}); expected (H, W), (H, W, 1), "
            "(H, W, 3) RGB or (H, W, 4) RGBA with H, W > 0",
            path=label,
        )
    if arr.dtype == np.uint8:
        a = arr
    elif arr.dtype == np.uint16:
        a = _scale_16bit(arr)
    elif arr.dtype.kind == "f":
        a = _scale_unit_float(arr, label=label)
    else:
        raise InvalidImageError(
            f"unsupported array dtype {arr.dtype} (shape {shape}); expected uint8, uint16 or "
            "float in [0, 1]",
            path=label,
        )
    if a.ndim == 2:
        a = a[:, :, None]
    if a.shape[2] == 1:
        return np.repeat(a, 3, axis=2), None
    if a.shape[2] == 4:
        return np.ascontiguousarray(a[:, :, :3]), np.ascontiguousarray(a[:, :, 3])
    return np.array(a, dtype=np.uint8, order="C", copy=True), None


def _read_arrays(src: ImageSource, max_pixels: MaxPixels) -> tuple[np.ndarray, np.ndarray | None]:
    label = source_label(src)
    budget = _resolve_budget(max_pixels)
    if isinstance(src, np.ndarray):
        return _array_to_arrays(src, label)
    if isinstance(src, Image.Image):
        with pillow_pixel_budget(budget):
            return _pil_to_arrays(_decode(src, label, budget, from_file=False))
    if not isinstance(src, (str, os.PathLike, bytes, bytearray, memoryview)) and not hasattr(
        src, "read"
    ):
        raise InvalidImageError(
            f"read_image: unsupported source of type {type(src).__name__}; expected a path, "
            "bytes, a binary file object, a PIL image or a numpy array"
        )
    stream = _open_stream(src, label)
    with stream, pillow_pixel_budget(budget):
        try:
            im = Image.open(stream, formats=readable_formats())
        except UnidentifiedImageError:
            raise InvalidImageError(
                "not a recognised image (readable formats: "
                f"{', '.join(readable_formats())})",
                path=label,
            ) from None
        except Image.DecompressionBombError:
            # Pillow refused in the header already; reopen with its guard lifted to report
            # the declared size in our own terms (header only, no pixel is decoded).
            stream.seek(0)
            with pillow_pixel_budget(None):
                size = Image.open(stream, formats=readable_formats()).size
            raise _too_large(label, size, budget or 0) from None
        except Exception as exc:  # noqa: BLE001 - corrupt headers raise all sorts in plugins
            raise _corrupt(label, "cannot read image header", exc) from None
        with im:
            return _pil_to_arrays(_decode(im, label, budget, from_file=True))


def composite_over_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Straight-alpha RGB composited over white, as :func:`read_image` does.

    Args:
        rgb: ``(H, W, 3)`` uint8 RGB (straight, not premultiplied).
        alpha: ``(H, W)`` uint8, 255 = opaque.

    Returns:
        ``(H, W, 3)`` uint8: ``round((rgb * a + 255 * (255 - a)) / 255)`` per channel, in integers.
    """
    a = alpha.astype(np.uint32)[:, :, None]
    out = (rgb.astype(np.uint32) * a + 255 * (255 - a) + 127) // 255
    return out.astype(np.uint8)


def read_image(
    src: ImageSource,
    *,
    max_pixels: MaxPixels = "default",
    keep_alpha: bool = False,
) -> np.ndarray:
    """Read an image as an RGB ``uint8`` array of shape ``(H, W, 3)``.

    Args:
        src: a path, bytes-like object, binary file object (read from its current position),
            ``PIL.Image.Image`` (its current frame) or ``numpy`` array; see the module docstring
            for the conversion rules.
        max_pixels: pixel budget checked on the declared size before decoding; ``None`` = no
            limit; ``"default"`` = :func:`get_max_pixels`.
        keep_alpha: return ``(H, W, 4)`` RGBA (straight alpha, 255 where the image has none)
            instead of compositing transparent pixels over white.

    Returns:
        A new C-contiguous ``uint8`` array, RGB(A) order, EXIF orientation applied.

    Raises:
        InvalidImageError: missing, empty, corrupt, truncated or unsupported input.
        ImageTooLargeError: the declared size exceeds the pixel budget.
    """
    rgb, alpha = _read_arrays(src, max_pixels)
    if keep_alpha:
        if alpha is None:
            alpha = np.full(rgb.shape[:2], 255, dtype=np.uint8)
        return np.ascontiguousarray(np.dstack([rgb, alpha]))
    if alpha is not None:
        rgb = composite_over_white(rgb, alpha)
    return rgb


def read_image_with_alpha(
    src: ImageSource, *, max_pixels: MaxPixels = "default"
) -> tuple[np.ndarray, np.ndarray | None]:
    """Read an image as ``(rgb, alpha)``.

    ``rgb`` is ``(H, W, 3)`` uint8 composited over white (identical to :func:`read_image`);
    ``alpha`` is ``(H, W)`` uint8 (255 = opaque), or ``None`` when the image has no
    transparency at all (no alpha channel, or every pixel opaque).
    """
    rgb, alpha = _read_arrays(src, max_pixels)
    if alpha is None or bool((alpha == 255).all()):
        return rgb, None
    return composite_over_white(rgb, alpha), alpha


# --------------------------------------------------------------------------- writing


def _as_pil(image: np.ndarray | Image.Image) -> Image.Image:
    if isinstance(image, Image.Image):
        if image.mode in ("RGB", "RGBA", "L"):
            return image
        rgb, alpha = _pil_to_arrays(image)
        arr = rgb if alpha is None else np.dstack([rgb, alpha])
        return Image.fromarray(arr)
    if isinstance(image, np.ndarray):
        shape = tuple(image.shape)
        if image.dtype != np.uint8 or not (
            image.ndim == 2 or (image.ndim == 3 and shape[2] in (3, 4))
        ) or not all(shape[:2]):
            raise InvalidImageError(
                f"write_image expects a uint8 array of shape (H, W), (H, W, 3) RGB or (H, W, 4) "
                f"RGBA, got dtype {image.dtype} shape {shape}"
            )
        return Image.fromarray(np.ascontiguousarray(image))
    raise InvalidImageError(
        f"write_image expects a numpy array or a PIL image, got {type(image).__name__}"
    )


def write_image(
    image: np.ndarray | Image.Image,
    path: str | os.PathLike[str],
    *,
    quality: int = 95,
    overwrite: bool = True,
    protect: Iterable[str | os.PathLike[str]] = (),
) -> Path:
    """Write an image atomically; the format follows the extension of ``path``.

    Args:
        image: ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA or ``(H, W)`` gray ``uint8`` array, or a
            PIL image (other modes are converted as :func:`read_image` does, keeping alpha).
        path: output file; ``.jpg``/``.jpeg``, ``.png``, ``.webp``, ``.bmp``, ``.tif``/``.tiff``.
            Missing parent folders are created.
        quality: JPEG/WebP quality 1..100 (JPEG is written with 4:4:4 chroma, so the hard
            colour edges of anime art stay clean).
        overwrite: if ``False``, an existing ``path`` is an error (checked atomically).
        protect: paths that must never be written (e.g. the inputs); compared after resolving
            symlinks and with ``os.path.samefile``.

    RGBA written to JPEG (no alpha support) is composited over white. The data goes to a
    hidden temporary file in the target folder which then replaces ``path`` in one
    ``os.replace``; on any failure the temporary file is removed and an existing ``path`` is
    left untouched.

    Returns:
        ``Path(path)``.

    Raises:
        InvalidImageError: bad array or unsupported extension.
        ConfigError: ``quality`` out of range.
        OutputError: the target is protected, exists with ``overwrite=False``, is a folder,
            has a file where a parent folder should be, or cannot be written.
    """
    target = Path(path)
    fmt = WRITE_FORMATS.get(target.suffix.lower())
    if fmt is None:
        raise InvalidImageError(
            f"unsupported output extension {target.suffix or '(none)'!r}; supported: "
            f"{', '.join(sorted(WRITE_FORMATS))}",
            path=target,
        )
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise ConfigError(f"quality must be an integer in 1..100, got {quality!r}")
    for p in protect:
        if same_file(target, Path(p)):
            raise OutputError(f"refusing to overwrite the input image {os.fspath(p)}", path=target)
    if target.is_dir():
        raise OutputError("output path is a directory", path=target)
    if not overwrite and target.exists():
        raise OutputError("output file already exists (overwrite is off)", path=target)

    im = _as_pil(image)
    if im.mode == "RGBA" and fmt == "JPEG":
        rgba = np.asarray(im)
        im = Image.fromarray(composite_over_white(rgba[:, :, :3], rgba[:, :, 3]))
    params: dict[str, Any] = {}
    if fmt == "JPEG":
        params = {"quality": quality, "subsampling": 0}
    elif fmt == "WEBP":
        params = {"quality": quality, "method": 4}
    elif fmt == "TIFF":
        params = {"compression": "tiff_lzw"}

    try:
        make_folder(target.parent, target)
        tmp, fd = create_temp(target.parent, target.name)
    except OutputError:
        raise
    except OSError as exc:
        raise OutputError(f"cannot write: {exc.strerror or exc}", path=target) from None
    try:
        with os.fdopen(fd, "wb") as f:
            im.save(f, format=fmt, **params)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, target)
        else:
            link_no_clobber(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, FacetoonError) or not isinstance(exc, Exception):
            raise
        if isinstance(exc, OSError):
            raise OutputError(f"cannot write: {exc.strerror or first_line(exc)}", path=target) \
                from None
        raise OutputError(
            f"cannot write image: {type(exc).__name__}: {first_line(exc)}", path=target
        ) from None
    log.debug("wrote %s (%s, %dx%d)", target, fmt, im.width, im.height)
    return target


# --------------------------------------------------------------------------- tensors


def to_tensor(
    img: np.ndarray,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    channels: Literal["RGB", "BGR"] = "RGB",
) -> torch.Tensor:
    """``(H, W, 3)`` uint8 RGB array -> ``(1, 3, H, W)`` float tensor in ``[-1, 1]``.

    ``v -> v / 127.5 - 1`` exactly (0 -> -1, 255 -> 1). ``channels="BGR"`` reverses the
    channel order, for a third-party model that expects BGR input and does not convert itself
    (facetoon's own models all take RGB). ``dtype`` defaults to float32.
    """
    import torch

    if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 \
            or img.shape[2] != 3:
        desc = f"dtype {img.dtype} shape {tuple(img.shape)}" if isinstance(img, np.ndarray) \
            else type(img).__name__
        raise InvalidImageError(f"to_tensor expects an (H, W, 3) uint8 RGB array, got {desc}")
    if channels not in ("RGB", "BGR"):
        raise ConfigError(f"channels must be 'RGB' or 'BGR', got {channels!r}")
    arr = img[:, :, ::-1] if channels == "BGR" else img
    t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).unsqueeze(0)
    t = t.to(device=device, dtype=torch.float32).div_(127.5).sub_(1.0)
    return t if dtype is None else t.to(dtype)


def to_image(t: torch.Tensor, *, channels: Literal["RGB", "BGR"] = "RGB") -> np.ndarray:
    """``(B, 3, H, W)`` or ``(3, H, W)`` tensor in ``[-1, 1]`` -> uint8 RGB array.

    Values are clamped to ``[-1, 1]`` and mapped by ``round((v + 1) * 127.5)``. Returns
    ``(H, W, 3)`` for a single image (``B == 1`` or no batch axis) and ``(B, H, W, 3)`` for
    ``B > 1``. ``channels="BGR"`` says the tensor is BGR; the result is RGB either way.
    """
    import torch

    if not isinstance(t, torch.Tensor) or t.ndim not in (3, 4) or t.shape[-3] != 3:
        desc = f"shape {tuple(t.shape)}" if isinstance(t, torch.Tensor) else type(t).__name__
        raise InvalidImageError(f"to_image expects a (B, 3, H, W) or (3, H, W) tensor, got {desc}")
    if not t.is_floating_point():
        raise InvalidImageError(f"to_image expects a float tensor in [-1, 1], got {t.dtype}")
    x = t.detach().to("cpu", torch.float32)
    if torch.isnan(x).any():
        raise InvalidImageError("to_image: the tensor contains NaN values")
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if channels == "BGR":
        x = x.flip(1)
    elif channels != "RGB":
        raise ConfigError(f"channels must be 'RGB' or 'BGR', got {channels!r}")
    x = x.clamp(-1.0, 1.0).add_(1.0).mul_(127.5).round_()  # clamp copies: t is never modified
    out = x.to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
    return out[0] if out.shape[0] == 1 else out


# --------------------------------------------------------------------------- file lists

_GLOB_CHARS = re.compile(r"[*?\[]")


def _is_image_name(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")


def list_images(folder: str | os.PathLike[str], *, required: bool = True) -> list[Path]:
    """Image files directly in ``folder``, sorted by name: the extensions of
    :data:`IMAGE_EXTENSIONS` (any case), hidden files skipped, sub-folders not searched.

    The one folder listing of training data, validation sets and KID folders, so that they all
    see the same files.

    Raises:
        DataError: ``folder`` is not a folder, or (``required``) holds no image file.
    """
    path = Path(folder)
    if not path.is_dir():
        raise DataError("image folder not found", path=path)
    files = sorted(p for p in path.iterdir() if _is_image_name(p) and p.is_file())
    if not files and required:
        raise DataError(f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) in this folder", path=path)
    return files


def iter_image_files(
    inputs: Sequence[str | os.PathLike[str]], *, recursive: bool = False
) -> list[Path]:
    """Expand files, folders and glob patterns into a sorted, de-duplicated list of image files.

    * a file is kept as given, whatever its extension (reading it will tell if it is no image);
    * a folder contributes its files with an image extension (:data:`IMAGE_EXTENSIONS`,
      case-insensitive, hidden files skipped); sub-folders only with ``recursive=True``;
    * a pattern with ``*``, ``?`` or ``[`` is globbed (``**`` spans folders) and contributes
      its matching image files.

    Paths are sorted by their string form; two inputs naming the same file (after resolving
    symlinks) yield it once.

    Raises:
        InvalidImageError: an input that does not exist, a pattern that matches nothing, or no
            image file at all.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    found: list[Path] = []
    for item in inputs:
        text = os.fspath(item)
        p = Path(text)
        if p.is_file():
            found.append(p)
        elif p.is_dir():
            walker = p.rglob("*") if recursive else p.iterdir()
            found.extend(
                f for f in walker
                if f.is_file() and _is_image_name(f)
                and not any(part.startswith(".") for part in f.relative_to(p).parts[:-1])
            )
        elif _GLOB_CHARS.search(text):
            matches = [Path(m) for m in glob.glob(text, recursive=True)]
            images = [m for m in matches if m.is_file() and _is_image_name(m)]
            if not images:
                raise InvalidImageError("pattern matches no image file", path=text)
            found.extend(images)
        else:
            raise InvalidImageError("no such file or folder", path=text)
    unique: dict[Path, Path] = {}
    for f in sorted(found, key=str):
        unique.setdefault(f.resolve(), f)
    if not unique:
        raise InvalidImageError(
            f"no image files found in: {', '.join(os.fspath(i) for i in inputs)}"
        )
    return sorted(unique.values(), key=str)
