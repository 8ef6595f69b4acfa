"""Tests of the training services shared by facetoon's trainers: TOML configs and overrides,
checkpoints, deterministic unpaired data, loss logs, sample grids, precision/device resolution
and the SIGINT/SIGTERM handling (:mod:`facetoon.train`, :mod:`facetoon.runtime`)."""

from __future__ import annotations

import csv
import dataclasses
import fractions
import json
import logging
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facetoon.errors import ConfigError, DataError, WeightsError
from facetoon.runtime import cpu_has_fast_bf16, resolve_runtime
from facetoon.train.checkpoint import (
    checkpoint_config,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
    set_aside_checkpoints,
)
from facetoon.train.config import load_config, parse_overrides, save_config
from facetoon.train.data import (
    Augment,
    DomainSampler,
    StepSampler,
    UnpairedDataset,
    list_images,
    load_image_tensor,
    split_holdout,
)
from facetoon.train.distributed import DistInfo, any_rank, flag_tensor, init_distributed
from facetoon.train.logger import MetricLogger
from facetoon.train.loop import _StopRequest
from facetoon.train.samples import heatmap_overlay, image_grid, tensor_to_uint8
from facetoon.train.ugatit import UGATITConfig


# ---- configuration ------------------------------------------------------------------------------
def test_parse_overrides_reads_toml_values_and_bare_strings() -> None:
    got = parse_overrides(["lr=2e-4", "light=true", "iterations=10", 'name="x y"', "device=cpu",
                           "kid-backend=torch", "ratio = 0.5"])
    assert got == {"lr": 2e-4, "light": True, "iterations": 10, "name": "x y", "device": "cpu",
                   "kid_backend": "torch", "ratio": 0.5}
    assert isinstance(got["iterations"], int) and isinstance(got["light"], bool)
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["lr"])
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["=3"])


def test_config_precedence_defaults_file_overrides(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('# comment\n[train]\nngf = 32\nlr = 2e-4\nlight = true\nprecision = "fp32"\n')
    cfg = load_config(UGATITConfig, path, {"lr": 5e-4, "ndf": 16})
    assert (cfg.ngf, cfg.lr, cfg.light, cfg.precision, cfg.ndf) == (32, 5e-4, True, "fp32", 16)
    assert cfg.cam_weight == 1000.0 and cfg.img_size == 256  # untouched defaults
    # a file without a [train] table is read from its top level
    flat = tmp_path / "flat.toml"
    flat.write_text("ngf = 48\niterations = 7\n")
    assert (load_config(UGATITConfig, flat).ngf, load_config(UGATITConfig, flat).iterations) == (48, 7)
    # an int where a float is expected is fine
    assert load_config(UGATITConfig, None, {"lr": 1}).lr == 1.0


def test_defaults_are_the_papers() -> None:
    cfg = UGATITConfig()
    assert (cfg.img_size, cfg.ngf, cfg.ndf, cfg.n_res, cfg.light) == (256, 64, 64, 4, False)
    assert (cfg.n_layers_global, cfg.n_layers_local) == (7, 5)
    assert (cfg.lr, cfg.beta1, cfg.beta2, cfg.weight_decay, cfg.decay_start) == (1e-4, 0.5, 0.999, 1e-4, 0.5)
    weights = (cfg.adv_weight, cfg.cycle_weight, cfg.identity_weight, cfg.cam_weight)
    assert weights == (1.0, 10.0, 10.0, 1000.0)
    assert (cfg.batch_size, cfg.aug_margin, cfg.aug_flip) == (1, 30, True)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"no_such_key": 1}, r"unknown UGATITConfig option\(s\): no_such_key"),
        ({"ngf": "wide"}, r"UGATITConfig.ngf must be int, got 'wide'"),
        ({"ngf": 1.5}, "UGATITConfig.ngf must be int"),
        ({"iterations": True}, "UGATITConfig.iterations must be int, got True"),
        ({"light": 1}, "UGATITConfig.light must be bool"),
        ({"lr": "fast"}, "UGATITConfig.lr must be float"),
        ({"iterations": 0}, "iterations must be >= 1"),
        ({"img_size": 30}, "img_size must be a multiple of 4"),
        ({"decay_start": 1.5}, r"decay_start must be in \[0, 1\]"),
        ({"img_size": 64, "n_layers_global": 7}, "n_layers_global=7 does not fit img_size=64"),
        ({"n_layers_local": 2}, "n_layers_local=2 does not fit"),
        # each of these used to pass and fail later, inside the run (first batch, first sample grid
        # or validation), or silently checkpoint every step / train against a negative loss
        ({"aug_margin": -4}, "holdout and aug_margin must be >= 0"),
        ({"seed": -1}, "seed must be >= 0"),
        ({"num_workers": -1}, "num_workers must be >= 0"),
        ({"validate_every": -5}, "validate_every must be >= 0"),
        ({"checkpoint_minutes": 0.0}, "checkpoint_minutes must be > 0"),
        ({"kid_images": 1}, r"kid_images must be 0 \(no KID\) or >= 2"),
        ({"n_samples": 0}, r"n_samples \(images per sample grid\) must be >= 1"),
        ({"cam_weight": -1000.0}, "cam_weight must be >= 0"),
    ],
)
def test_bad_config_values_raise_config_error(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        load_config(UGATITConfig, None, overrides)
    assert "\n" not in str(info.value)


def test_bad_config_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found") as info:
        load_config(UGATITConfig, tmp_path / "missing.toml")
    assert "missing.toml" in str(info.value)
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nngf = = 3\n")
    with pytest.raises(ConfigError, match="invalid TOML") as info:
        load_config(UGATITConfig, bad)
    assert "bad.toml" in str(info.value)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[train]\nlearning_rate = 1e-3\n")
    with pytest.raises(ConfigError, match="learning_rate"):
        load_config(UGATITConfig, unknown)


def test_an_unknown_option_lists_the_closest_or_all_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown UGATITConfig option\(s\): ngff \(did you mean ngf\?\)"):
        load_config(UGATITConfig, None, {"ngff": 8})
    with pytest.raises(ConfigError) as info:
        load_config(UGATITConfig, None, {"zzz": 8})
    valid = str(info.value).partition("(valid: ")[2].rstrip(")").split(", ")
    assert valid == sorted(f.name for f in dataclasses.fields(UGATITConfig))


def test_save_config_keeps_placeholders(tmp_path: Path) -> None:
    """Options a config derives when left unset are saved as their placeholder (the resolved value in
    a comment), so that reading the file back with other settings derives them again."""
    @dataclasses.dataclass
    class Derived:
        base: float = 1.0
        twice: float = -1.0  # < 0: 2 * base

        def __post_init__(self) -> None:
            self._placeholders = {"twice": self.twice} if self.twice < 0 else {}
            if self.twice < 0:
                self.twice = 2 * self.base

        def placeholders(self) -> dict[str, float]:
            return dict(self._placeholders)

    save_config(Derived(base=3.0), tmp_path / "config.toml")
    assert (tmp_path / "config.toml").read_text() == "[train]\nbase = 3.0\ntwice = -1.0  # resolved: 6.0\n"
    assert load_config(Derived, tmp_path / "config.toml", {"base": 5.0}).twice == 10.0
    save_config(Derived(twice=4.0), tmp_path / "config.toml")
    assert load_config(Derived, tmp_path / "config.toml", {"base": 5.0}).twice == 4.0


def test_save_config_round_trip(tmp_path: Path) -> None:
    cfg = load_config(UGATITConfig, None, {"ngf": 32, "lr": 3e-4, "light": True, "init_from": "", "seed": 7})
    save_config(cfg, tmp_path / "config.toml")
    text = (tmp_path / "config.toml").read_text()
    assert text.startswith("[train]") and "ngf = 32" in text
    assert load_config(UGATITConfig, tmp_path / "config.toml") == cfg
    assert not [p for p in tmp_path.iterdir() if p.name != "config.toml"]  # no temporary file left


# ---- checkpoints ---------------------------------------------------------------------------------
def test_checkpoints_keep_the_last_k_and_round_trip(tmp_path: Path) -> None:
    for step in (5, 10, 15, 20):
        state = {"step": step, "w": torch.full((3,), float(step)), "nested": {"lr": 1e-4, "tag": "x"}}
        save_checkpoint(state, tmp_path, step, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000015.pt", "step_00000020.pt"]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_00000015.pt",
                                                                            "step_00000020.pt"]
    latest = latest_checkpoint(tmp_path)
    assert latest is not None and latest.name == "step_00000020.pt"
    state = load_checkpoint(latest)
    assert state["step"] == 20 and torch.equal(state["w"], torch.full((3,), 20.0))
    assert state["nested"] == {"lr": 1e-4, "tag": "x"}
    assert latest_checkpoint(tmp_path / "nothing") is None and list_checkpoints(tmp_path / "nothing") == []


def test_checkpoints_after_the_resumed_step_are_set_aside(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Resuming at step 4 of a run with checkpoints of steps 2-8: those of steps 6 and 8 (an abandoned
    future) move into checkpoints/abandoned_after_00000004/, untouched; a second abandonment at the same
    step gets its own folder."""
    for step in (2, 4, 6, 8):
        save_checkpoint({"step": step, "w": torch.full((3,), float(step))}, tmp_path, step, keep=10)
    before = {p.name: p.read_bytes() for p in list_checkpoints(tmp_path)}
    with caplog.at_level(logging.WARNING, logger="facetoon.train.checkpoint"):
        moved = set_aside_checkpoints(tmp_path, 4)
    folder = tmp_path / "checkpoints" / "abandoned_after_00000004"
    assert moved == [folder / "step_00000006.pt", folder / "step_00000008.pt"]
    assert {p.name: p.read_bytes() for p in moved} == {k: before[k] for k in ("step_00000006.pt", "step_00000008.pt")}
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000002.pt", "step_00000004.pt"]
    assert "step_00000006.pt, step_00000008.pt" in caplog.text and str(folder) in caplog.text
    assert set_aside_checkpoints(tmp_path, 4) == []  # nothing later any more
    save_checkpoint({"step": 6, "w": torch.zeros(3)}, tmp_path, 6)
    assert set_aside_checkpoints(tmp_path, 4) == [folder.with_name(folder.name + "_2") / "step_00000006.pt"]
    assert (folder / "step_00000006.pt").read_bytes() == before["step_00000006.pt"]  # the first one kept
    # pruning never reaches into the folders set aside
    for step in (5, 7, 9):
        save_checkpoint({"step": step, "w": torch.zeros(3)}, tmp_path, step, keep=1)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000009.pt"]
    assert len(list(folder.iterdir())) == 2


@pytest.mark.parametrize(("best_step", "moves"), [(6, True), (4, False), (2, False)])
def test_a_best_state_of_an_abandoned_step_is_set_aside(tmp_path: Path, best_step: int, moves: bool) -> None:
    """best.pt / best.json of a step after the resumed one belong to the abandoned run: they move
    with its checkpoints, so the resumed run's best is not contradicted by a state it never had."""
    for step in (2, 4, 6):
        save_checkpoint({"step": step}, tmp_path, step, keep=10)
    folder = tmp_path / "checkpoints"
    (folder / "best.pt").write_bytes(b"state")
    (folder / "best.json").write_text(json.dumps({"step": best_step, "metric": "kid_x100", "value": 1.0}))
    moved = set_aside_checkpoints(tmp_path, 4)
    aside = folder / "abandoned_after_00000004"
    assert (aside / "best.pt" in moved and aside / "best.json" in moved) is moves
    assert (folder / "best.pt").exists() is not moves and (folder / "best.json").exists() is not moves
    assert aside / "step_00000006.pt" in moved


def test_bad_checkpoints_raise_weights_error(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")
    good = save_checkpoint({"step": 1, "w": torch.arange(10000.0)}, tmp_path, 1)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[:1000])
    junk = tmp_path / "junk.pt"
    junk.write_text("hello")
    for bad in (cut, junk):
        with pytest.raises(WeightsError, match="cannot read checkpoint") as info:
            load_checkpoint(bad)
        assert str(bad) in str(info.value) and "\n" not in str(info.value)


def test_checkpoints_never_unpickle_code(tmp_path: Path) -> None:
    # an object that is not plain data: weights_only loading must refuse it, not run it
    path = tmp_path / "evil.pt"
    torch.save({"step": 1, "payload": fractions.Fraction(1, 3)}, path)
    with pytest.raises(WeightsError, match="cannot read checkpoint"):
        load_checkpoint(path)


def test_checkpoint_config_reads_the_saved_config_alone(tmp_path: Path) -> None:
    """What ``facetoon export`` builds its networks from (the checkpoint's own config)."""
    path = save_checkpoint({"step": 3, "w": torch.zeros(10), "config": {"ngf": 8, "precision": "fast"}}, tmp_path, 3)
    assert checkpoint_config(path) == {"ngf": 8, "precision": "fast"}
    assert checkpoint_config(save_checkpoint({"step": 4, "w": torch.zeros(1)}, tmp_path, 4)) is None
    with pytest.raises(WeightsError, match="checkpoint not found"):
        checkpoint_config(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_text("hello")
    with pytest.raises(WeightsError, match="cannot read checkpoint"):
        checkpoint_config(junk)


# ---- data -----------------------------------------------------------------------------------------
def _write_images(folder: Path, n: int, size: int = 40, seed: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        img = rng.integers(0, 256, (size, size + 8, 3), dtype=np.uint8)  # not square on purpose
        path = folder / f"img_{i:02d}.png"
        Image.fromarray(img).save(path)
        paths.append(path)
    return paths


def test_list_images_and_errors(tmp_path: Path) -> None:
    paths = _write_images(tmp_path / "a", 3)
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    assert list_images(tmp_path / "a") == paths
    with pytest.raises(DataError, match="folder not found"):
        list_images(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images") as info:
        list_images(tmp_path / "empty")
    assert "empty" in str(info.value)


def test_split_holdout_is_stable_and_disjoint(tmp_path: Path) -> None:
    files = [tmp_path / f"{i}.jpg" for i in range(20)]
    keep, hold = split_holdout(files, 5, seed=3)
    assert len(keep) == 15 and len(hold) == 5 and not set(keep) & set(hold)
    assert sorted(keep + hold) == sorted(files)
    assert split_holdout(files, 5, seed=3) == (keep, hold)
    assert split_holdout(files, 5, seed=4)[1] != hold
    assert split_holdout(files, 0, seed=3) == (files, [])
    with pytest.raises(DataError, match="cannot hold out 20 of 20"):
        split_holdout(files, 20, seed=3)


def test_domain_sampler_visits_every_file_once_per_pass() -> None:
    s = DomainSampler(7, seed=1, domain=0)
    first = [s(i) for i in range(7)]
    second = [s(i) for i in range(7, 14)]
    assert sorted(first) == sorted(second) == list(range(7))
    assert first != second  # a fresh permutation per pass
    again = DomainSampler(7, seed=1, domain=0)
    assert [again(i) for i in range(13, -1, -1)] == (first + second)[::-1]  # any access order
    assert [DomainSampler(7, seed=1, domain=1)(i) for i in range(7)] != first


def test_step_sampler_gives_each_rank_its_own_indices() -> None:
    single = list(StepSampler(0, batch_size=2, total_steps=3))
    assert single == [0, 1, 2, 3, 4, 5]
    r0 = list(StepSampler(0, batch_size=2, rank=0, world_size=2, total_steps=3))
    r1 = list(StepSampler(0, batch_size=2, rank=1, world_size=2, total_steps=3))
    assert r0 == [0, 1, 4, 5, 8, 9] and r1 == [2, 3, 6, 7, 10, 11]
    assert list(StepSampler(2, batch_size=2, total_steps=3)) == single[4:]  # resuming at step 2
    assert len(StepSampler(1, batch_size=4, total_steps=3)) == 8


def test_augment_shapes_ranges_and_no_op_settings(tmp_path: Path) -> None:
    path = _write_images(tmp_path, 1)[0]
    rgb = np.asarray(Image.open(path).convert("RGB"))
    out = Augment(32)(rgb, np.random.default_rng(0))
    assert out.shape == (3, 32, 32) and out.dtype == torch.float32
    assert -1.0 <= out.min() and out.max() <= 1.0
    # without crop margin and flip, augmentation is the plain resize used for validation images
    plain = Augment(32, margin=0, flip=False)(rgb, np.random.default_rng(0))
    assert torch.equal(plain, load_image_tensor(path, 32))
    # flip really flips: with the crop disabled, one of the two random choices is the mirror image
    flips = {bool(torch.equal(Augment(32, margin=0)(rgb, np.random.default_rng(s)), plain.flip(-1)))
             for s in range(10)}
    assert flips == {True, False}


def test_unpaired_dataset_is_a_pure_function_of_seed_and_index(tmp_path: Path) -> None:
    files_a = _write_images(tmp_path / "A", 4, seed=1)
    files_b = _write_images(tmp_path / "B", 3, seed=2)
    ds = UnpairedDataset(files_a, files_b, Augment(32), seed=0)
    a5, b5 = ds[5]
    assert a5.shape == b5.shape == (3, 32, 32)
    again = UnpairedDataset(files_a, files_b, Augment(32), seed=0)
    for _ in range(2):
        x, y = again[5]
        assert torch.equal(x, a5) and torch.equal(y, b5)
    assert not torch.equal(ds[6][0], a5)
    assert not torch.equal(UnpairedDataset(files_a, files_b, Augment(32), seed=1)[5][0], a5)
    with pytest.raises(DataError, match="both domains"):
        UnpairedDataset(files_a, [], Augment(32), seed=0)


# ---- logs and samples -----------------------------------------------------------------------------
def test_metric_logger_appends_and_truncates_on_resume(tmp_path: Path) -> None:
    log = MetricLogger(tmp_path, tensorboard=False)
    for step in range(1, 6):
        log.log_losses(step, {"a": step * 1.5, "b": 1.0 / step})
    log.log_stats(2, {"kid_x100": 3.5})
    log.log_stats(4, {"kid_x100": 2.5})
    log.close()
    with (tmp_path / "losses.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["step"] for r in rows] == ["1", "2", "3", "4", "5"] and rows[1]["a"] == "3"
    # resuming from the checkpoint of step 3: later rows belong to a lost future and are dropped
    log = MetricLogger(tmp_path, resume_step=3, tensorboard=False)
    log.log_losses(4, {"a": 40.0, "b": 0.0})
    log.close()
    with (tmp_path / "losses.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["step"], r["a"]) for r in rows] == [("1", "1.5"), ("2", "3"), ("3", "4.5"), ("4", "40")]
    stats = [json.loads(line) for line in (tmp_path / "stats.jsonl").read_text().splitlines()]
    assert stats == [{"step": 2, "kid_x100": 3.5}]


def test_metric_logger_drops_what_a_crash_left_half_written(tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    """A crash in the middle of a write leaves a cut-off CSV row and JSON line: resuming drops them
    (with a warning) instead of failing, and later rows start on a line of their own."""
    log = MetricLogger(tmp_path, tensorboard=False)
    for step in (1, 2):
        log.log_losses(step, {"a": float(step), "b": 2.0 * step})
    log.log_stats(2, {"kid_x100": 3.5})
    log.close()
    with (tmp_path / "losses.csv").open("a") as f:
        f.write("3,3")  # step 3 was being written: no b, no newline
    with (tmp_path / "stats.jsonl").open("a") as f:
        f.write('{"step": 3, "kid_x')
    logger = logging.getLogger("facetoon.train.logger")
    logger.addHandler(caplog.handler)  # the CLI tests may have stopped propagation of "facetoon"
    try:
        with caplog.at_level(logging.WARNING, logger="facetoon.train.logger"):
            log = MetricLogger(tmp_path, resume_step=2, tensorboard=False)
    finally:
        logger.removeHandler(caplog.handler)
    assert "incomplete row" in caplog.text and "unreadable line" in caplog.text
    log.log_losses(3, {"a": 30.0, "b": 60.0})
    log.log_stats(4, {"kid_x100": 2.0})
    log.close()
    with (tmp_path / "losses.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["step"], r["a"], r["b"]) for r in rows] == [("1", "1", "2"), ("2", "2", "4"), ("3", "30", "60")]
    stats = [json.loads(line) for line in (tmp_path / "stats.jsonl").read_text().splitlines()]
    assert stats == [{"step": 2, "kid_x100": 3.5}, {"step": 4, "kid_x100": 2.0}]
    assert not list(tmp_path.glob("*.tmp*"))  # the atomic rewrites left no temporary files


def test_metric_logger_writes_tensorboard_events(tmp_path: Path) -> None:
    log = MetricLogger(tmp_path, tensorboard=True)
    log.log_losses(1, {"g_total": 2.0})
    log.log_image("samples", 1, np.zeros((8, 8, 3), np.uint8))
    log.close()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [s.value for s in events.Scalars("loss/g_total")] == [2.0]
    assert events.Tags()["images"] == ["samples"]


def test_sample_helpers() -> None:
    x = torch.tensor([-1.0, 0.0, 1.0, 2.0]).view(1, 1, 4).expand(3, 1, 4)
    img = tensor_to_uint8(x)
    assert img.shape == (1, 4, 3) and img.dtype == np.uint8
    assert img[0, :, 0].tolist() == [0, 128, 255, 255]  # [-1, 1] -> [0, 255], clipped
    base = np.full((16, 16, 3), 100, np.uint8)
    heat = torch.zeros(4, 4)
    heat[0, 0] = 5.0
    over = heatmap_overlay(base, heat)
    assert over.shape == (16, 16, 3) and over.dtype == np.uint8
    assert not np.array_equal(over[0, 0], over[-1, -1])  # hot corner vs cold corner
    tiles = [[np.full((4, 6, 3), v, np.uint8) for v in (10, 20)], [np.full((4, 6, 3), 30, np.uint8)]]
    grid = image_grid(tiles, pad=2)
    assert grid.shape == (2 * 6 + 2, 2 * 8 + 2, 3)
    assert grid[2, 2, 0] == 10 and grid[2, 10, 0] == 20 and grid[8, 2, 0] == 30
    assert grid[8, 10, 0] == 255 and grid[0, 0, 0] == 255  # padding and the missing tile are white


# ---- runtime, distributed, signals ---------------------------------------------------------------
def test_runtime_resolution() -> None:
    rt = resolve_runtime("cpu", "fp32")
    assert rt.device == torch.device("cpu") and rt.precision == "fp32"
    assert rt.autocast_dtype is None and not rt.channels_last
    auto = resolve_runtime("cpu", "auto")
    assert auto.precision == ("fast" if cpu_has_fast_bf16() else "fp32")
    if cpu_has_fast_bf16():
        assert auto.autocast_dtype == torch.bfloat16 and auto.channels_last
        x = auto.prepare_input(torch.zeros(1, 3, 8, 8))
        assert x.is_contiguous(memory_format=torch.channels_last)
        with auto.autocast():
            y = torch.nn.functional.conv2d(x, torch.zeros(2, 3, 1, 1))
        assert y.dtype == torch.bfloat16
    with pytest.raises(ConfigError, match="precision must be one of"):
        resolve_runtime("cpu", "half")
    with pytest.raises(ConfigError, match="invalid device"):
        resolve_runtime("toaster", "fp32")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_runtime("cuda", "fp32")


@pytest.mark.parametrize(
    ("machine", "flags", "onednn", "expected"),
    [
        ("x86_64", {"avx512f", "avx512bw", "avx512vl"}, True, False),  # AVX-512 only: bf16 emulated
        ("x86_64", {"avx512f", "avx512bw", "avx512_bf16"}, True, True),  # Zen 4, Cooper Lake
        ("x86_64", {"avx512f", "amx_bf16", "amx_tile"}, True, True),  # Sapphire Rapids
        ("x86_64", None, True, False),  # flags unreadable (no /proc/cpuinfo): fp32
        ("x86_64", {"avx2", "avx512_bf16"}, False, False),  # oneDNN says no
        ("aarch64", None, True, True),  # Arm: oneDNN's own check (BF16 extension)
    ],
)
def test_fast_bf16_needs_native_bf16_on_x86(monkeypatch: pytest.MonkeyPatch, machine: str,
                                            flags: set[str] | None, onednn: bool, expected: bool) -> None:
    import facetoon.runtime as runtime

    monkeypatch.setattr(runtime.platform, "machine", lambda: machine)
    monkeypatch.setattr(runtime, "_onednn_accepts_bf16", lambda: onednn)
    monkeypatch.setattr(runtime, "x86_cpu_flags", lambda: None if flags is None else frozenset(flags))
    runtime.cpu_has_fast_bf16.cache_clear()
    try:
        assert runtime.cpu_has_fast_bf16() is expected
        assert (resolve_runtime("cpu", "auto").precision == "fast") is expected
    finally:
        monkeypatch.undo()
        runtime.cpu_has_fast_bf16.cache_clear()


def test_x86_cpu_flags_reads_proc_cpuinfo() -> None:
    from facetoon.runtime import x86_cpu_flags

    if not Path("/proc/cpuinfo").exists() or os.uname().machine != "x86_64":
        pytest.skip("needs Linux on x86_64 (/proc/cpuinfo)")
    flags = x86_cpu_flags()
    assert flags is not None and "sse2" in flags  # every x86_64 CPU has SSE2


def test_cpu_fields_reads_the_first_processor_block(tmp_path: Path) -> None:
    from facetoon.cpuinfo import cpu_fields, cpu_flags

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: First CPU\nflags\t\t: fpu sse2 amx_bf16\n\n"
                    "processor\t: 1\nmodel name\t: Second CPU\nflags\t\t: fpu\n")
    assert cpu_fields(info)["model name"] == "First CPU"
    assert cpu_flags(info) == frozenset({"fpu", "sse2", "amx_bf16"})
    assert cpu_fields(tmp_path / "missing") == {} and cpu_flags(tmp_path / "missing") is None
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd bf16\n")
    assert cpu_flags(arm) is None  # Arm lists "Features", not x86 "flags"


def test_single_process_needs_no_process_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    info = init_distributed("cpu")
    assert (info.rank, info.world_size, info.enabled, info.is_main) == (0, 1, False, True)


def test_flags_are_reduced_on_the_runtime_device() -> None:
    """The stop/checkpoint flags every rank agrees on are reduced on the device the model trains on:
    NCCL (the CUDA process group) reduces CUDA tensors only, a CPU tensor there fails the first step.
    NCCL cannot run here: the tensor's device is checked on the meta device, the reduction itself
    in a real one-process gloo group."""
    meta = flag_tensor([True, False, True], torch.device("meta"))
    assert meta.device == torch.device("meta") and meta.shape == (3,)
    assert flag_tensor([True, False], torch.device("cpu")).tolist() == [1.0, 0.0]
    assert any_rank([True, False], DistInfo(), torch.device("meta")) == [True, False]  # no group: as given
    import torch.distributed as dist

    assert not dist.is_initialized()
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        info = DistInfo(rank=0, world_size=2)  # enabled: the collective runs (in a group of one)
        assert any_rank([False, True, False], info, torch.device("cpu")) == [False, True, False]
    finally:
        dist.destroy_process_group()


def test_stop_request_turns_signals_into_a_flag() -> None:
    before = signal.getsignal(signal.SIGINT)
    with _StopRequest() as stop:
        assert not stop.requested
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested  # the first signal only asks to stop after the current step
        with pytest.raises(KeyboardInterrupt):  # a second one aborts
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before


# ---- optimiser ------------------------------------------------------------------------------------
def test_fused_adam_equals_the_default_and_resumes_fused() -> None:
    import copy

    from facetoon.train.optim import adam, use_fused

    torch.manual_seed(0)
    ref_model = torch.nn.Linear(8, 4)
    model = copy.deepcopy(ref_model)
    settings = dict(lr=1e-3, betas=(0.5, 0.999), weight_decay=1e-4)
    ref = torch.optim.Adam(ref_model.parameters(), **settings)  # the default (for-loop) implementation
    opt = adam(model.parameters(), **settings)
    assert opt.param_groups[0]["fused"] is True

    def step(m: torch.nn.Module, o: torch.optim.Optimizer, x: torch.Tensor) -> None:
        o.zero_grad()
        m(x).square().sum().backward()
        o.step()

    for _ in range(5):
        x = torch.randn(3, 8)
        step(ref_model, ref, x)
        step(model, opt, x)
    assert all(torch.allclose(p, q, atol=1e-7) for p, q in zip(ref_model.parameters(), model.parameters()))
    # a checkpoint of the default implementation loads as fused and continues the same run
    resumed_model = copy.deepcopy(ref_model)
    resumed = adam(resumed_model.parameters(), **settings)
    resumed.load_state_dict(copy.deepcopy(ref.state_dict()))
    assert resumed.param_groups[0]["fused"] is None  # what the checkpoint carried ...
    use_fused(resumed)
    assert resumed.param_groups[0]["fused"] is True  # ... and what the trainers restore
    x = torch.randn(3, 8)
    step(ref_model, ref, x)
    step(resumed_model, resumed, x)
    assert all(torch.allclose(p, q, atol=1e-7) for p, q in zip(ref_model.parameters(), resumed_model.parameters()))
