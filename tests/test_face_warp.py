"""Warping crops back into the photo: round trip, masks, other crop sizes, paste_back."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from facetoon.errors import ConfigError, InvalidImageError
from facetoon.face import AlignedFace, Face, align_face, detect_faces, paste_back, warp_to_image
from facetoon.face.geometry import apply_affine


def _rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _face_region(face: Face, shape: tuple[int, ...]) -> np.ndarray:
    """Boolean mask of the convex hull of the face's landmarks and named points, grown by 10%."""
    pts = np.vstack([face.landmarks, np.stack(list(face.points.values()))])
    centre = pts.mean(axis=0)
    hull = cv2.convexHull(((pts - centre) * 1.1 + centre).astype(np.float32)).astype(np.int32)
    region = np.zeros(shape[:2], np.uint8)
    cv2.fillConvexPoly(region, hull, 1)
    return region > 0


@pytest.fixture(scope="module")
def selfie_cases(selfies: list[Path]) -> list[tuple[np.ndarray, Face]]:
    out = []
    for path in selfies:
        img = _rgb(path)
        faces = detect_faces(img, max_faces=1)
        if faces:
            out.append((img, faces[0]))
    assert len(out) >= 6
    return out


def test_round_trip_reproduces_the_face_region(selfie_cases: list[tuple[np.ndarray, Face]]) -> None:
    """Align, warp back with the inverse: < 3 levels mean abs error at equal resolution."""
    errors = []
    for img, face in selfie_cases:
        first = align_face(img, face)
        # the crop size for which the alignment keeps the resolution (scale ~ 1)
        size = int(round(256 / first.scale))
        a = align_face(img, face, size=size)
        assert a.scale == pytest.approx(1.0, abs=0.01)
        back = warp_to_image(a.image, a, img.shape, interpolation="cubic")
        valid = warp_to_image(a.mask, a, img.shape) > 0.999
        region = _face_region(face, img.shape) & valid
        assert region.sum() > 2000
        err = float(np.abs(back.astype(np.float64) - img)[region].mean())
        errors.append(err)
        assert err < 3.0
    assert float(np.mean(errors)) < 2.5


def test_warp_to_image_with_matrix_equals_with_aligned(selfie_cases: list[tuple[np.ndarray, Face]]) -> None:
    img, face = selfie_cases[0]
    a = align_face(img, face)
    by_aligned = warp_to_image(a.image, a, img.shape)
    by_matrix = warp_to_image(a.image, a.inverse, img.shape[:2])
    assert by_aligned.shape == img.shape and by_aligned.dtype == np.uint8
    assert np.array_equal(by_aligned, by_matrix)


def test_warp_to_image_of_masks(selfie_cases: list[tuple[np.ndarray, Face]]) -> None:
    img, face = selfie_cases[0]
    a = align_face(img, face)
    ones = np.ones((256, 256), bool)
    warped = warp_to_image(ones, a, img.shape)
    assert warped.dtype == np.float32 and warped.shape == img.shape[:2]
    # the warped square covers (crop area / scale^2) image pixels, minus what falls outside
    inside = a.mask.sum() / a.scale**2
    assert warped.sum() == pytest.approx(inside, rel=0.02)
    # the crop's centre maps where the inverse matrix says
    centre = apply_affine(a.inverse, [(128, 128)])[0]
    assert warped[int(round(centre[1])), int(round(centre[0]))] == pytest.approx(1.0)
    f64 = warp_to_image(a.mask.astype(np.float64), a, img.shape)
    assert f64.dtype == np.float64


def test_crop_of_another_size_lands_in_the_same_place(selfie_cases: list[tuple[np.ndarray, Face]]) -> None:
    img, face = selfie_cases[1]
    a = align_face(img, face)
    big = cv2.resize(a.image, (512, 512), interpolation=cv2.INTER_CUBIC)
    small = cv2.resize(a.image, (128, 128), interpolation=cv2.INTER_AREA)
    ref = warp_to_image(a.image, a, img.shape).astype(int)
    region = _face_region(face, img.shape)
    assert np.abs(warp_to_image(big, a, img.shape).astype(int) - ref)[region].mean() < 2.0
    assert np.abs(warp_to_image(small, a, img.shape).astype(int) - ref)[region].mean() < 6.0
    # multi-channel maps (more than OpenCV's 4) are warped channel group by channel group
    stack = np.dstack([a.image, a.image, a.image[:, :, :1]]).astype(np.float32)
    out = warp_to_image(stack, a, img.shape)
    assert out.shape == img.shape[:2] + (7,)
    np.testing.assert_allclose(out[:, :, 3:6], out[:, :, 0:3])


def test_paste_back_of_the_unchanged_crop_changes_little(selfie_cases: list[tuple[np.ndarray, Face]]) -> None:
    img, face = selfie_cases[2]
    a = align_face(img, face)
    out = paste_back(img, a.image, a)
    assert out.shape == img.shape and out.dtype == np.uint8 and out is not img
    assert np.abs(out.astype(int) - img).mean() < 2.0


def test_paste_back_composites_only_inside_the_crop(shared: Path) -> None:
    img = _rgb(shared / "fixtures" / "four_faces.jpg")
    face = min(detect_faces(img), key=lambda f: f.box[0])  # the face cut by the left edge
    a = align_face(img, face)
    red = np.zeros((300, 300, 3), np.uint8)
    red[:, :, 0] = 255
    out = paste_back(img, red, a)
    covered = warp_to_image(a.mask, a, img.shape)
    # fully covered pixels are red, untouched pixels are bit-identical
    assert np.all(out[covered > 0.999] == (255, 0, 0))
    assert np.array_equal(out[covered == 0], img[covered == 0])
    # a zero mask pastes nothing; a half mask pastes half
    assert np.array_equal(paste_back(img, red, a, mask=np.zeros((64, 64), np.float32)), img)
    half = paste_back(img, red, a, mask=np.full((256, 256), 128, np.uint8))
    inside = covered > 0.999
    expected = img[inside][:, 0] * (1 - 128 / 255) + 255 * 128 / 255
    assert np.abs(half[inside][:, 0] - expected).max() <= 1.0


def test_paste_back_reads_masks_like_every_facetoon_function(shared: Path) -> None:
    """A uint8 0/1 mask is 0/1 (was: read as 0..1/255, so nothing was pasted, silently), as in
    facetoon.blend; a float mask clearly outside [0, 1] is refused."""
    img = _rgb(shared / "fixtures" / "four_faces.jpg")
    a = align_face(img, detect_faces(img)[0])
    red = np.zeros((256, 256, 3), np.uint8)
    red[:, :, 0] = 255
    disc = np.zeros((256, 256), np.uint8)
    cv2.circle(disc, (128, 128), 80, 1, -1)
    ref = paste_back(img, red, a, mask=disc > 0)
    assert not np.array_equal(ref, img)
    for mask in (disc, disc * 255, disc.astype(np.float32)):
        assert np.array_equal(paste_back(img, red, a, mask=mask), ref), mask.dtype
    with pytest.raises(InvalidImageError, match="^mask: .*must lie in"):
        paste_back(img, red, a, mask=disc * 255.0)
    with pytest.raises(InvalidImageError, match="^mask: .*dtype complex64"):
        paste_back(img, red, a, mask=disc.astype(np.complex64))


def test_paste_back_accepts_gray_images(selfie_cases: list[tuple[np.ndarray, Face]]) -> None:
    img, face = selfie_cases[3]
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    a = align_face(gray, face)
    out = paste_back(gray, a.image, a)
    assert out.shape == img.shape


def test_paste_back_bad_inputs(selfie_cases: list[tuple[np.ndarray, Face]]) -> None:
    img, face = selfie_cases[0]
    a = align_face(img, face)
    with pytest.raises(InvalidImageError):
        paste_back(img[:100], a.image, a)  # not the image the face was aligned in
    with pytest.raises(InvalidImageError):
        paste_back(img, None, a)
    with pytest.raises(InvalidImageError):
        paste_back(img, a.image, a, mask=np.zeros((4, 4, 3)))
    with pytest.raises(InvalidImageError, match="NaN or infinite"):  # was: a black face, silently
        paste_back(img, a.image, a, mask=np.full(a.image.shape[:2], np.nan, np.float32))
    with pytest.raises(ConfigError, match="expected an AlignedFace"):
        paste_back(img, a.image, a.matrix)  # type: ignore[arg-type]
    with pytest.raises(InvalidImageError):
        warp_to_image("crop", a, img.shape)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        warp_to_image(a.image, np.eye(3), img.shape)
    with pytest.raises(ConfigError, match="singular"):
        warp_to_image(a.image, np.zeros((2, 3)), img.shape)
    assert isinstance(a, AlignedFace)


@pytest.mark.parametrize("border", ["reflect", "replicate", "constant"])
def test_resample_borders_match_opencv_on_the_whole_image(border: str) -> None:
    """Crops cut by each edge of the image (shifted, rotated, enlarged): ``resample`` reads only
    part of the image, yet its border must extend the image's own edges, as cv2.warpAffine on the
    whole image does. "reflect" used to mirror the cut-out part instead when more of the crop lay
    outside the image than inside (differences up to 252)."""
    from facetoon.face.geometry import compose, rotation_about, translation
    from facetoon.face.warp import resample

    cv_border = {"reflect": cv2.BORDER_REFLECT_101, "replicate": cv2.BORDER_REPLICATE,
                 "constant": cv2.BORDER_CONSTANT}[border]
    img = np.random.default_rng(0).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    for tx, ty in ((100, 20), (-250, 30), (40, 110), (50, -160)):  # crop past the left, right, top, bottom
        for angle, scale in ((0.0, 1.0), (20.0, 1.0), (-35.0, 1.6)):
            m = compose(translation(tx, ty), rotation_about((150, 100), angle, scale))
            got = resample(img, m, (128, 128), border=border)
            want = cv2.warpAffine(img, m[:2], (128, 128), flags=cv2.INTER_LINEAR, borderMode=cv_border)
            assert np.abs(got.astype(int) - want).max() <= 1, (border, tx, ty, angle, scale)
