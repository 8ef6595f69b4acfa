"""Colour-space ops: shapes, ranges, round trips, references, bad input, gradients, modules."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facetoon.errors import InvalidImageError
from facetoon.ops import color

FUNCS = [color.rgb_to_grayscale, color.rgb_to_yuv, color.yuv_to_rgb, color.rgb_to_lab, color.lab_to_rgb,
         color.rgb_to_bgr]


@pytest.mark.parametrize("fn", FUNCS)
@pytest.mark.parametrize("batch", [(), (2,), (2, 3)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shapes_and_dtype(fn, batch, dtype):
    x = torch.rand(*batch, 3, 5, 7, dtype=dtype)
    y = fn(x)
    channels = 1 if fn is color.rgb_to_grayscale else 3
    assert y.shape == (*batch, channels, 5, 7)
    assert y.dtype == dtype


@pytest.mark.parametrize("fn", FUNCS)
def test_bad_input_raises(fn):
    with pytest.raises(InvalidImageError, match="expected shape"):
        fn(torch.rand(1, 4, 5, 5))
    with pytest.raises(InvalidImageError, match="floating"):
        fn(torch.zeros(1, 3, 5, 5, dtype=torch.uint8))
    with pytest.raises(InvalidImageError, match="Tensor"):
        fn(np.zeros((3, 5, 5), np.float32))
    with pytest.raises(InvalidImageError):
        fn(torch.rand(3, 5))


def test_grayscale_weights_and_pm1_range():
    x = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    assert color.rgb_to_grayscale(x).item() == pytest.approx(0.299)
    # [-1, 1] inputs stay in [-1, 1] because the weights sum to one
    x = torch.rand(4, 3, 8, 8) * 2 - 1
    g = color.rgb_to_grayscale(x)
    assert g.min() >= -1 and g.max() <= 1
    assert torch.allclose(color.grayscale_to_rgb(g)[:, 1], g[:, 0])


def test_yuv_matches_skimage_and_round_trips():
    from skimage.color import rgb2yuv

    x = torch.rand(2, 3, 6, 9, dtype=torch.float64)
    ref = rgb2yuv(x[1].permute(1, 2, 0).numpy())
    assert np.allclose(color.rgb_to_yuv(x)[1].permute(1, 2, 0).numpy(), ref, atol=1e-6)
    assert torch.allclose(color.yuv_to_rgb(color.rgb_to_yuv(x)), x, atol=1e-10)
    yuv = color.rgb_to_yuv(torch.rand(1000, 3, 1, 1, dtype=torch.float64))
    assert yuv[:, 0].min() >= 0 and yuv[:, 0].max() <= 1
    assert yuv[:, 1].abs().max() <= 0.437 and yuv[:, 2].abs().max() <= 0.616


def test_lab_matches_skimage_and_round_trips():
    from skimage.color import rgb2lab

    x = torch.rand(3, 4, 5, dtype=torch.float64)
    ref = rgb2lab(x.permute(1, 2, 0).numpy())
    lab = color.rgb_to_lab(x)
    assert np.allclose(lab.permute(1, 2, 0).numpy(), ref, atol=0.01)
    assert torch.allclose(color.lab_to_rgb(lab), x, atol=1e-8)
    white = color.rgb_to_lab(torch.ones(3, 1, 1, dtype=torch.float64))
    assert white[0].item() == pytest.approx(100.0, abs=1e-3)
    assert white[1:].abs().max() < 1e-3


def test_bgr_is_an_involution():
    x = torch.rand(2, 3, 4, 4)
    assert torch.equal(color.rgb_to_bgr(color.rgb_to_bgr(x)), x)
    assert torch.equal(color.rgb_to_bgr(x)[:, 0], x[:, 2])


@pytest.mark.parametrize("fn", [color.rgb_to_grayscale, color.rgb_to_yuv, color.yuv_to_rgb, color.rgb_to_lab])
def test_gradcheck(fn):
    x = (torch.rand(1, 3, 3, 4, dtype=torch.float64) * 0.8 + 0.1).requires_grad_()
    assert torch.autograd.gradcheck(fn, (x,))


@pytest.mark.parametrize("module, fn", [
    (color.RgbToGrayscale(), color.rgb_to_grayscale), (color.RgbToYuv(), color.rgb_to_yuv),
    (color.YuvToRgb(), color.yuv_to_rgb), (color.RgbToLab(), color.rgb_to_lab),
    (color.LabToRgb(), color.lab_to_rgb),
])
def test_module_equals_function(module, fn):
    x = torch.rand(2, 3, 4, 4)
    assert torch.equal(module(x), fn(x))


@pytest.mark.parametrize("fn", [color.rgb_to_yuv, color.rgb_to_lab, color.RgbToYuv(), color.RgbToLab()])
def test_rgb_outside_0_1_is_refused(fn):
    """A [-1, 1] model tensor (facetoon.io.to_tensor) gave wrong colours silently."""
    from facetoon.io import to_tensor

    img = np.random.default_rng(0).integers(0, 256, (6, 7, 3), dtype=np.uint8)
    x = to_tensor(img)
    message = r"^rgb_to_(yuv|lab)\(image\): expected RGB in \[0, 1\].*\(x \+ 1\) / 2"
    with pytest.raises(InvalidImageError, match=message):
        fn(x)
    if fn is color.rgb_to_lab or isinstance(fn, color.RgbToLab):  # it would clamp values above 1
        with pytest.raises(InvalidImageError, match="x / 255"):
            fn((x + 1) * 127.5)
    else:  # linear: values above 1 pass through, scaled alike
        assert torch.allclose(fn((x + 1) * 127.5), fn((x + 1) / 2) * 255, atol=1e-3)
    ok = fn((x + 1) / 2)  # the conversion the message suggests
    assert ok.shape == x.shape and torch.isfinite(ok).all()
    # rounding-level excursions (interpolation, float arithmetic) are accepted
    assert torch.isfinite(fn(torch.tensor([-5e-4, 0.5, 1 + 5e-4]).view(3, 1, 1))).all()


def test_internal_callers_pass_0_1():
    """facetoon.losses' colour loss maps its [-1, 1] tensors (tanh outputs reach +-1) to [0, 1]."""
    from facetoon.losses.animegan import color_loss

    photo = torch.rand(2, 3, 8, 8) * 2 - 1
    fake = torch.tanh(torch.randn(2, 3, 8, 8) * 30)  # saturates at exactly -1 and 1
    assert fake.min() == -1 and fake.max() == 1
    assert torch.isfinite(color_loss(photo, fake))
