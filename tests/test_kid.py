"""KID: the unbiased MMD estimator on synthetic data, real-image figures, feature extraction, CLI."""

from __future__ import annotations

import importlib
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from facetoon.errors import ConfigError, DataError, InvalidImageError
from facetoon.metrics.kid import kid, kid_between_folders, mmd2_unbiased, polynomial_kernel, validation_kid_x100

# ------------------------------------------------------------------ the estimator (no data needed)


def _mmd2_by_loops(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased MMD^2 written as its definition, pair by pair."""
    d = x.shape[1]
    k = lambda a, b: (a @ b / d + 1.0) ** 3  # noqa: E731
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_mmd2_matches_its_definition() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(9, 5)), rng.normal(0.3, 1.2, size=(7, 5))
    assert mmd2_unbiased(x, y) == pytest.approx(_mmd2_by_loops(x, y), rel=1e-12)
    assert polynomial_kernel(x, y).shape == (9, 7)


def test_kid_on_gaussians_same_is_zero_shifted_is_positive() -> None:
    rng = np.random.default_rng(0)
    d = 64
    a = rng.normal(size=(400, d))
    b = rng.normal(size=(400, d))
    shifted = rng.normal(0.5, 1.0, size=(400, d))
    same = kid(a, b, n_subsets=30, subset_size=200)
    diff = kid(a, shifted, n_subsets=30, subset_size=200)
    assert abs(same.mean) < 3 * same.std + 1e-3  # unbiased: zero within its spread
    assert diff.mean > 0.05 and diff.mean > 20 * (abs(same.mean) + same.std)


def test_estimator_is_unbiased_where_the_plain_one_is_not() -> None:
    """Over many small same-distribution samples the estimator averages to 0; the biased
    V-statistic (diagonals included) stays clearly positive."""
    rng = np.random.default_rng(7)
    unbiased, biased = [], []
    for _ in range(300):
        x, y = rng.normal(size=(8, 6)), rng.normal(size=(8, 6))
        unbiased.append(mmd2_unbiased(x, y))
        biased.append(polynomial_kernel(x, x).mean() + polynomial_kernel(y, y).mean()
                      - 2 * polynomial_kernel(x, y).mean())
    se = np.std(unbiased) / np.sqrt(len(unbiased))
    assert abs(np.mean(unbiased)) < 3 * se
    assert np.mean(biased) > 10 * se and min(unbiased) < 0


def test_kid_is_symmetric_and_reproducible() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(60, 16)), rng.normal(0.2, 1.0, size=(50, 16))
    assert mmd2_unbiased(a, b) == pytest.approx(mmd2_unbiased(b, a), rel=1e-12)
    full_ab, full_ba = kid(a[:50], b, n_subsets=3), kid(b, a[:50], n_subsets=3)
    assert full_ab.mean == pytest.approx(full_ba.mean, rel=1e-12)
    assert full_ab.std == 0.0  # subsets that are both whole sets: computed once, no spread
    assert full_ab.n_subsets == 1 and kid(a, b, n_subsets=10, subset_size=20).n_subsets == 10
    assert kid(a, b, n_subsets=10, subset_size=20, seed=3) == kid(a, b, n_subsets=10, subset_size=20, seed=3)
    assert kid(a, b, n_subsets=10, subset_size=20, seed=3) != kid(a, b, n_subsets=10, subset_size=20, seed=4)


def test_validation_kid_logs_a_spread_only_when_the_subsets_differ() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(40, 8)), rng.normal(0.5, 1.0, size=(60, 8))
    same_size = validation_kid_x100(a, b[:40])
    assert same_size == {"kid_x100": pytest.approx(kid(a, b[:40], n_subsets=100).mean_x100, rel=1e-12)}
    different = validation_kid_x100(a, b)
    want = kid(a, b, n_subsets=100, seed=0)
    assert different == {"kid_x100": want.mean_x100, "kid_x100_std": want.std_x100}
    assert different["kid_x100_std"] > 0


def test_precomputed_gram_and_per_subset_paths_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(80, 32)), rng.normal(0.1, 1.0, size=(70, 32))
    fast = kid(a, b, n_subsets=12, subset_size=30, seed=5)
    # the package re-exports the function kid, so fetch the module itself
    monkeypatch.setattr(importlib.import_module("facetoon.metrics.kid"), "_PRECOMPUTE_LIMIT", 0)
    slow = kid(a, b, n_subsets=12, subset_size=30, seed=5)
    assert fast.mean == pytest.approx(slow.mean, rel=1e-10) and fast.std == pytest.approx(slow.std, rel=1e-8)
    assert f"{fast}".startswith("KIDx100 = ") and fast.mean_x100 == pytest.approx(100 * fast.mean)


@pytest.mark.parametrize(
    ("a_shape", "b_shape", "kwargs", "message"),
    [
        ((1, 8), (10, 8), {}, "at least 2 images"),
        ((10, 8), (10, 6), {}, "dimensions differ"),
        ((10, 8), (12, 8), {"subset_size": 11}, "subset_size must be in 2..10"),
        ((10, 8), (12, 8), {"n_subsets": 0}, "n_subsets"),
        ((10,), (12, 8), {}, "2-D"),
    ],
)
def test_kid_bad_inputs(a_shape: tuple[int, ...], b_shape: tuple[int, ...], kwargs: dict,
                        message: str) -> None:
    with pytest.raises(ValueError, match=message):
        kid(np.ones(a_shape), np.ones(b_shape), **kwargs)
    with pytest.raises(ValueError, match="NaN"):
        kid(np.full((4, 2), np.nan), np.ones((4, 2)))


def test_kid_of_image_paths_says_to_extract_features_first() -> None:
    paths = ["a.jpg", "b.jpg", "c.jpg"]
    with pytest.raises(ConfigError, match=r"features_a: kid\(\) takes numeric \(N, D\) feature arrays.*Extractor"):
        kid(paths, np.ones((3, 4)))
    with pytest.raises(ConfigError, match="features_b: .*FeatureExtractor"):
        kid(np.ones((3, 4)), [Path(p) for p in paths])


# ------------------------------------------------------------------ input conversion (no model needed)


def _asymmetric(h: int = 30, w: int = 50) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.dstack([x * 255 // w, y * 255 // h, (x * y) % 256]).astype(np.uint8)


def test_pil_inputs_are_read_like_their_files(tmp_path: Path) -> None:
    """A PIL image gives the pixels of its file: EXIF orientation applied, transparency over
    white (not dropped), 16-bit gray scaled (not clipped)."""
    from PIL import Image

    from facetoon.io import read_image
    from facetoon.metrics.features import to_model_input

    rgb = _asymmetric()
    exif = Image.Image().getexif()
    exif[274] = 6  # rotate 90 degrees clockwise to view
    Image.fromarray(rgb).save(tmp_path / "exif6.png", exif=exif)
    alpha = np.tile(np.linspace(0, 255, rgb.shape[1]).astype(np.uint8), (rgb.shape[0], 1))
    Image.fromarray(np.dstack([rgb, alpha])).save(tmp_path / "rgba.png")
    Image.fromarray((rgb[:, :, 0].astype(np.uint16) * 257)).save(tmp_path / "gray16.png")  # mode I;16
    differ = []
    for name in ("exif6.png", "rgba.png", "gray16.png"):
        path = tmp_path / name
        with Image.open(path) as im:
            from_pil = to_model_input(im)
        if not np.array_equal(from_pil, to_model_input(path)):
            differ.append(name)
        np.testing.assert_array_equal(to_model_input(path), to_model_input(read_image(path)), err_msg=name)
    assert not differ, f"PIL image and file differ: {differ}"
    assert read_image(tmp_path / "exif6.png").shape == (50, 30, 3)  # the file is read upright


def test_tensor_inputs_must_be_in_minus_one_to_one(caplog: pytest.LogCaptureFixture) -> None:
    import torch

    from facetoon.metrics.features import _iter_images

    t = torch.rand(2, 3, 8, 8)
    with pytest.raises(InvalidImageError, match=r"values must lie in \[-1, 1\], got \[.*pass 2 \* x - 1"):
        _iter_images(t * 255)
    with pytest.raises(InvalidImageError, match="NaN"):
        _iter_images(torch.full((1, 3, 4, 4), float("nan")))
    logger = logging.getLogger("facetoon.metrics.features")
    logger.addHandler(caplog.handler)  # the CLI tests may have stopped propagation of "facetoon"
    try:
        with caplog.at_level(logging.WARNING, logger="facetoon.metrics.features"):
            n, images = _iter_images(t)  # [0, 1]: accepted, but most likely a mistake
            assert n == 2 and len(list(images)) == 2
            # one warning per call (the record may reach caplog's handler twice: here and via root)
            warned = {id(r) for r in caplog.records if "expected [-1, 1]: pass 2 * x - 1" in r.getMessage()}
            assert len(warned) == 1
            caplog.clear()
            _iter_images(t * 2 - 1)
            _iter_images([t[0] * 2 - 1, t[1] * 2 - 1])
            assert caplog.text == ""
    finally:
        logger.removeHandler(caplog.handler)


def test_generator_outputs_lists_of_tensors_and_single_images() -> None:
    """A U-GAT-IT generator's (image, cam_logit, heatmap) output counts as its image (as the
    Stylizer reads it); a list of (3, H, W) tensors, one (3, H, W) tensor and one (H, W, 3) array
    (what to_image returns for a batch of one) are images too."""
    import torch

    import facetoon
    from facetoon.io import to_image
    from facetoon.metrics.features import _iter_images

    gen = facetoon.create_model("ugatit_generator", light=True, ngf=8, n_res=1, img_size=32).eval()
    with torch.no_grad():
        out = gen(torch.rand(2, 3, 32, 32) * 2 - 1)
    assert isinstance(out, tuple) and len(out) == 3

    def arrays(images: object) -> list[np.ndarray]:
        n, it = _iter_images(images)
        result = list(it)
        assert len(result) == n
        return result

    want = list(to_image(out[0]))
    for form in (out, out[0], list(out[0]), [out[0][:1], out[0][1:]]):
        got = arrays(form)
        assert len(got) == 2 and all(np.array_equal(g, w) for g, w in zip(got, want))
    single = to_image(out[0][:1])
    assert single.shape == (32, 32, 3)  # to_image drops the batch axis of one image (documented)
    assert all(np.array_equal(g, want[0]) for g in (arrays(single)[0], arrays(out[0][0])[0]))
    with pytest.raises(InvalidImageError, match=r"pass output\[0\]"):
        arrays(list(out[1:]))
    with pytest.raises(InvalidImageError, match="mix tensors"):
        arrays([out[0][0], single])


# ------------------------------------------------------------------ real images


@pytest.fixture(scope="module")
def tflite(shared: Path) -> Path:
    path = shared / "models" / "mobilenet_v2" / "mobilenet_v2_1.0_224_quant.tflite"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


@pytest.fixture(scope="module")
def selfie_files(shared: Path) -> list[Path]:
    return sorted((shared / "data" / "selfie2anime" / "trainA").glob("*.jpg"))


@pytest.fixture(scope="module")
def anime_files(shared: Path) -> list[Path]:
    return sorted((shared / "data" / "selfie2anime" / "trainB").glob("*.jpg"))


@pytest.fixture(scope="module")
def litert_features(tflite: Path, selfie_files: list[Path], anime_files: list[Path]) -> dict[str, np.ndarray]:
    from facetoon.metrics.features import extract_features

    # 150 selfies; two disjoint sets of 150 anime faces (every other file, so both span the set)
    return {
        "selfies": extract_features(selfie_files[:300:2], backend="litert", model_path=tflite),
        "anime_1": extract_features(anime_files[:300:2], backend="litert", model_path=tflite),
        "anime_2": extract_features(anime_files[1:300:2], backend="litert", model_path=tflite),
    }


@pytest.mark.shared
def test_kid_real_anime_vs_anime_small_selfies_vs_anime_large(litert_features: dict[str, np.ndarray]) -> None:
    f = litert_features
    assert all(v.shape == (150, 1280) for v in f.values())
    same = kid(f["anime_1"], f["anime_2"], n_subsets=20, subset_size=100)
    cross = kid(f["selfies"], f["anime_1"], n_subsets=20, subset_size=100)
    print(f"\nanime vs anime: {same}; selfies vs anime: {cross}")
    assert abs(same.mean_x100) < 2.0
    assert cross.mean_x100 > 100.0  # about 150 in the quality bar
    assert cross.mean > 30 * abs(same.mean)


@pytest.mark.shared
def test_torch_and_litert_backends_agree(tflite: Path, selfie_files: list[Path], anime_files: list[Path],
                                         litert_features: dict[str, np.ndarray]) -> None:
    from facetoon.metrics.features import extract_features

    files = selfie_files[:40:2] + anime_files[:40:2]  # the first 20 of each litert set
    torch_feats = extract_features(files, backend="torch", model_path=tflite, batch_size=20)
    ref = np.concatenate([litert_features["selfies"][:20], litert_features["anime_1"][:20]])
    cos = (torch_feats * ref).sum(1) / (np.linalg.norm(torch_feats, axis=1) * np.linalg.norm(ref, axis=1))
    assert cos.min() > 0.99, cos.min()
    k_torch = kid(torch_feats[:20], torch_feats[20:], n_subsets=1)
    k_ref = kid(ref[:20], ref[20:], n_subsets=1)
    print(f"\n20 vs 20 selfies/anime: torch {k_torch}, litert {k_ref}")
    assert k_torch.mean == pytest.approx(k_ref.mean, rel=0.1)


@pytest.mark.shared
def test_input_forms_give_the_same_features(tflite: Path, anime_files: list[Path]) -> None:
    import torch
    from PIL import Image

    from facetoon.metrics.features import FeatureExtractor

    files = anime_files[:3]
    arrays = [np.asarray(Image.open(p).convert("RGB")) for p in files]
    tensor = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 127.5 - 1.0  # [-1, 1]
    ext = FeatureExtractor("litert", tflite)
    by_path = ext(files)
    assert np.array_equal(by_path, ext(arrays))
    assert np.array_equal(by_path, ext(np.stack(arrays)))
    assert np.array_equal(by_path, ext([Image.open(p) for p in files]))
    assert np.array_equal(by_path, ext(tensor))  # [-1, 1] -> uint8 is exact for these values
    assert np.array_equal(by_path, ext(files, batch_size=2))
    with pytest.raises(InvalidImageError, match="uint8"):
        ext([arrays[0].astype(np.float32)])
    assert np.array_equal(by_path, ext(list(tensor)))
    assert np.array_equal(by_path[:1], ext(tensor[0]))  # one (3, H, W) image
    assert np.array_equal(by_path[:1], ext(arrays[0]))  # one (H, W, 3) image
    with pytest.raises(InvalidImageError, match=r"\(N, 3, H, W\)"):
        ext(tensor[:, :2])


@pytest.mark.shared
def test_unreadable_image_is_named(tflite: Path, tmp_path: Path) -> None:
    from facetoon.metrics.features import extract_features

    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 this is not a jpeg")
    with pytest.raises(InvalidImageError, match="broken.jpg"):
        extract_features([bad], model_path=tflite)


def _copy(files: list[Path], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copy(f, folder / f.name)
    return folder


@pytest.mark.shared
def test_folders_bad_inputs(tflite: Path, anime_files: list[Path], tmp_path: Path) -> None:
    good = _copy(anime_files[:3], tmp_path / "good")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    single = _copy(anime_files[:1], tmp_path / "single")
    with pytest.raises(DataError, match="empty: no images"):
        kid_between_folders(empty, good, model_path=tflite)
    with pytest.raises(DataError, match="missing: image folder not found"):
        kid_between_folders(tmp_path / "missing", good, model_path=tflite)
    with pytest.raises(DataError, match="single: KID needs at least 2 images, found 1"):
        kid_between_folders(good, single, model_path=tflite)
    with pytest.raises(DataError, match="subset-size 5"):
        kid_between_folders(good, good, subset_size=5, model_path=tflite)


@pytest.mark.shared
def test_cli_eval_kid(tflite: Path, selfie_files: list[Path], anime_files: list[Path], tmp_path: Path,
                      capsys: pytest.CaptureFixture[str]) -> None:
    from facetoon.cli import main

    a = _copy(selfie_files[:30], tmp_path / "selfies")
    b = _copy(anime_files[:30], tmp_path / "anime")
    code = main(["-q", "eval", "kid", str(a), str(b), "--subsets", "10", "--subset-size", "20",
                 "--limit", "25", "--model", str(tflite)])
    out = capsys.readouterr().out
    assert code == 0
    match = re.match(r"KIDx100 = (-?\d+\.\d\d) ± (\d+\.\d\d) \((\d+), (\d+) images\)", out)
    assert match, out
    assert float(match[1]) > 50 and match[3] == match[4] == "25"
    # 25 against 25 images, subsets of 25: one subset is all there is, and the report says so
    assert main(["eval", "kid", str(a), str(b), "--limit", "25", "--model", str(tflite)]) == 0
    assert "[litert, 1 subset of 25," in capsys.readouterr().out
    assert main(["-q", "eval", "kid", str(a), str(tmp_path / "nowhere"), "--model", str(tflite)]) == 1
    assert "nowhere: image folder not found" in capsys.readouterr().err
    assert main(["-q", "eval", "kid", str(a), str(b), "--subsets", "0"]) == 1
    assert "--subsets must be at least 1" in capsys.readouterr().err
