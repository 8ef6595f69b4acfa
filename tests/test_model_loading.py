"""Loading and creating models: :func:`facetoon.models.load_pretrained`'s ``device``/``dtype``
arguments and ``facetoon export`` folders, :func:`facetoon.models.create_model`'s argument checks."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from facetoon.errors import ConfigError, WeightsError  # noqa: E402
from facetoon.models import create_model, load_pretrained, read_config, save_pretrained  # noqa: E402


def _tiny(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model("ugatit_generator", light=True, ngf=8, n_res=1, img_size=32).eval()


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_load_pretrained_checks_device_and_dtype(tmp_path: Path) -> None:
    """An unavailable device or a dtype nn.Module.to refuses is a ConfigError naming the argument,
    not torch's AssertionError / TypeError; dtype names are accepted."""
    folder = save_pretrained(_tiny(), tmp_path / "g")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="'cuda' requested but CUDA is not available"):
            load_pretrained(folder, device="cuda")
    with pytest.raises(ConfigError, match="invalid device 'gpu'"):
        load_pretrained(folder, device="gpu")
    for bad in ("half", torch.int8, 16):
        with pytest.raises(ConfigError, match="dtype: expected a floating torch dtype"):
            load_pretrained(folder, dtype=bad)  # type: ignore[arg-type]
    for dtype in ("float16", "bfloat16", "float32", torch.float64):
        want = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        assert next(load_pretrained(folder, dtype=dtype).parameters()).dtype == want


def test_an_export_folder_loads_its_model_folder(tmp_path: Path) -> None:
    """A ``facetoon export`` output (``a2b/`` beside ``b2a/``) loads as its ``a2b`` model, as the
    Stylizer takes it; a folder of other model folders names them in its error."""
    export = tmp_path / "export"
    save_pretrained(_tiny(0), export / "a2b", meta={"step": 3})
    save_pretrained(_tiny(1), export / "b2a")
    assert _same_weights(load_pretrained(export), load_pretrained(export / "a2b"))
    assert read_config(export)["meta"] == {"step": 3}
    other = tmp_path / "state"
    save_pretrained(_tiny(), other / "ema_a2b")
    save_pretrained(_tiny(), other / "disc_ga")
    for read in (load_pretrained, read_config):
        with pytest.raises(WeightsError, match="config.json is missing \\(pass one of its model folders: "
                                               "disc_ga, ema_a2b\\)"):
            read(other)


@pytest.mark.parametrize(("name", "kwargs", "needle"), [
    ("ugatit_generator", {"ngf": -1}, "ngf must be an integer >= 1, got -1"),
    ("ugatit_generator", {"ngf": 16.5}, "ngf must be an integer >= 1, got 16.5"),
    ("ugatit_generator", {"n_res": 0}, "n_res must be an integer >= 1"),
    ("ugatit_generator", {"img_size": "128"}, "img_size must be an integer >= 1"),
    ("ugatit_generator", {"in_channels": True}, "in_channels must be an integer >= 1"),
    ("ugatit_discriminator", {"ndf": 0}, "ndf must be an integer >= 1"),
    ("ugatit_discriminator", {"n_layers": 2}, "n_layers must be >= 3"),
    ("animegan_discriminator", {"channels": 8.0}, "channels must be an integer >= 1"),
    ("cartoongan", {"n_res_blocks": -2}, "n_res_blocks must be an integer >= 1"),
    ("ugatit_generator", {"lite": True}, r"Generator.__init__\(\) got an unexpected keyword argument 'lite'"),
])
def test_create_model_refuses_bad_arguments_with_a_config_error(name: str, kwargs: dict, needle: str) -> None:
    """Bad sizes are a ConfigError naming the argument (create_model's promise), not torch's
    RuntimeError or a conv's ValueError."""
    with pytest.raises(ConfigError, match=f"bad arguments for model '{name}': {needle}"):
        create_model(name, **kwargs)


def test_create_model_takes_valid_sizes() -> None:
    assert create_model("ugatit_discriminator", ndf=8, n_layers=3).config["n_layers"] == 3
    assert _tiny().config["ngf"] == 8
