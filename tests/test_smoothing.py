"""Edge-smoothed anime data: the operation, the parallel folder job, the CLI and the dataset layout check."""

from __future__ import annotations

import json
import os
import shutil
import time

import cv2
import numpy as np
import pytest
from PIL import Image

from facetoon.cli import main
from facetoon.data.animegan_layout import check_animegan_layout, list_styles
from facetoon.data.smoothing import SETTINGS_FILE, edge_smooth, smooth_directory
from facetoon.errors import ConfigError, DataError, InvalidImageError, OutputError
from facetoon.io import read_image, write_image


def _square() -> np.ndarray:
    img = np.full((64, 64, 3), 255, np.uint8)
    img[20:44, 20:44] = (200, 30, 30)
    return img


def test_only_edge_pixels_change():
    img = _square()
    out = edge_smooth(img)
    changed = np.any(out != img, axis=2)
    assert changed.any()
    # every changed pixel lies in a band around the square's outline (edges at 20 and 44, dilation 2)
    ys, xs = np.nonzero(changed)
    dist_y = np.abs(ys[:, None] - np.array([19, 20, 43, 44])).min(1)
    dist_x = np.abs(xs[:, None] - np.array([19, 20, 43, 44])).min(1)
    assert (np.minimum(dist_y, dist_x) <= 3).all()
    assert (out[:10, :10] == img[:10, :10]).all() and (out[28:36, 28:36] == img[28:36, 28:36]).all()
    # the changed pixels are the Gaussian blur of the image
    blurred = cv2.GaussianBlur(img.astype(np.float32), (5, 5), 0)
    assert np.abs(out[changed].astype(float) - np.rint(blurred[changed])).max() <= 0.5


def test_real_anime_image(anime_faces):
    img = read_image(anime_faces[0])
    out = edge_smooth(img)
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    band = cv2.dilate(cv2.Canny(gray, 100, 200), np.ones((5, 5), np.uint8)) > 0
    changed = np.any(out != img, axis=2)
    assert changed.sum() > 0.01 * changed.size
    assert not (changed & ~band).any()
    assert out.shape == img.shape and out.dtype == np.uint8


def test_bad_input():
    with pytest.raises(InvalidImageError):
        edge_smooth(np.zeros((8, 8), np.uint8))
    with pytest.raises(InvalidImageError):
        edge_smooth(np.zeros((8, 8, 3), np.float32))


def test_directory_parallel_skip_and_failures(tmp_path, anime_faces):
    src = tmp_path / "style"
    src.mkdir()
    for p in anime_faces[:4]:
        shutil.copy(p, src / p.name)
    out = tmp_path / "smooth"
    report = smooth_directory(src, out, workers=2)
    assert len(report.written) == 4 and not report.skipped and not report.failed
    assert sorted(p.name for p in out.iterdir()) == sorted([SETTINGS_FILE, *(p.name for p in src.iterdir())])
    first = out / anime_faces[0].name
    assert read_image(first).shape == read_image(anime_faces[0]).shape
    mtime = first.stat().st_mtime_ns
    again = smooth_directory(src, out, workers=2)
    assert len(again.skipped) == 4 and not again.written and first.stat().st_mtime_ns == mtime
    # a replaced input is redone (a merely touched one is not); a corrupt one is reported, the rest still written
    time.sleep(0.01)
    shutil.copyfile(anime_faces[5], src / anime_faces[1].name)
    os.utime(src / anime_faces[2].name)
    (src / "broken.jpg").write_bytes(b"not a jpeg")
    third = smooth_directory(src, out, workers=1)
    assert [p.name for p in third.written] == [anime_faces[1].name]
    assert list(third.failed) == [src / "broken.jpg"]
    assert not [p for p in out.iterdir() if p.name.startswith(".") and p.name != SETTINGS_FILE]  # no temporary files
    # other settings (a new training size) remake every image, and are recorded
    fourth = smooth_directory(src, out, workers=1, size=64)
    assert len(fourth.written) == 4 and not fourth.skipped
    assert read_image(first).shape[:2] != read_image(anime_faces[0]).shape[:2]
    record = json.loads((out / SETTINGS_FILE).read_text())
    assert {k: record[k] for k in ("size", "kernel_size")} == {"size": 64, "kernel_size": 5}
    assert sorted(record["sources"]) == sorted(p.name for p in anime_faces[:4])
    assert len(smooth_directory(src, out, workers=1, size=64).skipped) == 4
    with pytest.raises(DataError, match="not found"):
        smooth_directory(tmp_path / "nope", out)


def test_a_replaced_style_image_is_redone_whatever_its_timestamp(tmp_path, anime_faces):
    """cp -p, rsync -a and unzip give a new file an older timestamp than the smooth copy of the old one."""
    src, out = tmp_path / "style", tmp_path / "smooth"
    src.mkdir()
    for p in anime_faces[:2]:
        shutil.copy(p, src / p.name)
    smooth_directory(src, out, workers=1)
    replaced = src / anime_faces[0].name
    shutil.copyfile(anime_faces[3], replaced)
    old = (out / replaced.name).stat().st_mtime_ns - 3600 * 10**9
    os.utime(replaced, ns=(old, old))
    report = smooth_directory(src, out, workers=1)
    assert [p.name for p in report.written] == [replaced.name] and len(report.skipped) == 1
    assert (read_image(out / replaced.name) == read_image(write_image(
        edge_smooth(read_image(anime_faces[3])), tmp_path / "expected.jpg", quality=95))).all()


def test_an_interrupted_run_keeps_its_work_and_unrecorded_outputs_are_redone(tmp_path, anime_faces, monkeypatch):
    import facetoon.data.smoothing as smoothing

    src, out = tmp_path / "style", tmp_path / "smooth"
    src.mkdir()
    for p in anime_faces[:4]:
        shutil.copy(p, src / p.name)
    real, calls = smoothing.smooth_file, []

    def interrupted(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(smoothing, "smooth_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        smooth_directory(src, out, workers=1)
    monkeypatch.setattr(smoothing, "smooth_file", real)
    assert len(json.loads((out / SETTINGS_FILE).read_text())["sources"]) == 2
    again = smooth_directory(src, out, workers=1)
    assert len(again.skipped) == 2 and len(again.written) == 2
    # a record without sources (an older facetoon, or made elsewhere): every output is redone
    (out / SETTINGS_FILE).write_text(json.dumps({"size": None, "kernel_size": 5}))
    assert len(smooth_directory(src, out, workers=1).written) == 4


def test_gif_style_images_are_refused_up_front(tmp_path, capsys):
    """A smooth copy has the style image's file name, and GIF (like PPM, AVIF) cannot be written."""
    src = tmp_path / "style"
    write_image(_square(), src / "a.png")
    for name in ("b.gif", "c.GIF"):
        Image.fromarray(_square()).save(src / name, format="GIF")
    with pytest.raises(DataError, match=r"2 style image\(s\) .*\.gif.*: b\.gif, c\.GIF; convert them to PNG"):
        smooth_directory(src, tmp_path / "out", workers=1)
    assert not (tmp_path / "out").exists()
    assert main(["prepare-smooth", str(src), str(tmp_path / "out"), "--workers", "1"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "convert them to PNG" in err, err


def test_cli_help_says_size_is_the_training_img_size(capsys):
    with pytest.raises(SystemExit):
        main(["prepare-smooth", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--size 256" in out and "short side is SIZE px; use the training img_size" in out


def test_cli(tmp_path, anime_faces):
    src = tmp_path / "style"
    src.mkdir()
    shutil.copy(anime_faces[0], src / "a.jpg")
    assert main(["prepare-smooth", str(src), str(tmp_path / "out"), "--workers", "1", "--size", "128"]) == 0
    assert read_image(tmp_path / "out" / "a.jpg").shape == (128, 128, 3)
    write_image(read_image(anime_faces[1])[:, :200], src / "wide.png")  # 200 x 256: aspect ratio kept
    assert main(["prepare-smooth", str(src), str(tmp_path / "out"), "--workers", "1", "--size", "100"]) == 0
    assert read_image(tmp_path / "out" / "wide.png").shape == (128, 100, 3)
    (src / "b.jpg").write_bytes(b"garbage")
    assert main(["prepare-smooth", str(src), str(tmp_path / "out"), "--workers", "1"]) == 1


@pytest.mark.parametrize(("options", "message"), [
    (["--kernel-size", "0"], "--kernel-size must be a positive odd number (e.g. 3, 5, 7), got 0"),
    (["--kernel-size", "4"], "--kernel-size must be a positive odd number (e.g. 3, 5, 7), got 4"),
    (["--workers", "0"], "--workers must be >= 1, got 0"),
])
def test_cli_checks_options_before_any_work(tmp_path, capsys, options, message):
    """One line, and nothing made: no image smoothed, no output folder, no settings record."""
    src = tmp_path / "style"
    write_image(_square(), src / "a.png")
    assert main(["prepare-smooth", str(src), str(tmp_path / "out"), *options]) == 1
    err = capsys.readouterr().err
    assert err.strip() == f"facetoon: error: {message}", err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("out", "message"), [
    ("text.jpg", "text.jpg: OUT_DIR is a file, not a folder"),
    ("text.jpg/smooth", "text.jpg/smooth: OUT_DIR cannot be made: {tmp}/text.jpg is a file, not a folder"),
])
def test_cli_output_folder_that_is_a_file(tmp_path, capsys, out, message):
    src = tmp_path / "style"
    write_image(_square(), src / "a.png")
    (tmp_path / "text.jpg").write_bytes(b"a file")
    assert main(["prepare-smooth", str(src), str(tmp_path / out), "--workers", "1"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message.replace("{tmp}", str(tmp_path)) in err, err
    assert (tmp_path / "text.jpg").read_bytes() == b"a file"


def _layout(root, style="Hayao", smooth=True, val=True):
    img = _square()
    write_image(img, root / "train_photo" / "p1.jpg")
    write_image(img, root / style / "style" / "a1.png")
    write_image(img, root / style / "style" / "a2.png")
    if smooth:
        write_image(edge_smooth(img), root / style / "smooth" / "a1.png")
        write_image(edge_smooth(img), root / style / "smooth" / "a2.png")
    if val:
        write_image(img, root / "val" / "v1.jpg")


def test_layout_ok(tmp_path):
    _layout(tmp_path)
    layout = check_animegan_layout(tmp_path)
    assert layout.style == "Hayao" and len(layout.style_images) == 2 and len(layout.smooth_images) == 2
    assert list_styles(tmp_path) == ["Hayao"]


def test_layout_errors_name_what_is_missing(tmp_path):
    _layout(tmp_path, smooth=False, val=False)
    with pytest.raises(DataError) as err:
        check_animegan_layout(tmp_path)
    msg = str(err.value)
    assert "Hayao/smooth/ is missing" in msg and "val/ is missing" in msg and "prepare-smooth" in msg
    write_image(_square(), tmp_path / "Hayao" / "smooth" / "a1.png")
    with pytest.raises(DataError, match="1 of 2 style images have no smooth copy"):
        check_animegan_layout(tmp_path, require_val=False)
    shutil.rmtree(tmp_path / "train_photo")
    with pytest.raises(DataError, match="train_photo/ is missing"):
        check_animegan_layout(tmp_path, require_val=False)
    _layout(tmp_path / "two")
    _layout(tmp_path / "two", style="Shinkai")
    with pytest.raises(DataError, match="Hayao, Shinkai"):
        check_animegan_layout(tmp_path / "two")
    assert check_animegan_layout(tmp_path / "two", "Shinkai").style == "Shinkai"
    with pytest.raises(DataError, match="not found"):
        check_animegan_layout(tmp_path / "missing")


def test_layout_asks_to_convert_gif_style_images_without_a_smooth_copy(tmp_path):
    _layout(tmp_path)
    Image.fromarray(_square()).save(tmp_path / "Hayao" / "style" / "b.gif", format="GIF")
    with pytest.raises(DataError, match=r"1 style image\(s\) without a smooth copy .*convert them to PNG\): b\.gif"):
        check_animegan_layout(tmp_path)
    Image.fromarray(edge_smooth(_square())).save(tmp_path / "Hayao" / "smooth" / "b.gif", format="GIF")
    assert len(check_animegan_layout(tmp_path).style_images) == 3  # a copy made elsewhere is fine


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"kernel_size": 4}, "kernel_size must be a positive odd number (e.g. 3, 5, 7), got 4"),
    ({"size": 4}, "size must be >= 8, got 4"),
    ({"workers": 0}, "workers must be >= 1, got 0"),
])
def test_directory_checks_settings_before_any_work(tmp_path, kwargs, message):
    """A library caller gets a ConfigError up front, not a report in which every image failed."""
    src = tmp_path / "style"
    write_image(_square(), src / "a.png")
    with pytest.raises(ConfigError) as info:
        smooth_directory(src, tmp_path / "out", **kwargs)
    assert str(info.value) == message
    assert not (tmp_path / "out").exists()


def test_directory_output_folder_that_is_a_file(tmp_path):
    """A file where the output folder should be is named (mkdir alone says "File exists")."""
    src = tmp_path / "style"
    write_image(_square(), src / "a.png")
    (tmp_path / "text.jpg").write_bytes(b"a file")
    with pytest.raises(OutputError, match=r"text\.jpg is a file, not a folder"):
        smooth_directory(src, tmp_path / "text.jpg" / "smooth")
