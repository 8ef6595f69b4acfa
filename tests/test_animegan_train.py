"""End-to-end tests of AnimeGAN training (``facetoon train animegan``, ``facetoon export animegan``).

Every run is real but tiny: a synthetic AnimeGAN layout of a few real image files (``train_photo/``,
``anime/style``, ``anime/smooth``, ``val/``), 32 px crops, an 8-channel discriminator, a few steps
through the content-only initialisation phase into adversarial steps, one torch thread per process.
The perceptual network is the labelled ``"random"`` smoke-test fallback, except in the test marked
``shared``, which uses the real MobileNetV2 from ``../shared`` (and computes the validation KID
with it).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from facetoon.cli import main
from facetoon.models import load_pretrained
from facetoon.train.animegan import AnimeGANConfig, AnimeGANTrainer
from facetoon.train.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from facetoon.train.config import load_config
from facetoon.train.data import split_holdout
from train_helpers import (  # noqa: F401 (one_thread: an autouse fixture)
    REPO, ckpt_steps, one_thread, rank_dump_script, read_losses, subprocess_env)
from train_helpers import one_line_error as shared_one_line_error

# a complete but tiny AnimeGAN run: 2 content-only initialisation steps, then adversarial steps
TINY = ["img_size=32", "batch_size=1", "d_channels=8", "d_layers=2", "perceptual=random", "init_steps=2",
        "n_samples=2", "precision=fp32", "device=cpu"]
TINY_CONFIG = dict(img_size=32, batch_size=1, d_channels=8, d_layers=2, perceptual="random", init_steps=2,
                   n_samples=2, precision="fp32", device="cpu")
INIT_KEYS = ["g_total", "g_content"]
ADV_KEYS = ["d_total", "d_real", "d_fake", "d_gray", "d_smooth",
            "g_total", "g_adv", "g_content", "g_style", "g_color", "g_tv"]
ALL_KEYS = ["g_total", "g_content", "d_total", "d_real", "d_fake", "d_gray", "d_smooth",
            "g_adv", "g_style", "g_color", "g_tv"]


def _photo(rng: np.random.Generator, h: int = 40, w: int = 48) -> np.ndarray:
    """(h, w, 3) uint8: a soft gradient scene with noise (photo-like)."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = rng.uniform(40, 200, 3)
    img = base * (0.6 + 0.4 * xx[..., None]) + 40 * yy[..., None] + rng.normal(0, 10, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _anime(rng: np.random.Generator, size: int = 40) -> np.ndarray:
    """(size, size, 3) uint8: flat colour regions with hard edges and dark outlines (anime-like)."""
    img = np.ones((size, size, 3)) * rng.uniform(0, 255, 3)
    for _ in range(3):
        y0, x0 = rng.integers(0, size - 10, 2)
        y1, x1 = y0 + rng.integers(6, 12), x0 + rng.integers(6, 12)
        img[y0:y1, x0:x1] = rng.uniform(0, 255, 3)
        img[y0, x0:x1] = img[y1 - 1, x0:x1] = img[y0:y1, x0] = img[y0:y1, x1 - 1] = 20
    return img.astype(np.uint8)


def make_layout(root: Path, n_photo: int = 4, n_style: int = 5, n_val: int = 3, seed: int = 0,
                smooth: bool = True) -> Path:
    """A tiny AnimeGAN layout: ``train_photo/``, ``anime/style``, ``anime/smooth`` (blurred copies,
    same names) and ``val/``; real PNG/JPEG files."""
    rng = np.random.default_rng(seed)
    for sub in ("train_photo", "val", "anime/style") + (("anime/smooth",) if smooth else ()):
        (root / sub).mkdir(parents=True)
    for i in range(n_photo):
        Image.fromarray(_photo(rng)).save(root / "train_photo" / f"p{i:03d}.jpg", quality=95)
    for i in range(n_val):
        Image.fromarray(_photo(rng)).save(root / "val" / f"v{i:03d}.png")
    for i in range(n_style):
        style = Image.fromarray(_anime(rng))
        style.save(root / "anime" / "style" / f"s{i:03d}.png")
        if smooth:
            style.filter(ImageFilter.GaussianBlur(1.5)).save(root / "anime" / "smooth" / f"s{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_layout(tmp_path_factory.mktemp("animegan_data"))


# ---- helpers ---------------------------------------------------------------------------------------
def train(data: Path, out: Path, *settings: str, extra: tuple[str, ...] = ()) -> int:
    """``facetoon -q train animegan --data DATA --out OUT [extra] --set TINY settings`` in-process."""
    return main(["-q", "train", "animegan", "--data", str(data), "--out", str(out), *extra,
                 "--set", *TINY, *settings])


def loss_rows(run: Path) -> list[tuple[str, ...]]:
    """The logged losses of every step, as written (6 significant digits), without timings."""
    return [(r["step"], *(r.get(k, "") for k in ALL_KEYS)) for r in read_losses(run)]


def one_line_error(capsys: pytest.CaptureFixture[str], code: int, *needles: str) -> str:
    """:func:`train_helpers.one_line_error`, log warnings aside (e.g. the random-perceptual-net notice)."""
    return shared_one_line_error(capsys, code, *needles, allow_warnings=True)


def tiny_trainer(data: Path, run: Path, **changes: object) -> AnimeGANTrainer:
    return AnimeGANTrainer(AnimeGANConfig(**{**TINY_CONFIG, "iterations": 10, **changes}), data, run)


@pytest.fixture(scope="module")
def synthetic_run(layout: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 6-step run (2 init + 4 adversarial), checkpoints at steps 2, 4, 6."""
    run = tmp_path_factory.mktemp("runs") / "synthetic"
    code = train(layout, run, "iterations=6", "checkpoint_every=2", "keep_checkpoints=3", "sample_every=3")
    assert code == 0
    return run


@pytest.fixture(scope="module")
def exported(synthetic_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``facetoon export animegan`` of the synthetic run, fp32 (generator only)."""
    out = tmp_path_factory.mktemp("export") / "fp32"
    assert main(["-q", "export", "animegan", str(synthetic_run), str(out)]) == 0
    return out


# ---- end to end -------------------------------------------------------------------------------------
def test_end_to_end_synthetic(synthetic_run: Path, layout: Path) -> None:
    rows = read_losses(synthetic_run)
    assert [int(r["step"]) for r in rows] == list(range(1, 7))
    # steps 1-2: content-only initialisation (no discriminator); steps 3-6: adversarial
    for r in rows[:2]:
        assert all(math.isfinite(float(r[k])) for k in INIT_KEYS)
        assert r["d_total"] == "" and r["g_adv"] == ""
        assert float(r["g_total"]) == pytest.approx(1.5 * float(r["g_content"]), rel=1e-4)  # v2 content 1.5
    for r in rows[2:]:
        for k in ADV_KEYS:
            assert math.isfinite(float(r[k])), (k, r)
        assert float(r["d_total"]) > 0 and float(r["g_total"]) > 0
    assert "sec_per_step" in rows[0] and "g_teacher" not in rows[0]
    # checkpoints at 2, 4, 6 (one crossing the end of the initialisation), nothing temporary left
    assert ckpt_steps(synthetic_run) == [2, 4, 6]
    assert sorted(p.name for p in (synthetic_run / "checkpoints").iterdir()) == [
        "step_00000002.pt", "step_00000004.pt", "step_00000006.pt"]
    state = load_checkpoint(synthetic_run / "checkpoints" / "step_00000006.pt")
    assert state["step"] == 6 and state["config"]["d_channels"] == 8
    assert set(state["trainer"]) == {"gen", "disc", "opt_init", "opt_g", "opt_d", "scaler_g", "scaler_d"}
    # the initialisation phase has its own Adam (as in the official code): at its end (step 2) only
    # that optimiser has moments; the adversarial phase then starts its Adam afresh
    at_init_end = load_checkpoint(synthetic_run / "checkpoints" / "step_00000002.pt")["trainer"]
    assert at_init_end["opt_init"]["state"] and not at_init_end["opt_g"]["state"]
    assert state["trainer"]["opt_g"]["state"][0]["step"] == 4  # steps 3-6
    assert state["trainer"]["opt_init"]["state"][0]["step"] == 2
    # sample grids: rows of photo | generated, for the first n_samples val/ photos
    samples = sorted(p.name for p in (synthetic_run / "samples").iterdir())
    assert samples == ["latest.jpg", "step_00000003.jpg", "step_00000006.jpg"]
    with Image.open(synthetic_run / "samples" / "latest.jpg") as im:
        assert im.size == (2 * (32 + 2) + 2, 2 * (32 + 2) + 2)
    assert list((synthetic_run / "tensorboard").glob("events.out.tfevents.*"))
    # the resolved config, readable back; no KID by default (holdout = 0), so no stats.jsonl
    expected = {**TINY_CONFIG, "iterations": 6, "checkpoint_every": 2, "keep_checkpoints": 3, "sample_every": 3}
    assert load_config(AnimeGANConfig, synthetic_run / "config.toml") == AnimeGANConfig(**expected)
    assert (synthetic_run / "data_dir.txt").read_text().strip() == str(layout.resolve())
    assert not (synthetic_run / "stats.jsonl").exists()


def test_export_fp32_loads_and_matches_the_checkpoint(synthetic_run: Path, exported: Path, layout: Path,
                                                      tmp_path: Path) -> None:
    assert sorted(p.name for p in exported.iterdir()) == ["generator"]
    assert sorted(p.name for p in (exported / "generator").iterdir()) == ["config.json", "model.safetensors"]
    doc = json.loads((exported / "generator" / "config.json").read_text())
    assert doc["arch"] == "animegan" and doc["dtype"] == "float32"
    assert doc["meta"]["step"] == 6 and doc["meta"]["trainer"] == "facetoon train animegan"
    model = load_pretrained(exported / "generator")
    assert model.config == {"version": "v2", "align_corners": True}
    config = load_config(AnimeGANConfig, synthetic_run / "config.toml")
    trainer = AnimeGANTrainer(config, layout, tmp_path / "reloaded",
                              resume=synthetic_run / "checkpoints" / "step_00000006.pt")
    assert trainer.step == 6
    x = torch.stack([torch.linspace(-1, 1, 3 * 32 * 40).view(3, 32, 40),
                     torch.rand(3, 32, 40, generator=torch.Generator().manual_seed(0)) * 2 - 1])
    with torch.no_grad():
        got = model(x)
    assert got.shape == (2, 3, 32, 40)
    assert torch.equal(got, trainer._run(trainer.gen, x))


def test_export_fp16_discriminators_and_warm_start(synthetic_run: Path, layout: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "half"
    assert main(["-q", "export", "animegan", str(synthetic_run), str(out), "--fp16", "--discriminators"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["discriminator", "generator"]
    doc = json.loads((out / "generator" / "config.json").read_text())
    assert doc["dtype"] == "float16" and doc["meta"]["step"] == 6
    n_params = sum(t.numel() for t in load_pretrained(out / "generator").state_dict().values())
    assert (out / "generator" / "model.safetensors").stat().st_size < 0.6 * n_params * 4
    assert load_pretrained(out / "discriminator").config["channels"] == 8

    # init_from: the exported (fp16-rounded) weights, and the step carries on past the init phase
    warm = tmp_path / "warm"
    trainer = tiny_trainer(layout, warm, init_from=str(out), iterations=8, sample_every=100,
                           warm_start_lr_ramp=4)
    assert trainer.step == 6
    for name, module in (("generator", trainer.gen), ("discriminator", trainer.disc)):
        want = load_pretrained(out / name).state_dict()
        have = module.state_dict()
        assert all(torch.equal(have[k], want[k]) for k in want), name
    assert trainer.fit() == 8
    rows = read_losses(warm)
    assert [r["step"] for r in rows] == ["7", "8"] and all(r["d_total"] for r in rows)  # adversarial
    assert ckpt_steps(warm) == [8]
    # warm_start_lr_ramp=4: steps 7 and 8 trained at 1/4 and 2/4 of every lr (logged: the generator's)
    cfg = trainer.config
    assert [float(r["lr"]) for r in rows] == pytest.approx([cfg.g_lr * 0.25, cfg.g_lr * 0.5])
    assert [opt.param_groups[0]["lr"] for opt in (trainer.opt_g, trainer.opt_d)] == \
        pytest.approx([cfg.g_lr * 0.5, cfg.d_lr * 0.5])
    # a warm start inside the content-only initialisation ramps the initialisation lr
    init_warm = tmp_path / "init-warm"
    trainer = tiny_trainer(layout, init_warm, init_from=str(out), iterations=8, sample_every=100,
                           init_steps=10, warm_start_lr_ramp=4)
    assert trainer.fit() == 8
    rows = read_losses(init_warm)
    assert not any(r.get("d_total") for r in rows)  # still initialising
    assert [float(r["lr"]) for r in rows] == pytest.approx([cfg.init_lr * 0.25, cfg.init_lr * 0.5])
    assert trainer.opt_init.param_groups[0]["lr"] == pytest.approx(cfg.init_lr * 0.5)
    capsys.readouterr()  # the progress bar of these runs

    # ... but only with the same architecture: a one-line CLI error naming the difference
    code = train(layout, tmp_path / "mismatch", "version=v1", f"init_from={json.dumps(str(out))}")
    one_line_error(capsys, code, "init_from", "generator", "'v1'")
    # a critic of another architecture is not required: it starts afresh, with a warning
    code = train(layout, tmp_path / "other_d", "d_channels=16", "iterations=7", "sample_every=1000",
                 f"init_from={json.dumps(str(out))}")
    err = capsys.readouterr().err
    assert code == 0 and "discriminator" in err and "starts from random weights" in err
    code = train(layout, tmp_path / "nothing", f"init_from={json.dumps(str(tmp_path / 'none'))}")
    one_line_error(capsys, code, "init_from", "not a folder")
    # export needs a run folder with a config and a checkpoint
    code = main(["-q", "export", "animegan", str(tmp_path), str(tmp_path / "x")])
    one_line_error(capsys, code, "not a training run folder", str(tmp_path))


def test_init_from_refuses_networks_exported_at_different_steps(
        synthetic_run: Path, layout: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An export without --discriminators into the folder of an earlier --discriminators export left
    its discriminator/ (step 4) beside the new generator/ (step 6): the export names it, and init_from,
    which used to load the mix and continue at step 6, refuses it."""
    out = tmp_path / "out"
    step4 = synthetic_run / "checkpoints" / "step_00000004.pt"
    assert main(["-q", "export", "animegan", str(synthetic_run), str(out), "--checkpoint", str(step4),
                 "--discriminators"]) == 0
    assert "earlier export" not in capsys.readouterr().err
    assert main(["-q", "export", "animegan", str(synthetic_run), str(out)]) == 0
    err = capsys.readouterr().err
    assert "still holds discriminator/ (step 4) of an earlier export, which this one (step 6) did not write" in err
    code = train(layout, tmp_path / "warm", f"init_from={json.dumps(str(out))}")
    one_line_error(capsys, code, "init_from", "different training steps", "generator/ step 6",
                   "discriminator/ step 4", "export into an empty folder")
    assert not (tmp_path / "warm").exists()
    # an export of every network rewrites them all: no warning, and init_from takes the folder
    assert main(["-q", "export", "animegan", str(synthetic_run), str(out), "--discriminators"]) == 0
    assert "earlier export" not in capsys.readouterr().err
    assert tiny_trainer(layout, tmp_path / "warm2", init_from=str(out)).step == 6


def test_a_run_that_ends_within_the_initialisation_says_so(layout: Path, tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """iterations <= init_steps: the generator has only had the content-only initialisation."""
    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records
                if r.levelno == logging.WARNING and "only the content-only initialisation ran" in r.getMessage()]

    trainer = tiny_trainer(layout, tmp_path / "run", iterations=2, sample_every=100)
    with caplog.at_level(logging.WARNING, logger="facetoon"):
        assert trainer.fit() == 2
        trainer.export(tmp_path / "out")
        got = warnings()
        assert len(got) == 2 and got[0].startswith("the run ended at step 2, within the initialisation "
                                                   "(init_steps = 2)") and got[1].startswith("exporting at step 2")
        caplog.clear()
        trainer.config.iterations = 3  # one adversarial step
        assert trainer.fit() == 3
        trainer.export(tmp_path / "out")
        assert not warnings()
    trainer.close()


# ---- resume ------------------------------------------------------------------------------------------
def test_exact_resume_from_a_checkpoint_into_a_new_run(synthetic_run: Path, layout: Path, tmp_path: Path) -> None:
    # from the end of the initialisation phase: the lr switch and the fresh discriminator follow
    resumed = tmp_path / "resumed"
    half = synthetic_run / "checkpoints" / "step_00000002.pt"
    assert train(layout, resumed, "iterations=6", "checkpoint_every=2", "keep_checkpoints=3", "sample_every=3",
                 extra=("--resume", str(half))) == 0
    got = loss_rows(resumed)
    assert [r[0] for r in got] == ["3", "4", "5", "6"]
    assert got == loss_rows(synthetic_run)[2:]  # identical in fp32, to the 6 digits logged
    a = load_checkpoint(synthetic_run / "checkpoints" / "step_00000006.pt")["trainer"]
    b = load_checkpoint(resumed / "checkpoints" / "step_00000006.pt")["trainer"]
    for part in ("gen", "disc"):
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), (part, k)


def test_resume_from_a_single_optimiser_checkpoint(synthetic_run: Path, layout: Path, tmp_path: Path) -> None:
    """Checkpoints of facetoon 0.1.0 held one generator Adam: before the end of the initialisation
    phase its moments go to the initialisation optimiser, after it to the adversarial one."""
    for step, into in ((2, "opt_init"), (4, "opt_g")):
        state = load_checkpoint(synthetic_run / "checkpoints" / f"step_{step:08d}.pt")
        legacy = dict(state["trainer"])
        legacy["opt_g"] = legacy.pop(into)
        state["trainer"] = legacy
        run = tmp_path / f"legacy{step}"
        save_checkpoint(state, run, step)
        cfg = AnimeGANConfig(**{**TINY_CONFIG, "iterations": 6})
        trainer = AnimeGANTrainer(cfg, layout, run, resume=True)
        assert trainer.step == step
        loaded = getattr(trainer, into).state_dict()["state"]
        assert loaded and torch.equal(loaded[0]["exp_avg"], legacy["opt_g"]["state"][0]["exp_avg"])


def test_resume_may_change_the_learning_rate_with_a_warning_and_a_record(
        synthetic_run: Path, layout: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--resume --set g_lr=...`` (e.g. to continue at a lower lr) works; as every change of a
    training setting on resume it is logged (old -> new) and kept in config_changes.jsonl."""
    run = tmp_path / "run"
    shutil.copytree(synthetic_run, run)
    assert train(layout, run, "iterations=7", "checkpoint_every=2", "keep_checkpoints=3", "sample_every=3",
                 "g_lr=1e-5", extra=("--resume",)) == 0
    err = capsys.readouterr().err
    warning = [ln for ln in err.splitlines() if "no longer reproduces" in ln]
    assert len(warning) == 1 and "iterations 6 -> 7" in warning[0] and "g_lr 2e-05 -> 1e-05" in warning[0], err
    rows = [json.loads(line) for line in (run / "config_changes.jsonl").read_text().splitlines()]
    assert rows == [{"step": 6, "key": "iterations", "old": 6, "new": 7},
                    {"step": 6, "key": "g_lr", "old": 2e-5, "new": 1e-5}]
    assert float(read_losses(run)[-1]["lr"]) == pytest.approx(1e-5)  # step 7 trained at the new lr
    assert load_config(AnimeGANConfig, run / "config.toml").g_lr == 1e-5


@pytest.fixture(scope="module")
def reference_run(layout: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("reference") / "run"
    assert train(layout, run, *SIGNAL_SETTINGS) == 0
    return run


SIGNAL_SETTINGS = ["iterations=16", "checkpoint_every=2", "keep_checkpoints=20", "sample_every=1000"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_saves_and_resume_continues_exactly(sig: signal.Signals, layout: Path, reference_run: Path,
                                                   tmp_path: Path) -> None:
    run = tmp_path / "interrupted"
    log_file = tmp_path / "stderr.txt"
    with log_file.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "facetoon", "train", "animegan", "--data", str(layout), "--out", str(run),
             "--set", *TINY, *SIGNAL_SETTINGS],
            cwd=REPO, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=err)
        try:
            deadline = time.monotonic() + 240
            while not list_checkpoints(run):
                assert proc.poll() is None, log_file.read_text()
                assert time.monotonic() < deadline, "no checkpoint within 240 s"
                time.sleep(0.01)
            proc.send_signal(sig)
            code = proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    stderr = log_file.read_text()
    assert code == 0, stderr
    assert "Traceback" not in stderr
    assert f"received {sig.name}" in stderr and "resume with --resume" in stderr
    stopped = ckpt_steps(run)[-1]
    assert 2 <= stopped < 16, stderr  # it stopped early ...
    assert len(read_losses(run)) == stopped  # ... after saving the step it was in

    # resume in the same folder: no --config/--set needed, the run's config.toml is used
    assert main(["-q", "train", "animegan", "--data", str(layout), "--out", str(run), "--resume"]) == 0
    assert ckpt_steps(run)[-1] == 16
    assert loss_rows(run) == loss_rows(reference_run)  # all 16 steps, as if never interrupted
    a = load_checkpoint(run / "checkpoints" / "step_00000016.pt")["trainer"]["gen"]
    b = load_checkpoint(reference_run / "checkpoints" / "step_00000016.pt")["trainer"]["gen"]
    assert all(torch.equal(a[k], b[k]) for k in a)


# ---- validation, held-out style images, teacher -----------------------------------------------------
def test_holdout_keeps_style_images_and_their_smooth_copies_out_of_training(layout: Path, tmp_path: Path) -> None:
    trainer = tiny_trainer(layout, tmp_path / "run", holdout=2)
    styles = sorted((layout / "anime" / "style").iterdir())
    keep, hold = split_holdout(styles, 2, 1234)
    assert trainer.val_style == hold and trainer.dataset.styles == keep
    assert [p.name for p in trainer.dataset.smooths] == [p.name for p in keep]
    assert all(p.parent.name == "smooth" for p in trainer.dataset.smooths)
    # the same split in every run (fixed holdout_seed, independent of the training seed)
    assert tiny_trainer(layout, tmp_path / "run2", holdout=2, seed=5).val_style == hold
    # without holdout (the default) every style image trains and no KID is computed
    plain = tiny_trainer(layout, tmp_path / "plain")
    assert plain.dataset.styles == styles and plain.val_style == [] and plain.validate() == {}


def test_no_kid_without_holdout_is_said_once_and_not_as_a_warning(layout: Path, tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """holdout = 0 (the default) asks for no KID: an INFO line; too few held-out images: a warning."""
    with caplog.at_level(logging.INFO, logger="facetoon"):
        plain = tiny_trainer(layout, tmp_path / "plain")
        assert plain.validate() == {} and plain.validate() == {}
        assert tiny_trainer(layout, tmp_path / "one", holdout=1).validate() == {}
    kid = [(r.levelname, r.getMessage()) for r in caplog.records if "no validation KID" in r.getMessage()]
    assert len(kid) == 2 and kid[0][0] == "INFO" and "holdout = 0" in kid[0][1]
    assert kid[1] == ("WARNING", "no validation KID: it needs at least 2 images per side, got holdout = 1 "
                                 "style image(s)")


@pytest.mark.shared
def test_mobilenet_perceptual_run_with_validation_kid(shared: Path, layout: Path, tmp_path: Path) -> None:
    from facetoon.models.mobilenet_v2 import default_tflite_path

    if not default_tflite_path().is_file():
        pytest.skip(f"needs the MobileNetV2 TFLite model at {default_tflite_path()}")
    run = tmp_path / "run"
    code = train(layout, run, "perceptual=mobilenet_v2", "iterations=4", "validate_every=2", "holdout=2",
                 "kid_images=3", "kid_backend=litert", "sample_every=100")
    assert code == 0
    rows = read_losses(run)
    assert [r["step"] for r in rows] == ["1", "2", "3", "4"]
    for r in rows[2:]:
        assert all(math.isfinite(float(r[k])) for k in ADV_KEYS)
    # KID x100 of 3 val/ photos (generated) against the 2 held-out style images, at steps 2 and 4
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert [s["step"] for s in stats] == [2, 4]
    for s in stats:
        # 3 against 2 images: the subsets of 2 photos differ, so a spread is logged
        assert math.isfinite(s["kid_x100"]) and s["kid_x100_std"] >= 0 and s["train_hours"] > 0


def test_teacher_of_another_architecture_is_refused_before_training(
        exported: Path, layout: Path, tmp_path: Path) -> None:
    """A U-GAT-IT generator as the teacher used to pass and crash at the first adversarial step;
    the export folder itself (not only its generator/) is a valid teacher."""
    from facetoon.errors import WeightsError
    from facetoon.models import create_model, save_pretrained

    save_pretrained(create_model("ugatit_generator", light=True, ngf=8, n_res=1, img_size=32), tmp_path / "ugatit")
    with pytest.raises(WeightsError, match="holds a 'ugatit_generator' model; expected 'cartoongan' or 'animegan'"):
        tiny_trainer(layout, tmp_path / "bad", init_steps=0, iterations=1, teacher=str(tmp_path / "ugatit"),
                     teacher_weight=1.0)
    taught = tiny_trainer(layout, tmp_path / "whole", init_steps=0, iterations=1, teacher=str(exported),
                          teacher_weight=1.0)
    assert taught.teacher is not None and taught.teacher.arch == "animegan"


def test_an_img_size_the_teacher_does_not_take_is_refused_before_training(
        layout: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A CartoonGAN teacher takes multiples of 4: img_size = 34 used to fail after the first step."""
    from facetoon.errors import ConfigError
    from facetoon.models import create_model, save_pretrained

    teacher = tmp_path / "cartoongan"
    save_pretrained(create_model("cartoongan", n_res_blocks=1), teacher)
    with pytest.raises(ConfigError, match=r"img_size must be a multiple of 4 and >= 8 for the teacher .*"
                                          r"\(cartoongan input sizes\), got 34"):
        tiny_trainer(layout, tmp_path / "bad", img_size=34, init_steps=0, teacher=str(teacher), teacher_weight=1.0)
    code = train(layout, tmp_path / "run", "img_size=34", "init_steps=0", f"teacher={json.dumps(str(teacher))}",
                 "teacher_weight=1.0")
    one_line_error(capsys, code, "img_size must be a multiple of 4", "got 34")
    assert not (tmp_path / "run").exists()
    assert tiny_trainer(layout, tmp_path / "ok", img_size=36, teacher=str(teacher), teacher_weight=1.0).teacher


def test_an_animegan_export_folder_is_a_scene_model(exported: Path) -> None:
    """`facetoon export animegan RUN OUT`: OUT works as the scene model, like a U-GAT-IT export as
    the face model (it used to need OUT/generator)."""
    from facetoon.background import BackgroundStylizer
    from facetoon.pipeline.loading import load_background_model

    assert load_background_model(exported, None).arch == "animegan"
    assert load_background_model("animegan", exported).arch == "animegan"
    assert BackgroundStylizer(exported).model.arch == "animegan"


def test_teacher_adds_a_distillation_term(exported: Path, layout: Path, tmp_path: Path) -> None:
    teacher = exported / "generator"
    plain = tiny_trainer(layout, tmp_path / "plain", init_steps=0, iterations=1)
    taught = tiny_trainer(layout, tmp_path / "taught", init_steps=0, iterations=1, teacher=str(teacher),
                          teacher_weight=10.0)
    assert taught.teacher is not None and not taught.teacher.training
    assert not any(p.requires_grad for p in taught.teacher.parameters())
    batch = tuple(t[None] for t in plain.dataset[0])
    a, b = plain.train_step(batch), taught.train_step(batch)
    # same seed, same weights, same data: only g_total differs, by teacher_weight * g_teacher
    assert "g_teacher" not in a and b["g_teacher"] > 0
    for k in ADV_KEYS:
        if k != "g_total":
            assert a[k] == b[k], k
    assert b["g_total"] - a["g_total"] == pytest.approx(10.0 * b["g_teacher"], rel=1e-4)
    # the CSV of a run with a teacher logs it; the sample grid adds a teacher column
    run = tmp_path / "run"
    trainer = tiny_trainer(layout, run, init_steps=0, iterations=1, teacher=str(teacher), teacher_weight=10.0,
                           sample_every=1)
    assert trainer.fit() == 1
    assert float(read_losses(run)[0]["g_teacher"]) > 0
    with Image.open(run / "samples" / "latest.jpg") as im:
        assert im.size == (3 * (32 + 2) + 2, 2 * (32 + 2) + 2)


def test_teacher_init_distils_during_the_initialisation(exported: Path, layout: Path, tmp_path: Path) -> None:
    """``teacher_init``: the initialisation step adds ``teacher_weight * L1(G(p), T(p))`` to the
    content loss (and logs it); without it the initialisation stays content-only."""
    teacher = str(exported / "generator")
    plain = tiny_trainer(layout, tmp_path / "plain", iterations=1, teacher=teacher, teacher_weight=10.0)
    taught = tiny_trainer(layout, tmp_path / "taught", iterations=1, teacher=teacher, teacher_weight=10.0,
                          teacher_init=True)
    batch = tuple(t[None] for t in plain.dataset[0])
    a, b = plain.train_step(batch), taught.train_step(batch)
    assert sorted(a) == sorted(INIT_KEYS + ["lr"]) and a["g_content"] == b["g_content"]
    assert b["g_teacher"] > 0
    assert b["g_total"] - a["g_total"] == pytest.approx(10.0 * b["g_teacher"], rel=1e-4)
    # the update follows the distillation: after one step the generators differ
    assert any(not torch.equal(p, q) for p, q in zip(plain.gen.parameters(), taught.gen.parameters()))
    from facetoon.errors import ConfigError

    with pytest.raises(ConfigError, match="teacher_init = true needs teacher"):
        AnimeGANConfig(**TINY_CONFIG, teacher_init=True)


def test_export_needs_neither_the_data_nor_the_teacher(exported: Path, layout: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """A run moved to another machine: its data folder and teacher file are gone, the checkpoint
    alone exports; only ``--samples`` (which draws validation photos) needs the data."""
    data, teacher, run = tmp_path / "data", tmp_path / "teacher", tmp_path / "run"
    shutil.copytree(layout, data)
    shutil.copytree(exported / "generator", teacher)
    trainer = tiny_trainer(data, run, init_steps=0, iterations=1, teacher=str(teacher), teacher_weight=10.0)
    assert trainer.fit() == 1
    capsys.readouterr()  # the progress bar
    shutil.rmtree(data)
    shutil.rmtree(teacher)
    assert main(["-q", "export", "animegan", str(run), str(tmp_path / "out")]) == 0
    got = load_pretrained(tmp_path / "out" / "generator").state_dict()
    want = trainer.gen.state_dict()
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    code = main(["-q", "export", "animegan", str(run), str(tmp_path / "out2"), "--samples", str(tmp_path / "s.jpg")])
    one_line_error(capsys, code, str(data))
    assert not (tmp_path / "s.jpg").exists()
    # a trainer built without data: sample grids and validation say why they cannot run
    from facetoon.errors import ConfigError

    bare = AnimeGANTrainer(trainer.config, None, run, resume=True)
    for method in (bare.sample_grid, bare.validate):
        with pytest.raises(ConfigError, match="without data"):
            method()
    bare.close()


# ---- refusals -----------------------------------------------------------------------------------------
def test_refuses_a_run_folder_with_checkpoints_without_resume(synthetic_run: Path, layout: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    before = (synthetic_run / "config.toml").read_bytes()
    code = train(layout, synthetic_run, "iterations=6")
    one_line_error(capsys, code, "already has checkpoints", "--resume", str(synthetic_run))
    assert (synthetic_run / "config.toml").read_bytes() == before
    assert ckpt_steps(synthetic_run) == [2, 4, 6]


def test_missing_or_incomplete_layout_is_a_one_line_error(layout: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    code = train(tmp_path / "nowhere", tmp_path / "r1")
    one_line_error(capsys, code, "dataset folder not found", str(tmp_path / "nowhere"))
    no_smooth = make_layout(tmp_path / "no_smooth", n_photo=1, n_style=2, n_val=0, smooth=False)
    code = train(no_smooth, tmp_path / "r2")
    one_line_error(capsys, code, "anime/smooth/ is missing", "facetoon prepare-smooth")
    (no_smooth / "anime" / "smooth").mkdir()
    code = train(no_smooth, tmp_path / "r3")
    one_line_error(capsys, code, "anime/smooth/ has no images")
    empty = tmp_path / "empty"
    (empty / "train_photo").mkdir(parents=True)
    code = train(empty, tmp_path / "r4")
    one_line_error(capsys, code, "name the style folder", "none")
    (empty / "anime" / "style").mkdir(parents=True)
    code = train(empty, tmp_path / "r5")
    one_line_error(capsys, code, "train_photo/ has no images", "anime/style/ has no images",
                   "anime/smooth/ is missing")
    code = train(layout, tmp_path / "r6", "holdout=5")
    one_line_error(capsys, code, "cannot hold out 5 of 5 images")
    code = train(layout, tmp_path / "r7", "style=Hayao")
    one_line_error(capsys, code, "Hayao/style/ is missing")
    for r in ("r1", "r2", "r3", "r4", "r5", "r6", "r7"):
        assert not list_checkpoints(tmp_path / r)


def test_version_sets_its_official_defaults() -> None:
    from facetoon.losses.animegan import AnimeGANLossWeights

    v2, v1 = AnimeGANConfig(), AnimeGANConfig(version="v1")
    assert (v2.d_norm, v2.loss_preset, v2.init_lr, v2.g_lr, v2.d_lr) == ("layer", "v2", 2e-4, 2e-5, 4e-5)
    assert (v1.d_norm, v1.loss_preset, v1.init_lr, v1.g_lr, v1.d_lr) == ("instance", "v1", 1e-4, 4e-5, 8e-5)
    # the batch sizes of the official main.py of each version; the CPU config chooses 4
    assert (v2.batch_size, v1.batch_size, AnimeGANConfig(batch_size=4).batch_size) == (12, 6, 4)
    assert load_config(AnimeGANConfig, REPO / "configs" / "animegan_anime_cpu.toml").batch_size == 4
    assert v1.loss_weights() == AnimeGANLossWeights.preset("v1")
    # the paper's v1 weights: adversarial 300, content 1.5, grayscale style 3, colour 10
    w = v1.loss_weights()
    assert (w.adv_g, w.content, w.style, w.color) == (300.0, 1.5, 3.0, 10.0)
    # explicit values win over the version's
    mixed = AnimeGANConfig(version="v1", d_norm="layer", g_lr=1e-5, loss_preset="v2")
    assert (mixed.d_norm, mixed.g_lr, mixed.d_lr, mixed.loss_preset) == ("layer", 1e-5, 8e-5, "v2")


def test_saved_config_keeps_the_placeholders_and_the_export_the_numbers(
        synthetic_run: Path, exported: Path, tmp_path: Path) -> None:
    """The ten loss weights left unset take the preset's values when the config is made (the config and
    the export metadata have the numbers trained with); config.toml keeps the -1 placeholder, with the
    number in a comment, so that a later change of loss_preset or version re-derives them."""
    import dataclasses
    import tomllib

    from facetoon.losses.animegan import AnimeGANLossWeights
    from facetoon.train.config import save_config

    fields = ("adv_g", "adv_d", "content", "style_weight", "color", "tv", "d_real", "d_fake", "d_gray", "d_smooth")
    v2 = AnimeGANLossWeights.preset("v2")
    numbers = (v2.adv_g, v2.adv_d, v2.content, v2.style, v2.color, v2.tv, v2.d_real, v2.d_fake, v2.d_gray,
               v2.d_smooth)
    assert numbers == (300.0, 300.0, 1.5, 2.5, 10.0, 1.0, 1.7, 1.7, 1.7, 1.0)
    cfg = AnimeGANConfig()
    assert tuple(getattr(cfg, k) for k in fields) == numbers and cfg.loss_weights() == v2
    save_config(cfg, tmp_path / "config.toml")
    text = (tmp_path / "config.toml").read_text()
    assert "content = -1.0  # resolved: 1.5\n" in text and 'd_norm = "auto"  # resolved: \'layer\'\n' in text
    saved = tomllib.loads(text)["train"]
    assert all(saved[k] == -1.0 for k in fields) and (saved["loss_preset"], saved["batch_size"]) == ("auto", 0)
    assert load_config(AnimeGANConfig, tmp_path / "config.toml") == cfg
    # so does a run's config.toml (TINY sets batch_size = 1: explicit values are saved as they are),
    # while its checkpoints' configs resolve to the numbers, and the metadata of its export has them
    run_saved = tomllib.loads((synthetic_run / "config.toml").read_text())["train"]
    assert all(run_saved[k] == -1.0 for k in fields) and run_saved["batch_size"] == 1
    meta = json.loads((exported / "generator" / "config.json").read_text())["meta"]["config"]
    assert tuple(meta[k] for k in fields) == numbers and (meta["d_norm"], meta["g_lr"]) == ("layer", 2e-5)
    # another preset, another version; explicit values win
    paprika = AnimeGANConfig(loss_preset="v2-paprika")
    assert (paprika.content, paprika.style_weight, paprika.color, paprika.tv) == (2.0, 0.6, 50.0, 0.1)
    assert paprika.loss_weights() == AnimeGANLossWeights.preset("v2-paprika") and paprika.d_smooth == 0.005
    assert AnimeGANConfig(version="v1").tv == 0.0
    explicit = AnimeGANConfig(color=20.0, tv=0.0, d_smooth=0.5)
    assert (explicit.color, explicit.tv, explicit.content) == (20.0, 0.0, 1.5)
    assert explicit.loss_weights() == v2.with_overrides(color=20.0, tv=0.0, d_smooth=0.5)
    assert "color" not in explicit.placeholders() and explicit.placeholders()["content"] == -1.0
    explicit.content = 3.0  # set after construction: explicit, saved as the number
    assert "content" not in explicit.placeholders()
    save_config(explicit, tmp_path / "later.toml")
    assert load_config(AnimeGANConfig, tmp_path / "later.toml").content == 3.0
    # a config of an older version, with the -1 placeholders: still the preset's values
    old = tmp_path / "old.toml"
    old.write_text("[train]\n" + "".join(f"{k} = -1.0\n" for k in fields[:6]) + 'loss_preset = "v2-hayao"\n')
    hayao = load_config(AnimeGANConfig, old)
    assert hayao.loss_weights() == AnimeGANLossWeights.preset("v2-hayao") and hayao.color == 15.0
    assert dataclasses.replace(hayao) == hayao


def test_a_changed_loss_preset_or_version_applies_in_full(
        synthetic_run: Path, layout: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--resume --set loss_preset=...`` (or a copied config.toml with another version) used to change
    only the discriminator's four weights: the others had been saved as explicit numbers."""
    from facetoon.losses.animegan import AnimeGANLossWeights

    paprika = AnimeGANLossWeights.preset("v2-paprika")
    saved = synthetic_run / "config.toml"
    assert load_config(AnimeGANConfig, saved, {"loss_preset": "v2-paprika"}).loss_weights() == paprika
    v1 = load_config(AnimeGANConfig, saved, {"version": "v1"})
    assert (v1.d_norm, v1.loss_preset, v1.init_lr, v1.g_lr, v1.d_lr) == ("instance", "v1", 1e-4, 4e-5, 8e-5)
    assert v1.loss_weights() == AnimeGANLossWeights.preset("v1") and v1.style_weight == 3.0
    assert AnimeGANConfig(**{**TINY_CONFIG, "batch_size": 0, "version": "v1"}).batch_size == 6
    # --resume CHECKPOINT: the checkpoint keeps the numbers trained with, and apart which were placeholders
    checkpoint = synthetic_run / "checkpoints" / "step_00000006.pt"
    state = load_checkpoint(checkpoint)
    assert state["config"]["content"] == 1.5 and state["config_placeholders"]["content"] == -1.0
    code = main(["train", "animegan", "--data", str(layout), "--out", str(tmp_path / "new"), "--resume",
                 str(checkpoint), "--set", "loss_preset=v2-paprika", "--dry-run"])
    values = dict(line.split(" = ", 1) for line in capsys.readouterr().out.splitlines())
    assert code == 0 and (values["content"], values["color"], values["d_smooth"]) == ("2.0", "50.0", "0.005")
    # a resume on another preset: every weight changes, each change warned and recorded
    run = tmp_path / "run"
    shutil.copytree(synthetic_run, run)
    trainer = AnimeGANTrainer(load_config(AnimeGANConfig, run / "config.toml", {"loss_preset": "v2-paprika"}),
                              layout, run, resume=True)
    assert trainer.criterion.weights == paprika
    rows = [json.loads(line) for line in (run / "config_changes.jsonl").read_text().splitlines()]
    assert {r["key"]: (r["old"], r["new"]) for r in rows} == {
        "loss_preset": ("v2", "v2-paprika"), "content": (1.5, 2.0), "style_weight": (2.5, 0.6),
        "color": (10.0, 50.0), "tv": (1.0, 0.1), "d_real": (1.7, 1.0), "d_fake": (1.7, 1.0),
        "d_gray": (1.7, 1.0), "d_smooth": (1.0, 0.005)}
    assert load_config(AnimeGANConfig, run / "config.toml").loss_weights() == paprika
    trainer.close()


def test_a_checkpoint_of_an_older_version_with_the_numbers_resumes_exactly(
        synthetic_run: Path, layout: Path, tmp_path: Path) -> None:
    """facetoon <= 0.1 saved the resolved numbers (and no discriminator weights) in config.toml and in
    checkpoints: they stay as they were, and the run continues exactly, without config changes."""
    import dataclasses

    import tomli_w

    resolved = dataclasses.asdict(AnimeGANConfig(**{**TINY_CONFIG, "iterations": 6, "checkpoint_every": 2,
                                                    "keep_checkpoints": 3, "sample_every": 3}))
    old = {k: v for k, v in resolved.items() if k not in ("d_real", "d_fake", "d_gray", "d_smooth")}
    state = load_checkpoint(synthetic_run / "checkpoints" / "step_00000002.pt")
    state["config"] = old
    run = tmp_path / "old"
    save_checkpoint(state, run, 2)
    (run / "config.toml").write_text(tomli_w.dumps({"train": old}))
    assert train(layout, run, extra=("--resume",)) == 0
    assert loss_rows(run) == loss_rows(synthetic_run)[2:]
    assert not (run / "config_changes.jsonl").exists()
    assert load_config(AnimeGANConfig, run / "config.toml") == AnimeGANConfig(**resolved)


def test_every_generator_loss_term_is_float32_under_autocast() -> None:
    """Content, style (Gram), colour (YUV) and TV terms in float32 on the CPU fast path (bf16
    autocast): autocast runs bmm / einsum in bf16 unless it is switched off around them."""
    from facetoon.losses.animegan import color_loss, content_loss, gram_matrix, style_loss, total_variation_loss

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 8, 16, 16, generator=g), torch.randn(2, 8, 16, 16, generator=g)
    image = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    other = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    terms = (lambda a, b, x, y: content_loss(a, b), lambda a, b, x, y: style_loss(a, b),
             lambda a, b, x, y: color_loss(x, y), lambda a, b, x, y: total_variation_loss(x))
    for term in terms:
        want = term(a, b, image, other)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = term(a, b, image, other)  # float32 inputs: only autocast could lower the precision
        assert want.dtype == torch.float32 and got.dtype == torch.float32
        assert float(got) == float(want)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert gram_matrix(a).dtype == torch.float32
        x = content_loss(a.bfloat16(), b.bfloat16())  # bf16 features (a bf16 network's output)
    assert x.dtype == torch.float32 and float(x) == pytest.approx(float(content_loss(a, b)), rel=1e-2)


def test_bad_config_values_are_one_line_errors(layout: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    cases = [
        (["no_such_option=1"], "unknown AnimeGANConfig option(s): no_such_option (valid: adv_d, adv_g, "),
        (["lr=1e-4"], "unknown AnimeGANConfig option(s): lr (did you mean g_lr, d_lr?)"),
        (["version=v3"], "version must be 'v1' or 'v2'"),
        (["holdout=-1"], "holdout and aug_margin must be >= 0"),
        (["kid_images=1"], "kid_images must be 0 (no KID) or >= 2"),
        (["n_samples=0"], "n_samples (images per sample grid) must be >= 1"),
        (["teacher_weight=-5"], "teacher_weight must be >= 0, got -5.0"),
        (["kid_backend=tflite"], "kid_backend must be one of ['litert', 'torch'], got 'tflite'"),
        (["teacher_weight=1.0"], "teacher_weight > 0 needs teacher = PATH"),
        (["perceptual=vgg16"], "perceptual must be"),
        (["loss_preset=v9"], "unknown AnimeGAN loss preset 'v9'"),
        (["img_size=0"], "img_size must be >= 8, got 0"),
        (["version=v1", "img_size=30"], "img_size must be >= 8 and a multiple of 4 (v1), got 30"),
        (["perceptual=mobilenet_v2", "img_size=30"], "img_size must be >= 32 with perceptual = 'mobilenet_v2'"),
        (["d_channels=0"], "need d_channels >= 2 and d_layers >= 1, got 0, "),
        (["d_layers=-1"], "need d_channels >= 2 and d_layers >= 1, got 8, -1"),
        (["d_norm=batch"], "d_norm must be 'auto', 'layer' or 'instance', got 'batch'"),
        (["init_steps=-1"], "init_steps must be >= 0, got -1"),
        (["beta1=1.5"], "beta1 must be in [0, 1), got 1.5"),
        (["beta2=-0.1"], "beta2 must be in [0, 1), got -0.1"),
        (["holdout_seed=-1"], "holdout_seed must be >= 0, got -1"),
        (["perceptual=vgg19:"], "perceptual must be"),
    ]
    for settings, needle in cases:
        code = train(layout, tmp_path / "run", *settings)
        one_line_error(capsys, code, needle)
    assert not list_checkpoints(tmp_path / "run")


# ---- DistributedDataParallel -------------------------------------------------------------------------
_RANK_DUMP = rank_dump_script("facetoon.train.animegan", "AnimeGANTrainer", ("gen", "disc"))


@pytest.mark.slow
def test_ddp_two_cpu_processes(layout: Path, tmp_path: Path) -> None:
    script = tmp_path / "rank_dump.py"
    script.write_text(_RANK_DUMP)
    run, single, export = tmp_path / "ddp", tmp_path / "single", tmp_path / "export"
    settings = ["iterations=4", "checkpoint_every=2", "sample_every=2"]  # 2 init + 2 adversarial steps
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script),
         str(tmp_path), "-q", "train", "animegan", "--data", str(layout), "--out", str(run),
         "--export", str(export), "--set", *TINY, *settings],
        cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # rank 0 wrote the run folder: checkpoints, logs, samples, the export
    assert ckpt_steps(run) == [2, 4]
    assert (run / "samples" / "latest.jpg").is_file()
    assert (export / "generator" / "model.safetensors").is_file()
    # both ranks end with the same weights (DDP averages the gradients of every update)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert r0["step"] == r1["step"] == 4
    for part in ("gen", "disc"):
        assert r0[part].keys() == r1[part].keys()
        for k in r0[part]:
            assert torch.equal(r0[part][k], r1[part][k]), (part, k)
    last = load_checkpoint(run / "checkpoints" / "step_00000004.pt")["trainer"]
    assert all(torch.equal(last["gen"][k], r0["gen"][k]) for k in r0["gen"])

    # the same run in one process: rank 0's first sample is the single process's first sample, so
    # the first (pre-update) loss agrees; after that the other rank's data changes everything
    assert train(layout, single, *settings) == 0
    two, one = read_losses(run), read_losses(single)
    assert len(two) == len(one) == 4
    assert all(math.isfinite(float(r[k])) for r in two[2:] for k in ADV_KEYS)
    assert two[0]["g_total"] == one[0]["g_total"]
    assert all(a["g_total"] != b["g_total"] for a, b in zip(two[1:], one[1:]))
