"""Background stylizer: exact whole-image path, padding, seamless tiling, fast path, speed mode."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from facetoon.background import BackgroundStylizer, guided_upsample
from facetoon.errors import ConfigError, InvalidImageError, WeightsError
from facetoon.io import read_image
from facetoon.models.animegan import Generator
from facetoon.ops.tiling import NormStatsCache, axis_weights, plan_tiles, tile_starts, tiled_apply


@pytest.fixture(autouse=True)
def _one_thread():
    # these tests run many small forwards; one thread is faster and robust on a shared machine
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def v2() -> Generator:
    torch.manual_seed(0)
    g = Generator("v2").eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in g.modules():
            if isinstance(m, torch.nn.GroupNorm):
                m.weight.copy_(1 + 0.3 * torch.randn(m.weight.shape, generator=gen))
                m.bias.copy_(0.3 * torch.randn(m.bias.shape, generator=gen))
    return g


@pytest.fixture(scope="module")
def photo(shared) -> np.ndarray:
    img = read_image(shared / "fixtures" / "four_faces.jpg")
    return cv2.resize(img, (256, 176), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def cartoongan(shared):
    from facetoon.convert.cartoongan import load_official_cartoongan

    path = shared / "models" / "cartoongan" / "Hayao_net_G_float.pth"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return load_official_cartoongan(path)


def _model_uint8(model, img):
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.no_grad():
        y = model(x)[0].permute(1, 2, 0)
    return ((y + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()


def test_whole_image_is_the_model_output(v2, photo):
    out = BackgroundStylizer(v2)(photo)
    assert out.shape == photo.shape and out.dtype == np.uint8
    assert np.array_equal(out, _model_uint8(v2, photo))


def test_pads_to_the_architecture_multiple_and_crops_back(cartoongan, photo):
    odd = photo[:-3, :-1]  # 173 x 255: not multiples of 4
    out = BackgroundStylizer(cartoongan)(odd)
    assert out.shape == odd.shape
    tiny = BackgroundStylizer(Generator("v1").eval())(photo[:5, :7])
    assert tiny.shape == (5, 7, 3)


def test_tile_weights_are_a_smooth_partition_of_unity():
    starts = tile_starts(300, 128, 48)
    assert starts[0] == 0 and starts[-1] == 300 - 128
    assert all(b - a <= 128 - 48 for a, b in zip(starts, starts[1:]))
    ws = axis_weights(starts, 128, 32)
    total = torch.zeros(300, dtype=torch.float64)
    for s, w in zip(starts, ws):
        total[s:s + 128] += w
        assert w.min() >= 0 and w.max() <= 1
        assert (w[1:] - w[:-1]).abs().max() < 0.1  # no jumps
    assert torch.allclose(total, torch.ones_like(total))
    assert ws[1][:8].max() == 0 and ws[0][-8:].max() == 0  # guard bands


def test_tiling_itself_is_seamless_with_shared_statistics(cartoongan, photo):
    """With the whole image's normalisation statistics, tiles reproduce the untiled output."""
    x = torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 127.5 - 1
    plan = plan_tiles(176, 256, 144 * 144, 64, 4)
    assert plan.n_tiles == 6
    cache = NormStatsCache(cartoongan)
    with torch.no_grad():
        with cache.recording():
            whole = cartoongan(x)
        with cache.replaying():
            tiled = tiled_apply(cartoongan, x, plan, guard=16)
    diff = (tiled - whole).abs() * 127.5
    print(f"tiled (whole-image stats) vs untiled: max {diff.max():.3f} mean {diff.mean():.4f} levels")
    assert diff.max() < 1.0


def test_a_strip_is_tiled_along_its_long_side_only(v2):
    """An image narrower than the overlap needs on its short side is split along the long side
    only; that side has no overlap to fit (it raised ConfigError blaming tile_overlap)."""
    plan = plan_tiles(40, 600, 64 * 64, 32, 1)
    assert plan.ys == (0,) and plan.tile_h == 40 and len(plan.xs) > 1
    assert plan_tiles(100, 30000, 2_400_000, 128, 4).ys == (0,)
    with pytest.raises(ConfigError, match="tile_overlap=64"):  # the long side still needs room
        plan_tiles(40, 600, 64 * 64, 64, 1)
    rng = np.random.default_rng(0)
    strip = cv2.resize(rng.integers(0, 256, (4, 60, 3), dtype=np.uint8), (600, 40))  # smooth
    tiled = BackgroundStylizer(v2, max_pixels_per_tile=96 * 96, tile_overlap=32, tile_guard=8)(strip)
    whole = BackgroundStylizer(v2)(strip)
    assert tiled.shape == strip.shape
    diff = np.abs(tiled.astype(int) - whole)
    print(f"strip, tiled vs untiled: mean {diff.mean():.2f} levels")
    assert diff.mean() < 8.0  # as for the photo (statistics from a downscaled pass)


def _border_excess(tiled: np.ndarray, whole: np.ndarray, axis: int, borders: list[int]) -> list[float]:
    """Mean |gradient| across each border line, tiled minus untiled (levels)."""
    gt = np.abs(np.diff(tiled, axis=axis)).mean(axis=(1 - axis, 2))
    gu = np.abs(np.diff(whole, axis=axis)).mean(axis=(1 - axis, 2))
    return [float(gt[b - 1] - gu[b - 1]) for b in borders]


def _overlap_lines(starts: tuple[int, ...], tile: int) -> list[int]:
    """Every pixel line inside the overlaps of consecutive tiles, ends included: where the
    hand-over from one tile to the next happens (the raised-cosine ramp is centred there)."""
    lines: set[int] = set()
    for a, b in zip(starts[:-1], starts[1:]):
        lines.update(range(b, a + tile + 1))
    return sorted(lines)


def _seam_excess(tiled: np.ndarray, whole: np.ndarray, plan) -> tuple[float, float]:
    """Excess of the tiled result's mean |gradient| over the untiled one's, per pixel line, in
    levels: the largest on any line across an overlap band, and the largest on the other lines.
    Tiles see slightly different normalisation statistics, so content differs a little
    everywhere; a seam shows as a peak in the overlaps above what is seen elsewhere."""
    over, other = [], []
    for axis, starts, tile, n in ((1, plan.xs, plan.tile_w, plan.width), (0, plan.ys, plan.tile_h, plan.height)):
        lines = set(_overlap_lines(starts, tile))
        ex = _border_excess(tiled, whole, axis, list(range(1, n)))
        over += [e for i, e in zip(range(1, n), ex) if i in lines]
        other += [e for i, e in zip(range(1, n), ex) if i not in lines]
    return max(over), max(other)


def test_tiled_stylizer_agrees_and_has_no_seam(cartoongan, photo):
    whole = BackgroundStylizer(cartoongan)(photo).astype(float)
    stylizer = BackgroundStylizer(cartoongan, max_pixels_per_tile=144 * 144, tile_overlap=64, tile_guard=16)
    tiled = stylizer(photo).astype(float)
    diff = np.abs(tiled - whole)
    plan = plan_tiles(176, 256, 144 * 144, 64, 4)
    assert plan.n_tiles > 1
    over, other = _seam_excess(tiled, whole, plan)
    print(f"tiled (downscaled-pass stats) vs untiled: max {diff.max():.0f} mean {diff.mean():.2f} levels; "
          f"largest gradient excess across the overlaps {over:.2f}, elsewhere {other:.2f}")
    assert diff.mean() < 8.0
    # no gradient peak in the hand-over bands beyond what the statistics cause elsewhere
    # (typical |gradient| here is ~20 levels)
    assert over < other + 1.0 and over < 4.0


def test_fast_path_close_to_fp32(v2, photo):
    a = BackgroundStylizer(v2)(photo).astype(int)
    b = BackgroundStylizer(v2, precision="fast")(photo).astype(int)
    d = np.abs(a - b)
    assert d.mean() < 1.0 and d.max() <= 12


def test_fast_path_tiled(v2, photo):
    a = BackgroundStylizer(v2, precision="fast")(photo).astype(float)
    b = BackgroundStylizer(v2, precision="fast", max_pixels_per_tile=144 * 144, tile_overlap=64,
                           tile_guard=16)(photo).astype(float)
    assert b.shape == a.shape and np.abs(a - b).mean() < 8.0
    over, other = _seam_excess(b, a, plan_tiles(176, 256, 144 * 144, 64, 4))
    print(f"AnimeGANv2 fast path, tiled vs untiled: largest gradient excess across the overlaps {over:.2f}, "
          f"elsewhere {other:.2f}")
    assert over < other + 1.0 and over < 4.0


def _two_tones() -> list[np.ndarray]:
    """Two 96x128 images of different tone: statistics of one used for the other would show."""
    rng = np.random.default_rng(0)
    noise = cv2.GaussianBlur(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8), (0, 0), 2)
    return [noise // 3, 255 - noise // 3]


def _run_in_threads(fn, inputs: list, repeats: int = 3) -> list[list]:
    """``fn(inputs[i])`` ``repeats`` times in thread ``i``, all threads started together."""
    import threading

    barrier = threading.Barrier(len(inputs))
    results: list[list] = [[] for _ in inputs]
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            barrier.wait()
            for _ in range(repeats):
                results[i].append(fn(inputs[i]))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


@pytest.mark.parametrize("precision", ["fp32", "fast"])
def test_one_stylizer_shared_by_two_threads(v2, precision):
    """A tiled call keeps per-call normalisation statistics on the model (the reference path
    patches its norm layers, the fused graph records them on itself): calls from several threads
    on one BackgroundStylizer are serialised, so each gets its single-threaded output."""
    st = BackgroundStylizer(v2, precision=precision, max_pixels_per_tile=64 * 64, tile_overlap=32, tile_guard=8)
    images = _two_tones()
    assert plan_tiles(96, 128, st.max_pixels, st.overlap).n_tiles > 1
    alone = [st(im) for im in images]
    assert not np.array_equal(alone[0], alone[1])
    for i, outs in enumerate(_run_in_threads(st, images)):
        assert all(np.array_equal(out, alone[i]) for out in outs), i


def test_two_stylizers_on_one_module_take_turns(v2):
    """Two fp32 BackgroundStylizers built on one module instance patch the same norm layers in a
    tiled call: they share the module's lock (``model_lock``), so calls from two threads still
    give each image its single-threaded output; stylizers of different instances do not wait."""
    from facetoon.ops.tiling import model_lock

    kw = dict(max_pixels_per_tile=64 * 64, tile_overlap=32, tile_guard=8)
    first, second = BackgroundStylizer(v2, **kw), BackgroundStylizer(v2, **kw)
    assert first._lock is second._lock is model_lock(v2)
    assert model_lock(Generator("v2")) is not model_lock(v2)
    images = _two_tones()
    alone = [first(im) for im in images]
    runners = [first, second]
    results = _run_in_threads(lambda i: runners[i](images[i]), [0, 1], repeats=4)
    for i, outs in enumerate(results):
        assert all(np.array_equal(out, alone[i]) for out in outs), i


@pytest.mark.parametrize("precision", ["fp32", "fast"])
def test_a_module_of_another_dtype_is_cast_to_float32(v2, photo, precision):
    """A float64 (or bf16) scene module runs on the float32 inputs, cast in place, instead of
    torch's "expected scalar type Double but found Float"; float64 weights from float32 are exact."""
    import copy

    want = BackgroundStylizer(v2, precision=precision)(photo)
    double = copy.deepcopy(v2).double()
    assert np.array_equal(BackgroundStylizer(double, precision=precision)(photo), want)
    assert next(double.parameters()).dtype == torch.float32
    assert BackgroundStylizer(copy.deepcopy(v2).bfloat16(), precision=precision)(photo).shape == photo.shape


def test_pickles_and_deep_copies(v2, photo):
    """The model lock is not copied: a copy locks its own model (see model_lock)."""
    import copy
    import pickle

    from facetoon.ops.tiling import model_lock

    st = BackgroundStylizer(copy.deepcopy(v2), precision="fast")
    want = st(photo)
    for other in (copy.deepcopy(st), pickle.loads(pickle.dumps(st))):
        assert other.model is not st.model and other._lock is model_lock(other.model) is not st._lock
        assert np.array_equal(other(photo), want)


def test_non_finite_fast_path_falls_back_to_fp32(v2, photo, caplog):
    """A fast-path kernel returning NaN must not become a black image: recomputed in fp32."""
    class Broken(torch.nn.Module):
        def forward(self, x):
            return torch.full_like(x, float("nan"))

    st = BackgroundStylizer(v2, precision="fast")
    st._net = Broken()  # stands in for a low-precision kernel failing on some shape
    with caplog.at_level("WARNING", logger="facetoon"):
        out = st(photo)
    assert np.array_equal(out, BackgroundStylizer(v2)(photo))
    assert "recomputing in fp32" in caplog.text
    bad = Generator("v2").eval()
    with torch.no_grad():
        bad.net.out.weight.fill_(float("nan"))
    with pytest.raises(WeightsError, match="non-finite"):
        BackgroundStylizer(bad)(photo)


def test_guided_upsample_restores_edges(photo):
    gray = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    target = np.dstack([gray] * 3)
    low = cv2.resize(target, (128, 88), interpolation=cv2.INTER_AREA)
    guided = guided_upsample(low, photo)
    bilinear = cv2.resize(low, (256, 176), interpolation=cv2.INTER_LINEAR)
    err_g = np.abs(guided.astype(float) - target).mean()
    err_b = np.abs(bilinear.astype(float) - target).mean()
    assert guided.shape == photo.shape and err_g < 0.6 * err_b


def test_speed_mode_runs(v2, photo):
    out = BackgroundStylizer(v2, internal_scale=0.5)(photo)
    assert out.shape == photo.shape


def test_bad_arguments(v2):
    s = BackgroundStylizer(v2)
    with pytest.raises(InvalidImageError, match="uint8"):
        s(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(InvalidImageError):
        s(np.zeros((8, 8), np.uint8))
    with pytest.raises(InvalidImageError, match="empty"):
        s(np.zeros((0, 8, 3), np.uint8))
    with pytest.raises(ConfigError):
        BackgroundStylizer(v2, precision="int8")
    with pytest.raises(ConfigError):
        BackgroundStylizer(v2, internal_scale=0)
    with pytest.raises(ConfigError):
        BackgroundStylizer(v2, tile_overlap=16, tile_guard=8)
    # touching tiles (no overlap) used to be accepted, then failed on a 128 px image with 64 px tiles
    with pytest.raises(ConfigError, match="need tile_overlap > 2 \\* tile_guard"):
        BackgroundStylizer(v2, max_pixels_per_tile=64 * 64, tile_overlap=0, tile_guard=0)
    assert BackgroundStylizer(v2, max_pixels_per_tile=64 * 64, tile_overlap=1, tile_guard=0)(
        np.zeros((128, 128, 3), np.uint8)).shape == (128, 128, 3)


def test_retain_freed_memory_in_a_subprocess():
    import subprocess
    import sys

    code = ("import numpy as np, torch\n"
            "from facetoon.background import BackgroundStylizer\n"
            "from facetoon.models.animegan import Generator\n"
            "s = BackgroundStylizer(Generator('v2').eval(), precision='fast', retain_memory=True)\n"
            "from facetoon import background\n"
            "print(background._RETAINING, s(np.zeros((16, 16, 3), np.uint8)).shape)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-4:] == ["True", "(16,", "16,", "3)"]
