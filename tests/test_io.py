"""Tests of facetoon.io: reading every kind of source and mode, the pixel budget, errors,
atomic writing, tensor conversion and file expansion. Every input file is made here with Pillow
(or by hand, for the oversized PNG header) in ``tmp_path``."""

from __future__ import annotations

import io
import logging
import os
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import facetoon.io as fio
from facetoon.errors import ConfigError, ImageTooLargeError, InvalidImageError, OutputError
from facetoon.io import (
    iter_image_files,
    read_image,
    read_image_with_alpha,
    set_max_pixels,
    to_image,
    to_tensor,
    write_image,
)

REPO = Path(__file__).resolve().parents[1]


def _pattern(h: int = 24, w: int = 40, seed: int = 0) -> np.ndarray:
    """An asymmetric RGB uint8 image: random noise plus a gradient, no two pixels alike by luck."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    img[0, 0] = (255, 0, 0)  # a marker in the top-left corner
    return img


def _save(tmp_path: Path, name: str, img: Image.Image | np.ndarray, **kw: object) -> Path:
    path = tmp_path / name
    (img if isinstance(img, Image.Image) else Image.fromarray(img)).save(path, **kw)
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares ``width x height`` RGB pixels but carries almost no data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _png_chunk(b"IEND", b""))


@pytest.fixture(autouse=True)
def _default_budget(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("FACETOON_MAX_PIXELS", raising=False)
    set_max_pixels("default")
    yield
    set_max_pixels("default")


# --------------------------------------------------------------------------- sources


def test_import_is_light() -> None:
    code = ("import sys, facetoon.io; "
            "print(sorted(m for m in ('torch', 'cv2', 'dlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_png_roundtrip_exact_and_copy(tmp_path: Path) -> None:
    img = _pattern()
    path = _save(tmp_path, "a.png", img)
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == (24, 40, 3)
    assert out.flags.c_contiguous and out.flags.writeable
    np.testing.assert_array_equal(out, img)
    np.testing.assert_array_equal(read_image(str(path)), img)


def test_all_source_kinds_agree(tmp_path: Path) -> None:
    img = _pattern(seed=3)
    path = _save(tmp_path, "s.png", img)
    data = path.read_bytes()
    with open(path, "rb") as f:
        from_file = read_image(f)
    shifted = io.BytesIO(b"junk" + data)
    shifted.seek(4)  # file objects are read from their current position
    sources = {
        "bytes": data, "bytearray": bytearray(data), "memoryview": memoryview(data),
        "BytesIO": io.BytesIO(data), "shifted": shifted, "PIL": Image.open(path),
        "ndarray": img,
    }
    np.testing.assert_array_equal(from_file, img)
    for kind, src in sources.items():
        out = read_image(src)
        np.testing.assert_array_equal(out, img, err_msg=kind)
    # an ndarray input is copied, not aliased
    out = read_image(img)
    out[0, 0] = 0
    assert tuple(img[0, 0]) == (255, 0, 0)


def test_non_ascii_file_names(tmp_path: Path) -> None:
    img = _pattern(seed=4)
    path = _save(tmp_path, "портрет_日本.png", img)
    np.testing.assert_array_equal(read_image(path), img)
    out = write_image(img, tmp_path / "выход_画像.jpg")
    assert read_image(out).shape == img.shape
    with pytest.raises(InvalidImageError, match="нет_такого_画像.png: no such file"):
        read_image(tmp_path / "нет_такого_画像.png")


# --------------------------------------------------------------------------- errors


def test_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "missing.jpg"
    with pytest.raises(InvalidImageError) as err:
        read_image(missing)
    assert str(err.value) == f"{missing}: no such file"
    assert isinstance(err.value, ValueError)  # generic handlers keep working


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(InvalidImageError, match="is a directory"):
        read_image(tmp_path)


def test_empty_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.touch()
    with pytest.raises(InvalidImageError, match=r"empty\.png: empty file \(0 bytes\)"):
        read_image(empty)
    with pytest.raises(InvalidImageError, match="empty input"):
        read_image(b"")


def test_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "noise.jpg"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(InvalidImageError, match=r"noise\.jpg: not a recognised image"):
        read_image(path)


@pytest.mark.parametrize("fmt, cut", [("JPEG", 0.5), ("JPEG", 0.9), ("PNG", 0.6)])
def test_truncated_file(tmp_path: Path, fmt: str, cut: float) -> None:
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, fmt)
    data = buf.getvalue()
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(InvalidImageError, match="truncated") as err:
        read_image(path)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_unsupported_types_and_text_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidImageError, match="unsupported source of type list"):
        read_image([[1, 2, 3]])  # type: ignore[arg-type]
    with pytest.raises(InvalidImageError, match="unsupported source of type int"):
        read_image(42)  # type: ignore[arg-type]
    text = tmp_path / "t.txt"
    text.write_text("hello")
    with open(text) as f, pytest.raises(InvalidImageError, match="text mode"):
        read_image(f)  # type: ignore[arg-type]
    with pytest.raises(InvalidImageError, match="not a recognised image"):
        read_image(text)


def test_eps_is_not_tried(tmp_path: Path) -> None:
    """Formats outside the list (EPS would run Ghostscript) are refused, not decoded."""
    eps = tmp_path / "x.eps"
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    with pytest.raises(InvalidImageError, match="not a recognised image"):
        read_image(eps)


@pytest.mark.parametrize(
    "arr, match",
    [
        (np.zeros((4, 4), np.int64), "dtype int64"),
        (np.zeros((4, 4, 2), np.uint8), r"shape \(4, 4, 2\)"),
        (np.zeros((2, 4, 4, 3), np.uint8), r"shape \(2, 4, 4, 3\)"),
        (np.zeros((0, 4, 3), np.uint8), r"shape \(0, 4, 3\)"),
        (np.full((4, 4, 3), 2.0, np.float32), r"\[0, 1\], got \[2, 2\]"),
        (np.full((4, 4, 3), -0.5, np.float64), r"must lie in \[0, 1\]"),
        (np.full((4, 4, 3), np.nan, np.float32), "NaN"),
    ],
)
def test_bad_arrays(arr: np.ndarray, match: str) -> None:
    with pytest.raises(InvalidImageError, match=match) as err:
        read_image(arr)
    assert str(err.value).startswith("<array>: ")


# --------------------------------------------------------------------------- pixel budget


def test_huge_declared_png_is_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(100_000, 100_000))
    assert path.stat().st_size < 200
    t0 = time.perf_counter()
    with pytest.raises(ImageTooLargeError) as err:
        read_image(path)
    assert time.perf_counter() - t0 < 1.0  # nothing of 30 GB was allocated or decoded
    msg = str(err.value)
    assert "100000x100000" in msg and "10,000,000,000" in msg and "80,000,000" in msg
    assert msg.startswith(str(path))
    assert isinstance(err.value, InvalidImageError)
    assert Image.MAX_IMAGE_PIXELS == 89478485  # Pillow's global is left as it was


def test_budget_per_call_module_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _save(tmp_path, "small.png", _pattern(20, 30))  # 600 pixels
    assert read_image(path, max_pixels=600).shape == (20, 30, 3)
    with pytest.raises(ImageTooLargeError, match=r"30x20 = 600 pixels, over the pixel budget of 599"):
        read_image(path, max_pixels=599)
    monkeypatch.setenv("FACETOON_MAX_PIXELS", "500")
    assert fio.get_max_pixels() == 500
    with pytest.raises(ImageTooLargeError, match="budget of 500"):
        read_image(path)
    assert read_image(path, max_pixels=None).shape == (20, 30, 3)  # per call wins
    set_max_pixels(1000)  # module setting wins over the environment
    assert read_image(path).shape == (20, 30, 3)
    set_max_pixels("default")
    with pytest.raises(ImageTooLargeError):
        read_image(path)
    monkeypatch.setenv("FACETOON_MAX_PIXELS", "none")
    assert fio.get_max_pixels() is None
    monkeypatch.setenv("FACETOON_MAX_PIXELS", "lots")
    with pytest.raises(ConfigError, match="FACETOON_MAX_PIXELS"):
        read_image(path)
    with pytest.raises(ConfigError, match="max_pixels"):
        read_image(path, max_pixels=0)
    # the budget applies to PIL inputs too (their size is known before decoding)
    with pytest.raises(ImageTooLargeError):
        read_image(Image.open(path), max_pixels=100)


def test_budget_above_pillows_own_limit(tmp_path: Path) -> None:
    """A budget larger than Pillow's guard lets the header through (then the missing data is the
    error); Pillow's global limit is restored afterwards."""
    path = tmp_path / "big.png"
    path.write_bytes(_png_header_only(20_000, 10_000))  # 200 MP > 2 x Pillow's 89.5 MP
    with pytest.raises(ImageTooLargeError, match="20000x10000"):
        read_image(path)
    with pytest.raises(InvalidImageError) as err:
        read_image(path, max_pixels=300_000_000)
    assert not isinstance(err.value, ImageTooLargeError)
    assert "truncated" in str(err.value)
    assert Image.MAX_IMAGE_PIXELS == 89478485
    # a header far above a large budget is still refused by our check, and quickly
    bomb = _png_header_only(100_000, 100_000)
    t0 = time.perf_counter()
    with pytest.raises(ImageTooLargeError, match="100000x100000.*budget of 300,000,000"):
        read_image(bomb, max_pixels=300_000_000)
    with pytest.raises(ImageTooLargeError, match="100000x100000"):
        read_image(bomb, max_pixels=9_000_000_000)
    assert time.perf_counter() - t0 < 1.0
    assert Image.MAX_IMAGE_PIXELS == 89478485


# --------------------------------------------------------------------------- modes


def test_animated_images_use_first_frame(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
    frames = [Image.new("RGB", (16, 12), c) for c in colours]
    for name, kw in [("anim.gif", {}), ("anim.png", {}), ("anim.webp", {"lossless": True})]:
        path = tmp_path / name
        frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0, **kw)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="facetoon.io"):
            out = read_image(path)
        assert out.shape == (12, 16, 3)
        assert np.abs(out.astype(int) - colours[0]).max() <= 2, name
        assert any("first frame" in r.getMessage() and name in r.getMessage()
                   for r in caplog.records), name
    # a still image does not warn
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="facetoon.io"):
        read_image(_save(tmp_path, "still.gif", frames[1]))
    assert not caplog.records


def test_16bit_png_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 1, 128, 129, 257, 1000], [32767, 32768, 40000, 65278, 65534, 65535]],
                      dtype=np.uint16)
    path = _save(tmp_path, "deep.png", values)
    assert Image.open(path).mode == "I;16"
    out = read_image(path)
    expected = np.rint(values / 257.0).astype(np.uint8)
    assert expected[1, 5] == 255 and expected[1, 2] == 156
    np.testing.assert_array_equal(out[:, :, 0], expected)
    np.testing.assert_array_equal(out[:, :, 0], out[:, :, 2])
    np.testing.assert_array_equal(read_image(values)[:, :, 1], expected)  # uint16 arrays alike


def test_16bit_pgm_mode_i(tmp_path: Path) -> None:
    values = np.array([[0, 300, 30000, 65535]], dtype=">u2")
    path = tmp_path / "deep.pgm"
    path.write_bytes(b"P5\n4 1\n65535\n" + values.tobytes())
    assert Image.open(path).mode == "I"
    np.testing.assert_array_equal(read_image(path)[0, :, 1], [0, 1, 117, 255])


def test_cmyk_jpeg(tmp_path: Path) -> None:
    cmyk = [(0, 0, 0, 0), (0, 255, 255, 0), (255, 0, 255, 0), (0, 0, 0, 128), (40, 80, 120, 60)]
    im = Image.new("CMYK", (16 * len(cmyk), 16))
    for i, c in enumerate(cmyk):
        im.paste(c, (16 * i, 0, 16 * i + 16, 16))
    path = _save(tmp_path, "cmyk.jpg", im, quality=98)
    assert Image.open(path).mode == "CMYK"
    out = read_image(path)
    assert out.shape == (16, 16 * len(cmyk), 3)
    for i, (c, m, y, k) in enumerate(cmyk):
        expected = [round((255 - v) * (255 - k) / 255) for v in (c, m, y)]
        got = out[4:12, 16 * i + 4: 16 * i + 12].reshape(-1, 3).mean(axis=0)
        assert np.abs(got - expected).max() <= 3, (c, m, y, k, got, expected)


def test_rgba_png_composited_on_white(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    rgba = rng.integers(0, 256, (10, 12, 4), dtype=np.uint8)
    rgba[0, :, 3] = 0
    rgba[1, :, 3] = 255
    path = _save(tmp_path, "alpha.png", rgba)
    rgb = rgba[:, :, :3].astype(np.float64)
    a = rgba[:, :, 3:].astype(np.float64) / 255.0
    expected = np.rint(rgb * a + 255.0 * (1.0 - a)).astype(np.uint8)
    out = read_image(path)
    np.testing.assert_array_equal(out, expected)
    assert (out[0] == 255).all()
    np.testing.assert_array_equal(out[1], rgba[1, :, :3])
    rgb2, alpha = read_image_with_alpha(path)
    np.testing.assert_array_equal(rgb2, expected)
    np.testing.assert_array_equal(alpha, rgba[:, :, 3])
    np.testing.assert_array_equal(read_image(path, keep_alpha=True), rgba)
    np.testing.assert_array_equal(read_image(rgba), expected)  # RGBA arrays follow the same rule
    np.testing.assert_array_equal(fio.composite_over_white(rgba[:, :, :3], rgba[:, :, 3]), expected)
    # opaque images: no alpha to re-attach; keep_alpha gives 255
    opaque = _save(tmp_path, "opaque.png", _pattern())
    assert read_image_with_alpha(opaque)[1] is None
    assert (read_image(opaque, keep_alpha=True)[:, :, 3] == 255).all()


def test_palette_png_with_and_without_transparency(tmp_path: Path) -> None:
    palette = [255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30]
    idx = np.array([[0, 1, 2, 3], [3, 2, 1, 0]], dtype=np.uint8)
    im = Image.frombytes("P", (4, 2), idx.tobytes())
    im.putpalette(palette)
    lut = np.array(palette, dtype=np.uint8).reshape(-1, 3)
    path = _save(tmp_path, "pal.png", im)
    assert Image.open(path).mode == "P"
    np.testing.assert_array_equal(read_image(path), lut[idx])
    # index 3 transparent -> white
    path_t = _save(tmp_path, "pal_t.png", im, transparency=3)
    expected = lut[idx].copy()
    expected[idx == 3] = 255
    np.testing.assert_array_equal(read_image(path_t), expected)
    _, alpha = read_image_with_alpha(path_t)
    np.testing.assert_array_equal(alpha, np.where(idx == 3, 0, 255))


@pytest.mark.parametrize(
    "mode, values, expected",
    [
        ("1", [[0, 1, 1, 0]], [[0, 255, 255, 0]]),
        ("L", [[0, 17, 200, 255]], [[0, 17, 200, 255]]),
        ("F", [[0.0, 0.25, 1.0, 3.0]], [[0, 64, 255, 255]]),  # float read as [0, 1], clipped
    ],
)
def test_gray_modes(tmp_path: Path, mode: str, values: list, expected: list) -> None:
    arr = np.array(values)
    if mode == "1":
        im = Image.fromarray((arr * 255).astype(np.uint8)).convert("1")
        path = _save(tmp_path, "g.png", im)
    elif mode == "F":
        im = Image.fromarray(arr.astype(np.float32))
        path = _save(tmp_path, "g.tif", im)
    else:
        path = _save(tmp_path, "g.png", arr.astype(np.uint8))
    assert Image.open(path).mode == mode
    out = read_image(path)
    assert out.shape == (1, 4, 3)
    for ch in range(3):
        np.testing.assert_array_equal(out[:, :, ch], expected)


def test_la_png(tmp_path: Path) -> None:
    la = np.array([[[100, 0], [100, 255], [0, 128]]], dtype=np.uint8)
    im = Image.merge("LA", [Image.fromarray(la[:, :, 0]), Image.fromarray(la[:, :, 1])])
    path = _save(tmp_path, "la.png", im)
    assert Image.open(path).mode == "LA"
    out = read_image(path)
    np.testing.assert_array_equal(out[0, :, 0], [255, 100, round(255 * 127 / 255)])


def test_gray_and_float_arrays() -> None:
    gray = np.array([[0, 128], [200, 255]], dtype=np.uint8)
    out = read_image(gray)
    assert out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out[:, :, 1], gray)
    np.testing.assert_array_equal(read_image(gray[:, :, None])[:, :, 2], gray)
    f = np.array([[0.0, 0.5], [1.0, 1.0 + 1e-4]], dtype=np.float32)
    np.testing.assert_array_equal(read_image(np.dstack([f, f, f]))[:, :, 0], [[0, 128], [255, 255]])


# EXIF orientation o: how the stored pixels relate to what a viewer shows (the display image D),
# written from the EXIF definition of where row 0 / column 0 of the stored image lie.
_STORE = {
    1: lambda d: d,
    2: lambda d: d[:, ::-1],                 # top-right: mirrored left-right
    3: lambda d: d[::-1, ::-1],              # bottom-right: rotated 180
    4: lambda d: d[::-1, :],                 # bottom-left: mirrored top-bottom
    5: lambda d: d.transpose(1, 0, 2),       # left-top: transposed
    6: lambda d: np.rot90(d, 1),             # right-top: stored row 0 is the visual right edge
    7: lambda d: np.rot90(d[::-1, :], 1),    # right-bottom
    8: lambda d: np.rot90(d, -1),            # left-bottom: stored row 0 is the visual left edge
}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_undone_exactly(tmp_path: Path, orientation: int) -> None:
    display = _pattern(18, 30, seed=orientation)
    stored = np.ascontiguousarray(_STORE[orientation](display))
    exif = Image.Exif()
    exif[274] = orientation
    path = _save(tmp_path, f"o{orientation}.png", stored, exif=exif)
    assert Image.open(path).getexif().get(274) == orientation
    np.testing.assert_array_equal(read_image(path), display)
    # JPEG (lossy) carries the same tag; orientation must be right up to compression noise
    jpg = _save(tmp_path, f"o{orientation}.jpg", stored, exif=exif, quality=98, subsampling=0)
    out = read_image(jpg)
    assert out.shape == display.shape
    err = np.abs(out.astype(int) - display).mean()
    assert err < 12, err  # a wrong orientation gives ~85 on noise


# --------------------------------------------------------------------------- writing


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif", ".tiff"])
def test_write_lossless_roundtrip(tmp_path: Path, ext: str) -> None:
    img = _pattern(seed=11)
    out = write_image(img, tmp_path / f"o{ext}")
    assert out == tmp_path / f"o{ext}"
    np.testing.assert_array_equal(read_image(out), img)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"o{ext}"]  # no temp file left


@pytest.mark.parametrize("ext", [".jpg", ".jpeg", ".webp", ".JPG"])
def test_write_lossy(tmp_path: Path, ext: str) -> None:
    y, x = np.mgrid[0:32, 0:48]
    img = np.dstack([x * 5, y * 7, (x + y) * 3]).astype(np.uint8)
    path = write_image(img, tmp_path / f"o{ext}", quality=95)
    assert np.abs(read_image(path).astype(int) - img).mean() < 2.0
    small = write_image(img, tmp_path / f"q{ext}", quality=10)
    assert small.stat().st_size < path.stat().st_size


def test_write_rgba(tmp_path: Path) -> None:
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 0] = 250
    rgba[:, :8, 3] = 255  # left half opaque red, right half transparent (black-red underneath)
    np.testing.assert_array_equal(read_image(write_image(rgba, tmp_path / "a.png"), keep_alpha=True),
                                  rgba)
    out = read_image(write_image(rgba, tmp_path / "a.jpg"))
    assert np.abs(out[:, 12:].astype(int) - 255).max() <= 3  # transparent -> white, not red/black
    assert np.abs(out[:, :4].astype(int) - (250, 0, 0)).max() <= 6
    # PIL images in other modes are converted
    pal = Image.new("P", (4, 4), 1)
    pal.putpalette([0, 0, 0, 10, 200, 30])
    np.testing.assert_array_equal(read_image(write_image(pal, tmp_path / "p.png"))[0, 0], (10, 200, 30))


def test_write_bad_inputs(tmp_path: Path) -> None:
    img = _pattern()
    with pytest.raises(InvalidImageError, match=r"unsupported output extension '\.gif'.*\.jpeg.*\.png"):
        write_image(img, tmp_path / "o.gif")
    with pytest.raises(InvalidImageError, match="unsupported output extension '\\(none\\)'"):
        write_image(img, tmp_path / "noext")
    with pytest.raises(InvalidImageError, match="dtype float32"):
        write_image(img.astype(np.float32), tmp_path / "o.png")
    with pytest.raises(InvalidImageError, match=r"shape \(24, 40, 2\)"):
        write_image(img[:, :, :2], tmp_path / "o.png")
    with pytest.raises(ConfigError, match="quality"):
        write_image(img, tmp_path / "o.jpg", quality=0)
    with pytest.raises(OutputError, match="is a directory"):
        (tmp_path / "d.png").mkdir()
        write_image(img, tmp_path / "d.png")
    assert not list(tmp_path.glob(".*.tmp"))


def test_write_creates_parents_and_respects_umask(tmp_path: Path) -> None:
    out = write_image(_pattern(), tmp_path / "a" / "b" / "o.png")
    assert out.is_file()
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("name", ["text.jpg/x.png", "text.jpg/a/b/x.png"])
def test_write_under_a_file_names_the_file(tmp_path: Path, name: str) -> None:
    """A file where a parent folder should be: the message names it (mkdir only says "File exists")."""
    (tmp_path / "text.jpg").write_bytes(b"not a folder")
    with pytest.raises(OutputError) as err:
        write_image(_pattern(), tmp_path / name)
    assert str(err.value) == f"{tmp_path / name}: cannot write: {tmp_path / 'text.jpg'} is a file, not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["text.jpg"]
    assert (tmp_path / "text.jpg").read_bytes() == b"not a folder"


def test_atomic_write_under_a_file_names_the_file(tmp_path: Path) -> None:
    from facetoon._fileutil import atomic_write_bytes

    (tmp_path / "run").write_text("a file")
    with pytest.raises(OutputError, match="run/settings.json: cannot write: .*run is a file, not a folder"):
        atomic_write_bytes(tmp_path / "run" / "settings.json", b"{}")


def test_write_failure_leaves_old_file_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.png"
    write_image(_pattern(seed=1), target)
    before = target.read_bytes()

    def failing_save(self: Image.Image, fp: object, *args: object, **kw: object) -> None:
        fp.write(b"\x89PNG partial data")  # type: ignore[attr-defined]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(OutputError, match="out.png: cannot write: No space left on device"):
        write_image(_pattern(seed=2), target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]  # temp file removed


def test_refuses_to_overwrite_inputs(tmp_path: Path) -> None:
    src = _save(tmp_path, "in.png", _pattern(seed=5))
    before = src.read_bytes()
    img = read_image(src)
    (tmp_path / "sub").mkdir()
    link = tmp_path / "link.png"
    link.symlink_to(src)
    hard = tmp_path / "hard.png"
    os.link(src, hard)
    spellings = [src, str(src), tmp_path / "sub" / ".." / "in.png", link, hard]
    for target in spellings:
        with pytest.raises(OutputError, match="refusing to overwrite the input image"):
            write_image(img, target, protect=[src])
    with pytest.raises(OutputError, match="refusing"):
        write_image(img, src, protect=[str(link)])
    assert src.read_bytes() == before
    # other outputs are fine
    assert write_image(img, tmp_path / "other.png", protect=[src]).is_file()


def test_overwrite_false(tmp_path: Path) -> None:
    target = write_image(_pattern(seed=1), tmp_path / "o.png")
    before = target.read_bytes()
    with pytest.raises(OutputError, match="already exists"):
        write_image(_pattern(seed=2), target, overwrite=False)
    assert target.read_bytes() == before
    fresh = write_image(_pattern(seed=2), tmp_path / "n.png", overwrite=False)
    np.testing.assert_array_equal(read_image(fresh), _pattern(seed=2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.png", "o.png"]
    # and overwrite=True (the default) replaces
    write_image(_pattern(seed=3), target)
    np.testing.assert_array_equal(read_image(target), _pattern(seed=3))


# --------------------------------------------------------------------------- tensors


def test_tensor_roundtrip_every_value() -> None:
    torch = pytest.importorskip("torch")
    img = np.arange(256 * 3, dtype=np.int64).reshape(16, 16, 3) % 256
    img = img.astype(np.uint8)
    t = to_tensor(img)
    assert t.shape == (1, 3, 16, 16) and t.dtype == torch.float32
    assert t.min().item() == -1.0 and t.max().item() == 1.0
    np.testing.assert_allclose(t[0].permute(1, 2, 0).numpy(), img / 127.5 - 1.0, atol=1e-6)
    t_before = t.clone()
    back = to_image(t)
    assert torch.equal(t, t_before)  # the input tensor is not modified in place
    assert back.shape == (16, 16, 3) and back.dtype == np.uint8
    np.testing.assert_array_equal(back, img)
    # BGR order both ways
    bgr = to_tensor(img, channels="BGR")
    assert torch.equal(bgr[:, 0], t[:, 2])
    np.testing.assert_array_equal(to_image(bgr, channels="BGR"), img)
    # batches, no-batch input, clamping and gradients
    batch = torch.cat([t, -t]).requires_grad_(True)
    out = to_image(batch * 1000)  # no value of t is 0, so all saturate
    assert out.shape == (2, 16, 16, 3)
    assert set(np.unique(out)) <= {0, 255}
    np.testing.assert_array_equal(to_image(t[0]), img)


def test_tensor_bad_inputs() -> None:
    torch = pytest.importorskip("torch")
    with pytest.raises(InvalidImageError, match=r"dtype float32 shape \(4, 4, 3\)"):
        to_tensor(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(InvalidImageError, match=r"shape \(4, 4\)"):
        to_tensor(np.zeros((4, 4), np.uint8))
    with pytest.raises(InvalidImageError, match=r"shape \(1, 4, 4, 4\)"):
        to_image(torch.zeros(1, 4, 4, 4))
    with pytest.raises(InvalidImageError, match="NaN"):
        to_image(torch.full((1, 3, 2, 2), float("nan")))
    with pytest.raises(InvalidImageError, match="float tensor"):
        to_image(torch.zeros(1, 3, 2, 2, dtype=torch.uint8))


# --------------------------------------------------------------------------- file lists


def test_iter_image_files(tmp_path: Path) -> None:
    for name in ["b.jpg", "A.PNG", "c.webp", "notes.txt", ".hidden.png", "sub/d.png",
                 ".cache/e.png", "sub/deeper/f.tiff"]:
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    got = iter_image_files([tmp_path])
    assert [p.name for p in got] == ["A.PNG", "b.jpg", "c.webp"]
    rec = iter_image_files([tmp_path], recursive=True)
    assert [p.relative_to(tmp_path).as_posix() for p in rec] == [
        "A.PNG", "b.jpg", "c.webp", "sub/d.png", "sub/deeper/f.tiff"]
    # a file named explicitly is kept whatever its extension; duplicates collapse
    got = iter_image_files([tmp_path / "notes.txt", tmp_path / "b.jpg", tmp_path,
                            str(tmp_path / "sub" / ".." / "b.jpg")])
    assert [p.name for p in got] == ["A.PNG", "b.jpg", "c.webp", "notes.txt"]
    # globs, including **
    assert [p.name for p in iter_image_files([str(tmp_path / "*.jpg")])] == ["b.jpg"]
    assert [p.name for p in iter_image_files([str(tmp_path / "**" / "*.tiff")])] == ["f.tiff"]
    with pytest.raises(InvalidImageError, match="pattern matches no image file"):
        iter_image_files([str(tmp_path / "*.gif")])
    with pytest.raises(InvalidImageError, match="missing.jpg: no such file or folder"):
        iter_image_files([tmp_path / "missing.jpg"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InvalidImageError, match="no image files found"):
        iter_image_files([empty])


# --------------------------------------------------------------------------- real data


def test_bundled_example_is_the_astronaut() -> None:
    skimage_data = pytest.importorskip("skimage.data")
    out = read_image(REPO / "examples" / "astronaut.png")
    np.testing.assert_array_equal(out, skimage_data.astronaut())


def test_real_photos(shared: Path, selfies: list[Path], tmp_path: Path) -> None:
    for path in selfies[:4]:
        img = read_image(path)
        assert img.shape == (256, 256, 3)
        assert 20 < img.mean() < 235
    faces = read_image(shared / "fixtures" / "four_faces.jpg")
    assert faces.shape == (355, 512, 3)
    out = write_image(faces, tmp_path / "faces.png", protect=[shared / "fixtures" / "four_faces.jpg"])
    np.testing.assert_array_equal(read_image(out), faces)


def test_source_label_names_each_kind_of_source(tmp_path: Path) -> None:
    path = tmp_path / "face.png"
    assert fio.source_label(path) == str(path)
    assert fio.source_label(b"\x89PNG") == "<bytes>"
    assert fio.source_label(np.zeros((2, 2, 3), np.uint8)) == "<array>"
    assert fio.source_label(Image.new("RGB", (2, 2))) == "<PIL image>"
    assert fio.source_label(io.BytesIO(b"")) == "<file object>"
    _save(tmp_path, "face.png", _pattern())
    with open(path, "rb") as f:
        assert fio.source_label(f) == str(path)


def test_list_images_one_rule_for_every_folder(tmp_path: Path) -> None:
    """Training data, KID folders and style folders are all listed by io.list_images."""
    from facetoon.errors import DataError
    from facetoon.metrics.features import list_images as kid_list
    from facetoon.train.data import list_images as train_list

    img = _pattern()
    names = ["b.JPG", "a.png", "c.tiff", ".hidden.jpg", "notes.txt"]
    for name in names[:4]:
        fmt = {"JPG": "JPEG", "png": "PNG", "tiff": "TIFF", "jpg": "JPEG"}[name.rsplit(".", 1)[1]]
        _save(tmp_path, name, img, format=fmt)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "sub").mkdir()
    _save(tmp_path / "sub", "d.png", img)
    expected = [tmp_path / "a.png", tmp_path / "b.JPG", tmp_path / "c.tiff"]
    assert fio.list_images(tmp_path) == expected
    assert train_list(tmp_path) == kid_list(tmp_path) == expected
    (tmp_path / "empty").mkdir()
    assert fio.list_images(tmp_path / "empty", required=False) == []
    with pytest.raises(DataError, match="empty: no images"):
        fio.list_images(tmp_path / "empty")
    with pytest.raises(DataError, match="image folder not found"):
        fio.list_images(tmp_path / "missing", required=False)
