"""Alignment to the template: matrices, crops, padding modes and the valid mask."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from facetoon.errors import ConfigError, InvalidImageError
from facetoon.face import (
    DEFAULT_TEMPLATE,
    PADDING_MODES,
    AlignedFace,
    Face,
    FaceTemplate,
    align_face,
    detect_faces,
)
from facetoon.face.align import crop_with_matrix
from facetoon.face.geometry import apply_affine, compose, matrix_scale


def _rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


@pytest.fixture(scope="module")
def selfie(selfies: list[Path]) -> tuple[np.ndarray, Face]:
    img = _rgb(selfies[0])
    return img, detect_faces(img, max_faces=1)[0]


@pytest.fixture(scope="module")
def border_face(shared: Path) -> tuple[np.ndarray, Face]:
    """four_faces.jpg and its face cut by the left edge."""
    img = _rgb(shared / "fixtures" / "four_faces.jpg")
    face = min(detect_faces(img), key=lambda f: f.box[0])
    assert face.box[0] < 0
    return img, face


def test_aligned_face_fields(selfie: tuple[np.ndarray, Face]) -> None:
    img, face = selfie
    a = align_face(img, face)
    assert isinstance(a, AlignedFace)
    assert a.image.shape == (256, 256, 3) and a.image.dtype == np.uint8 and a.image.flags.c_contiguous
    assert a.matrix.shape == (2, 3) and a.inverse.shape == (2, 3)
    np.testing.assert_allclose(compose(a.matrix, a.inverse), [[1, 0, 0], [0, 1, 0]], atol=1e-9)
    assert a.mask.shape == (256, 256) and a.mask.dtype == np.float32
    assert a.mask.min() >= 0 and a.mask.max() <= 1
    np.testing.assert_allclose(a.landmarks, apply_affine(a.matrix, face.landmarks))
    assert a.image_shape == img.shape[:2] and a.face is face and a.size == 256
    # the similarity fit puts the landmarks close to the template's
    assert np.linalg.norm(a.landmarks - DEFAULT_TEMPLATE.points5, axis=1).mean() < 4.0


def test_crop_pixels_come_from_the_matrix(selfie: tuple[np.ndarray, Face]) -> None:
    img, face = selfie
    a = align_face(img, face, padding="constant")
    # resampling the same matrix with OpenCV directly gives the same crop
    ref = cv2.warpAffine(img, a.matrix, (256, 256), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT)
    valid = a.mask > 0.999
    assert np.abs(a.image.astype(int) - ref)[valid].mean() < 0.5


def test_sizes_are_consistent(selfie: tuple[np.ndarray, Face]) -> None:
    img, face = selfie
    a256 = align_face(img, face, size=256)
    a128 = align_face(img, face, size=128)
    a512 = align_face(img, face, size=512)
    assert matrix_scale(a512.matrix) == pytest.approx(2 * matrix_scale(a256.matrix))
    down = cv2.resize(a512.image, (128, 128), interpolation=cv2.INTER_AREA)
    assert np.abs(down.astype(int) - a128.image).mean() < 4.0


def test_align_from_landmarks_equals_align_from_face(selfie: tuple[np.ndarray, Face]) -> None:
    img, face = selfie
    a = align_face(img, face)
    b = align_face(img, face.landmarks)
    np.testing.assert_allclose(a.matrix, b.matrix)
    assert b.face is None
    face68 = detect_faces(img, max_faces=1, landmarks="68")[0]
    c = align_face(img, face68)
    # both landmark models give nearly the same crop
    assert np.abs(apply_affine(c.matrix, face.landmarks) - a.landmarks).mean() < 4.0


def test_custom_template(selfie: tuple[np.ndarray, Face]) -> None:
    img, face = selfie
    target = DEFAULT_TEMPLATE.points5 * 0.5 + 64  # a looser framing
    a = align_face(img, face, template=target)
    assert np.abs(a.landmarks - target).mean() < 3.0
    shifted = FaceTemplate.from_points(DEFAULT_TEMPLATE.points5 + [10, 0], DEFAULT_TEMPLATE.points68 + [10, 0],
                                       DEFAULT_TEMPLATE.named + [10, 0])
    b = align_face(img, face, template=shifted)
    assert (b.landmarks - align_face(img, face).landmarks)[:, 0].mean() == pytest.approx(10, abs=0.01)


def test_grayscale_image_gives_rgb_crop(selfie: tuple[np.ndarray, Face]) -> None:
    img, face = selfie
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    a = align_face(gray, face)
    assert a.image.shape == (256, 256, 3)
    assert np.array_equal(a.image[:, :, 0], a.image[:, :, 1]) and np.array_equal(a.image[:, :, 1], a.image[:, :, 2])


def test_padding_modes_on_a_face_cut_by_the_border(border_face: tuple[np.ndarray, Face]) -> None:
    img, face = border_face
    crops = {mode: align_face(img, face, padding=mode) for mode in PADDING_MODES}
    mask = crops["reflect"].mask
    outside, inside = mask == 0, mask == 1
    assert outside.mean() > 0.05 and inside.mean() > 0.5
    # the padded area is on the left of the crop (the photo's left edge)
    cols = np.nonzero(outside.any(axis=0))[0]
    assert cols.min() == 0 and cols.max() < 200
    # real pixels are identical whatever the padding, away from the edge by the bicubic kernel's
    # reach (2 source pixels)
    reach = int(np.ceil(2 * crops["reflect"].scale)) + 1
    deep = cv2.erode(inside.astype(np.uint8), np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)) > 0
    assert deep.mean() > 0.5
    for mode in PADDING_MODES:
        assert np.array_equal(crops[mode].mask, mask)
        assert np.array_equal(crops[mode].image[deep], crops["reflect"].image[deep])
    # constant: the fill colour; edge: repeats the edge; reflect mirrors textures
    far_out = cv2.erode(outside.astype(np.uint8), np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)) > 0
    assert far_out.mean() > 0.02
    assert np.all(crops["constant"].image[far_out] == 0)
    assert np.all(align_face(img, face, padding="constant", fill=(10, 20, 30)).image[far_out] == (10, 20, 30))
    for bad in ("white", (255, 0), (10, 20, 300), True):  # was: a numpy ValueError, or a wrong colour
        with pytest.raises(ConfigError, match="fill: expected"):
            align_face(img, face, padding="constant", fill=bad)  # type: ignore[arg-type]
    assert not np.array_equal(crops["reflect"].image[outside], crops["edge"].image[outside])

    def roughness(im: np.ndarray) -> float:
        lap = np.abs(cv2.Laplacian(cv2.cvtColor(im, cv2.COLOR_RGB2GRAY).astype(np.float32), cv2.CV_32F))
        far = cv2.erode(outside.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
        return float(lap[far].mean())

    # blur keeps the edge colours but removes the streaks and mirrored detail away from the edge
    assert roughness(crops["blur"].image) < 0.7 * roughness(crops["reflect"].image)
    # ... and the edge mode's streaks: they run along x here (a left edge), so their variation is along y

    def across_streaks(im: np.ndarray) -> float:
        g = cv2.cvtColor(im, cv2.COLOR_RGB2GRAY).astype(np.float32)
        return float(np.abs(np.diff(g, axis=0))[far_out[1:]].mean())

    assert across_streaks(crops["blur"].image) < 0.5 * across_streaks(crops["edge"].image)
    assert np.abs(crops["blur"].image.astype(int) - crops["edge"].image)[outside].mean() < 25


def test_mask_is_fractional_only_on_the_boundary(border_face: tuple[np.ndarray, Face]) -> None:
    img, face = border_face
    a = align_face(img, face, size=512)
    partial = (a.mask > 0) & (a.mask < 1)
    # a ramp about one crop pixel wide along the image edge
    rows_with_partial = partial.any(axis=1).sum()
    assert partial.sum() <= 3 * rows_with_partial
    # the mask edge maps onto the image edge x = -0.5
    ys, xs = np.nonzero(np.abs(a.mask - 0.5) < 0.25)
    edge = apply_affine(a.inverse, np.stack([xs, ys], axis=1))
    assert np.abs(edge[:, 0] + 0.5).max() < 1.5 / a.scale + 0.1


def test_downscaled_crop_of_a_huge_photo_is_not_aliased(selfie: tuple[np.ndarray, Face]) -> None:
    img, face = selfie
    k = 8.0
    big = cv2.resize(img, None, fx=k, fy=k, interpolation=cv2.INTER_CUBIC)
    big_lm = (face.landmarks + 0.5) * k - 0.5
    a_small = align_face(img, face.landmarks)
    a_big = align_face(big, big_lm)
    assert a_big.scale == pytest.approx(a_small.scale / k, rel=1e-6)
    assert np.abs(a_big.image.astype(int) - a_small.image).mean() < 3.0


def test_crop_with_matrix_reproduces_align_face(selfie: tuple[np.ndarray, Face]) -> None:
    img, face = selfie
    a = align_face(img, face, size=200, padding="edge")
    crop, mask = crop_with_matrix(img, a.matrix, 200, "edge")
    assert np.array_equal(crop, a.image) and np.array_equal(mask, a.mask)


@pytest.mark.parametrize("kwargs", [{"padding": "mirror"}, {"size": 0}, {"size": 2.5}, {"size": 10_000},
                                    {"template": np.zeros((3, 2))}])
def test_bad_options_raise_config_error(selfie: tuple[np.ndarray, Face], kwargs: dict) -> None:
    img, face = selfie
    with pytest.raises(ConfigError):
        align_face(img, face, **kwargs)


def test_bad_faces_and_images(selfie: tuple[np.ndarray, Face]) -> None:
    img, face = selfie
    with pytest.raises(ConfigError):
        align_face(img, "face")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        align_face(img, np.zeros((5, 2)))  # coincident landmarks
    with pytest.raises(ConfigError):
        align_face(img, np.full((5, 2), np.nan))
    with pytest.raises(ConfigError):
        align_face(img, np.zeros((7, 2)) + np.arange(7)[:, None])  # no template for 7 points
    with pytest.raises(InvalidImageError):
        align_face(None, face)
