"""The training config as the command line resolves it: ``--resume CHECKPOINT`` builds the networks
from the checkpoint's own config, config files refuse what they would otherwise ignore, network
sizes are checked when the config is made, and an error raised in a DataLoader worker is one line."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facetoon.cli import main
from facetoon.errors import ConfigError, InvalidImageError
from facetoon.train.config import load_config
from facetoon.train.ugatit import UGATITConfig
from train_helpers import one_line_error, one_thread  # noqa: F401 (one_thread: an autouse fixture)

# a tiny but complete U-GAT-IT (the sizes differ from the defaults, so that building the networks
# from the defaults cannot load its checkpoints)
TINY = ["img_size=32", "ngf=8", "ndf=8", "n_res=1", "light=true", "n_layers_global=4", "n_layers_local=3",
        "holdout=1", "kid_images=0", "n_samples=1", "precision=fp32", "device=cpu", "sample_every=100",
        "validate_every=0", "tensorboard=false"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two domains of three 40 px noise images each."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for domain in ("trainA", "trainB"):
        (root / domain).mkdir()
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(root / domain / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def checkpoint(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The step-2 checkpoint of a finished 2-step TINY run."""
    run = tmp_path_factory.mktemp("runs") / "tiny"
    assert main(["-q", "train", "ugatit", "--data", str(data), "--out", str(run), "--set", *TINY,
                 "iterations=2", "checkpoint_every=2"]) == 0
    path = run / "checkpoints" / "step_00000002.pt"
    assert path.is_file()
    return path


def _dry_run(data: Path, out: Path, capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, str]:
    code = main(["train", "ugatit", "--data", str(data), "--out", str(out), *args, "--dry-run"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return dict(line.split(" = ", 1) for line in captured.out.splitlines())


# ---- --resume CHECKPOINT ------------------------------------------------------------------------------
def test_resume_from_a_checkpoint_file_into_a_new_run_uses_its_config(
        data: Path, checkpoint: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    run = tmp_path / "new_run"
    with caplog.at_level(logging.INFO, logger="facetoon"):
        code = main(["-q", "train", "ugatit", "--data", str(data), "--out", str(run), "--resume", str(checkpoint),
                     "--set", "iterations=3"])
    assert code == 0
    assert (run / "checkpoints" / "step_00000003.pt").is_file()
    saved = load_config(UGATITConfig, run / "config.toml")
    assert (saved.ngf, saved.ndf, saved.n_res, saved.n_layers_global, saved.img_size) == (8, 8, 1, 4, 32)
    assert saved.iterations == 3


def test_resume_from_a_checkpoint_file_layers_config_and_set_over_its_config(
        data: Path, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "more.toml"
    config.write_text("[train]\nlr = 3e-4\nholdout = 2\n")
    values = _dry_run(data, tmp_path / "run", capsys, "--resume", str(checkpoint), "--config", str(config),
                      "--set", "holdout=0")
    # the checkpoint's networks, the file's lr, --set over the file
    assert (values["ngf"], values["n_res"], values["n_layers_local"], values["light"]) == ("8", "1", "3", "True")
    assert (values["lr"], values["holdout"]) == ("0.0003", "0")
    # but not the training machine's runtime settings (a CUDA run resumed on a CPU must not ask for
    # CUDA): device, precision, sample_every... come from the defaults, the file and --set
    assert (values["device"], values["precision"], values["sample_every"]) == ("'auto'", "'fp32'", "1000")


def test_resume_from_a_checkpoint_file_says_where_the_config_comes_from(
        data: Path, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "ugatit", "--data", str(data), "--out", str(tmp_path / "run"), "--resume",
                 str(checkpoint), "--dry-run"])
    assert code == 0
    err = capsys.readouterr().err
    assert f"using the config saved in {checkpoint}" in err, err


def test_resume_from_a_missing_checkpoint_is_a_one_line_error(
        data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "step_00000150.pt"
    code = main(["-q", "train", "ugatit", "--data", str(data), "--out", str(tmp_path / "run"), "--resume",
                 str(missing), "--set", *TINY, "--dry-run"])
    one_line_error(capsys, code, str(missing), "checkpoint not found")


# ---- help ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("model", "layout", "other"), [("animegan", "train_photo/", "trainA/"),
                                                        ("ugatit", "trainA/", "train_photo/")])
def test_each_trainer_has_its_own_help(model: str, layout: str, other: str, data: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """``facetoon train animegan --help`` used to show U-GAT-IT's data layout and --set example."""
    import importlib
    import re

    from facetoon.cli.train import TRAINERS
    from facetoon.train.config import parse_overrides

    with pytest.raises(SystemExit) as info:
        main(["train", model, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert info.value.code == 0 and f"usage: facetoon train {model} " in text
    assert layout in text and other not in text
    # its --set example holds options of its own config
    example = re.search(r"e\.g\. --set ((?:\w+=\S+ )+)", text)
    assert example is not None, text
    module, config_name, _ = TRAINERS[model]
    load_config(getattr(importlib.import_module(module), config_name), None, parse_overrides(example[1].split()))
    # --debug / -q after the model, as after any command
    assert main(["train", model, "--data", str(data), "--out", str(tmp_path / "run"), "-q", "--dry-run"]) == 0


def test_an_unknown_option_names_the_closest_valid_ones(data: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["-q", "train", "animegan", "--data", str(data), "--out", str(tmp_path / "run"),
                 "--set", "lr=1e-4", "--dry-run"])
    one_line_error(capsys, code, "unknown AnimeGANConfig option(s): lr (did you mean g_lr, d_lr?)")


# ---- config files ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[train]\nlr = 3e-4\n[trian]\nngf = 8\n", "[trian] outside the [train] table"),
        ("ngf = 8\n[train]\nlr = 3e-4\n", "ngf outside the [train] table"),
        ("[trian]\nngf = 8\n", "unknown table(s) [trian]"),
        ("train = 8\n", "'train' must be a table"),
        ("[train]\nngff = 8\n", "unknown UGATITConfig option(s): ngff"),
        ("[train]\nngf = 'wide'\n", "UGATITConfig.ngf must be int"),
        ("[train]\nngf = 0\n", "ngf must be >= 1"),
    ],
)
def test_config_file_errors_name_the_file(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          text: str, needle: str) -> None:
    config = tmp_path / "x.toml"
    config.write_text(text)
    code = main(["-q", "train", "ugatit", "--data", str(data), "--out", str(tmp_path / "run"),
                 "--config", str(config), "--dry-run"])
    line = one_line_error(capsys, code, needle)
    assert line.startswith(f"facetoon: error: {config}: "), line
    assert not (tmp_path / "run").exists()


def test_an_override_error_does_not_blame_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "ok.toml"
    config.write_text("[train]\nngf = 8\n")
    with pytest.raises(ConfigError, match="ndf must be >= 1") as info:
        load_config(UGATITConfig, config, {"ndf": 0})
    assert "ok.toml" not in str(info.value)
    # a bad value of the file that --set corrects is no error
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nngf = 0\n")
    assert load_config(UGATITConfig, bad, {"ngf": 16}).ngf == 16


# ---- network sizes ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"ngf": 0}, r"ngf must be >= 1, got 0"),
        ({"ndf": -8}, r"ndf must be >= 1, got -8"),
        ({"n_res": -1}, r"n_res \(residual blocks\) must be >= 0, got -1"),
        ({"img_size": 0}, r"img_size must be >= 1, got 0"),
        ({"img_size": -32}, r"img_size must be >= 1, got -32"),
        ({"beta1": 1.0}, r"beta1 must be in \[0, 1\), got 1.0"),
        ({"beta2": -0.5}, r"beta2 must be in \[0, 1\), got -0.5"),
        ({"holdout_seed": -1}, r"holdout_seed must be >= 0, got -1"),
    ],
)
def test_bad_network_sizes_fail_when_the_config_is_made(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        UGATITConfig(**{"img_size": 32, "n_layers_global": 4, "n_layers_local": 3, "kid_images": 0, **overrides})


def test_bad_network_sizes_are_one_line_cli_errors(data: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    for setting, needle in (("ngf=0", "ngf must be >= 1"), ("ndf=-8", "ndf must be >= 1")):
        code = main(["-q", "train", "ugatit", "--data", str(data), "--out", str(tmp_path / "run"),
                     "--set", *TINY, "iterations=1", setting])
        one_line_error(capsys, code, needle)
    assert not (tmp_path / "run" / "checkpoints").exists()


# ---- an error raised in a DataLoader worker ---------------------------------------------------------------
class _BadImages(torch.utils.data.Dataset):
    def __init__(self, folder: Path, error: type[Exception]) -> None:
        self.folder, self.error = folder, error

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> torch.Tensor:
        if self.error is InvalidImageError:
            raise InvalidImageError("image data is truncated", path=self.folder / "trainB" / f"{i:04d}.jpg")
        raise self.error(f"bad item {i}")


def _read_in_a_worker(folder: Path, error: type[Exception]):
    """The ``func`` of a command that reads a dataset in a DataLoader worker process."""
    def run(args: object) -> int:
        for _ in torch.utils.data.DataLoader(_BadImages(folder, error), num_workers=1):
            pass
        return 0
    return run


def test_an_error_in_a_dataloader_worker_is_its_own_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import facetoon.cli.train

    argv = ["-q", "train", "ugatit", "--data", str(tmp_path), "--out", str(tmp_path / "run")]
    monkeypatch.setattr(facetoon.cli.train, "run", _read_in_a_worker(tmp_path, InvalidImageError))
    line = one_line_error(capsys, main(argv))
    assert line == f"facetoon: error: {tmp_path / 'trainB' / '0000.jpg'}: image data is truncated"
    # --debug: the error as torch raised it, with the worker's traceback
    with pytest.raises(InvalidImageError, match="DataLoader worker process 0") as info:
        main(["--debug", *argv])
    assert "Original Traceback" in str(info.value) and "__getitem__" in str(info.value)
    # an error of another kind: its type and its own message
    monkeypatch.setattr(facetoon.cli.train, "run", _read_in_a_worker(tmp_path, ValueError))
    line = one_line_error(capsys, main(argv))
    assert line == "facetoon: error: ValueError: bad item 0 (run with --debug for details)"
