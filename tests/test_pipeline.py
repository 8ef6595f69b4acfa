"""Tests of the portrait pipeline (facetoon.stylize / facetoon.Stylizer) on real photos.

The default weights may not be trained yet, so the pipeline runs here with randomly initialised
models of the shipped architectures (a light U-GAT-IT generator at 128 px and an AnimeGANv2
generator), and with the real CartoonGAN Hayao weights from ../shared as the scene model where
that matters (the seam test). Geometry, blending, types and sizes are checked either way.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

import facetoon  # noqa: E402
from facetoon import pipeline  # noqa: E402
from facetoon.background import BackgroundStylizer  # noqa: E402
from facetoon.blend import composite_faces, make_layer, seam_score  # noqa: E402
from facetoon.errors import ConfigError, InvalidImageError, NoFaceError, WeightsError  # noqa: E402
from facetoon.io import read_image  # noqa: E402
from facetoon.models import create_model, save_pretrained  # noqa: E402
from facetoon.pipeline import StylizeResult, Stylizer  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ASTRONAUT = REPO / "examples" / "astronaut.png"
HAYAO = "models/cartoongan/Hayao_net_G_float.pth"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: on the shared 2-core machine, two threads that wait for each other
    under load are many times slower than one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def face_model():
    torch.manual_seed(0)
    return create_model("ugatit_generator", light=True, ngf=16, n_res=2, img_size=128).eval()


@pytest.fixture(scope="module")
def scene_model():
    torch.manual_seed(1)
    return create_model("animegan", version="v2").eval()


@pytest.fixture(scope="module")
def stylizer(face_model, scene_model) -> Stylizer:
    return Stylizer(face_model=face_model, background_model=scene_model)


@pytest.fixture(scope="module")
def astronaut_result(stylizer: Stylizer) -> StylizeResult:
    res = stylizer.stylize(ASTRONAUT, return_details=True)
    assert isinstance(res, StylizeResult)
    return res


@pytest.fixture(scope="module")
def four_faces_path(shared: Path) -> Path:
    return shared / "fixtures" / "four_faces.jpg"


def _changed_inside(res: StylizeResult, min_diff: float = 5.0) -> None:
    out = np.asarray(res.image)[..., :3].astype(int)
    for i, d in enumerate(res.faces):
        inside = d.mask > 0.5
        assert inside.sum() > 100, i
        diff = np.abs(out - res.background.astype(int)).sum(axis=2)[inside].mean()
        assert diff > min_diff, (i, diff)


def _outside_is_background(res: StylizeResult) -> None:
    out = np.asarray(res.image)[..., :3]
    union = np.zeros(out.shape[:2], bool)
    for d in res.faces:
        union |= d.mask > 0
    assert np.array_equal(out[~union], res.background[~union])


# ----------------------------------------------------------------------------- weights


def test_missing_default_weights_is_a_clear_error(monkeypatch, tmp_path, face_model) -> None:
    monkeypatch.setenv("FACETOON_WEIGHTS", str(tmp_path))
    with pytest.raises(WeightsError) as err:
        Stylizer()
    msg = str(err.value)
    assert "ugatit-selfie2anime" in msg and "face_model=" in msg and "\n" not in msg
    with pytest.raises(WeightsError, match="animegan-anime"):
        Stylizer(face_model=face_model)
    with pytest.raises(WeightsError, match="background_weights"):
        Stylizer(face_model=face_model, background_model="cartoongan")
    with pytest.raises(WeightsError):
        Stylizer(face_model=tmp_path / "nowhere", background_model=None)


def test_a_model_in_the_wrong_role_is_refused_when_loaded(tmp_path, face_model, scene_model) -> None:
    """The face model's folder as the scene model (or the reverse) is refused at construction,
    naming the folder and the architectures expected (it used to fail on every photo with an
    AttributeError from deep inside the tiling code)."""
    save_pretrained(face_model, tmp_path / "face")
    save_pretrained(scene_model, tmp_path / "scene")
    for make, expected in [
        (lambda: Stylizer(face_model=face_model, background_model=tmp_path / "face"), "'animegan' or 'cartoongan'"),
        (lambda: Stylizer(face_model=face_model, background_model="animegan",
                          background_weights=tmp_path / "face"), "expected 'animegan'"),
        (lambda: Stylizer(face_model=face_model, background_model="cartoongan",
                          background_weights=tmp_path / "scene"), "expected 'cartoongan'"),
        (lambda: Stylizer(face_model=tmp_path / "scene", background_model=None), "expected 'ugatit_generator'"),
        (lambda: BackgroundStylizer(tmp_path / "face"), "'animegan' or 'cartoongan'"),
    ]:
        with pytest.raises(WeightsError) as err:
            make()
        msg = str(err.value)
        assert expected in msg and "holds a" in msg and "\n" not in msg, msg
    assert Stylizer(face_model=tmp_path / "face", background_model=tmp_path / "scene") is not None


def test_no_weights_directory_says_how_to_get_one(monkeypatch, tmp_path, face_model) -> None:
    """A regular (non-editable) install has no weights/ beside the package: the error says to
    install editable from a checkout or to set FACETOON_WEIGHTS."""
    from facetoon.models import serialization

    monkeypatch.delenv("FACETOON_WEIGHTS", raising=False)
    site = tmp_path / "site-packages"
    monkeypatch.setattr(serialization, "__file__", str(site / "facetoon" / "models" / "serialization.py"))
    assert serialization.weights_dir() == site / "weights"
    for make in (Stylizer, lambda: Stylizer(face_model=face_model),
                 lambda: Stylizer.from_pretrained("my-pipeline"),
                 lambda: BackgroundStylizer("animegan-anime")):
        with pytest.raises(WeightsError) as err:
            make()
        msg = str(err.value)
        assert "pip install -e ." in msg and "FACETOON_WEIGHTS" in msg and str(site / "weights") in msg, msg
        assert "\n" not in msg
    monkeypatch.setenv("FACETOON_WEIGHTS", str(tmp_path / "absent"))
    with pytest.raises(WeightsError, match=r"FACETOON_WEIGHTS=.*absent is not a folder"):
        Stylizer()


def test_models_load_once(monkeypatch, tmp_path, face_model, scene_model, selfies) -> None:
    save_pretrained(face_model, tmp_path / "face", dtype=torch.float16)
    save_pretrained(scene_model, tmp_path / "scene")
    calls: list[str] = []
    real = pipeline.loading.load_pretrained

    def counting(path, **kw):
        calls.append(str(path))
        return real(path, **kw)

    monkeypatch.setattr(pipeline.loading, "load_pretrained", counting)
    st = Stylizer(face_model=tmp_path / "face", background_model="animegan",
                  background_weights=tmp_path / "scene")
    assert len(calls) == 2
    assert st.face_size == 128  # the face model's training size, from its config
    img = read_image(selfies[0])
    a = st(img)
    b = st(img)
    assert len(calls) == 2  # a second call pays no load cost
    assert np.array_equal(a, b)
    # the functional API caches its Stylizer per option set
    pipeline.clear_cache()
    opts = dict(face_model=tmp_path / "face", background_model="animegan",
                background_weights=tmp_path / "scene")
    c = facetoon.stylize(img, **opts)
    d = facetoon.stylize(img, strength=0.5, **opts)
    assert len(calls) == 4  # one more Stylizer, built once for both calls
    assert np.array_equal(c, a) and not np.array_equal(d, c)
    assert pipeline.get_stylizer(**opts) is pipeline.get_stylizer(**opts)
    pipeline.clear_cache()


def test_save_and_from_pretrained_round_trip(tmp_path, stylizer, selfies) -> None:
    folder = stylizer.save_pretrained(tmp_path / "pipe")
    assert (folder / "pipeline.json").is_file()
    again = Stylizer.from_pretrained(folder)
    img = read_image(selfies[1])
    assert np.array_equal(again(img), stylizer(img))
    # a plain model folder is taken as the face model; overrides win
    only_face = Stylizer.from_pretrained(folder / "face", background_model=None, strength=0.5)
    assert only_face.background_model is None and only_face.strength == 0.5
    with pytest.raises(WeightsError):
        Stylizer.from_pretrained(tmp_path / "nothing-here")


def test_save_pretrained_keeps_every_option(tmp_path, face_model, scene_model) -> None:
    """Scene options (speed mode, tile budget) and require_face come back after a round trip."""
    scene = {"internal_scale": 0.5, "max_pixels_per_tile": 256 * 256, "tile_overlap": 96}
    st = Stylizer(face_model=face_model, background_model=scene_model, require_face=True,
                  background_options=scene, strength=0.75, warmup=False)
    again = Stylizer.from_pretrained(st.save_pretrained(tmp_path / "pipe"), warmup=False)
    assert again.require_face and again.strength == 0.75
    assert again.background_options == scene
    assert (again._background.max_pixels, again._background.overlap) == (256 * 256, 96)
    with pytest.raises(NoFaceError):
        again(np.full((64, 64, 3), 128, np.uint8))


# ----------------------------------------------------------------------------- types and sizes


def test_output_types_follow_the_input(stylizer, selfies, astronaut_result) -> None:
    assert isinstance(astronaut_result.image, Image.Image)  # path in -> PIL out
    assert astronaut_result.image.size == (512, 512) and astronaut_result.image.mode == "RGB"
    path = selfies[2]
    arr = read_image(path)
    out = stylizer(arr)
    assert isinstance(out, np.ndarray) and out.shape == arr.shape and out.dtype == np.uint8
    pil = Image.open(path)
    out_pil = stylizer(pil)
    assert isinstance(out_pil, Image.Image) and out_pil.size == pil.size and out_pil.mode == "RGB"
    out_bytes = stylizer(path.read_bytes())
    assert isinstance(out_bytes, Image.Image) and out_bytes.size == pil.size
    assert np.array_equal(np.asarray(out_pil), out) and np.array_equal(np.asarray(out_bytes), out)


def test_details(astronaut_result) -> None:
    res = astronaut_result
    assert len(res.faces) == 1  # the badge on the suit is dropped as a weak detection
    d = res.faces[0]
    s = 128
    assert d.crop.shape == (s, s, 3) and d.stylized.shape == (s, s, 3) and d.stylized.dtype == np.uint8
    assert d.heatmap is not None and d.heatmap.shape == (s, s)
    assert d.heatmap.min() == pytest.approx(0.0) and d.heatmap.max() == pytest.approx(1.0)
    assert d.crop_mask.shape == (s, s) and d.mask.shape == (512, 512)
    assert d.landmarks.shape == (5, 2) and d.face.score > 1.0
    assert res.background.shape == (512, 512, 3) and res.photo.shape == (512, 512, 3)
    assert res.alpha is None and res.strength == 1.0
    assert {"detect", "background", "faces", "blend", "total"} <= set(res.timings)
    # the face box is inside the mask's support
    x0, y0, x1, y1 = d.face.box
    assert d.mask[int((y0 + y1) / 2), int((x0 + x1) / 2)] == pytest.approx(1.0)


def test_outside_masks_equals_the_background_model(astronaut_result, stylizer, scene_model) -> None:
    res = astronaut_result
    _outside_is_background(res)
    _changed_inside(res)
    # ...and that background is the scene model's own output for the photo
    # (precision "auto" runs the scene model's fused graph: BackgroundStylizer's "fast")
    alone = BackgroundStylizer(scene_model, precision="fast")(res.photo)
    assert np.array_equal(alone, res.background)


def test_every_face_changes_on_group_and_selfies(stylizer, four_faces_path, selfies) -> None:
    res = stylizer.stylize(four_faces_path, return_details=True)
    assert len(res.faces) == 4
    _outside_is_background(res)
    _changed_inside(res)
    for p in selfies[:3]:
        r = stylizer.stylize(p, return_details=True)
        assert len(r.faces) == 1, p.name
        _outside_is_background(r)
        _changed_inside(r)


def test_eight_faces(face_model, scene_model, four_faces_path) -> None:
    photo = read_image(four_faces_path)
    eight = np.concatenate([photo, photo[:, ::-1]], axis=1)  # 1024 x 355, eight faces
    # the two small faces are ~55 px: ask the detector for faces from 40 px on
    stylizer = Stylizer(face_model=face_model, background_model=scene_model,
                        detector_options={"min_size": 40})
    res = stylizer.stylize(eight, return_details=True)
    assert isinstance(res.image, np.ndarray) and res.image.shape == eight.shape
    assert len(res.faces) == 8
    _outside_is_background(res)
    _changed_inside(res)
    limited = stylizer.stylize(eight, max_faces=3, return_details=True)
    assert len(limited.faces) == 3
    sizes = [d.face.size for d in res.faces]
    assert [d.face.size for d in limited.faces] == sorted(sizes, reverse=True)[:3]


# ----------------------------------------------------------------------------- strength


def test_strength(stylizer, selfies) -> None:
    img = read_image(selfies[0])
    zero = stylizer(img, strength=0.0)
    assert np.array_equal(zero, img)
    pil = Image.open(selfies[0])
    assert np.array_equal(np.asarray(stylizer(pil, strength=0)), np.asarray(pil.convert("RGB")))
    full = stylizer(img).astype(float)
    half = stylizer(img, strength=0.5).astype(float)
    expected = img + 0.5 * (full - img)
    assert np.abs(half - expected).max() <= 1.0
    with pytest.raises(ConfigError):
        stylizer(img, strength=1.5)
    with pytest.raises(ConfigError):
        Stylizer(face_model=None, background_model=None, strength=-0.1)


# ----------------------------------------------------------------------------- unusual inputs


def test_grayscale_input(stylizer, selfies) -> None:
    gray = np.asarray(Image.open(selfies[1]).convert("L"))
    out = stylizer(gray)
    assert out.shape == gray.shape + (3,) and out.dtype == np.uint8
    res = stylizer.stylize(Image.fromarray(gray), return_details=True)
    assert res.image.mode == "RGB" and res.image.size == (gray.shape[1], gray.shape[0])
    assert len(res.faces) == 1
    _changed_inside(res)


def test_rgba_input_keeps_its_alpha(stylizer, selfies) -> None:
    rgb = read_image(selfies[2])
    h, w = rgb.shape[:2]
    alpha = np.full((h, w), 255, np.uint8)
    alpha[:, : w // 5] = 0
    alpha[:, w // 5: w // 4] = 128
    rgba = np.dstack([rgb, alpha])
    out = stylizer(rgba)
    assert out.shape == (h, w, 4) and np.array_equal(out[..., 3], alpha)
    pil_out = stylizer(Image.fromarray(rgba))
    assert pil_out.mode == "RGBA" and np.array_equal(np.asarray(pil_out), out)
    assert np.array_equal(stylizer(rgba, strength=0.0), rgba)  # straight RGB and alpha, untouched
    opaque = np.dstack([rgb, np.full((h, w), 255, np.uint8)])  # (H, W, 4) in -> (H, W, 4) out
    out = stylizer(opaque)
    assert out.shape == (h, w, 4) and (out[..., 3] == 255).all()
    assert np.array_equal(out[..., :3], stylizer(rgb))


def test_soft_alpha_edges_get_no_white_fringe() -> None:
    """The models see RGBA composited over white; the alpha re-attached to that would count the
    white twice. With no model at all the pipeline must give the input back exactly."""
    from facetoon.io import composite_over_white
    from facetoon.pipeline.image_io import read_input, straight_colours

    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (16, 16, 4), dtype=np.uint8)
    rgba[..., 3].flat[:256] = np.arange(256)  # every opacity, 0 (invisible) to 255
    st = Stylizer(face_model=None, background_model=None)
    assert np.array_equal(st(rgba), rgba)  # was: black at alpha 128 came back (127, 127, 127)
    assert np.array_equal(st(rgba, strength=0.5), rgba)
    # a "model" that darkens what it saw by 20 levels: a pixel of alpha a showed a / 255 of its
    # own colour, so its straight colour darkens by 20 * 255 / a
    src = read_input(rgba)
    assert np.array_equal(src.photo, composite_over_white(rgba[..., :3], rgba[..., 3]))
    styled = (src.photo.astype(np.int32) - 20).clip(0, 255).astype(np.uint8)
    out = straight_colours(styled, src).astype(np.float64)
    a = rgba[..., 3].astype(np.float64)[..., None]
    change = styled.astype(np.float64) - src.photo
    expect = np.where(a > 0, rgba[..., :3] + change * 255 / np.maximum(a, 1), rgba[..., :3]).clip(0, 255)
    assert np.abs(out - expect).max() <= 0.5
    assert (out[a[..., 0] == 255] == styled[a[..., 0] == 255]).all()  # opaque: what the model made


def test_exif_rotated_input(stylizer, selfies, tmp_path) -> None:
    upright = Image.open(selfies[3]).convert("RGB")
    upright = upright.crop((0, 0, upright.width, upright.height - 56))  # not square: 256 x 200
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # stored sideways ...
    exif = Image.Exif()
    exif[274] = 6  # ... and tagged "rotate 90 CW to display"
    path = tmp_path / "sideways.jpg"
    stored.save(path, exif=exif, quality=95)
    res = stylizer.stylize(path, return_details=True)
    assert res.image.size == upright.size  # the size as displayed
    assert len(res.faces) == 1
    _changed_inside(res)


def test_no_face(stylizer, shared, caplog) -> None:
    flat = np.full((96, 128, 3), 180, np.uint8)
    landscape = shared / "data" / "photos" / "bsds500" / "val" / "14037.jpg"  # mountains, a lake
    for img in (flat, read_image(landscape)):
        with caplog.at_level(logging.WARNING, logger="facetoon.pipeline"):
            caplog.clear()
            res = stylizer.stylize(img, return_details=True)
        assert res.faces == []
        assert np.array_equal(res.image, res.background)
        assert any("no face" in r.getMessage() for r in caplog.records)
        with pytest.raises(NoFaceError, match="no face"):
            stylizer(img, require_face=True)
        with pytest.raises(NoFaceError, match="no face"):  # also when nothing is stylized
            stylizer(img, require_face=True, strength=0.0)


def test_bad_input(stylizer, tmp_path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    for bad in (tmp_path / "missing.jpg", text, np.zeros(5, np.uint8), np.zeros((4, 4, 7), np.uint8),
                b"", 42):
        with pytest.raises(InvalidImageError):
            stylizer(bad)


def test_bad_crops_are_invalid_image_errors(stylizer) -> None:
    """stylize_crops takes (S, S, 3) uint8 crops of one size; anything else is a one-line
    InvalidImageError, not numpy's ValueError or torch's RuntimeError."""
    s = stylizer.face_size
    ok = np.zeros((s, s, 3), np.uint8)
    for crops, needle in (([ok, np.zeros((s + 4, s + 4, 3), np.uint8)], "same size"),
                          ([np.zeros((s, s), np.uint8)], r"crop 0 has dtype uint8 and shape \(\d+, \d+\)"),
                          ([ok, np.zeros((s, s, 3), np.float32)], "crop 1 has dtype float32"),
                          ([np.zeros((s, s + 4, 3), np.uint8)], r"\(S, S, 3\)"),
                          ([ok, "crop.png"], "crop 1 is a str"),
                          (np.zeros((1, s, s, 3), np.uint8), "expected a list")):
        with pytest.raises(InvalidImageError, match=needle) as err:
            stylizer.stylize_crops(crops)
        assert "\n" not in str(err.value)
    assert stylizer.stylize_crops([]) == ([], [])


def test_one_stylizer_shared_by_threads(face_model, scene_model) -> None:
    """facetoon.stylize hands one cached Stylizer to every thread asking for the same options; its
    calls are serialised, so two threads stylizing photos large enough to be tiled (per-call norm
    statistics kept on the scene model) each get their single-threaded output."""
    import threading

    photo = read_image(ASTRONAUT)[:320, 60:380]
    images = [photo, np.ascontiguousarray(photo[:, ::-1] // 2)]
    opts = dict(face_model=face_model, background_model=scene_model, warmup=False,
                background_options={"max_pixels_per_tile": 128 * 128, "tile_overlap": 32, "tile_guard": 8})
    pipeline.clear_cache()
    try:
        st = pipeline.get_stylizer(**opts)
        assert st._background is not None and st._background.max_pixels < photo.shape[0] * photo.shape[1]
        alone = [facetoon.stylize(im, **opts) for im in images]
        assert len(st.detect(photo)) == 1 and not np.array_equal(alone[0], alone[1][:, ::-1])
        barrier = threading.Barrier(2)
        results: list[list[np.ndarray]] = [[], []]
        errors: list[BaseException] = []

        def work(i: int) -> None:
            try:
                barrier.wait()
                for _ in range(2):
                    results[i].append(facetoon.stylize(images[i], **opts))
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        assert pipeline.get_stylizer(**opts) is st  # both threads used the one cached Stylizer
        for i, outs in enumerate(results):
            assert len(outs) == 2 and all(np.array_equal(out, alone[i]) for out in outs), i
    finally:
        pipeline.clear_cache()


def test_bad_options(face_model) -> None:
    with pytest.raises(ConfigError):
        Stylizer(face_model=face_model, background_model=None, blend="smudge")
    with pytest.raises(ConfigError):
        Stylizer(face_model=face_model, background_model=None, face_size=130)
    with pytest.raises(ConfigError):
        Stylizer(face_model=face_model, background_model=None, precision="half")
    with pytest.raises(ConfigError):
        Stylizer(face_model=face_model, background_model=None, max_faces=-2)
    with pytest.raises(ConfigError):
        Stylizer(face_model=face_model, background_model=None, harmonize=2.0)
    with pytest.raises(ConfigError):
        Stylizer(face_model=42, background_model=None)  # type: ignore[arg-type]


def test_bad_detector_and_scene_options_fail_when_the_stylizer_is_made(face_model, scene_model) -> None:
    """A typo in detector_options or background_options is a ConfigError naming the key at once, not a
    TypeError from every later call."""
    for options, needle in (({"min_sise": 40}, "'min_sise'"), ({"backend": "fan"}, "Stylizer option"),
                            ({"max_faces": 2}, "Stylizer option")):
        with pytest.raises(ConfigError, match=needle):
            Stylizer(face_model=face_model, background_model=None, detector_options=options, warmup=False)
    with pytest.raises(ConfigError, match="detector_options: expected a dict"):
        Stylizer(face_model=face_model, background_model=None, detector_options=[40], warmup=False)
    for scene_options, needle in (({"tile_size": 256}, "unknown option 'tile_size'"),
                                  ({"precision": "fp32"}, "Stylizer option"),
                                  ({"internal_scale": "0.5"}, "wrong type")):
        with pytest.raises(ConfigError, match=needle):
            Stylizer(face_model=face_model, background_model=scene_model, background_options=scene_options,
                     warmup=False)
    # known keys pass, and the detector checks their values itself
    st = Stylizer(face_model=face_model, background_model=scene_model, detector_options={"min_size": 40},
                  background_options={"internal_scale": 0.5}, warmup=False)
    assert st.detector_options == {"min_size": 40} and st._background is not None
    assert st._background.internal_scale == 0.5


# ----------------------------------------------------------------------------- scene options


def test_no_scene_model_keeps_the_photo(face_model, selfies) -> None:
    st = Stylizer(face_model=face_model, background_model=None, face_size=96)
    img = read_image(selfies[0])
    res = st.stylize(img, return_details=True)
    assert np.array_equal(res.background, img)
    assert res.faces[0].crop.shape == (96, 96, 3)
    _outside_is_background(res)
    _changed_inside(res)


def test_cartoongan_scene_and_seam(shared, face_model, selfies, four_faces_path) -> None:
    """The real CartoonGAN Hayao weights as scene model; the seam stays within bound."""
    st = Stylizer(face_model=face_model, background_model="cartoongan", background_weights=shared / HAYAO)
    assert type(st.background_model).__name__ == "Generator"
    for path in (selfies[0], four_faces_path):
        res = st.stylize(path, return_details=True)
        assert res.faces
        _outside_is_background(res)
        layers = [make_layer(d.stylized, d.aligned) for d in res.faces]
        soft = composite_faces(res.background, layers, return_sources=True)
        assert np.array_equal(soft.image, np.asarray(res.image))  # what the pipeline pasted
        hard = composite_faces(res.background, layers, mode="hard", harmonize=False, return_sources=True)
        for i in range(len(layers)):
            s = seam_score(soft.image, soft.masks[i], face=soft.sources[i][0], scene=soft.sources[i][1])
            h = seam_score(hard.image, hard.masks[i], face=hard.sources[i][0], scene=hard.sources[i][1])
            assert s.excess <= 1.0, (path.name, i, s)
            assert h.excess > 1.5 * s.excess, (path.name, i, s, h)


def test_poisson_blend_mode(stylizer, selfies) -> None:
    res = stylizer.stylize(selfies[1], blend="poisson", return_details=True)
    _outside_is_background(res)
    _changed_inside(res)
    soft = stylizer.stylize(selfies[1], return_details=True)
    assert not np.array_equal(np.asarray(res.image), np.asarray(soft.image))


# ----------------------------------------------------------------------------- given faces, weights, batches


@pytest.fixture(scope="module")
def four_faces_result(stylizer, four_faces_path) -> StylizeResult:
    res = stylizer.stylize(read_image(four_faces_path), return_details=True)
    assert len(res.faces) == 4
    return res


def test_given_faces_equal_the_detected_faces_result(stylizer, four_faces_result) -> None:
    res = four_faces_result
    faces = [d.face for d in res.faces]
    given = stylizer.stylize(res.photo, faces=faces, return_details=True)
    assert np.array_equal(given.image, res.image)
    assert [d.face for d in given.faces] == faces
    assert given.timings["detect"] < 0.01  # no detector ran
    # weight 1 for every face is the normal result, too
    ones = stylizer.stylize(res.photo, faces=faces, face_weights=[1.0, 1, np.float32(1.0), 1.0])
    assert np.array_equal(ones, res.image)
    # the functional API passes them through
    assert np.array_equal(facetoon.stylize(res.photo, faces=faces[:1], face_weights=[0.0],
                                           face_model=stylizer.face_model, background_model=None),
                          res.photo)
    pipeline.clear_cache()


def test_face_weight_zero_leaves_the_scene(stylizer, four_faces_result) -> None:
    res = four_faces_result
    faces = [d.face for d in res.faces]
    out = stylizer.stylize(res.photo, faces=faces, face_weights=[0.0, 1.0, 1.0, 1.0], return_details=True)
    assert [d.face for d in out.faces] == faces[1:]  # a weight-0 face is skipped
    img, full = np.asarray(out.image), np.asarray(res.image)
    own = res.faces[0].mask > 0
    others = np.zeros_like(own)
    for d in res.faces[1:]:
        others |= d.mask > 0
    assert own.sum() > 1000 and not (own & others).any()
    assert np.array_equal(img[own], res.background[own])  # scene only inside face 0's mask
    assert not np.array_equal(full[own], res.background[own])
    # the other faces as usual: the face model ran on a batch of 3 crops instead of 4, and on some
    # CPUs (AVX2 oneDNN kernels) a convolution's float rounding depends on the batch size
    assert np.abs(img[~own].astype(np.int16) - full[~own]).max() <= 1
    none = stylizer.stylize(res.photo, faces=faces, face_weights=[0, 0, 0, 0])
    assert np.array_equal(none, res.background)


def test_face_weight_scales_the_blend_mask(stylizer, four_faces_result) -> None:
    """Soft blending without harmonisation: weight w gives scene + w * (face - scene)."""
    res = four_faces_result
    faces = [d.face for d in res.faces]
    full = stylizer.stylize(res.photo, faces=faces, harmonize=False).astype(float)
    half = stylizer.stylize(res.photo, faces=faces, face_weights=[0.5] * 4, harmonize=False).astype(float)
    scene = res.background.astype(float)
    assert np.abs(half - (scene + 0.5 * (full - scene))).max() <= 1.0  # two roundings
    union = np.any([d.mask > 0 for d in res.faces], axis=0)
    assert np.abs(full - scene)[union].mean() > 5.0  # the check is not vacuous


def test_given_faces_with_max_faces_keep_the_largest(stylizer, four_faces_result) -> None:
    res = four_faces_result
    faces = [d.face for d in res.faces][::-1]  # smallest first
    out = stylizer.stylize(res.photo, faces=faces, max_faces=2, return_details=True)
    assert [d.face for d in out.faces] == faces[2:]  # the two largest, in the given order
    assert len(stylizer.stylize(res.photo, faces=faces, max_faces=0, return_details=True).faces) == 0


def test_bad_faces_and_weights(stylizer, four_faces_result) -> None:
    res = four_faces_result
    faces = [d.face for d in res.faces]
    bad: list[dict] = [
        dict(faces=faces, face_weights=[1.0] * 3),  # wrong length
        dict(faces=faces, face_weights=[1.0, 1.0, 1.5, 1.0]),  # out of range
        dict(faces=faces, face_weights=[1.0, float("nan"), 1.0, 1.0]),
        dict(faces=faces, face_weights=[True, 1.0, 1.0, 1.0]),
        dict(faces=faces, face_weights=0.5),
        dict(face_weights=[1.0]),  # weights without faces
        dict(faces=faces[0]),  # one face, not a sequence of faces
        dict(faces=[faces[0].box]),
    ]
    for kw in bad:
        with pytest.raises(ConfigError) as err:
            stylizer.stylize(res.photo, **kw)
        assert "face" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="one sequence of faces per image"):
        stylizer.stylize_batch([res.photo, res.photo], faces=[faces])
    with pytest.raises(ConfigError, match=r"face_weights\[1\]"):
        stylizer.stylize_batch([res.photo, res.photo], faces=[faces, faces[:1]], face_weights=[[1] * 4, [2]])


def test_stylize_batch_equals_stylize_per_image(stylizer, four_faces_result, selfies) -> None:
    """Every crop of every image in one face-model call; the same arrays as one call per image.

    U-GAT-IT normalises per sample, so the batch changes no statistic; only the CPU kernels
    for another batch size round differently (~1e-6). A crop value at a .5 rounding edge then
    moves 1 level, which after cubic resampling, colour harmonisation and two roundings
    (composite, strength mix) is at most 2 levels on a few output pixels. Here the arrays come
    out identical; the small 64 px video test model shows the 1-2 level case."""
    res = four_faces_result
    selfie = read_image(selfies[0])
    selfie_faces = stylizer.detect(selfie)
    assert len(selfie_faces) == 1
    images = [res.photo, selfie, selfie]
    faces = [[d.face for d in res.faces], selfie_faces, selfie_faces]
    weights = [[1.0, 0.3, 0.0, 1.0], [1.0], [0.6]]
    calls: list[int] = []
    run = stylizer._run_face_model  # the one place the face model (or its fused graph) is called

    def counting(x):
        calls.append(x.shape[0])
        return run(x)

    stylizer._run_face_model = counting
    try:
        outs = stylizer.stylize_batch(images, faces=faces, face_weights=weights, strength=0.8)
    finally:
        del stylizer._run_face_model
    assert calls == [3 + 1 + 1]  # one call, the weight-0 face skipped
    for img, fs, ws, out in zip(images, faces, weights, outs):
        alone = stylizer.stylize(img, faces=fs, face_weights=ws, strength=0.8)
        assert out.dtype == np.uint8 and out.shape == img.shape
        diff = np.abs(out.astype(int) - alone.astype(int))
        assert diff.max() <= 2 and (diff > 0).mean() < 1e-3, (diff.max(), (diff > 0).mean())
    assert not np.array_equal(outs[1], outs[2])
    # chunked face batches and strength 0 give the same as well
    chunked = stylizer.stylize_batch(images, faces=faces, face_weights=weights, strength=0.8, face_batch=2)
    assert all(np.abs(a.astype(int) - b.astype(int)).max() <= 2 for a, b in zip(chunked, outs))
    # the crops themselves: within 1 level whatever the batch
    crops = [d.crop for d in res.faces]
    batched = stylizer.stylize_crops(crops)[0]
    for c, b in zip(crops, batched):
        assert np.abs(stylizer.stylize_crops([c])[0][0].astype(int) - b.astype(int)).max() <= 1
    zero = stylizer.stylize_batch(images, faces=faces, strength=0.0)
    assert all(np.array_equal(a, b) for a, b in zip(zero, images))


# ----------------------------------------------------------------------------- models, options, copies


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_models_of_another_dtype_run_in_float32(face_model, scene_model, dtype) -> None:
    """An fp16/bf16/float64 face or scene module is cast to float32 in place (the inputs are
    float32; ``precision`` chooses the compute precision), not a torch dtype error at construction."""
    import copy

    face = copy.deepcopy(face_model).to(dtype)
    st = Stylizer(face_model=face, background_model=None, precision="fp32")  # the warm-up runs the face model
    assert st.face_model is face and next(face.parameters()).dtype == torch.float32
    crop = np.full((st.face_size, st.face_size, 3), 90, np.uint8)
    ref = Stylizer(face_model=copy.deepcopy(face_model), background_model=None, precision="fp32", warmup=False)
    if dtype == torch.float64:  # float32 -> float64 -> float32 is exact
        assert np.array_equal(st.stylize_crops([crop])[0][0], ref.stylize_crops([crop])[0][0])
    scene = copy.deepcopy(scene_model).to(dtype)
    photo = np.full((40, 48, 3), 120, np.uint8)
    out = Stylizer(face_model=None, background_model=scene, precision="fp32", warmup=False)(photo)
    assert out.shape == photo.shape and next(scene.parameters()).dtype == torch.float32


def test_from_pretrained_blames_the_callers_typo_not_the_file(tmp_path, face_model) -> None:
    """An unknown keyword argument is the caller's: a ConfigError naming it and no file; an unknown
    key in pipeline.json's options names the file."""
    import json

    folder = Stylizer(face_model=face_model, background_model=None, warmup=False).save_pretrained(tmp_path / "p")
    for where in (folder, folder / "face"):  # a pipeline folder, a plain model folder
        with pytest.raises(ConfigError, match="from_pretrained: unknown option 'strenght'") as info:
            Stylizer.from_pretrained(where, strenght=0.5)
        assert info.value.path is None and "pipeline.json" not in str(info.value)
    config = folder / "pipeline.json"
    doc = json.loads(config.read_text())
    doc["options"]["strenght"] = 0.5
    config.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="options: unknown option 'strenght'") as info:
        Stylizer.from_pretrained(folder, strength=0.5)
    assert info.value.path == str(config)


def test_options_set_later_are_checked_as_in_the_constructor(face_model) -> None:
    st = Stylizer(face_model=face_model, background_model=None, warmup=False)
    for name, value, needle in (("strength", 1.5, "strength: expected a number in"),
                                ("strength", "0.5", "strength: expected a number in"),
                                ("max_faces", "1", "max_faces: expected None or an integer"),
                                ("face_size", 130, "face_size: expected a multiple of 4"),
                                ("blend", "smudge", "blend: expected one of"),
                                ("harmonize", 2.0, "harmonize: expected True, False"),
                                ("padding", "zero", "padding: expected one of"),
                                ("mask_shape", {"width": 1.0}, "mask_shape: expected a facetoon.blend.MaskShape"),
                                ("face_score_ratio", 1.0, r"face_score_ratio: expected a number in \[0, 1\)")):
        before = getattr(st, name)
        with pytest.raises(ConfigError, match=needle):
            setattr(st, name, value)
        assert getattr(st, name) == before, name
    st.strength, st.max_faces, st.harmonize, st.face_size = 0.25, np.int64(2), True, 96
    assert (st.strength, st.max_faces, st.harmonize, st.face_size) == (0.25, 2, 1.0, 96)
    assert type(st.max_faces) is int
    st.face_size = None  # back to the face model's training size
    assert st.face_size == face_model.config["img_size"]


def test_a_stylizer_pickles_and_deep_copies(stylizer, selfies) -> None:
    """The lock is not copied (each copy makes its own); the models are."""
    import copy
    import pickle

    img = read_image(selfies[3])
    want = stylizer(img)
    for other in (copy.deepcopy(stylizer), pickle.loads(pickle.dumps(stylizer))):
        assert other._lock is not stylizer._lock and other.face_model is not stylizer.face_model
        assert other._background is not None and other._background.model is other.background_model
        assert np.array_equal(other(img), want)


def test_result_reprs_are_short(astronaut_result) -> None:
    """Notebooks print shapes and dtypes, not whole arrays."""
    res = astronaut_result
    text, face = repr(res), repr(res.faces[0])
    assert len(text) < 500 and "background=uint8(512, 512, 3)" in text and "faces=[1 FaceDetails]" in text
    assert len(face) < 500 and "mask=float32(512, 512)" in face and "Face(box=" in face
    assert "[[" not in text + face


# ----------------------------------------------------------------------------- background_weights of the wrong kind


def _tiny_animegan_run(root: Path) -> tuple[Path, list[Path]]:
    """A training run folder as ``facetoon train animegan --out RUN`` leaves it: ``config.toml`` and
    ``checkpoints/step_*.pt``, dicts of the keys facetoon.train.loop.Trainer saves (tiny states)."""
    run = root / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.toml").write_text('[train]\nversion = "v2"\nimg_size = 32\niterations = 2\n')
    checkpoints = []
    for step in (1, 2):
        checkpoints.append(run / "checkpoints" / f"step_{step:08d}.pt")
        torch.save({"step": step, "train_seconds": 0.5, "ema": None, "best": None, "world_size": 1,
                    "trainer": {"gen": {"net.out.weight": torch.zeros(3, 32, 1, 1)}, "disc": {}},
                    "config": {"version": "v2", "img_size": 32, "iterations": 2}}, checkpoints[-1])
    return run, checkpoints


def _weights_error(**kwargs) -> str:
    with pytest.raises(WeightsError) as err:
        Stylizer(face_model=None, warmup=False, **kwargs)
    msg = str(err.value)
    assert "\n" not in msg and "--background" not in msg, msg  # Python's argument names, one line
    return msg


def test_background_weights_file_of_a_weights_folder_names_the_folder(tmp_path, scene_model) -> None:
    """The model.safetensors of a weights folder (or an export's generator/) is not read as an
    AnimeGANv2 port state dict ("77 tensor(s) of unknown name"): the message says to pass the folder."""
    folder = save_pretrained(scene_model, tmp_path / "export" / "generator")
    msg = _weights_error(background_model="animegan", background_weights=folder / "model.safetensors")
    assert f"pass its folder {folder}" in msg and "unknown name" not in msg, msg
    # with the other scene model, it also says which one the folder holds
    msg = _weights_error(background_model="cartoongan", background_weights=folder / "model.safetensors")
    assert f"pass its folder {folder}" in msg and "use background_model='animegan'" in msg, msg
    assert Stylizer(face_model=None, background_weights=tmp_path / "export", warmup=False).background_model is not None


def test_background_weights_training_checkpoint_or_run_says_export_it_first(tmp_path) -> None:
    """A facetoon training checkpoint ("entry 'step' is not a named tensor") or run folder
    ("config.json is missing") as background_weights: export it first, with the command."""
    run, (older, latest) = _tiny_animegan_run(tmp_path)
    export = f"export it first with `facetoon export animegan {run} OUT"
    msg = _weights_error(background_weights=latest)
    assert "a facetoon training checkpoint" in msg and f"{export}` and pass OUT as background_weights" in msg, msg
    msg = _weights_error(background_weights=older)  # not the latest: export names it
    assert f"{export} --checkpoint {older}`" in msg, msg
    for folder in (run, run / "checkpoints"):
        msg = _weights_error(background_weights=folder)
        assert "a facetoon training run folder" in msg and f"{export}`" in msg and "config.json" not in msg, msg
    # loading the checkpoint to say so never runs pickled code: a file that would is refused
    marker = tmp_path / "code_ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    torch.save({"step": 1, "trainer": Payload(), "config": {}}, tmp_path / "evil.pt")
    msg = _weights_error(background_weights=tmp_path / "evil.pt")
    assert "never runs code" in msg and not marker.exists(), msg


def test_background_weights_folder_of_the_other_scene_model_names_it(tmp_path, face_model, scene_model) -> None:
    """A converted CartoonGAN folder given to 'animegan' (and the reverse) says which
    background_model takes it; the face model's folder says face_model."""
    torch.manual_seed(2)
    cartoon = save_pretrained(create_model("cartoongan", n_res_blocks=1), tmp_path / "cartoongan")
    anime = save_pretrained(scene_model, tmp_path / "animegan")
    face = save_pretrained(face_model, tmp_path / "face")
    msg = _weights_error(background_model="animegan", background_weights=cartoon)
    assert "holds a 'cartoongan' model" in msg and "use background_model='cartoongan'" in msg, msg
    msg = _weights_error(background_model="cartoongan", background_weights=anime)
    assert "holds a 'animegan' model" in msg and "use background_model='animegan'" in msg, msg
    msg = _weights_error(background_model="animegan", background_weights=face)
    assert "it is a face model, for face_model" in msg, msg
    assert Stylizer(face_model=None, background_model="cartoongan", background_weights=cartoon,
                    warmup=False).background_model.arch == "cartoongan"


def test_background_weights_official_cartoongan_file_says_use_cartoongan(shared, tmp_path) -> None:
    """The official <Style>_net_G_float.pth given to 'animegan' (the default) is not "94 tensor(s) of
    unknown name": it says to use background_model='cartoongan'."""
    hayao = shared / HAYAO
    msg = _weights_error(background_weights=hayao)
    assert "these are official CartoonGAN weights: use background_model='cartoongan'" in msg, msg
    assert "unknown name" not in msg
    # an unknown state dict still says what background_weights takes
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    msg = _weights_error(background_weights=tmp_path / "other.pth")
    assert "unknown name" in msg and "an AnimeGANv2 state dict file of the PyTorch port" in msg, msg
