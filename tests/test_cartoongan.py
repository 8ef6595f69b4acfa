"""CartoonGAN: the official release loads by an explicit key map and reproduces the reference output."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from facetoon.convert.cartoongan import (
    facetoon_to_official_key,
    load_official_cartoongan,
    official_to_facetoon_key,
)
from facetoon.errors import InvalidImageError, WeightsError
from facetoon.models import load_pretrained
from facetoon.models.cartoongan import Generator

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def hayao_path(shared):
    path = shared / "models" / "cartoongan" / "Hayao_net_G_float.pth"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


@pytest.fixture(scope="module")
def hayao(hayao_path) -> Generator:
    return load_official_cartoongan(hayao_path)


def test_reproduces_the_reference_output(shared, hayao):
    """The release's pipeline: top-left 512x352 crop, BGR in [-1, 1], (y + 1) * 127.5 truncated to uint8."""
    photo = np.asarray(Image.open(shared / "fixtures" / "four_faces.jpg").convert("RGB"))[:352, :512]
    ref_file = shared / "fixtures" / "four_faces_cartoongan_hayao.png"
    ref = np.asarray(Image.open(ref_file).convert("RGB")).astype(int)
    x = torch.from_numpy(photo.copy()).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    with torch.no_grad():
        y = hayao(x)[0].permute(1, 2, 0).numpy()
    scaled = (y + 1.0) * 127.5
    truncated = np.clip(scaled, 0, 255).astype(np.uint8).astype(int)
    rounded = np.clip(np.rint(scaled), 0, 255).astype(int)
    d_trunc, d_round = np.abs(truncated - ref), np.abs(rounded - ref)
    print(f"CartoonGAN Hayao vs reference: truncated max {d_trunc.max()} mean {d_trunc.mean():.2e}; "
          f"rounded max {d_round.max()} mean {d_round.mean():.3f}")
    assert d_trunc.max() <= 1 and d_trunc.mean() < 1e-3
    assert d_round.max() <= 1


def test_parameter_count_and_shapes(hayao):
    assert sum(p.numel() for p in hayao.parameters()) == 11_129_667
    assert hayao.config == {"n_res_blocks": 8, "bgr_weights": True}
    x = torch.rand(1, 3, 36, 44) * 2 - 1
    with torch.no_grad():
        y = hayao(x)
    assert y.shape == x.shape and y.abs().max() <= 1
    with pytest.raises(InvalidImageError, match="multiples of 4"):
        hayao(torch.rand(1, 3, 34, 44))


def test_rgb_interface_flips_to_bgr_inside(hayao):
    raw = Generator(bgr_weights=False).eval()
    raw.load_state_dict(hayao.state_dict())
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(hayao(x), raw(x.flip(1)).flip(1), atol=1e-6)


def test_key_map_is_explicit_and_invertible(hayao_path):
    state = torch.load(hayao_path, map_location="cpu", weights_only=True)
    assert len(state) == 94
    ours = {official_to_facetoon_key(k) for k in state}
    assert None not in ours and ours == set(Generator().state_dict())
    assert all(facetoon_to_official_key(official_to_facetoon_key(k)) == k for k in state)
    assert official_to_facetoon_key("conv12_1.weight") is None
    assert official_to_facetoon_key("in01_1.weight") is None


def test_mismatching_files_are_refused(tmp_path, hayao_path):
    state = torch.load(hayao_path, map_location="cpu", weights_only=True)
    missing = dict(state)
    del missing["in07_2.scale"]
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(WeightsError, match=r"missing 1 tensor.*in07_2\.scale"):
        load_official_cartoongan(tmp_path / "missing.pth")
    wrong = dict(state, **{"conv01_1.weight": torch.zeros(64, 3, 3, 3)})
    torch.save(wrong, tmp_path / "wrong.pth")
    with pytest.raises(WeightsError, match=r"wrong shape.*conv01_1\.weight"):
        load_official_cartoongan(tmp_path / "wrong.pth")
    extra = dict(state, **{"conv12_1.weight": torch.zeros(1)})
    torch.save(extra, tmp_path / "extra.pth")
    with pytest.raises(WeightsError, match="unknown name"):
        load_official_cartoongan(tmp_path / "extra.pth")
    data = hayao_path.read_bytes()
    (tmp_path / "truncated.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="truncated"):
        load_official_cartoongan(tmp_path / "truncated.pth")
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(WeightsError, match="empty"):
        load_official_cartoongan(tmp_path / "empty.pth")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(WeightsError, match="mapping"):
        load_official_cartoongan(tmp_path / "list.pth")
    with pytest.raises(WeightsError, match="not found"):
        load_official_cartoongan(tmp_path / "nope.pth")
    # a text file: torch's legacy unpickler raised a bare KeyError (101) here
    (tmp_path / "text.pth").write_text("hello text\n")
    with pytest.raises(WeightsError, match=r"cannot read as a torch state_dict .*KeyError"):
        load_official_cartoongan(tmp_path / "text.pth")


def test_convert_cli_writes_safetensors(tmp_path, hayao_path, hayao, capsys):
    from facetoon.cli import main
    from facetoon.models.serialization import read_config

    out = tmp_path / "cartoongan-hayao"
    assert main(["convert", "cartoongan", str(hayao_path), str(out)]) == 0
    assert (out / "model.safetensors").is_file()
    doc = read_config(out)
    assert doc["arch"] == "cartoongan" and doc["meta"]["style"] == "Hayao"
    assert doc["meta"]["source_sha256"].startswith("22415dd0")
    model = load_pretrained(out)
    x = torch.rand(1, 3, 24, 24) * 2 - 1
    with torch.no_grad():
        assert torch.equal(model(x), hayao(x))
    assert main(["convert", "cartoongan", str(tmp_path / "nope.pth"), str(tmp_path / "x")]) == 1
    (tmp_path / "a_file").write_text("keep")
    capsys.readouterr()
    assert main(["convert", "cartoongan", str(hayao_path), str(tmp_path / "a_file")]) == 1
    err = capsys.readouterr().err
    assert "a_file: the output folder is an existing file" in err and "Traceback" not in err
    assert (tmp_path / "a_file").read_text() == "keep"


def test_fused_inference_graph(shared, hayao):
    from facetoon.models.cartoongan import FastCartoonGAN, fuse_for_inference

    photo = np.asarray(Image.open(shared / "fixtures" / "four_faces.jpg").convert("RGB"))[:128, :192]
    x = torch.from_numpy(photo.copy()).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    with torch.no_grad():
        ref = hayao(x)
    exact = fuse_for_inference(hayao, torch.float32)(x)
    assert (exact - ref).abs().max() * 127.5 < 0.05
    fast = fuse_for_inference(hayao)
    assert isinstance(fast, FastCartoonGAN)
    d = (fast(x).float() - ref).abs() * 127.5
    assert d.mean() < 0.6 and d.max() < 16
    with fast.record_norm_stats():
        a = fast(x)
    assert len(fast._stats) == 21
    with fast.replay_norm_stats():
        b = fast(x)
    assert torch.equal(a, b)
