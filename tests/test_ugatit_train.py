"""End-to-end tests of U-GAT-IT training (``facetoon train ugatit``, ``facetoon export ugatit``).

Every run is real but tiny: 32 px images, 8-channel networks, a few steps, one torch thread per
process. Data is either a handful of real selfie2anime images copied from ``../shared`` (tests
skip without it) or two synthetic domains drawn with numpy, so that training is exercised on
machines without ``../shared`` too.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facetoon.cli import main
from facetoon.models import load_pretrained
from facetoon.models.ugatit import Generator
from facetoon.runtime import cpu_has_fast_bf16
from facetoon.train.checkpoint import list_checkpoints, load_checkpoint
from facetoon.train.config import load_config
from facetoon.train.ugatit import UGATITConfig, UGATITTrainer
from train_helpers import (  # noqa: F401 (one_thread: an autouse fixture)
    REPO, ckpt_steps, one_line_error, one_thread, rank_dump_script, read_losses, subprocess_env)

# a complete but tiny U-GAT-IT: every part of the model and of the step is exercised
TINY = ["img_size=32", "ngf=8", "ndf=8", "n_res=2", "light=true", "n_layers_global=5", "n_layers_local=4",
        "holdout=1", "kid_images=0", "n_samples=2", "precision=fp32", "device=cpu"]
TINY_CONFIG = dict(img_size=32, ngf=8, ndf=8, n_res=2, light=True, n_layers_global=5, n_layers_local=4,
                   holdout=1, kid_images=0, n_samples=2, precision="fp32", device="cpu")
LOSS_KEYS = ["d_total", "d_a", "d_b", "g_total", "g_adv_a", "g_adv_b", "g_cycle_a", "g_cycle_b",
             "g_identity_a", "g_identity_b", "g_cam_a", "g_cam_b"]


# ---- data ------------------------------------------------------------------------------------------
def _synthetic_image(rng: np.random.Generator, kind: str, size: int = 64) -> np.ndarray:
    """A face-like picture: ``"photo"`` = soft shading and noise, ``"anime"`` = flat colours, hard edges."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    cy, cx = rng.uniform(0.4, 0.6, 2)
    ry, rx = rng.uniform(0.25, 0.35), rng.uniform(0.18, 0.28)
    inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2
    bg = rng.uniform(0, 255, 3)
    skin = np.array([rng.uniform(150, 230), rng.uniform(110, 180), rng.uniform(90, 150)])
    if kind == "photo":
        ramp = (0.6 + 0.4 * xx)[..., None]
        face = np.clip(1.2 - inside, 0, 1)[..., None]  # soft edge
        img = ramp * bg * (1 - face) + face * skin * (0.8 + 0.2 * yy[..., None])
        img = img + rng.normal(0, 8, img.shape)
    else:
        face = (inside < 1)[..., None]
        img = np.where(face, skin, bg) * np.ones((size, size, 3))
        for ex in (cx - rx / 2.5, cx + rx / 2.5):  # big dark eyes
            eye = ((yy - cy) / (ry / 4)) ** 2 + ((xx - ex) / (rx / 4)) ** 2 < 1
            img[eye] = (30, 30, 80)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_synthetic_data(root: Path, n: int = 6, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for domain, kind in (("trainA", "photo"), ("trainB", "anime")):
        (root / domain).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(_synthetic_image(rng, kind)).save(root / domain / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def synthetic_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synthetic_data(tmp_path_factory.mktemp("synthetic"))


@pytest.fixture(scope="module")
def real_data(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six real selfies and six real anime faces of selfie2anime, copied as trainA/ and trainB/."""
    root = tmp_path_factory.mktemp("selfie2anime")
    for domain in ("trainA", "trainB"):
        files = sorted((shared / "data" / "selfie2anime" / domain).glob("*.jpg"))[:6]
        if len(files) < 6:
            pytest.skip(f"selfie2anime/{domain} has fewer than 6 images")
        (root / domain).mkdir()
        for f in files:
            shutil.copy(f, root / domain / f.name)
    return root


# ---- helpers ---------------------------------------------------------------------------------------
def train(data: Path, out: Path, *settings: str, extra: tuple[str, ...] = ()) -> int:
    """``facetoon -q train ugatit --data DATA --out OUT [extra] --set TINY settings`` in-process."""
    return main(["-q", "train", "ugatit", "--data", str(data), "--out", str(out), *extra,
                 "--set", *TINY, *settings])


def loss_rows(run: Path) -> list[tuple[str, ...]]:
    """The logged losses of every step, as written (6 significant digits), without timings."""
    return [(r["step"], *(r[k] for k in LOSS_KEYS), r["lr"]) for r in read_losses(run)]


@pytest.fixture(scope="module")
def synthetic_run(synthetic_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 6-step run on the synthetic data (checkpoints every 2 steps, last 2 kept)."""
    run = tmp_path_factory.mktemp("runs") / "synthetic"
    code = train(synthetic_data, run, "iterations=6", "checkpoint_every=2", "keep_checkpoints=2",
                 "sample_every=3")
    assert code == 0
    return run


# ---- end to end -------------------------------------------------------------------------------------
def _check_finished_run(run: Path, data: Path, n_val_images: int) -> None:
    rows = read_losses(run)
    assert [int(r["step"]) for r in rows] == list(range(1, 7))
    assert set(LOSS_KEYS + ["lr", "sec_per_step"]) <= set(rows[0])
    for r in rows:
        for k in LOSS_KEYS:
            assert math.isfinite(float(r[k])), (k, r)
        assert float(r["d_total"]) > 0 and float(r["g_total"]) > 0
    # lr: constant over the first half, then linear decay to 0 at the last step (official schedule:
    # step s > iterations/2 trains at lr * (iterations - s) / (iterations / 2))
    lrs = [float(r["lr"]) for r in rows]
    assert lrs == pytest.approx([1e-4, 1e-4, 1e-4, 1e-4 * 2 / 3, 1e-4 / 3, 0.0], rel=1e-4, abs=1e-12)
    # checkpoints every 2 steps, only the last 2 kept; no temporary files left behind
    assert ckpt_steps(run) == [4, 6]
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert [n for n in names if n.startswith("step_")] == ["step_00000004.pt", "step_00000006.pt"]
    assert set(names) - {"step_00000004.pt", "step_00000006.pt"} <= {"best.pt", "best.json"}  # no temp files
    state = load_checkpoint(run / "checkpoints" / "step_00000006.pt")
    assert state["step"] == 6 and state["config"]["ngf"] == 8
    # sample grids: rows of input | heat-map | translation | heat-map | cycle | heat-map | identity
    samples = sorted(p.name for p in (run / "samples").iterdir())
    assert samples == ["latest.jpg", "step_00000003.jpg", "step_00000006.jpg"]
    with Image.open(run / "samples" / "latest.jpg") as im:
        assert im.size == (7 * (32 + 2) + 2, n_val_images * (32 + 2) + 2)
    events = list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    # the resolved config, readable back
    expected = {**TINY_CONFIG, "iterations": 6, "checkpoint_every": 2, "keep_checkpoints": 2,
                "sample_every": 3}
    if n_val_images == 4:
        expected.update(holdout=3, kid_images=3)
    assert load_config(UGATITConfig, run / "config.toml") == UGATITConfig(**expected)
    assert (run / "data_dir.txt").read_text().strip() == str(data.resolve())


def _check_export(run: Path, data: Path, out: Path, tmp_path: Path) -> None:
    config_before = (run / "config.toml").read_bytes()
    assert main(["-q", "export", "ugatit", str(run), str(out)]) == 0
    assert (run / "config.toml").read_bytes() == config_before  # exporting leaves the run alone
    x = torch.stack([torch.linspace(-1, 1, 32 * 32 * 3).view(3, 32, 32),
                     torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1])
    config = load_config(UGATITConfig, run / "config.toml")
    last = run / "checkpoints" / "step_00000006.pt"
    trainer = UGATITTrainer(config, data, tmp_path / "reloaded", resume=last)
    assert trainer.step == 6
    for direction in ("a2b", "b2a"):
        folder = out / direction
        assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
        model = load_pretrained(folder)
        assert model.config == dict(ngf=8, n_res=2, img_size=32, light=True, in_channels=3, out_channels=3)
        with torch.no_grad():
            got = model(x)
        want = trainer.translate(x, direction)
        for a, b in zip(got, want):
            assert torch.equal(a, b)
    assert not torch.equal(load_pretrained(out / "a2b")(x)[0], load_pretrained(out / "b2a")(x)[0])


def test_end_to_end_synthetic(synthetic_run: Path, synthetic_data: Path, tmp_path: Path) -> None:
    _check_finished_run(synthetic_run, synthetic_data, n_val_images=2)
    _check_export(synthetic_run, synthetic_data, tmp_path / "export", tmp_path)


def test_export_without_the_training_data(synthetic_run: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A run folder whose data folder is gone (e.g. copied to another machine) still exports; only
    ``--samples`` needs the data, and says which folder is missing."""
    run = tmp_path / "run"
    shutil.copytree(synthetic_run, run)
    gone = tmp_path / "moved-away"
    (run / "data_dir.txt").write_text(f"{gone}\n")
    assert main(["-q", "export", "ugatit", str(run), str(tmp_path / "out")]) == 0
    got = load_pretrained(tmp_path / "out" / "a2b").state_dict()
    want = load_checkpoint(list_checkpoints(run)[-1])["trainer"]["gens"]
    assert all(torch.equal(t, want[f"a2b.{k}"]) for k, t in got.items())
    code = main(["-q", "export", "ugatit", str(run), str(tmp_path / "out2"), "--samples", str(tmp_path / "s.jpg")])
    one_line_error(capsys, code, str(gone))
    # a trainer built without data exports; sample grids and validation say why they cannot run
    from facetoon.errors import ConfigError

    trainer = UGATITTrainer(load_config(UGATITConfig, run / "config.toml", {}), None, run, resume=True)
    for method in (trainer.sample_grid, trainer.validate):
        with pytest.raises(ConfigError, match="without data"):
            method()
    trainer.close()


def test_ship_weights_reads_a_checkpoint_as_its_export_does(synthetic_run: Path, tmp_path: Path) -> None:
    """scripts/ship_weights.py --no-state --weights-checkpoint takes step, hours and image size of the
    state checkpoint from the checkpoint itself instead of exporting it: the same values as an export."""
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("ship_weights", REPO / "scripts" / "ship_weights.py")
    ship_weights = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ship_weights)
    assert main(["-q", "export", "ugatit", str(synthetic_run), str(tmp_path / "e")]) == 0
    meta = json.loads((tmp_path / "e" / "a2b" / "config.json").read_text())["meta"]
    got = ship_weights.checkpoint_meta(list_checkpoints(synthetic_run)[-1])
    assert got == {"step": 6, "train_hours": meta["train_hours"], "config": {"img_size": 32}}
    assert meta["step"] == 6 and meta["config"]["img_size"] == 32


def test_export_fp16_discriminators_and_warm_start(synthetic_run: Path, synthetic_data: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import json

    out = tmp_path / "half"
    assert main(["-q", "export", "ugatit", str(synthetic_run), str(out), "--fp16", "--discriminators"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a2b", "b2a", "disc_ga", "disc_gb", "disc_la", "disc_lb"]
    doc = json.loads((out / "a2b" / "config.json").read_text())
    assert doc["arch"] == "ugatit_generator" and doc["dtype"] == "float16"
    assert doc["meta"]["step"] == 6 and doc["meta"]["direction"] == "A->B"
    assert (out / "a2b" / "model.safetensors").stat().st_size < 0.6 * (
        sum(t.numel() for t in load_pretrained(out / "a2b").state_dict().values()) * 4)
    # init_from: a new run starts from the exported weights (fp16-rounded), discriminators included
    cfg = UGATITConfig(**{**TINY_CONFIG, "init_from": str(out)})
    trainer = UGATITTrainer(cfg, synthetic_data, tmp_path / "warm")
    for name, module in (("a2b", trainer.gens.a2b), ("b2a", trainer.gens.b2a), ("disc_la", trainer.discs.la)):
        want = load_pretrained(out / name).state_dict()
        assert all(torch.equal(module.state_dict()[k], want[k]) for k in want), name
    # ... but only with the same architecture
    code = train(synthetic_data, tmp_path / "mismatch", "ngf=16", f"init_from={json.dumps(str(out))}")
    one_line_error(capsys, code, "init_from", "ngf")
    # export needs a run folder with a checkpoint
    code = main(["-q", "export", "ugatit", str(tmp_path), str(tmp_path / "x")])
    one_line_error(capsys, code, "not a training run folder", str(tmp_path))


def test_warm_start_lr_ramp_continues_across_a_resume(synthetic_run: Path, synthetic_data: Path,
                                                      tmp_path: Path) -> None:
    """warm_start_lr_ramp=N: after an init_from warm start (fresh Adam moments) the k-th step trains at
    lr * (k + 1) / N; a resume in the middle of the ramp goes on with it; a run from scratch has none."""
    out = tmp_path / "export"
    assert main(["-q", "export", "ugatit", str(synthetic_run), str(out), "--discriminators"]) == 0
    cfg = UGATITConfig(**{**TINY_CONFIG, "iterations": 100, "decay_start": 1.0, "lr": 1e-4,
                          "checkpoint_every": 1000, "init_from": str(out), "warm_start_lr_ramp": 4})
    real_a, real_b = (t[None] for t in UGATITTrainer(cfg, synthetic_data, tmp_path / "probe").dataset[0])

    def lrs(trainer: UGATITTrainer, n: int) -> list[float]:
        got = []
        for _ in range(n):
            got.append(trainer.train_step((real_a, real_b))["lr"])
            trainer.step += 1
        return got

    trainer = UGATITTrainer(cfg, synthetic_data, tmp_path / "warm")
    assert trainer.step == 6 and trainer.warm_started_at == 6
    assert lrs(trainer, 2) == pytest.approx([2.5e-5, 5e-5])
    trainer.save()
    trainer.close()
    resumed = UGATITTrainer(cfg, synthetic_data, tmp_path / "warm", resume=True)
    assert resumed.step == 8
    assert lrs(resumed, 3) == pytest.approx([7.5e-5, 1e-4, 1e-4])
    resumed.close()
    scratch = UGATITTrainer(dataclasses.replace(cfg, init_from=""), synthetic_data, tmp_path / "scratch")
    assert scratch.lr_ramp() == 1.0 and lrs(scratch, 1) == pytest.approx([1e-4])
    scratch.close()
    # the ramp multiplies the schedule's decay: iterations 10, decay from step 5, warm start at 6
    decaying = UGATITTrainer(dataclasses.replace(cfg, iterations=10, decay_start=0.5), synthetic_data,
                             tmp_path / "decaying")
    assert lrs(decaying, 2) == pytest.approx([1e-4 * 3 / 5 * 1 / 4, 1e-4 * 2 / 5 * 2 / 4])
    decaying.close()
    # without a ramp nothing is recorded, so a later resume (moments intact) never ramps
    plain = UGATITTrainer(dataclasses.replace(cfg, warm_start_lr_ramp=0), synthetic_data, tmp_path / "plain")
    assert plain.step == 6 and plain.warm_started_at is None
    plain.close()
    with pytest.raises(ValueError, match="warm_start_lr_ramp"):
        UGATITConfig(**{**TINY_CONFIG, "warm_start_lr_ramp": -1})


def test_kid_options_fail_when_the_config_is_made() -> None:
    """Not at the first validation, an hour into a CPU run."""
    from facetoon.errors import ConfigError

    with pytest.raises(ConfigError, match=r"kid_backend must be one of \['litert', 'torch'\], got 'tflite'"):
        UGATITConfig(**{**TINY_CONFIG, "kid_backend": "tflite"})
    with pytest.raises(ConfigError, match="holdout and aug_margin must be >= 0"):
        UGATITConfig(**{**TINY_CONFIG, "holdout": -1})
    for value in (-1, 1):
        with pytest.raises(ConfigError, match=r"kid_images must be 0 \(no KID\) or >= 2"):
            UGATITConfig(**{**TINY_CONFIG, "kid_images": value})


def test_init_std_gives_the_papers_initialisation_by_default(tmp_path: Path) -> None:
    """Fresh networks: N(0, 0.02) weights and zero biases (the paper) unless init_std = 0
    (PyTorch's default, as the authors' PyTorch release); a negative value is refused."""
    from facetoon.errors import ConfigError

    assert UGATITConfig().init_std == 0.02

    def first_conv(init_std: float) -> torch.nn.Conv2d:
        cfg = UGATITConfig(**{**TINY_CONFIG, "ngf": 16, "init_std": init_std})
        trainer = UGATITTrainer(cfg, None, tmp_path / f"run-{init_std}")
        return next(m for m in trainer.gens.a2b.modules() if isinstance(m, torch.nn.Conv2d))

    paper, default = first_conv(0.02), first_conv(0.0)  # 16 x 3 x 7 x 7 weights each
    assert paper.weight.std().item() == pytest.approx(0.02, rel=0.15)
    # PyTorch's Kaiming-uniform bound for fan-in 147: 1/sqrt(147), std = bound/sqrt(3) ~ 0.048
    assert default.weight.std().item() == pytest.approx(1 / math.sqrt(3 * 147), rel=0.15)
    with pytest.raises(ConfigError, match="init_std must be >= 0"):
        UGATITConfig(**{**TINY_CONFIG, "init_std": -0.02})


def test_warm_start_at_another_resolution(synthetic_run: Path, synthetic_data: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A light generator trained at 32 px continues at 64 px (a low-resolution phase first)."""
    out = tmp_path / "export"
    assert main(["-q", "export", "ugatit", str(synthetic_run), str(out), "--discriminators"]) == 0
    # ... with a deeper global critic, as the paper has at the larger size: it starts afresh
    cfg = UGATITConfig(**{**TINY_CONFIG, "img_size": 64, "n_layers_global": 6, "init_from": str(out)})
    trainer = UGATITTrainer(cfg, synthetic_data, tmp_path / "at64")
    want = load_pretrained(out / "a2b").state_dict()
    assert all(torch.equal(trainer.gens.a2b.state_dict()[k], want[k]) for k in want)
    local = load_pretrained(out / "disc_la").state_dict()
    assert all(torch.equal(trainer.discs.la.state_dict()[k], local[k]) for k in local)  # same architecture
    assert trainer.discs.ga.config["n_layers"] == 6
    assert trainer.gens.a2b.config["img_size"] == 64 and trainer.step == 6
    real_a, real_b = trainer.dataset[0]
    assert real_a.shape[-1] == 64
    losses = trainer.train_step((real_a[None], real_b[None]))
    assert all(math.isfinite(v) for v in losses.values())
    trainer.close()
    # the full generator's MLP depends on the size: there the change is refused
    assert not Generator(ngf=8, n_res=2, img_size=64, light=False).accepts_weights_of(
        Generator(ngf=8, n_res=2, img_size=32, light=False).config)


@pytest.mark.shared
def test_end_to_end_real_images_with_kid(real_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    code = train(real_data, run, "iterations=6", "checkpoint_every=2", "keep_checkpoints=2", "sample_every=3",
                 "holdout=3", "kid_images=3")
    assert code == 0
    _check_finished_run(run, real_data, n_val_images=4)
    # validation at the end: KID x100 on MobileNetV2 features of 3 held-out images per domain
    import json

    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert [s["step"] for s in stats] == [6]
    # 3 images a side: every subset is both whole sets, so no spread is logged
    assert math.isfinite(stats[0]["kid_x100"]) and "kid_x100_std" not in stats[0]
    _check_export(run, real_data, tmp_path / "export", tmp_path)


class _ScriptedValidation(UGATITTrainer):
    """The real trainer with a scripted validation metric, to test the best-state service."""

    scores = {2: 50.0, 4: 40.0, 6: 45.0, 8: 30.0, 10: 35.0, 12: 60.0}

    def validate(self) -> dict[str, float]:
        return {"kid_x100": self.scores[self.step], "kid_x100_std": 0.0}


def test_too_few_held_out_images_skip_the_kid_and_the_run_goes_on(
        synthetic_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """holdout = 1 leaves one image per domain, too few for a KID: the validation warns once and
    returns nothing (it used to raise inside fit(), before that step's checkpoint was written)."""
    import logging

    cfg = UGATITConfig(**{**TINY_CONFIG, "holdout": 1, "kid_images": 2, "iterations": 4, "validate_every": 2,
                          "checkpoint_every": 2, "sample_every": 1000})
    trainer = UGATITTrainer(cfg, synthetic_data, tmp_path / "run")
    with caplog.at_level(logging.WARNING, logger="facetoon.train.ugatit"):
        assert trainer.fit() == 4
    trainer.close()
    assert ckpt_steps(tmp_path / "run")[-1] == 4
    assert caplog.text.count("no validation KID: it needs at least 2 held-out images per domain") == 1


def test_best_validation_state_is_kept_apart_and_survives_resume(synthetic_data: Path, tmp_path: Path) -> None:
    import json

    run = tmp_path / "run"
    cfg = UGATITConfig(**{**TINY_CONFIG, "iterations": 6, "validate_every": 2, "checkpoint_every": 2,
                          "keep_checkpoints": 1, "sample_every": 1000})
    trainer = _ScriptedValidation(cfg, synthetic_data, run)
    assert trainer.fit() == 6
    trainer.close()
    # the best (step 4: 40) is kept although only the last checkpoint (step 6) survives pruning
    assert ckpt_steps(run) == [6]
    best = json.loads((run / "checkpoints" / "best.json").read_text())
    measure = {"kid_images": cfg.kid_images, "kid_backend": cfg.kid_backend}
    assert best == {"step": 4, "metric": "kid_x100", "value": 40.0, "weights": "trained", "measure": measure}
    state = load_checkpoint(run / "checkpoints" / "best.pt")
    assert state["step"] == 4 and state["best"] == best
    assert not list((run / "checkpoints").glob(".*"))  # no temporary files left behind
    # resuming knows the best so far: 35 at step 10 is not better than 30 at step 8
    cfg = dataclasses.replace(cfg, iterations=10)
    trainer = _ScriptedValidation(cfg, synthetic_data, run, resume=True)
    assert trainer.best == best
    trainer.fit()
    trainer.close()
    assert json.loads((run / "checkpoints" / "best.json").read_text())["step"] == 8
    assert load_checkpoint(run / "checkpoints" / "best.pt")["step"] == 8
    # the best state exports like any checkpoint
    assert main(["-q", "export", "ugatit", str(run), str(tmp_path / "best"), "--checkpoint",
                 str(run / "checkpoints" / "best.pt")]) == 0
    assert json.loads((tmp_path / "best" / "a2b" / "config.json").read_text())["meta"]["step"] == 8
    # a KID measured on another sample (kid_images is runtime-only) is not compared with the old best:
    # the first validation after the change is the new best although its value is worse
    cfg = dataclasses.replace(cfg, iterations=12, kid_images=cfg.kid_images + 2)
    trainer = _ScriptedValidation(cfg, synthetic_data, run, resume=True)
    trainer.fit()
    trainer.close()
    best = json.loads((run / "checkpoints" / "best.json").read_text())
    assert (best["step"], best["value"], best["measure"]["kid_images"]) == (12, 60.0, cfg.kid_images)


def test_dry_run_prints_config_and_writes_nothing(synthetic_data: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[train]\nngf = 16\nlr = 3e-4\n")
    code = main(["-q", "train", "ugatit", "--data", str(synthetic_data), "--out", str(tmp_path / "run"),
                 "--config", str(cfg), "--set", "lr=5e-4", "light=true", "--dry-run"])
    assert code == 0
    out = capsys.readouterr().out
    for line in ("ngf = 16", "lr = 0.0005", "light = True", "cam_weight = 1000.0"):
        assert line in out.splitlines()
    assert not (tmp_path / "run").exists()


# ---- loss weighting and rho -------------------------------------------------------------------------
def _tiny_trainer(data: Path, run: Path, **changes: object) -> UGATITTrainer:
    return UGATITTrainer(UGATITConfig(**{**TINY_CONFIG, "iterations": 10, **changes}), data, run)


def test_loss_weighting_and_rho_clipping(synthetic_data: Path, tmp_path: Path) -> None:
    base = _tiny_trainer(synthetic_data, tmp_path / "a")
    other = _tiny_trainer(synthetic_data, tmp_path / "b", cam_weight=500.0, cycle_weight=3.0,
                          identity_weight=20.0, adv_weight=1.0)
    batch = tuple(t[None] for t in base.dataset[0])
    # put some rho out of [0, 1]: the step must clip it back after the generator update
    # (the same in both trainers, so that their first steps differ only by the loss weights)
    norms = [m for m in base.gens.modules() if hasattr(m, "rho")]
    other_norms = [m for m in other.gens.modules() if hasattr(m, "rho")]
    with torch.no_grad():
        for group in (norms, other_norms):
            group[0].rho.fill_(1.5)
            group[-1].rho.fill_(-0.5)
    g_before = [p.detach().clone() for p in base.gens.parameters()]
    la, lb = base.train_step(batch), other.train_step(batch)

    # the logged total is the weighted sum of the logged components
    for losses, cfg in ((la, base.config), (lb, other.config)):
        expected = (cfg.adv_weight * (losses["g_adv_a"] + losses["g_adv_b"])
                    + cfg.cycle_weight * (losses["g_cycle_a"] + losses["g_cycle_b"])
                    + cfg.identity_weight * (losses["g_identity_a"] + losses["g_identity_b"])
                    + cfg.cam_weight * (losses["g_cam_a"] + losses["g_cam_b"]))
        assert losses["g_total"] == pytest.approx(expected, rel=1e-5)
        assert losses["d_total"] == pytest.approx(losses["d_a"] + losses["d_b"], rel=1e-6)
    # same seed, same data: the components are identical, the totals differ by the re-weighted terms
    for k in LOSS_KEYS:
        if k != "g_total":
            assert la[k] == lb[k], k
    delta = ((500.0 - 1000.0) * (la["g_cam_a"] + la["g_cam_b"])
             + (3.0 - 10.0) * (la["g_cycle_a"] + la["g_cycle_b"])
             + (20.0 - 10.0) * (la["g_identity_a"] + la["g_identity_b"]))
    assert lb["g_total"] - la["g_total"] == pytest.approx(delta, rel=1e-4)

    for m in norms:
        assert m.rho.min() >= 0.0 and m.rho.max() <= 1.0
    assert torch.all(norms[0].rho == 1.0) and torch.all(norms[-1].rho == 0.0)
    changed = [not torch.equal(a, b) for a, b in zip(g_before, base.gens.parameters())]
    assert sum(changed) > len(changed) // 2  # the generators really were updated


@pytest.mark.skipif(not cpu_has_fast_bf16(), reason="no native bf16 on this CPU (fast path = fp32)")
def test_fast_path_step_agrees_with_fp32(synthetic_data: Path, tmp_path: Path) -> None:
    ref = _tiny_trainer(synthetic_data, tmp_path / "fp32")
    fast = _tiny_trainer(synthetic_data, tmp_path / "fast", precision="fast")
    assert fast.runtime.channels_last and fast.runtime.autocast_dtype == torch.bfloat16
    assert fast.gens.a2b.encoder[0][1].weight.is_contiguous(memory_format=torch.channels_last)
    batch = tuple(t[None] for t in ref.dataset[0])
    a, b = ref.train_step(batch), fast.train_step(batch)
    for k in LOSS_KEYS:
        assert math.isfinite(b[k])
        assert b[k] == pytest.approx(a[k], rel=0.05, abs=0.02), k


# ---- resume ------------------------------------------------------------------------------------------
@pytest.mark.shared
def test_exact_resume_from_a_checkpoint_into_a_new_run(real_data: Path, tmp_path: Path) -> None:
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    assert train(real_data, full, "iterations=8", "checkpoint_every=4", "sample_every=100") == 0
    half = full / "checkpoints" / "step_00000004.pt"
    assert half.is_file()
    assert train(real_data, resumed, "iterations=8", "checkpoint_every=4", "sample_every=100",
                 extra=("--resume", str(half))) == 0
    want = loss_rows(full)[4:]
    got = loss_rows(resumed)
    assert [r[0] for r in got] == ["5", "6", "7", "8"]
    assert got == want  # identical in fp32, to the 6 digits logged
    a = load_checkpoint(full / "checkpoints" / "step_00000008.pt")["trainer"]
    b = load_checkpoint(resumed / "checkpoints" / "step_00000008.pt")["trainer"]
    for part in ("gens", "discs"):
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), (part, k)


@pytest.mark.slow
def test_sigint_saves_and_resume_continues_exactly(synthetic_data: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    run, reference = tmp_path / "interrupted", tmp_path / "reference"
    settings = ["iterations=30", "checkpoint_every=3", "keep_checkpoints=20", "sample_every=1000"]
    log_file = tmp_path / "stderr.txt"
    with log_file.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "facetoon", "train", "ugatit", "--data", str(synthetic_data), "--out",
             str(run), "--set", *TINY, *settings],
            cwd=REPO, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=err)
        try:
            deadline = time.monotonic() + 240
            while not list_checkpoints(run):
                assert proc.poll() is None, log_file.read_text()
                assert time.monotonic() < deadline, "no checkpoint within 240 s"
                time.sleep(0.02)
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    stderr = log_file.read_text()
    assert code == 0, stderr
    assert "Traceback" not in stderr
    assert "received SIGINT" in stderr and "resume with --resume" in stderr
    stopped = ckpt_steps(run)[-1]
    assert 3 <= stopped < 30, stderr  # it stopped early ...
    assert len(read_losses(run)) == stopped  # ... after saving the step it was in

    # resume in the same folder: no --config/--set needed, the run's config.toml is used
    assert main(["-q", "train", "ugatit", "--data", str(synthetic_data), "--out", str(run), "--resume"]) == 0
    assert train(synthetic_data, reference, *settings) == 0
    assert ckpt_steps(run)[-1] == 30
    assert loss_rows(run) == loss_rows(reference)  # all 30 steps, as if never interrupted
    a = load_checkpoint(run / "checkpoints" / "step_00000030.pt")["trainer"]["gens"]
    b = load_checkpoint(reference / "checkpoints" / "step_00000030.pt")["trainer"]["gens"]
    assert all(torch.equal(a[k], b[k]) for k in a)


class _InterruptedAfter(UGATITTrainer):
    """The real trainer, sent a real SIGINT during step ``stop_at`` (it saves that step and stops)."""

    stop_at = 5

    def train_step(self, batch: tuple[torch.Tensor, ...]) -> dict[str, float]:
        losses = super().train_step(batch)
        if self.step + 1 == self.stop_at:
            os.kill(os.getpid(), signal.SIGINT)
        return losses


def test_resuming_an_older_checkpoint_sets_the_later_ones_aside(
        synthetic_run: Path, synthetic_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """``--resume RUN/checkpoints/step_4.pt`` in a run at step 6: the loss rows of steps 5-6 are dropped,
    and so is the step-6 checkpoint, moved aside unchanged (not deleted). Pruning then keeps the new
    branch, and a later plain --resume continues it, not the abandoned step 6."""
    import logging

    run = tmp_path / "run"
    shutil.copytree(synthetic_run, run)
    assert ckpt_steps(run) == [4, 6]
    old_six = (run / "checkpoints" / "step_00000006.pt").read_bytes()
    cfg = load_config(UGATITConfig, run / "config.toml", {"checkpoint_every": 1})  # keep_checkpoints = 2
    trainer = _InterruptedAfter(cfg, synthetic_data, run, resume=run / "checkpoints" / "step_00000004.pt")
    with caplog.at_level(logging.WARNING, logger="facetoon.train.checkpoint"):
        assert trainer.fit() == 5
    trainer.close()
    assert ckpt_steps(run) == [4, 5]  # the new branch, pruned to the last 2
    assert [int(r["step"]) for r in read_losses(run)] == [1, 2, 3, 4, 5]
    again = UGATITTrainer(cfg, synthetic_data, run, resume=True)
    assert again.step == 5
    again.close()
    folder = run / "checkpoints" / "abandoned_after_00000004"
    assert [p.name for p in folder.iterdir()] == ["step_00000006.pt"]
    assert (folder / "step_00000006.pt").read_bytes() == old_six
    assert str(folder) in caplog.text and "step_00000006.pt" in caplog.text


def test_resume_with_another_number_of_processes_warns_and_records_it(
        synthetic_run: Path, synthetic_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Checkpoints record the number of processes (the data order depends on it). Resuming one of 2
    processes in 1 warns and appends a world_size row to config_changes.jsonl; a checkpoint of an
    older version (no world_size) resumes silently. The 2-process checkpoint is the real 1-process
    one relabelled (a real one: test_ddp_two_cpu_processes)."""
    import json
    import logging

    from facetoon.train.checkpoint import save_checkpoint

    state = load_checkpoint(synthetic_run / "checkpoints" / "step_00000006.pt")
    assert state["world_size"] == 1
    cfg = load_config(UGATITConfig, synthetic_run / "config.toml", {})
    for saved, run in ((None, tmp_path / "old"), (2, tmp_path / "two")):
        if saved is None:
            del state["world_size"]
        else:
            state["world_size"] = saved
        checkpoint = save_checkpoint(state, tmp_path / f"source_{saved}", 6)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="facetoon.train.loop"):
            trainer = UGATITTrainer(cfg, synthetic_data, run, resume=checkpoint)
        trainer.close()
        assert trainer.step == 6
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        if saved is None:
            assert not warnings and not (run / "config_changes.jsonl").exists()
            continue
        assert len(warnings) == 1 and "trained with 2 process(es), this run has 1" in warnings[0], warnings
        assert "config_changes.jsonl" in warnings[0]
        rows = [json.loads(line) for line in (run / "config_changes.jsonl").read_text().splitlines()]
        assert rows == [{"step": 6, "key": "world_size", "old": 2, "new": 1}]


def test_resume_on_another_number_of_files_warns_and_records_it(
        synthetic_run: Path, synthetic_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Checkpoints record the training files per domain (the data order depends on their number;
    here 5 per domain, 1 of the 6 held out):
    resuming on a folder with one more trainB image warns and records it; the same files in
    another folder resume silently (an info line)."""
    import json
    import logging

    state = load_checkpoint(synthetic_run / "checkpoints" / "step_00000006.pt")
    assert state["data"]["files"] == [5, 5] and state["data"]["dir"] == str(synthetic_data.resolve())
    moved, grown = tmp_path / "moved", tmp_path / "grown"
    shutil.copytree(synthetic_data, moved)
    shutil.copytree(synthetic_data, grown)
    first = sorted((grown / "trainB").iterdir())[0]
    shutil.copy(first, grown / "trainB" / f"extra{first.suffix}")
    cfg = load_config(UGATITConfig, synthetic_run / "config.toml", {})
    checkpoint = synthetic_run / "checkpoints" / "step_00000006.pt"
    for data, run in ((moved, tmp_path / "run_moved"), (grown, tmp_path / "run_grown")):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="facetoon.train.loop"):
            UGATITTrainer(cfg, data, run, resume=checkpoint).close()
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        if data is moved:
            assert not warnings and not (run / "config_changes.jsonl").exists(), warnings
            continue
        assert len(warnings) == 1 and "[5, 5] file(s) per domain" in warnings[0] and "[5, 6]" in warnings[0]
        rows = [json.loads(line) for line in (run / "config_changes.jsonl").read_text().splitlines()]
        assert rows == [{"step": 6, "key": "data_files", "old": [5, 5], "new": [5, 6]}]


def test_diverged_losses_stop_the_run_before_a_checkpoint(
        synthetic_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A step whose losses are NaN (diverged weights) raises a TrainingError naming the step and the
    last good checkpoint; that step is logged but not saved, the earlier checkpoints stay."""
    from facetoon.errors import TrainingError

    run = tmp_path / "run"
    trainer = _tiny_trainer(synthetic_data, run, iterations=6, checkpoint_every=2, keep_checkpoints=1,
                            validate_every=0, sample_every=100)
    real_step = trainer.train_step

    def step_that_diverges_at_3(batch):
        losses = real_step(batch)
        if trainer.step + 1 >= 3:
            losses = {**losses, "g_total": float("nan")}
        return losses

    monkeypatch.setattr(trainer, "train_step", step_that_diverges_at_3)
    with pytest.raises(TrainingError) as err:
        trainer.fit()
    message = str(err.value)
    assert "no longer finite at step 3 (g_total=nan)" in message and "step_00000002.pt" in message, message
    assert "\n" not in message
    assert ckpt_steps(run) == [2]
    assert [r["step"] for r in read_losses(run)][-1] == "3" and read_losses(run)[-1]["g_total"] == "nan"
    trainer.close()


# ---- refusals -----------------------------------------------------------------------------------------
def test_resume_with_a_changed_config_warns_and_records_the_change(
        synthetic_run: Path, synthetic_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A resume whose config differs from the checkpoint's (here the seed, hence the data order)
    no longer reproduces an uninterrupted run: a warning names the key, old -> new, and
    config_changes.jsonl keeps the change before config.toml is rewritten."""
    import json
    import logging
    import tomllib

    run = tmp_path / "run"
    shutil.copytree(synthetic_run, run)
    cfg = load_config(UGATITConfig, run / "config.toml", {"seed": 1, "lr": 2e-4})
    with caplog.at_level(logging.WARNING, logger="facetoon.train.loop"):
        trainer = UGATITTrainer(cfg, synthetic_data, run, resume=True)
    assert trainer.step == 6
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "seed 0 -> 1" in warnings[0] and "lr 0.0001 -> 0.0002" in warnings[0]
    assert "no longer reproduces an uninterrupted one" in warnings[0] and "config_changes.jsonl" in warnings[0]
    rows = [json.loads(line) for line in (run / "config_changes.jsonl").read_text().splitlines()]
    assert rows == [{"step": 6, "key": "seed", "old": 0, "new": 1},
                    {"step": 6, "key": "lr", "old": 1e-4, "new": 2e-4}]
    assert tomllib.loads((run / "config.toml").read_text())["train"]["seed"] == 1  # the change applies
    # until it trains a step, the trainer's weights are the checkpoint's: so is the config it exports
    assert trainer.trained_config()["seed"] == 0
    trainer.close()


def test_the_readme_names_every_runtime_only_key() -> None:
    """The README's paragraph on resuming lists the keys a resume may change without a warning:
    exactly RUNTIME_ONLY_KEYS."""
    import re

    from facetoon.train.loop import RUNTIME_ONLY_KEYS

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    listed = re.search(r"other than the runtime-only\s+ones \((.*?)`RUNTIME_ONLY_KEYS`", text, re.S)
    assert listed is not None, "the README no longer lists the runtime-only keys"
    assert set(re.findall(r"`(\w+)`", listed.group(1))) == RUNTIME_ONLY_KEYS


def test_resume_with_only_runtime_settings_changed_warns_nothing(
        synthetic_run: Path, synthetic_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from facetoon.train.loop import RUNTIME_ONLY_KEYS

    run = tmp_path / "run"
    shutil.copytree(synthetic_run, run)
    runtime = {"device": "auto", "precision": "auto", "num_workers": 1, "log_every": 2, "sample_every": 1,
               "n_samples": 1, "checkpoint_every": 1, "checkpoint_minutes": 1.0, "keep_checkpoints": 5,
               "validate_every": 0, "kid_images": 2, "kid_backend": "torch", "tensorboard": False,
               "init_from": str(tmp_path / "ignored-on-resume")}
    assert set(runtime) == RUNTIME_ONLY_KEYS
    cfg = load_config(UGATITConfig, run / "config.toml", runtime)
    with caplog.at_level(logging.WARNING, logger="facetoon.train.loop"):
        trainer = UGATITTrainer(cfg, synthetic_data, run, resume=True)
    assert trainer.step == 6
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert not (run / "config_changes.jsonl").exists()
    trainer.close()


def test_export_records_the_config_the_checkpoint_trained_with(synthetic_run: Path, tmp_path: Path) -> None:
    """Exporting runs on the CPU in fp32, but the metadata keeps the checkpoint's own config (here
    precision "fast"), and the networks are built from that config, not from a since-changed config.toml."""
    import json

    from facetoon.train.checkpoint import save_checkpoint

    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(synthetic_run / "config.toml", run / "config.toml")
    state = load_checkpoint(synthetic_run / "checkpoints" / "step_00000006.pt")
    state["config"] = {**state["config"], "precision": "fast", "seed": 3}
    save_checkpoint(state, run, 6)
    text = (run / "config.toml").read_text()
    assert "n_res = 2\n" in text
    (run / "config.toml").write_text(text.replace("n_res = 2\n", "n_res = 3\n"))  # changed since (other networks)
    assert main(["-q", "export", "ugatit", str(run), str(tmp_path / "out")]) == 0
    meta = json.loads((tmp_path / "out" / "a2b" / "config.json").read_text())["meta"]
    assert meta["config"]["precision"] == "fast" and meta["config"]["device"] == "cpu"
    assert meta["config"]["seed"] == 3 and meta["config"]["n_res"] == 2
    assert not (run / "config_changes.jsonl").exists()


def test_refuses_a_run_folder_with_checkpoints_without_resume(synthetic_run: Path, synthetic_data: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    before = (synthetic_run / "config.toml").read_bytes()
    code = train(synthetic_data, synthetic_run, "iterations=6")
    one_line_error(capsys, code, "already has checkpoints", "--resume", str(synthetic_run))
    assert (synthetic_run / "config.toml").read_bytes() == before
    assert ckpt_steps(synthetic_run) == [4, 6]


def test_corrupt_checkpoint_is_a_one_line_weights_error(
        synthetic_run: Path, synthetic_data: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    good = synthetic_run / "checkpoints" / "step_00000006.pt"
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all\n" * 10)
    for bad in (truncated, garbage, tmp_path / "missing.pt"):
        code = train(synthetic_data, tmp_path / f"run_{bad.stem}", "iterations=8",
                     extra=("--resume", str(bad)))
        line = one_line_error(capsys, code, str(bad))
        assert "cannot read checkpoint" in line or "checkpoint not found" in line
    # a readable checkpoint of another architecture: a one-line error too, not a state-dict dump
    code = train(synthetic_data, tmp_path / "run_other", "iterations=8", "ngf=16",
                 extra=("--resume", str(good)))
    one_line_error(capsys, code, "checkpoint does not match", str(good))


def test_bad_config_values_are_one_line_errors(synthetic_data: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    cases = [
        (["no_such_option=1"], "unknown UGATITConfig option(s): no_such_option"),
        (["light=maybe"], "UGATITConfig.light must be bool"),
        (["iterations=true"], "UGATITConfig.iterations must be int"),
        (["img_size=30"], "img_size must be a multiple of 4"),
        (["n_layers_global=7"], "n_layers_global=7 does not fit img_size=32"),
        (["precision=fastest"], "precision must be one of"),
    ]
    for settings, needle in cases:
        code = train(synthetic_data, tmp_path / "run", *settings)
        one_line_error(capsys, code, needle)
    assert not list_checkpoints(tmp_path / "run")
    code = main(["-q", "train", "ugatit", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r2"),
                 "--set", *TINY])
    one_line_error(capsys, code, "nowhere", "folder not found")


# ---- DistributedDataParallel -------------------------------------------------------------------------
_RANK_DUMP = rank_dump_script("facetoon.train.ugatit", "UGATITTrainer", ("gens", "discs", "ema"))


@pytest.mark.slow
def test_ddp_two_cpu_processes(synthetic_data: Path, tmp_path: Path) -> None:
    import json

    # synthetic data, so that machines without ../shared exercise DDP too
    script = tmp_path / "rank_dump.py"
    script.write_text(_RANK_DUMP)
    run, single, export = tmp_path / "ddp", tmp_path / "single", tmp_path / "export"
    settings = ["iterations=4", "checkpoint_every=2", "sample_every=2", "ema_decay=0.5"]
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script),
         str(tmp_path), "-q", "train", "ugatit", "--data", str(synthetic_data), "--out", str(run),
         "--export", str(export), "--set", *TINY, *settings],
        cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # rank 0 wrote the run folder: checkpoints, logs, samples, the export
    assert ckpt_steps(run) == [2, 4]
    assert (run / "samples" / "latest.jpg").is_file()
    assert (export / "a2b" / "model.safetensors").is_file()
    # both ranks end with the same weights (DDP averages the gradients of both updates)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert r0["step"] == r1["step"] == 4
    assert r0["ema"].pop("decay") == r1["ema"].pop("decay") == 0.5
    for part in ("gens", "discs", "ema"):  # the generators' weight averages too
        assert r0[part].keys() == r1[part].keys()
        for k in r0[part]:
            assert torch.equal(r0[part][k], r1[part][k]), (part, k)
    checkpoint = load_checkpoint(run / "checkpoints" / "step_00000004.pt")
    last = checkpoint["trainer"]
    assert all(torch.equal(last["gens"][k], r0["gens"][k]) for k in r0["gens"])
    assert checkpoint["ema"]["decay"] == 0.5
    assert all(torch.equal(checkpoint["ema"][k], r0["ema"][k]) for k in r0["ema"])
    # the checkpoint knows it trained in 2 processes: resuming it in 1 records the change
    assert checkpoint["world_size"] == 2
    resumed = UGATITTrainer(load_config(UGATITConfig, run / "config.toml", {}), synthetic_data, tmp_path / "one",
                            resume=run / "checkpoints" / "step_00000004.pt")
    resumed.close()
    changes = (tmp_path / "one" / "config_changes.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in changes] == [{"step": 4, "key": "world_size", "old": 2, "new": 1}]

    # the same run in one process: rank 0's first sample is the single process's first sample, so
    # the first discriminator loss agrees; after that the ranks' other data changes everything
    assert train(synthetic_data, single, *settings) == 0
    two, one = read_losses(run), read_losses(single)
    assert len(two) == len(one) == 4
    assert all(math.isfinite(float(r[k])) for r in two for k in LOSS_KEYS)
    assert two[0]["d_total"] == one[0]["d_total"]
    assert two[0]["g_adv_a"] != one[0]["g_adv_a"]  # judged by discriminators updated on both ranks' data
    assert all(a["d_total"] != b["d_total"] for a, b in zip(two[1:], one[1:]))
