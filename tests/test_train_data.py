"""Training data loading (facetoon.train.data): bad files are skipped and reported, not fatal.

Tiny synthetic folders (32 px training size, a few 40 px PNGs), no network, no ``../shared``.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facetoon.cli import main
from facetoon.data.smoothing import smooth_directory
from facetoon.errors import DataError
from facetoon.train.data import (
    Augment, DomainSampler, PhotoStyleDataset, StepSampler, UnpairedDataset, list_images, load_image_tensor,
    make_loader, split_holdout)
from train_helpers import REPO, one_thread, read_losses, subprocess_env  # noqa: F401 (one_thread: an autouse fixture)

SIZE = 32
SEED = 3
JUNK = b"this is not a JPEG at all"


def _picture(seed: int, size: int = 40) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def _folder(root: Path, name: str, n: int, seed: int = 0) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(_picture(seed * 100 + i)).save(folder / f"{i:03d}.png")
    return folder


def _truncated_jpeg(path: Path) -> None:
    Image.fromarray(_picture(999, 64)).save(path, quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def _warnings(caplog: pytest.LogCaptureFixture, path: Path) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and str(path) in r.getMessage()]


def _same(x: torch.Tensor, y: torch.Tensor) -> bool:
    return bool(torch.equal(x, y))


def _unpaired(a: Path, b: Path) -> UnpairedDataset:
    return UnpairedDataset(list_images(a), list_images(b), Augment(SIZE, margin=6), SEED)


# ---- unreadable images -----------------------------------------------------------------------------
def test_unreadable_images_are_replaced_by_the_next_file_warned_once_and_reported(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    a, b = _folder(tmp_path, "trainA", 4), _folder(tmp_path, "trainB", 3, seed=1)
    junk, truncated = a / "001b.jpg", a / "002b.jpg"
    junk.write_bytes(JUNK)
    _truncated_jpeg(truncated)
    files_a = list_images(a)
    ds = _unpaired(a, b)
    caplog.set_level(logging.WARNING, logger="facetoon.train.data")
    n = 4 * len(files_a)  # four passes over trainA: every file drawn several times
    samples = [ds[i] for i in range(n)]
    assert set(ds.bad_files) == {junk, truncated}
    assert all(ds.bad_files.values())
    for bad in (junk, truncated):
        assert len(_warnings(caplog, bad)) == 1, caplog.text  # once per file, not per draw
    # the replacement is the next usable file of the domain, with the sample's own augmentation
    good = {p: np.asarray(Image.open(p).convert("RGB")) for p in files_a if p not in (junk, truncated)}
    replaced = 0
    for i, (img_a, _) in enumerate(samples):
        k = ds.samplers[0](i)
        while files_a[k] in (junk, truncated):
            k, replaced = (k + 1) % len(files_a), replaced + 1
        expected = ds.augment(good[files_a[k]], np.random.default_rng([SEED, 0, i, 7]))
        assert _same(img_a, expected), i
    assert replaced >= 2 * 4  # both bad files were drawn (and replaced) in each pass


def test_replacement_is_reproducible_for_an_exact_resume(tmp_path: Path) -> None:
    a, b = _folder(tmp_path, "trainA", 5), _folder(tmp_path, "trainB", 2, seed=1)
    (b / "000a.jpg").write_bytes(JUNK)
    _truncated_jpeg(a / "003a.jpg")
    first = _unpaired(a, b)
    run = [first[i] for i in range(12)]
    resumed = _unpaired(a, b)  # a fresh process resuming at sample 7: nothing known about bad files yet
    for i in range(7, 12):
        got = resumed[i]
        assert _same(got[0], run[i][0]) and _same(got[1], run[i][1]), i


def test_style_image_and_its_smooth_copy_are_replaced_together(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    photos = _folder(tmp_path, "train_photo", 3)
    (photos / "001a.jpg").write_bytes(JUNK)
    style, smooth = _folder(tmp_path, "style", 4, seed=1), tmp_path / "smooth"
    smooth.mkdir()
    for p in list_images(style):  # "smoothed" copies: the same pictures, so alignment is checkable
        (smooth / p.name).write_bytes(p.read_bytes())
    (smooth / "002.png").write_bytes(JUNK)  # a bad smooth copy spoils its style image too
    (style / "000a.png").write_bytes(JUNK)
    (smooth / "000a.png").write_bytes((style / "000.png").read_bytes())
    ds = PhotoStyleDataset(list_images(photos), list_images(style), list_images(smooth),
                           Augment(SIZE, margin=6), SEED)
    caplog.set_level(logging.WARNING, logger="facetoon.train.data")
    for i in range(16):
        _, s, sm = ds[i]
        assert _same(s, sm), i  # still the same file and augmentation
    assert set(ds.bad_files) == {photos / "001a.jpg", style / "000a.png", smooth / "002.png"}


# ---- aspect ratio ----------------------------------------------------------------------------------
def test_square_images_keep_the_augmentation_of_earlier_versions() -> None:
    """Runs resume exactly across versions: a square image gets the same draws and tensor as before."""
    rgb = _picture(5, 50)
    for seed in range(6):
        for margin, flip in ((6, True), (0, False), (30, True)):
            rng = np.random.default_rng(seed)
            img = Image.fromarray(rgb)
            if flip and rng.random() < 0.5:
                img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            big = SIZE + margin
            img = img.resize((big, big), Image.Resampling.BILINEAR)
            x, y = (int(v) for v in rng.integers(0, margin + 1, size=2))
            expected = torch.from_numpy(np.asarray(img)[y:y + SIZE, x:x + SIZE].transpose(2, 0, 1).copy())
            got = Augment(SIZE, margin, flip)(rgb, np.random.default_rng(seed))
            assert _same(got, expected.float().div_(127.5).sub_(1.0)), (seed, margin, flip)


@pytest.mark.parametrize("shape, centre", [((40, 80), np.s_[:, 20:60]), ((90, 50), np.s_[20:70, :])],
                         ids=["wide", "tall"])
def test_non_square_images_are_not_distorted_but_centre_cropped(
        tmp_path: Path, shape: tuple[int, int], centre: tuple[slice, slice]) -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (*shape, 3), dtype=np.uint8)
    square = np.ascontiguousarray(rgb[centre])
    for seed in range(6):
        for augment in (Augment(SIZE, margin=6), Augment(SIZE, margin=0, flip=False)):
            assert _same(augment(rgb, np.random.default_rng(seed)), augment(square, np.random.default_rng(seed)))
    Image.fromarray(rgb).save(tmp_path / "image.png")
    Image.fromarray(square).save(tmp_path / "square.png")
    assert _same(load_image_tensor(tmp_path / "image.png", SIZE), load_image_tensor(tmp_path / "square.png", SIZE))


def test_a_smooth_copy_made_at_a_smaller_size_stays_aligned_with_its_style_image(tmp_path: Path) -> None:
    photos, style, smooth = _folder(tmp_path, "train_photo", 2), tmp_path / "style", tmp_path / "smooth"
    for folder in (style, smooth):
        folder.mkdir()
    for i in range(3):
        wide = Image.fromarray(np.random.default_rng(i).integers(0, 256, (40, 80, 3), dtype=np.uint8))
        wide.save(style / f"{i}.png")
        wide.resize((32, 16), Image.Resampling.BILINEAR).save(smooth / f"{i}.png")  # "smoothed" at 16 px
    ds = PhotoStyleDataset(list_images(photos), list_images(style), list_images(smooth), Augment(SIZE, margin=6), SEED)
    for i in range(8):
        _, s, sm = ds[i]
        assert _same(s, sm), i


def test_training_warns_once_when_the_smooth_copies_were_not_made_at_img_size(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    photos, style = _folder(tmp_path, "train_photo", 2), _folder(tmp_path, "style", 2, seed=1)
    smooth = tmp_path / "smooth"
    caplog.set_level(logging.WARNING, logger="facetoon.train.data")

    def warnings(size: int | None) -> list[str]:
        caplog.clear()
        smooth_directory(style, smooth, workers=1, size=size)
        PhotoStyleDataset(list_images(photos), list_images(style), list_images(smooth), Augment(SIZE, margin=0), SEED)
        return [r.getMessage() for r in caplog.records if r.name == "facetoon.train.data"]

    remake = f"facetoon prepare-smooth {style} {smooth} --size {SIZE}"
    at_source = warnings(None)  # 40 px sources, training at 32 px
    assert len(at_source) == 1 and remake in at_source[0] and "source size (short side 40 px)" in at_source[0]
    other = warnings(24)
    assert len(other) == 1 and remake in other[0] and "at size 24" in other[0]
    assert warnings(SIZE) == []
    smooth_directory(style, smooth, workers=1)
    (smooth / ".facetoon-smooth.json").unlink()  # made elsewhere: nothing known, nothing said
    caplog.clear()
    PhotoStyleDataset(list_images(photos), list_images(style), list_images(smooth), Augment(SIZE, margin=0), SEED)
    assert [r for r in caplog.records if r.name == "facetoon.train.data"] == []


# ---- blank and tiny images -------------------------------------------------------------------------
@pytest.mark.parametrize("shape, colour", [((40, 40), (128, 128, 128)), ((40, 40), (255, 0, 0)),
                                           ((1, 1), (10, 200, 30))])
def test_blank_images_are_bad_files(tmp_path: Path, shape: tuple[int, int], colour: tuple[int, int, int],
                                    caplog: pytest.LogCaptureFixture) -> None:
    a, b = _folder(tmp_path, "trainA", 3), _folder(tmp_path, "trainB", 2, seed=1)
    blank = a / "001a.png"
    Image.fromarray(np.full((*shape, 3), colour, dtype=np.uint8)).save(blank)
    ds = _unpaired(a, b)
    caplog.set_level(logging.WARNING, logger="facetoon.train.data")
    images = [ds[i][0] for i in range(16)]
    assert ds.bad_files == {blank: "blank image (one colour)"}
    assert len(_warnings(caplog, blank)) == 1
    assert all(float(x.std()) > 0 for x in images)


def test_small_images_are_upscaled_with_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    a, b = _folder(tmp_path, "trainA", 2), _folder(tmp_path, "trainB", 2, seed=1)
    small, half = a / "001a.png", a / "001b.png"
    Image.fromarray(_picture(7, 8)[:, :6]).save(small)  # 6 x 8 px: a side below SIZE / 2
    Image.fromarray(_picture(8, SIZE // 2)).save(half)  # 16 x 16 px: not below half, silent
    ds = _unpaired(a, b)
    caplog.set_level(logging.WARNING, logger="facetoon.train.data")
    for i in range(12):
        assert ds[i][0].shape == (3, SIZE, SIZE)
    assert ds.bad_files == {}
    warned = _warnings(caplog, small)
    assert len(warned) == 1 and f"6 x 8 px, upscaled to {SIZE}" in warned[0], caplog.text
    assert _warnings(caplog, half) == []


# ---- too many bad files ----------------------------------------------------------------------------
def test_a_domain_without_usable_images_is_a_data_error_naming_the_folder(tmp_path: Path) -> None:
    a, b = _folder(tmp_path, "trainA", 2), tmp_path / "trainB"
    b.mkdir()
    (b / "x.jpg").write_bytes(JUNK)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(b / "y.png")
    ds = _unpaired(a, b)
    with pytest.raises(DataError, match="none of the 2 images") as err:
        ds[0]
    assert err.value.path == str(b)
    assert "\n" not in str(err.value)


def test_mostly_bad_domain_stops_with_a_data_error(tmp_path: Path) -> None:
    a, b = _folder(tmp_path, "trainA", 1), _folder(tmp_path, "trainB", 2, seed=1)
    for i in range(5):
        (a / f"bad{i}.jpg").write_bytes(JUNK)
    ds = _unpaired(a, b)
    with pytest.raises(DataError, match="unreadable or blank") as err:
        for i in range(12):  # two passes: every file has been drawn after the first
            ds[i]
    assert err.value.path == str(a)


# ---- loader workers --------------------------------------------------------------------------------
def test_bad_files_found_by_loader_workers_reach_the_main_process(tmp_path: Path) -> None:
    a, b = _folder(tmp_path, "trainA", 3), _folder(tmp_path, "trainB", 2, seed=1)
    junk = a / "001a.jpg"
    junk.write_bytes(JUNK)
    ds = _unpaired(a, b)
    loader = make_loader(ds, StepSampler(0, 2, total_steps=6), batch_size=2, num_workers=1)
    batches = list(loader)
    assert len(batches) == 6
    bad = ds.bad_files  # read in the main process, which never read a file itself
    assert set(bad) == {junk} and "not a recognised image" in bad[junk]


# ---- holdout ---------------------------------------------------------------------------------------
def test_too_large_holdout_names_the_folder_and_the_option(tmp_path: Path) -> None:
    b = _folder(tmp_path, "trainB", 6)
    with pytest.raises(DataError) as err:
        split_holdout(list_images(b), 100, 1234)
    message = str(err.value)
    assert err.value.path == str(b)
    assert message.startswith(f"{b}: cannot hold out 100 of 6 images")
    assert "--set holdout=N" in message and "0 = no validation" in message


# ---- end to end ------------------------------------------------------------------------------------
def test_ugatit_training_goes_on_past_a_bad_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _folder(tmp_path / "data", "trainA", 3)
    _folder(tmp_path / "data", "trainB", 3, seed=1)
    junk = a / "000a.jpg"
    junk.write_bytes(JUNK)
    run = tmp_path / "run"
    settings = ["img_size=32", "ngf=8", "ndf=8", "n_res=1", "light=true", "n_layers_global=5",
                "n_layers_local=4", "holdout=0", "kid_images=0", "n_samples=1", "precision=fp32",
                "device=cpu", "iterations=4", "log_every=1", "sample_every=100", "checkpoint_every=100"]
    code = main(["train", "ugatit", "--data", str(tmp_path / "data"), "--out", str(run), "--set", *settings])
    err = capsys.readouterr().err
    assert code == 0, err
    assert len(read_losses(run)) == 4
    assert str(junk) in err and "bad training image" in err


def test_an_unreadable_validation_image_is_left_out_and_the_end_of_run_lists_bad_files(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Validation and sample images (here testA/) are read at every sample grid: a broken one is
    left out with a warning when the run starts; the bad training images are listed again at the end."""
    a = _folder(tmp_path / "data", "trainA", 3)
    _folder(tmp_path / "data", "trainB", 3, seed=1)
    _folder(tmp_path / "data", "testA", 2, seed=2)
    (a / "000a.jpg").write_bytes(JUNK)
    bad_val = tmp_path / "data" / "testA" / "000z.jpg"
    bad_val.write_bytes(JUNK)
    run = tmp_path / "run"
    settings = ["img_size=32", "ngf=8", "ndf=8", "n_res=1", "light=true", "n_layers_global=5",
                "n_layers_local=4", "holdout=0", "kid_images=0", "n_samples=3", "precision=fp32",
                "device=cpu", "iterations=4", "sample_every=4", "checkpoint_every=100"]
    code = main(["train", "ugatit", "--data", str(tmp_path / "data"), "--out", str(run), "--set", *settings])
    err = capsys.readouterr().err
    assert code == 0, err
    assert f"{bad_val}: unreadable validation (domain A) image, left out" in err
    assert "1 bad training image(s) were skipped" in err and str(a / "000a.jpg") in err.split("were skipped")[1]
    assert (run / "samples" / "step_00000004.jpg").is_file()


@pytest.mark.slow
def test_ddp_end_of_run_lists_the_bad_files_of_every_rank(tmp_path: Path) -> None:
    """Each rank's data set finds its own bad files: rank 0 reports those of both ranks at the end.
    Batch 1, 2 ranks, 2 steps: rank r draws samples r and r + 2 of one pass over 4 files, so the
    file of sample 1 of trainA (blank) only rank 1 meets, that of sample 0 of trainB (junk) only rank 0."""
    data = tmp_path / "data"
    a, b = _folder(data, "trainA", 4), _folder(data, "trainB", 4, seed=1)
    bad_a = list_images(a)[DomainSampler(4, 0, 0)(1)]
    Image.new("RGB", (40, 40), (90, 30, 200)).save(bad_a)
    bad_b = list_images(b)[DomainSampler(4, 0, 1)(0)]
    bad_b.write_bytes(JUNK)
    run = tmp_path / "run"
    settings = ["img_size=32", "ngf=8", "ndf=8", "n_res=1", "light=true", "n_layers_global=5",
                "n_layers_local=4", "holdout=0", "kid_images=0", "n_samples=1", "precision=fp32",
                "device=cpu", "seed=0", "batch_size=1", "iterations=2", "sample_every=100", "checkpoint_every=100"]
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "facetoon",
         "-q", "train", "ugatit", "--data", str(data), "--out", str(run), "--set", *settings],
        cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=600)
    err = proc.stderr
    assert proc.returncode == 0, err[-3000:]
    assert len(read_losses(run)) == 2
    # each rank warns when it first meets its own bad file ...
    assert err.count(f"{bad_a}: bad training image, skipped: blank image (one colour)") == 1
    assert err.count(f"{bad_b}: bad training image, skipped") == 1
    # ... and the end of the run (rank 0) lists both
    reports = [line for line in err.splitlines() if "bad training image(s) were skipped" in line]
    assert len(reports) == 1, err[-3000:]
    assert "2 bad training image(s) were skipped" in reports[0]
    assert f"{bad_a}: blank image (one colour)" in reports[0] and str(bad_b) in reports[0]
