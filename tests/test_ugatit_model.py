"""Tests of the U-GAT-IT networks, their normalisation layers and their losses
(:mod:`facetoon.models.ugatit`, :mod:`facetoon.layers.norms`, :mod:`facetoon.losses.ugatit`).

The normalisations and losses are checked against their formulas written out independently here
in float64 numpy; the parameter counts against the figures of the authors' PyTorch release.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from facetoon.errors import InvalidImageError
from facetoon.layers import ILN, AdaILN, clip_rho, instance_layer_norm, normal_init_
from facetoon.losses.ugatit import (
    UGATITLossWeights,
    discriminator_adversarial_loss,
    generator_adversarial_loss,
    generator_cam_loss,
    lsgan_loss,
)
from facetoon.models import create_model, load_pretrained, save_pretrained
from facetoon.models.ugatit import Discriminator, Generator
from train_helpers import one_thread  # noqa: F401 (an autouse fixture: tiny tensors, one thread)


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---- parameter counts (reference implementation figures) ---------------------------------------
@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda: Generator(ngf=64, n_res=4, img_size=256, light=True), 10_589_888),
        (lambda: Generator(ngf=64, n_res=4, img_size=256, light=False), 278_959_808),
        (lambda: Generator(ngf=32, n_res=4, img_size=256, light=True), 2_653_024),
        (lambda: Discriminator(ndf=64, n_layers=7), 53_130_176),
        (lambda: Discriminator(ndf=64, n_layers=5), 3_290_560),
    ],
    ids=["light-G-ngf64", "full-G-ngf64", "light-G-ngf32", "global-D", "local-D"],
)
def test_parameter_counts_match_reference(build, expected: int) -> None:
    with torch.device("meta"):  # no memory for the 279 M parameters of the full generator
        model = build()
    assert n_params(model) == expected


def test_registry_builds_the_same_architecture() -> None:
    with torch.device("meta"):
        g = create_model("ugatit_generator", ngf=32, light=True)
        d = create_model("ugatit_discriminator", ndf=64, n_layers=5)
    assert isinstance(g, Generator) and isinstance(d, Discriminator)
    assert n_params(g) == 2_653_024 and n_params(d) == 3_290_560


# ---- shapes ----------------------------------------------------------------------------------------
def test_generator_outputs_and_ranges() -> None:
    torch.manual_seed(0)
    g = Generator(ngf=8, n_res=2, img_size=32, light=False).eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        out, cam, heat = g(x)
    assert out.shape == (2, 3, 32, 32)
    assert cam.shape == (2, 2)
    assert heat.shape == (2, 1, 8, 8)
    assert out.abs().max() <= 1.0  # tanh
    assert torch.isfinite(cam).all() and (heat >= 0).all()  # heat-map sums ReLU features


@pytest.mark.parametrize("size", [(32, 32), (48, 48), (64, 64), (32, 48), (36, 60)])
def test_light_generator_runs_at_any_multiple_of_4(size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    g = Generator(ngf=8, n_res=1, img_size=64, light=True).eval()
    h, w = size
    with torch.no_grad():
        out, cam, heat = g(torch.zeros(1, 3, h, w))
    assert out.shape == (1, 3, h, w)
    assert cam.shape == (1, 2)
    assert heat.shape == (1, 1, h // 4, w // 4)


def test_full_generator_refuses_other_sizes() -> None:
    g = Generator(ngf=8, n_res=1, img_size=32, light=False)
    with pytest.raises(InvalidImageError, match=r"32px only, got 64x64; use light=True"):
        g(torch.zeros(1, 3, 64, 64))
    with pytest.raises(InvalidImageError, match="multiples of 4, got 30x32"):
        g(torch.zeros(1, 3, 30, 32))
    # the full MLP really depends on the size: its first layer flattens (img/4)^2 * 4 ngf features
    assert g.mlp[0].in_features == 8 * 8 * 32


def test_generator_refuses_bad_inputs_with_a_typed_error() -> None:
    """Too small, wrong channel count or rank: InvalidImageError from the shared input check, not
    torch's errors from inside InstanceNorm, a reflection pad or a conv."""
    g = Generator(ngf=8, n_res=1, img_size=32, light=True).eval()
    for x, needle in ((torch.zeros(1, 3, 4, 4), "at least 8, got 4x4"),
                      (torch.zeros(1, 3, 4, 16), "at least 8, got 4x16"),
                      (torch.zeros(1, 1, 32, 32), r"\(B, 3, H, W\), got shape \(1, 1, 32, 32\)"),
                      (torch.zeros(2, 4, 32, 32), r"\(B, 3, H, W\)"),
                      (torch.zeros(3, 32, 32), r"\(B, 3, H, W\), got shape \(3, 32, 32\)")):
        with pytest.raises(InvalidImageError, match=needle):
            with torch.no_grad():
                g(x)
    with torch.no_grad():  # the smallest accepted size runs
        assert g(torch.zeros(1, 3, 8, 8))[0].shape == (1, 3, 8, 8)


def test_generator_refuses_an_input_of_another_dtype() -> None:
    """A float64 or uint8 input is an InvalidImageError naming the dtype the weights need, not
    torch's "expected scalar type Double but found Float"; the input may differ under autocast."""
    g = Generator(ngf=8, n_res=1, img_size=32, light=True).eval()
    with torch.no_grad():
        for x, needle in ((torch.zeros(1, 3, 32, 32, dtype=torch.float64),
                           "must be float32 like the model's weights, got float64"),
                          (torch.zeros(1, 3, 32, 32, dtype=torch.uint8),
                           r"must be a float tensor in \[-1, 1\], got a torch.uint8 tensor")):
            with pytest.raises(InvalidImageError, match=needle):
                g(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert g(torch.zeros(1, 3, 32, 32, dtype=torch.bfloat16))[0].shape == (1, 3, 32, 32)
        assert g.double()(torch.zeros(1, 3, 32, 32, dtype=torch.float64))[0].dtype == torch.float64


@pytest.mark.parametrize(("n_layers", "patch"), [(5, 2), (4, 6), (3, 14)])
def test_discriminator_outputs(n_layers: int, patch: int) -> None:
    torch.manual_seed(0)
    d = Discriminator(ndf=8, n_layers=n_layers).eval()
    with torch.no_grad():
        logits, cam, heat = d(torch.zeros(3, 3, 32, 32))
    # n_layers - 2 halvings, then two 4x4 convs with reflection padding 1 (each -1 px)
    assert logits.shape == (3, 1, patch, patch)
    assert cam.shape == (3, 2)
    assert heat.shape == (3, 1, patch + 1, patch + 1)
    with pytest.raises(ValueError, match="n_layers must be >= 3"):
        Discriminator(ndf=8, n_layers=2)


def test_discriminator_cam_reweights_by_the_raw_weight() -> None:
    """As the official code: logits from the spectral-normalised CAM classifiers, features
    re-weighted by their raw (un-normalised) weights."""
    torch.manual_seed(0)
    d = Discriminator(ndf=8, n_layers=4).eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        logits, cam, heat = d(x)
        feats = d.features(x)
        w_gap = d.gap_fc.parametrizations.weight.original
        w_gmp = d.gmp_fc.parametrizations.weight.original
        assert not torch.allclose(w_gap, d.gap_fc.weight)  # normalisation changes the scale
        cam_ref = torch.cat([feats.mean((2, 3)) @ d.gap_fc.weight.t(), feats.amax((2, 3)) @ d.gmp_fc.weight.t()], 1)
        reweighted = torch.cat([feats * w_gap.view(1, -1, 1, 1), feats * w_gmp.view(1, -1, 1, 1)], 1)
        h = F.leaky_relu(d.conv1x1(reweighted), 0.2)
    assert torch.allclose(cam, cam_ref, atol=1e-5)
    assert torch.allclose(heat, h.sum(1, keepdim=True), atol=1e-4)
    assert torch.allclose(logits, d.classifier(h), atol=1e-5)


def test_discriminator_is_spectrally_normalised() -> None:
    torch.manual_seed(0)
    d = Discriminator(ndf=8, n_layers=4)
    d.train()
    for _ in range(10):  # a few power iterations on top of the ones done at construction
        d(torch.randn(1, 3, 32, 32))
    d.eval()
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d) and hasattr(m, "parametrizations")]
    assert len(convs) == 3 + 1  # n_layers - 1 feature convs + the classifier; the 1x1 conv is plain
    for conv in convs + [d.gap_fc, d.gmp_fc]:
        w = conv.weight.detach().flatten(1).double()
        sigma = torch.linalg.matrix_norm(w, ord=2).item()
        assert sigma == pytest.approx(1.0, abs=0.02)
        # ... while the stored, unnormalised weight is not
        raw = conv.parametrizations.weight.original.detach().flatten(1).double()
        assert torch.linalg.matrix_norm(raw, ord=2).item() != pytest.approx(1.0, abs=0.05)


def test_normal_init_draws_conv_and_linear_weights_only() -> None:
    """The paper's initialisation: every conv / linear weight ~ N(0, 0.02) (the unnormalised one
    under spectral norm), biases 0; normalisation parameters untouched; spectral norm still holds."""
    torch.manual_seed(0)
    g = Generator(ngf=16, n_res=2, img_size=64, light=True)
    d = Discriminator(ndf=16, n_layers=5)
    layer_types = (torch.nn.Conv2d, torch.nn.Linear)
    norms_before = {k: v.clone() for k, v in g.state_dict().items() if "rho" in k or "norm" in k}
    assert norms_before  # the generator has ILN / AdaILN parameters
    for net in (g, d):
        layers = [m for m in net.modules() if isinstance(m, layer_types)]
        assert normal_init_(net, 0.02) == len(layers)
        for m in layers:
            w = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
            if w.numel() >= 2000:  # enough draws for a tight estimate of the spread
                assert w.std().item() == pytest.approx(0.02, rel=0.1), m
                assert abs(w.mean().item()) < 0.002, m
            if m.bias is not None:
                assert not m.bias.any(), m
    for k, v in g.state_dict().items():
        if k in norms_before:
            assert torch.equal(v, norms_before[k]), k
    d.train()
    for _ in range(30):  # the power iteration adapts to the new weights
        d(torch.randn(1, 3, 64, 64))
    conv = d.features[1]
    assert torch.linalg.matrix_norm(conv.weight.detach().flatten(1).double(), ord=2).item() == pytest.approx(
        1.0, abs=0.02)
    with pytest.raises(ValueError, match="std"):
        normal_init_(g, 0.0)


# ---- AdaILN / ILN against their formulas -----------------------------------------------------------
def _iln_reference(x: np.ndarray, rho: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """rho * IN(x) + (1 - rho) * LN(x) with unbiased variances, written out in numpy float64."""
    b, c, h, w = x.shape
    out = np.empty_like(x)
    for i in range(b):
        sample = x[i]
        ln_mu = sample.sum() / (c * h * w)
        ln_var = ((sample - ln_mu) ** 2).sum() / (c * h * w - 1)
        for j in range(c):
            ch = sample[j]
            in_mu = ch.sum() / (h * w)
            in_var = ((ch - in_mu) ** 2).sum() / (h * w - 1)
            x_in = (ch - in_mu) / np.sqrt(in_var + eps)
            x_ln = (ch - ln_mu) / np.sqrt(ln_var + eps)
            out[i, j] = rho[j] * x_in + (1 - rho[j]) * x_ln
    return out


def test_adailn_matches_formula() -> None:
    rng = np.random.default_rng(0)
    b, c, h, w = 3, 5, 6, 7
    x = rng.normal(2.0, 3.0, (b, c, h, w))
    rho = rng.uniform(0, 1, c)
    gamma = rng.normal(1.0, 0.5, (b, c))
    beta = rng.normal(0.0, 0.5, (b, c))
    layer = AdaILN(c).double()
    assert torch.allclose(layer.rho, torch.full((1, c, 1, 1), 0.9, dtype=torch.float64))  # paper init
    with torch.no_grad():
        layer.rho.copy_(torch.from_numpy(rho).view(1, c, 1, 1))
        got = layer(torch.from_numpy(x), torch.from_numpy(gamma), torch.from_numpy(beta)).numpy()
    expected = _iln_reference(x, rho) * gamma[:, :, None, None] + beta[:, :, None, None]
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


def test_iln_matches_formula() -> None:
    rng = np.random.default_rng(1)
    b, c, h, w = 2, 4, 5, 5
    x = rng.normal(-1.0, 2.0, (b, c, h, w))
    layer = ILN(c).double()
    # initial state: pure layer norm, identity affine
    with torch.no_grad():
        got0 = layer(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got0, _iln_reference(x, np.zeros(c)), rtol=1e-10, atol=1e-10)
    rho, gamma, beta = rng.uniform(0, 1, c), rng.normal(1, 0.3, c), rng.normal(0, 0.3, c)
    with torch.no_grad():
        layer.rho.copy_(torch.from_numpy(rho).view(1, c, 1, 1))
        layer.gamma.copy_(torch.from_numpy(gamma).view(1, c, 1, 1))
        layer.beta.copy_(torch.from_numpy(beta).view(1, c, 1, 1))
        got = layer(torch.from_numpy(x)).numpy()
    expected = _iln_reference(x, rho) * gamma[None, :, None, None] + beta[None, :, None, None]
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


def test_instance_layer_norm_extremes_are_in_and_ln() -> None:
    """rho = 1 is instance norm, rho = 0 layer norm, both with the unbiased variance.

    torch's own norms divide by the biased variance: with n values,
    ``(x - mu) / sqrt(var_u + eps) == sqrt((n - 1) / n) * (x - mu) / sqrt(var_b + eps * (n - 1) / n)``.
    """
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64) * 4 + 1
    ones, zeros = torch.ones(1, 3, 1, 1, dtype=torch.float64), torch.zeros(1, 3, 1, 1, dtype=torch.float64)
    k_in = (64 - 1) / 64
    ref_in = F.instance_norm(x, eps=1e-5 * k_in) * np.sqrt(k_in)
    torch.testing.assert_close(instance_layer_norm(x, ones), ref_in, rtol=1e-9, atol=1e-9)
    k_ln = (192 - 1) / 192
    ref_ln = F.layer_norm(x, (3, 8, 8), eps=1e-5 * k_ln) * np.sqrt(k_ln)
    torch.testing.assert_close(instance_layer_norm(x, zeros), ref_ln, rtol=1e-9, atol=1e-9)


def test_instance_layer_norm_gradcheck() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    rho = torch.rand(1, 3, 1, 1, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, r: instance_layer_norm(a, r), (x, rho), eps=1e-6, atol=1e-6)


def test_instance_layer_norm_keeps_low_precision_dtype_and_rejects_bad_shapes() -> None:
    x = torch.randn(1, 4, 8, 8)
    rho = torch.full((1, 4, 1, 1), 0.5)
    out = instance_layer_norm(x.bfloat16(), rho)
    assert out.dtype == torch.bfloat16
    want = instance_layer_norm(x.bfloat16().float(), rho)
    torch.testing.assert_close(out.float(), want, atol=0.02, rtol=0.02)
    with pytest.raises(ValueError, match=r"expects \(B, C, H, W\)"):
        instance_layer_norm(torch.zeros(4, 8, 8), rho)


def test_clip_rho_clamps_every_norm_layer() -> None:
    g = Generator(ngf=8, n_res=2, img_size=32, light=True)
    norms = [m for m in g.modules() if isinstance(m, (AdaILN, ILN))]
    assert sum(isinstance(m, AdaILN) for m in norms) == 2 * 2  # two per AdaILN residual block
    assert sum(isinstance(m, ILN) for m in norms) == 2  # one per up-sampling stage
    with torch.no_grad():
        for i, m in enumerate(norms):
            m.rho.copy_(torch.linspace(-0.5, 1.5, m.rho.numel()).view_as(m.rho) + 0.01 * i)
    before = [m.rho.detach().clone() for m in norms]
    clip_rho(g)
    for m, old in zip(norms, before):
        assert m.rho.min() >= 0.0 and m.rho.max() <= 1.0
        torch.testing.assert_close(m.rho.detach(), old.clamp(0.0, 1.0))
    assert norms[0].rho.min() == 0.0 and norms[0].rho.max() == 1.0  # really had values out of range


# ---- losses --------------------------------------------------------------------------------------
def test_loss_weights_are_the_papers() -> None:
    assert UGATITLossWeights() == UGATITLossWeights(adv=1.0, cycle=10.0, identity=10.0, cam=1000.0)


def test_lsgan_loss_on_known_values() -> None:
    pred = torch.tensor([[0.0, 2.0], [1.0, 3.0]])
    assert lsgan_loss(pred, 1.0).item() == pytest.approx((1 + 1 + 0 + 4) / 4)
    assert lsgan_loss(pred, 0.0).item() == pytest.approx((0 + 4 + 1 + 9) / 4)
    assert lsgan_loss(pred.bfloat16(), 1.0).dtype == torch.float32


def test_adversarial_losses_on_known_values() -> None:
    heat = torch.zeros(1, 1, 2, 2)
    real = [(torch.full((1, 1, 2, 2), 0.5), torch.tensor([[0.0, 1.0]]), heat),  # 0.25 + 0.5
            (torch.ones(1, 1, 3, 3), torch.ones(1, 2), heat)]  # 0 + 0
    fake = [(torch.full((1, 1, 2, 2), 0.5), torch.tensor([[1.0, 1.0]]), heat),  # 0.25 + 1
            (torch.full((1, 1, 3, 3), -1.0), torch.tensor([[0.0, 2.0]]), heat)]  # 1 + 2
    assert discriminator_adversarial_loss(real, fake).item() == pytest.approx(0.75 + 0 + 1.25 + 3.0)
    # generator: fakes should look real: (p - 1)^2 on patches and CAM logits
    expected = (0.25 + 0.0) + (4.0 + (1 + 1) / 2)
    assert generator_adversarial_loss(fake).item() == pytest.approx(expected)


def test_generator_cam_loss_is_bce_with_logits() -> None:
    src = np.array([[0.0, 2.0], [-1.0, 0.5]])
    tgt = np.array([[0.0, -3.0], [1.5, 0.25]])
    # BCE(sigmoid(s), 1) = log(1 + e^-s);  BCE(sigmoid(t), 0) = log(1 + e^t)
    expected = np.log1p(np.exp(-src)).mean() + np.log1p(np.exp(tgt)).mean()
    got = generator_cam_loss(torch.from_numpy(src), torch.from_numpy(tgt))
    assert got.item() == pytest.approx(expected, rel=1e-6)
    assert generator_cam_loss(torch.zeros(1, 2), torch.zeros(1, 2)).item() == pytest.approx(2 * np.log(2))


# ---- serialization -------------------------------------------------------------------------------
def test_save_and_load_pretrained_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    g = Generator(ngf=8, n_res=1, img_size=32, light=True).eval()
    d = Discriminator(ndf=8, n_layers=4).eval()
    save_pretrained(g, tmp_path / "g")
    save_pretrained(d, tmp_path / "d")
    g2, d2 = load_pretrained(tmp_path / "g"), load_pretrained(tmp_path / "d")
    assert isinstance(g2, Generator) and g2.config == g.config and not g2.training
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        for a, b in zip(g(x), g2(x)):
            assert torch.equal(a, b)
        for a, b in zip(d(x), d2(x)):  # spectral-norm vectors u, v are saved too
            assert torch.equal(a, b)


def test_save_pretrained_into_a_file_is_an_output_error(tmp_path: Path) -> None:
    from facetoon.errors import OutputError

    (tmp_path / "file").write_text("x")
    g = Generator(ngf=8, n_res=1, img_size=32, light=True)
    with pytest.raises(OutputError, match="the output folder is an existing file"):
        save_pretrained(g, tmp_path / "file")
    with pytest.raises(OutputError, match="cannot create the output folder"):
        save_pretrained(g, tmp_path / "file" / "sub")
    assert (tmp_path / "file").read_text() == "x"


def test_config_json_of_another_save_is_refused(tmp_path: Path) -> None:
    """Both files of a save carry its id: new weights beside the previous save's config.json (a crash
    between the two writes) are refused, by load_pretrained and by read_config (warm starts read
    the step from its meta). Folders without ids (older saves) load as before."""
    import json
    import shutil

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from facetoon.errors import WeightsError
    from facetoon.models import read_config

    folder, old = tmp_path / "g", tmp_path / "old_config.json"
    g = Generator(ngf=8, n_res=1, img_size=32, light=True)
    save_pretrained(g, folder, meta={"step": 1})
    shutil.copy(folder / "config.json", old)
    save_pretrained(g, folder, meta={"step": 2})
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        assert f.metadata()["save_id"] == read_config(folder)["save_id"]  # the same id in both files
    load_pretrained(folder)
    shutil.copy(old, folder / "config.json")
    for read in (load_pretrained, read_config):
        with pytest.raises(WeightsError, match="config.json and model.safetensors are from different saves") \
                as info:
            read(folder)
        assert str(folder) in str(info.value) and "\n" not in str(info.value)
    # an older save: no id in config.json nor in the safetensors metadata
    doc = json.loads(old.read_text())
    del doc["save_id"]
    (folder / "config.json").write_text(json.dumps(doc))
    save_file(load_file(str(folder / "model.safetensors")), str(folder / "model.safetensors"),
              metadata={"arch": "ugatit_generator"})
    assert isinstance(load_pretrained(folder), Generator) and read_config(folder)["meta"] == {"step": 1}


def test_a_hand_edited_config_json_is_a_weights_error(tmp_path: Path) -> None:
    """A broken config.json (no object, an impossible width, an unknown argument) names the file."""
    import json

    from facetoon.errors import WeightsError

    save_pretrained(Generator(ngf=8, n_res=1, img_size=32, light=True), tmp_path / "g")
    config = tmp_path / "g" / "config.json"
    doc = json.loads(config.read_text())
    for bad, needle in (({"config": [8, 1]}, "'config' an object"), ({"arch": 7}, "'arch' must be a string"),
                        ({"config": {**doc["config"], "ngf": -8}}, "not describe a valid 'ugatit_generator'"),
                        ({"config": {**doc["config"], "width": 3}}, "not describe a valid 'ugatit_generator'")):
        config.write_text(json.dumps({**doc, **bad}))
        with pytest.raises(WeightsError, match=needle) as info:
            load_pretrained(tmp_path / "g")
        assert str(config) in str(info.value) and len(str(info.value).splitlines()) == 1


def test_create_model_documents_every_registered_architecture() -> None:
    """create_model's docstring names the architectures a user can build; it must list them all."""
    from facetoon.errors import ConfigError
    from facetoon.models import list_models

    for name in list_models():
        assert f'"{name}"' in (create_model.__doc__ or ""), name
    with pytest.raises(ConfigError, match="unknown model architecture 'nope'; known: animegan"):
        create_model("nope")
