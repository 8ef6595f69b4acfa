"""Tests of facetoon.blend: face masks, harmonisation, compositing and the seam measure.

The blend module is tested on real photos with two renderings of the same photo that disagree
the way a face model and a scene model do: the scene is an edge-preserving smoothing of the
photo, the face crop a differently smoothed crop with another palette (Lab offset), so that a
hard paste shows a real seam. The pipeline tests (tests/test_pipeline.py) repeat the seam check
with the neural models.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facetoon.errors import ConfigError, InvalidImageError

cv2 = pytest.importorskip("cv2")

from facetoon.blend import (  # noqa: E402
    MaskShape,
    composite_faces,
    crop_face_mask,
    face_outline,
    feather,
    harmonize,
    make_layer,
    poisson_blend,
    seam_score,
)
from facetoon.blend.harmonize import band_weights, lab_stats, lab_to_rgb, rgb_to_lab  # noqa: E402
from facetoon.blend.mask import as_alpha, as_support  # noqa: E402
from facetoon.face import align_face, detect_faces, paste_back, warp_to_image  # noqa: E402
from facetoon.io import read_image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ASTRONAUT = REPO / "examples" / "astronaut.png"


# ----------------------------------------------------------------------------- helpers


def render_scene(photo: np.ndarray) -> np.ndarray:
    """A stand-in 'scene rendering' of a photo: edge-preserving smoothing."""
    return cv2.edgePreservingFilter(photo, flags=1, sigma_s=30, sigma_r=0.3)


def render_face(crop: np.ndarray, shift: tuple[float, float, float] = (10.0, 8.0, 12.0)) -> np.ndarray:
    """A 'face rendering' that disagrees with the scene: other smoothing, Lab palette offset."""
    x = cv2.edgePreservingFilter(crop, flags=1, sigma_s=20, sigma_r=0.25)
    lab = rgb_to_lab(x) + np.asarray(shift, dtype=np.float32)
    return np.clip(np.rint(lab_to_rgb(lab)), 0, 255).astype(np.uint8)


def faces_and_layers(photo: np.ndarray, size: int = 256):
    faces = detect_faces(photo)
    aligned = [align_face(photo, f, size) for f in faces]
    layers = [make_layer(render_face(a.image), a) for a in aligned]
    return faces, aligned, layers


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return read_image(ASTRONAUT)


@pytest.fixture(scope="module")
def four_faces(shared: Path) -> np.ndarray:
    return read_image(shared / "fixtures" / "four_faces.jpg")


def _real_photos(shared: Path | None, selfies: list[Path] | None) -> list[tuple[str, np.ndarray]]:
    photos = [("astronaut", read_image(ASTRONAUT))]
    if shared is not None:
        photos.append(("four_faces", read_image(shared / "fixtures" / "four_faces.jpg")))
    for p in (selfies or [])[:3]:
        photos.append((p.name, read_image(p)))
    return photos


# ----------------------------------------------------------------------------- masks


def test_crop_mask_is_face_shaped_and_soft(astronaut: np.ndarray) -> None:
    face = detect_faces(astronaut)[0]
    a = align_face(astronaut, face, 256)
    m = crop_face_mask(a.landmarks, 256, a.mask)
    assert m.shape == (256, 256) and m.dtype == np.float32
    assert 0.0 <= m.min() and m.max() <= 1.0
    # the face's own points are fully in
    pts = np.rint(np.asarray([face.left_eye, face.right_eye, face.nose, face.mouth_left, face.mouth_right]))
    crop_pts = np.rint(a.matrix[:, :2] @ pts.T + a.matrix[:, 2:]).T.astype(int)
    for x, y in crop_pts:
        assert m[y, x] == pytest.approx(1.0)
    # forehead/hair above the eyes is in
    eye_y = int(round(crop_pts[:2, 1].mean()))
    assert m[max(eye_y - 60, 10), 128] > 0.9
    # not a square: the bottom corners and the crop border are out
    assert m[250, 5] == 0.0 and m[250, 250] == 0.0
    assert m[0].max() == 0.0 and m[:, 0].max() == 0.0 and m[:, -1].max() == 0.0
    # soft: a transition band exists, its pixels form a ring around the face
    band = (m > 0.05) & (m < 0.95)
    assert band.sum() > 0.05 * (m > 0.5).sum()
    # roughly face-sized: between a third and 80% of the crop
    assert 0.3 < (m > 0.5).mean() < 0.8


def test_crop_mask_excludes_padding(astronaut: np.ndarray) -> None:
    """A face cut by the photo's border: padded crop pixels get weight 0."""
    face = detect_faces(astronaut)[0]
    x0, _, x1, _ = face.box
    cut = np.ascontiguousarray(astronaut[:, int((x0 + x1) / 2) - 10:])  # left half of the face gone
    faces = detect_faces(cut)
    assert faces, "dlib no longer finds the half-cut face: the padding check needs another cut"
    a = align_face(cut, faces[0], 256)
    assert a.mask.min() == 0.0  # part of the crop is padding
    m = crop_face_mask(a.landmarks, 256, a.mask)
    assert np.all(m[a.mask == 0.0] == 0.0)
    assert m.max() == pytest.approx(1.0)


def test_feather_width_scales_with_face_size(astronaut: np.ndarray) -> None:
    """The transition band (in photo pixels) widens with the face: area ~ size^2."""
    areas = []
    for scale in (1.0, 0.5):
        img = astronaut if scale == 1.0 else cv2.resize(astronaut, None, fx=scale, fy=scale,
                                                        interpolation=cv2.INTER_AREA)
        face = detect_faces(img, min_size=40)[0]
        a = align_face(img, face, 256)
        layer = make_layer(render_face(a.image), a)
        res = composite_faces(render_scene(img), [layer], harmonize=False)
        mask = res.masks[0]
        areas.append(float(((mask > 0.05) & (mask < 0.95)).sum()))
    ratio = areas[0] / areas[1]
    assert 3.0 < ratio < 5.3, ratio


def test_feather_and_outline_reject_bad_input() -> None:
    with pytest.raises(ConfigError):
        feather(np.ones((8, 8)), 0.0)
    with pytest.raises(ConfigError):
        face_outline(np.zeros((7, 2)), 256)
    with pytest.raises(ConfigError):
        face_outline(np.full((5, 2), np.nan), 256)
    with pytest.raises(ConfigError):
        MaskShape(feather=0.0)
    with pytest.raises(ConfigError):
        crop_face_mask(np.zeros((5, 2)) + np.arange(5)[:, None] * 10, 256, valid=np.ones((10, 10)))


def test_feather_profile() -> None:
    region = np.zeros((41, 41), np.uint8)
    region[5:36, 5:36] = 1
    m = feather(region, 8.0)
    assert m[20, 20] == 1.0 and m[0, 0] == 0.0 and m[4, 20] == 0.0
    row = m[20, 5:21]
    assert np.all(np.diff(row) >= 0) and 0.0 < row[0] < 0.1 and row[-1] == 1.0


# ----------------------------------------------------------------------------- compositing


def test_outside_masks_is_scene_exactly_and_every_face_changes(four_faces: np.ndarray) -> None:
    scene = render_scene(four_faces)
    faces, _, layers = faces_and_layers(four_faces)
    assert len(faces) == 4
    for mode in ("soft", "poisson"):
        res = composite_faces(scene, layers, mode=mode)
        union = np.zeros(scene.shape[:2], bool)
        for m in res.masks:
            union |= m > 0
            inside = m > 0.5
            assert inside.sum() > 200
            diff = np.abs(res.image.astype(int) - scene.astype(int)).sum(axis=2)
            assert diff[inside].mean() > 5.0, mode  # the face changed where it is pasted
        assert np.array_equal(res.image[~union], scene[~union]), mode
        assert res.image.dtype == np.uint8 and res.image.shape == scene.shape
    assert scene is not res.image


def test_round_trip_of_unstylized_crops_reproduces_the_photo(shared: Path, selfies: list[Path]) -> None:
    """Geometry: pasting the aligned crops themselves back gives the photo (inverse warp is exact)."""
    for path in [shared / "fixtures" / "four_faces.jpg", *selfies[:2]]:
        photo = read_image(path)
        faces = detect_faces(photo)
        aligned = [align_face(photo, f, 256) for f in faces]
        layers = [make_layer(a.image, a) for a in aligned]
        res = composite_faces(photo, layers, harmonize=False)
        for m in res.masks:
            inside = m > 0.5
            err = np.abs(res.image.astype(float) - photo.astype(float))[inside].mean()
            assert err < 3.0, (path.name, err)


def test_largest_face_is_pasted_last(astronaut: np.ndarray) -> None:
    face = detect_faces(astronaut)[0]
    big = align_face(astronaut, face, 256)
    # a smaller face at the same place: landmarks shrunk about the nose
    centre = face.nose
    small_lm = centre + 0.7 * (face.landmarks - centre)
    small = align_face(astronaut, small_lm, 256)
    red = np.zeros((256, 256, 3), np.uint8)
    red[..., 0] = 255
    blue = np.zeros((256, 256, 3), np.uint8)
    blue[..., 2] = 255
    lb, ls = make_layer(red, big), make_layer(blue, small)
    assert lb.size_in_image > ls.size_in_image
    for layers in ([lb, ls], [ls, lb]):
        res = composite_faces(astronaut, layers, harmonize=False)
        x, y = np.rint(centre).astype(int)
        assert tuple(res.image[y, x]) == (255, 0, 0)
    res = composite_faces(astronaut, [ls, lb], harmonize=False)
    assert res.order == [0, 1]
    res = composite_faces(astronaut, [lb, ls], harmonize=False)
    assert res.order == [1, 0]


def test_composite_rejects_bad_input(astronaut: np.ndarray) -> None:
    face = detect_faces(astronaut)[0]
    a = align_face(astronaut, face, 256)
    layer = make_layer(a.image, a)
    with pytest.raises(ConfigError):
        composite_faces(astronaut, [layer], mode="fancy")  # type: ignore[arg-type]
    with pytest.raises(InvalidImageError):
        composite_faces(astronaut.astype(np.float32), [layer])
    with pytest.raises(ConfigError):
        composite_faces(np.ascontiguousarray(astronaut[:100]), [layer])
    with pytest.raises(InvalidImageError):
        make_layer(a.image[:, :200], a)
    # common mix-ups name the expected type instead of an AttributeError from inside
    with pytest.raises(ConfigError, match="AlignedFace"):
        make_layer(a.image, face)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"layers\[1\]: expected a FaceLayer"):
        composite_faces(astronaut, [layer, a.image])  # type: ignore[list-item]


def test_crop_at_another_resolution(astronaut: np.ndarray) -> None:
    """A stylized crop at twice the aligned size lands on the same place."""
    face = detect_faces(astronaut)[0]
    a = align_face(astronaut, face, 128)
    big = cv2.resize(a.image, (256, 256), interpolation=cv2.INTER_CUBIC)
    r1 = composite_faces(astronaut, [make_layer(a.image, a)], harmonize=False)
    r2 = composite_faces(astronaut, [make_layer(big, a)], harmonize=False)
    inside = (r1.masks[0] > 0.5) & (r2.masks[0] > 0.5)
    diff = np.abs(r1.masks[0] - r2.masks[0])
    assert diff.max() < 0.2 and diff[r1.masks[0] > 0].mean() < 0.02
    assert np.abs(r1.image.astype(float) - r2.image.astype(float))[inside].mean() < 4.0


# ----------------------------------------------------------------------------- harmonisation


def test_harmonize_matches_the_band_statistics(astronaut: np.ndarray) -> None:
    scene = render_scene(astronaut)
    face = detect_faces(astronaut)[0]
    a = align_face(astronaut, face, 256)
    layer = make_layer(render_face(a.image, shift=(12.0, 10.0, -8.0)), a)
    res = composite_faces(scene, [layer], harmonize=False, return_sources=True)
    warped, _ = res.sources[0]
    alpha = res.masks[0]
    available = warp_to_image(a.mask, a, scene.shape) > 0.999
    band = band_weights(alpha, available)
    before = lab_stats(rgb_to_lab(warped), band).mean - lab_stats(rgb_to_lab(scene), band).mean
    assert np.abs(before).max() > 6.0
    out = harmonize(warped, scene, alpha, width=10.0, available=available, local=False)
    after = lab_stats(rgb_to_lab(out), band).mean - lab_stats(rgb_to_lab(scene), band).mean
    assert np.abs(after).max() < 1.0, after
    # amount 0 leaves the face alone; the interior keeps its structure
    same = harmonize(warped, scene, alpha, width=10.0, available=available, amount=0.0)
    assert np.array_equal(same, warped.astype(np.float32))
    with pytest.raises(ConfigError):
        harmonize(warped, scene, alpha, width=10.0, amount=1.5)
    with pytest.raises(ConfigError):
        harmonize(warped, scene[:10], alpha, width=10.0)


# ----------------------------------------------------------------------------- seams


def _hard_and_soft(photo: np.ndarray):
    scene = render_scene(photo)
    _, aligned, layers = faces_and_layers(photo)
    soft = composite_faces(scene, layers, mode="soft", harmonize=True, return_sources=True)
    feathered = composite_faces(scene, layers, mode="soft", harmonize=False, return_sources=True)
    hard = composite_faces(scene, layers, mode="hard", harmonize=False, return_sources=True)
    squares = []
    for layer, a in zip(layers, aligned):
        pasted = paste_back(scene, layer.crop, a)
        squares.append(seam_score(pasted, warp_to_image(a.mask, a, scene.shape),
                                  face=warp_to_image(layer.crop, a, scene.shape, border="replicate"),
                                  scene=scene))
    score = [seam_score(soft.image, m, face=f, scene=s) for m, (f, s) in zip(soft.masks, soft.sources)]
    hard_score = [seam_score(hard.image, m, face=f, scene=s) for m, (f, s) in zip(hard.masks, hard.sources)]
    feathered_score = [seam_score(feathered.image, m, face=f, scene=s)
                       for m, (f, s) in zip(feathered.masks, feathered.sources)]
    return score, hard_score, squares, feathered_score


SEAM_BOUND = 1.1  # excess gradient energy on the seam band over the sources' own (1 = none)


def test_no_visible_seam_on_real_photos(shared: Path, selfies: list[Path]) -> None:
    for name, photo in _real_photos(shared, selfies):
        soft, hard, _, feathered = _hard_and_soft(photo)
        assert soft, name
        for s in soft:
            assert s.excess <= SEAM_BOUND, (name, s)
            assert s.band_pixels > 100
        # the hard pastes of the same faces are clearly worse (so this test can fail) ...
        mean_soft = float(np.mean([s.excess for s in soft]))
        mean_hard = float(np.mean([h.excess for h in hard]))
        assert mean_hard > 1.4 * mean_soft, name
        assert float(np.mean([h.ratio for h in hard])) > float(np.mean([s.ratio for s in soft])), name
        # ... and feathering alone, without colour matching, already removes much of the seam
        assert mean_hard > 1.3 * float(np.mean([f.excess for f in feathered])), name


def test_square_paste_shows_a_seam(shared: Path) -> None:
    """The plain paste of whole crops (facetoon.face.paste_back) scores clearly worse."""
    photo = read_image(shared / "fixtures" / "four_faces.jpg")
    soft, _, square, _ = _hard_and_soft(photo)
    assert np.mean([q.excess for q in square]) > 1.4 * np.mean([s.excess for s in soft])


def test_seam_score_on_synthetic_steps() -> None:
    rng = np.random.default_rng(0)
    texture = np.clip(128 + rng.normal(0, 6, (120, 120, 3)), 0, 255).astype(np.uint8)
    mask = np.zeros((120, 120), np.float32)
    cv2.circle(mask, (60, 60), 35, 1.0, -1)
    # no seam: same texture everywhere
    s0 = seam_score(texture, mask, face=texture, scene=texture)
    assert 0.7 < s0.ratio < 1.3 and s0.excess == pytest.approx(1.0, abs=0.05)
    # a hard step of 40 levels along the contour
    face = np.clip(texture.astype(int) + 40, 0, 255).astype(np.uint8)
    hard = np.where(mask[..., None] > 0.5, face, texture)
    s1 = seam_score(hard, mask, face=face, scene=texture)
    assert s1.ratio > 1.8 and s1.excess > 1.8
    # the same step feathered over 12 px is much weaker
    soft_mask = feather(mask > 0.5, 12.0)
    soft = np.rint(texture + (face.astype(float) - texture) * soft_mask[..., None]).astype(np.uint8)
    s2 = seam_score(soft, soft_mask, face=face, scene=texture)
    assert s2.excess < 0.5 * s1.excess
    # no contour: neutral
    empty = seam_score(texture, np.zeros((120, 120), np.float32))
    assert empty.ratio == 1.0 and empty.band_pixels == 0
    with pytest.raises(ConfigError):
        seam_score(texture, mask[:10])
    with pytest.raises(ConfigError):
        seam_score(texture, mask, face=texture)
    with pytest.raises(InvalidImageError):
        seam_score(texture[..., 0], mask)


def test_poisson_blend_keeps_scene_outside_and_is_in_place() -> None:
    rng = np.random.default_rng(1)
    scene = np.clip(rng.normal(120, 20, (60, 80, 3)), 0, 255).astype(np.uint8)
    support = np.zeros((60, 80), bool)
    support[15:45, 20:60] = True
    # face == scene: the Poisson solution is the scene itself (nothing moves)
    same = poisson_blend(scene, scene, support)
    assert np.abs(same - scene.astype(np.float32)).max() <= 2.0
    # a brighter face: its gradients are kept, its offset is removed at the boundary
    face = np.clip(scene.astype(int) + 50, 0, 255).astype(np.uint8)
    out = poisson_blend(face, scene, support)
    assert np.array_equal(out[~support], scene[~support].astype(np.float32))
    assert np.abs(out[support] - scene[support]).mean() < 10.0
    # support touching the border is handled (reflected margin)
    edge = np.zeros((60, 80), bool)
    edge[:30, :40] = True
    out = poisson_blend(face, scene, edge)
    assert out.shape == scene.shape


# ----------------------------------------------------------------------------- mask conventions


def _disc(size: int = 64, radius: int = 20, width: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
    """A binary disc (bool) and its feathered float32 alpha."""
    region = np.zeros((size, size), np.uint8)
    cv2.circle(region, (size // 2, size // 2), radius, 1, -1)
    return region > 0, feather(region, width)


def test_as_alpha_reads_every_mask_kind_one_way() -> None:
    disc, soft = _disc()
    ones = disc.astype(np.float32)
    assert np.array_equal(as_alpha(disc, "m"), ones)
    assert np.array_equal(as_alpha(disc.astype(np.uint8), "m"), ones)            # 0/1 uint8
    assert np.array_equal(as_alpha(disc.astype(np.uint8) * 255, "m"), ones)      # 0/255 uint8
    q = np.rint(soft * 255).astype(np.uint8)
    assert np.array_equal(as_alpha(q, "m"), q.astype(np.float32) / np.float32(255))  # 0..255 uint8
    assert np.array_equal(as_alpha(soft[:, :, None], "m"), soft)                 # (h, w, 1)
    assert as_alpha(soft * 1.1 - 0.05, "m").min() == 0.0                         # overshoot clipped
    assert np.array_equal(as_support(soft, "m"), soft > 0)
    for bad, message in [(soft * 255, "must lie in \\[0, 1\\]"), (soft * 2 - 1, "must lie in"),
                         (disc.astype(np.int64) * 300, "0..255"), (disc.astype(np.complex64), "dtype complex64"),
                         (np.full((4, 4), np.nan), "NaN"),
                         (np.zeros((4, 4, 3)), "expected an \\(h, w\\) mask"), ([[0, 1]], "got list")]:
        with pytest.raises(InvalidImageError, match="^mask: .*" + message):
            as_alpha(bad, "mask")
    with pytest.raises(InvalidImageError, match="expected shape \\(8, 8\\)"):
        as_support(disc, "support", (8, 8))


def test_poisson_blend_reads_support_masks_of_every_dtype() -> None:
    """Was: uint8 0/1 -> IndexError (``~support`` = 254/255 used as a fancy index; at 1080p a
    12 GB index array), float -> TypeError."""
    rng = np.random.default_rng(2)
    scene = np.clip(rng.normal(120, 20, (64, 64, 3)), 0, 255).astype(np.uint8)
    face = np.clip(scene.astype(int) + 50, 0, 255).astype(np.uint8)
    disc, soft = _disc()
    ref = poisson_blend(face, scene, disc)
    assert np.array_equal(ref[~disc], scene[~disc].astype(np.float32))
    for support in (disc.astype(np.uint8), disc.astype(np.uint8) * 255, disc.astype(np.float32)):
        assert np.array_equal(poisson_blend(face, scene, support), ref), support.dtype
    # a soft mask: its support is where it is > 0
    assert np.array_equal(poisson_blend(face, scene, soft), poisson_blend(face, scene, soft > 0))
    with pytest.raises(InvalidImageError, match="^support: .*must lie in"):
        poisson_blend(face, scene, disc * 255.0)
    with pytest.raises(InvalidImageError, match="^support: expected shape"):
        poisson_blend(face, scene, disc[:10])
    with pytest.raises(InvalidImageError, match="^scene: "):
        poisson_blend(face, scene[:10], disc)


def test_harmonize_and_seam_score_read_uint8_masks_as_0_to_255() -> None:
    """Was: harmonize used a uint8 0..255 alpha as is (results up to 80 levels off, silently);
    seam_score read a uint8 0/1 mask as 0..1/255 (no contour: a neutral score, silently)."""
    rng = np.random.default_rng(3)
    scene = np.clip(rng.normal(110, 15, (64, 64, 3)), 0, 255).astype(np.uint8)
    face = np.clip(scene.astype(int) + (40, -20, 25), 0, 255).astype(np.uint8)
    disc, soft = _disc()
    q = np.rint(soft * 255).astype(np.uint8)
    ref = harmonize(face, scene, q.astype(np.float32) / np.float32(255), width=6.0)
    assert np.abs(ref - face).max() > 10  # it does something
    assert np.array_equal(harmonize(face, scene, q, width=6.0), ref)
    assert np.array_equal(harmonize(face, scene, q, width=6.0, available=np.ones((64, 64), bool)), ref)
    with pytest.raises(InvalidImageError, match="^alpha: "):
        harmonize(face, scene, soft * 255, width=6.0)
    with pytest.raises(ConfigError, match="available"):
        harmonize(face, scene, soft, width=6.0, available=np.ones((8, 8), bool))
    hard = np.where(disc[..., None], face, scene)
    ref_score = seam_score(hard, disc, face=face, scene=scene)
    assert ref_score.band_pixels > 0
    for mask in (disc.astype(np.uint8), disc.astype(np.uint8) * 255, disc.astype(np.float32)):
        assert seam_score(hard, mask, face=face, scene=scene) == ref_score, mask.dtype


def test_integer_masks_of_any_type_read_like_uint8() -> None:
    """An int64 0 / 1 mask (np.where) is a binary mask, as a uint8 one; out of 0..255 it is refused."""
    from facetoon.blend.mask import as_alpha, feather
    from facetoon.errors import InvalidImageError

    m = np.where(np.arange(16).reshape(4, 4) > 7, 1, 0)
    assert m.dtype == np.int64
    np.testing.assert_array_equal(as_alpha(m, "m"), m.astype(np.float32))
    np.testing.assert_array_equal(as_alpha(m * 255, "m"), m.astype(np.float32))
    assert feather(np.pad(np.ones((6, 6), np.int64), 2), 2.0).max() > 0.9
    with pytest.raises(InvalidImageError, match="0..255"):
        as_alpha(m * 300, "m")
