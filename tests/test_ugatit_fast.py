"""Tests of the fused U-GAT-IT inference module (:mod:`facetoon.models.ugatit_fast`).

The fused module must compute the function of :class:`facetoon.models.ugatit.Generator`: in
float32 up to float rounding, in bfloat16 about as closely as the reference's own bf16 autocast
path. The generators here have random weights with non-trivial ``rho`` (ILN and AdaILN) and ILN
``gamma``/``beta``, so that every term of the folded normalisations matters.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facetoon.errors import ConfigError, InvalidImageError
from facetoon.io import to_image
from facetoon.layers import ILN, AdaILN
from facetoon.models.ugatit import Generator
from facetoon.models.ugatit_fast import FastGenerator, fuse_for_inference
from facetoon.ops.fused import instance_norm_stats
from facetoon.runtime import cpu_has_fast_bf16, to_channels_last
from train_helpers import one_thread  # noqa: F401 (an autouse fixture: tiny tensors, one thread)


def _randomise_norms(g: Generator, seed: int = 1) -> Generator:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in g.modules():
            if isinstance(m, (ILN, AdaILN)):
                m.rho.copy_(torch.rand(m.rho.shape, generator=gen))
            if isinstance(m, ILN):
                m.gamma.copy_(1 + 0.3 * torch.randn(m.gamma.shape, generator=gen))
                m.beta.copy_(0.3 * torch.randn(m.beta.shape, generator=gen))
    return g


def _generator(ngf: int, n_res: int = 2, light: bool = True, img_size: int = 128, seed: int = 0) -> Generator:
    torch.manual_seed(seed)
    return _randomise_norms(Generator(ngf=ngf, n_res=n_res, img_size=img_size, light=light).eval(), seed + 1)


@pytest.fixture(scope="module")
def light() -> Generator:
    return _generator(ngf=16)


@pytest.fixture(scope="module")
def light_fp32(light: Generator) -> FastGenerator:
    return fuse_for_inference(light, torch.float32)


def _max_diffs(out: tuple[torch.Tensor, ...], ref: tuple[torch.Tensor, ...]) -> list[float]:
    assert len(out) == len(ref) == 3
    for o, r in zip(out, ref):
        assert o.shape == r.shape
    return [float((o.float() - r).abs().max()) for o, r in zip(out, ref)]


@pytest.mark.parametrize("size", [(128, 128), (96, 128)])
def test_fused_fp32_equals_reference(light: Generator, light_fp32: FastGenerator, size: tuple[int, int]) -> None:
    x = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.no_grad():
        ref = light(x)
    out = light_fp32(x)
    image, cam_logit, heatmap = out
    assert image.shape == (2, 3, *size) and cam_logit.shape == (2, 2)
    assert heatmap.shape == (2, 1, size[0] // 4, size[1] // 4)
    assert cam_logit.dtype == heatmap.dtype == torch.float32
    assert float(ref[1].abs().max()) > 0.05 and float(ref[2].max()) > 0.5  # non-trivial outputs
    assert max(_max_diffs(out, ref)) < 1e-4


def test_fused_fp32_any_size_the_reference_accepts(light: Generator, light_fp32: FastGenerator) -> None:
    """Same outputs wherever the reference runs; an InvalidImageError wherever it does not."""
    gen = torch.Generator().manual_seed(3)
    for size in [(8, 8), (8, 12), (12, 8), (20, 36), (36, 60), (4, 4), (4, 8), (30, 48), (32, 30)]:
        x = torch.rand(1, 3, *size, generator=gen) * 2 - 1
        try:
            with torch.no_grad():
                ref = light(x)
        except (ValueError, RuntimeError):  # InvalidImageError, or torch's own size errors
            with pytest.raises(InvalidImageError):
                light_fp32(x)
            continue
        assert max(_max_diffs(light_fp32(x), ref)) < 1e-4, size
    with pytest.raises(InvalidImageError, match=r"\(B, 3, H, W\)"):
        light_fp32(torch.rand(1, 4, 16, 16))


def test_fused_and_reference_share_the_input_check(light: Generator, light_fp32: FastGenerator) -> None:
    """The same InvalidImageError, word for word, from the reference and the fused module."""
    full = _generator(ngf=8, n_res=1, light=False, img_size=32)
    cases = [(light, light_fp32, s) for s in [(1, 3, 4, 4), (1, 1, 32, 32), (1, 3, 30, 32), (3, 32, 32)]]
    cases.append((full, fuse_for_inference(full, torch.float32), (1, 3, 64, 64)))
    for ref, fast, shape in cases:
        x = torch.zeros(shape)
        with pytest.raises(InvalidImageError) as from_ref, torch.no_grad():
            ref(x)
        with pytest.raises(InvalidImageError) as from_fast:
            fast(x)
        assert str(from_ref.value) == str(from_fast.value), shape


def test_fused_input_layouts_and_dtypes(light: Generator, light_fp32: FastGenerator) -> None:
    x = torch.rand(1, 3, 32, 48) * 2 - 1
    with torch.no_grad():
        ref = light(x)
    for xi in (x.contiguous(memory_format=torch.channels_last), x.double()):
        assert max(_max_diffs(light_fp32(xi), ref)) < 1e-4
    # autocast around the call does not change the fused module's precision
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = light_fp32(x)
    assert out[0].dtype == torch.float32 and max(_max_diffs(out, ref)) < 1e-4


def test_fused_bf16_close_to_reference(light: Generator) -> None:
    fast = fuse_for_inference(light)
    assert isinstance(fast, FastGenerator) and fast.dtype == torch.bfloat16 and not fast.training
    x = torch.rand(1, 3, 96, 128, generator=torch.Generator().manual_seed(4)) * 2 - 1
    with torch.no_grad():
        ref = light(x)
    image, cam_logit, heatmap = fast(x)
    assert image.dtype == torch.bfloat16 and image.is_contiguous(memory_format=torch.channels_last)
    diff = (image.float() - ref[0]).abs()
    assert diff.max() < 0.05 and diff.mean() < 0.006  # < 6.4 and < 0.8 levels of 255
    assert (cam_logit - ref[1]).abs().max() < 0.05
    assert (heatmap - ref[2]).abs().max() < 0.02 * ref[2].abs().max()
    # as close as the reference module's own bf16 autocast path (channels-last, as the runtime)
    auto = to_channels_last(_generator(ngf=16))
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        auto_image = auto(x.contiguous(memory_format=torch.channels_last))[0].float()
    auto_diff = (auto_image - ref[0]).abs()
    assert diff.mean() < 1.25 * auto_diff.mean() and diff.max() < 1.5 * auto_diff.max()


def test_fused_full_generator() -> None:
    full = _generator(ngf=8, light=False, img_size=32)
    fast = fuse_for_inference(full, torch.float32)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        ref = full(x)
    assert max(_max_diffs(fast(x), ref)) < 1e-4
    with pytest.raises(InvalidImageError, match="32px only"):
        fast(torch.rand(1, 3, 48, 48))


def test_fused_does_not_follow_later_weight_changes() -> None:
    """The fused module owns its tensors (also in float32, where no cast copies them)."""
    g = _generator(ngf=8, n_res=1)
    fast = fuse_for_inference(g, torch.float32)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    before = [t.clone() for t in fast(x)]
    with torch.no_grad():
        for p in g.parameters():
            p.mul_(1.5)
    assert all(torch.equal(a, b) for a, b in zip(fast(x), before))


def test_fuse_rejects_other_modules_and_dtypes(light: Generator) -> None:
    with pytest.raises(ConfigError, match="U-GAT-IT Generator"):
        fuse_for_inference(torch.nn.Conv2d(3, 3, 1))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="float32 or bfloat16"):
        fuse_for_inference(light, torch.float16)


def test_instance_norm_stats_accuracy() -> None:
    """bf16 maps whose channel means are large against their spread: the mean within 2% of the
    standard deviation and the variance within 1% (float64 statistics of the same values)."""
    gen = torch.Generator().manual_seed(5)
    for shape in [(2, 32, 16, 24), (1, 64, 64, 64)]:
        offset = 20 * torch.rand(1, shape[1], 1, 1, generator=gen) - 10
        y = (torch.randn(shape, generator=gen) * 0.5 + offset).to(torch.bfloat16)
        y = y.contiguous(memory_format=torch.channels_last)
        mean, var = instance_norm_stats(y, torch.float64)
        assert mean.dtype == var.dtype == torch.float64 and mean.shape == shape[:2]
        ref_var, ref_mean = torch.var_mean(y.double(), dim=(2, 3), correction=0)
        assert ((mean - ref_mean).abs() / ref_var.sqrt()).max() < 0.02
        assert ((var - ref_var).abs() / ref_var).max() < 0.01
        # other layouts: exact float64 statistics
        m2, v2 = instance_norm_stats(y.contiguous(), torch.float64)
        assert torch.allclose(m2, ref_mean) and torch.allclose(v2, ref_var)


@pytest.mark.skipif(not cpu_has_fast_bf16(), reason="the fused face path needs native bf16 (precision 'fast')")
def test_stylizer_runs_the_fused_face_model() -> None:
    from facetoon.pipeline import Stylizer

    g = _generator(ngf=8, n_res=1, img_size=64)
    st = Stylizer(face_model=g, background_model=None, precision="fast", warmup=False)
    assert st.face_model is g and st.runtime.precision == "fast"
    crops = [np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(2)]
    calls: list[int] = []
    hook = g.register_forward_hook(lambda m, x, y: calls.append(x[0].shape[0]))
    try:
        styled, heat = st.stylize_crops(crops)
    finally:
        hook.remove()
    assert calls == [] and st._fused_face_for(g) is not None  # the fused graph ran, not the module
    assert len(styled) == 2 and styled[0].shape == (64, 64, 3) and styled[0].dtype == np.uint8
    assert heat[0] is not None and heat[0].shape == (64, 64)
    x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
    expected = to_image(fuse_for_inference(g)(x)[0].float())
    assert all(np.abs(a.astype(int) - b.astype(int)).max() <= 1 for a, b in zip(styled, expected))
    # the fused copy follows changes of the face model's weights
    with torch.no_grad():
        g.upsample[-2].weight.mul_(-1)
    flipped, _ = st.stylize_crops(crops)
    assert np.abs(flipped[0].astype(int) - styled[0].astype(int)).mean() > 10
