"""The generator weight average (``ema_decay``): its arithmetic, checkpoints, exports and warm starts."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from facetoon.cli import main
from facetoon.models import load_pretrained
from facetoon.train.animegan import AnimeGANConfig, AnimeGANTrainer
from facetoon.train.checkpoint import load_checkpoint
from facetoon.train.ema import WeightAverage, ema_factor
from facetoon.train.ugatit import UGATITConfig, UGATITTrainer
from test_animegan_train import TINY_CONFIG as ANIMEGAN_TINY
from test_animegan_train import make_layout
from test_ugatit_train import TINY, TINY_CONFIG, make_synthetic_data
from train_helpers import one_line_error, one_thread  # noqa: F401 (one_thread: an autouse fixture)

DECAY = 0.5  # large steps, so that every update visibly moves the average


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synthetic_data(tmp_path_factory.mktemp("ema-data"))


@pytest.fixture(scope="module")
def run(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 tiny U-GAT-IT steps with a weight average, a checkpoint after every step."""
    out = tmp_path_factory.mktemp("ema-runs") / "run"
    assert main(["-q", "train", "ugatit", "--data", str(data), "--out", str(out), "--set", *TINY,
                 "iterations=6", "checkpoint_every=1", "keep_checkpoints=10", "sample_every=100",
                 f"ema_decay={DECAY}"]) == 0
    return out


def _ckpt(run: Path, step: int) -> dict:
    return load_checkpoint(run / "checkpoints" / f"step_{step:08d}.pt")


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(
        torch.equal(a[k], b[k]) if isinstance(a[k], torch.Tensor) else a[k] == b[k] for k in a)


def test_weight_average_arithmetic() -> None:
    net = nn.Linear(3, 2)
    avg = WeightAverage(net, 0.9)
    assert not avg.started and avg.updates == 0
    with torch.no_grad():
        net.weight.fill_(1.0)
    avg.update(net)  # the first update copies
    assert avg.started and avg.updates == 1 and torch.equal(avg.module.weight, torch.ones(2, 3))
    expected = torch.ones(2, 3)
    for n, value in enumerate((3.0, -1.0, 5.0), start=1):
        with torch.no_grad():
            net.weight.fill_(value)
        avg.update(net)
        d = ema_factor(0.9, n)  # warm-up: min(0.9, (1 + n) / (10 + n))
        expected = d * expected + (1 - d) * value
        assert torch.allclose(avg.module.weight, expected), n
    assert [ema_factor(0.9, n) for n in (1, 10, 80, 1000)] == [2 / 11, 11 / 20, 0.9, 0.9]
    assert not avg.module.weight.requires_grad
    restored = WeightAverage(nn.Linear(3, 2), 0.9)
    restored.load_state_dict(avg.state_dict())
    assert restored.updates == 4 and torch.equal(restored.module.weight, avg.module.weight)
    assert avg.state_dict()["decay"] == 0.9
    avg.restart()
    avg.update(net)
    assert avg.updates == 1 and torch.equal(avg.module.weight, net.weight)
    for bad in (0.0, 1.0, -0.5):
        with pytest.raises(ValueError, match="ema_decay"):
            WeightAverage(net, bad)


def test_checkpoints_hold_the_average_of_the_trained_weights(run: Path) -> None:
    for step in range(2, 7):
        before, now = _ckpt(run, step - 1), _ckpt(run, step)
        live = now["trainer"]["gens"]
        ema_before = {k.removeprefix("module."): v for k, v in before["ema"].items() if k.startswith("module.")}
        ema_now = {k.removeprefix("module."): v for k, v in now["ema"].items() if k.startswith("module.")}
        assert int(now["ema"]["n_averaged"]) == step and now["ema"]["decay"] == DECAY
        d = ema_factor(DECAY, step - 1)
        for k, w in live.items():
            if w.is_floating_point():
                assert torch.allclose(ema_now[k], d * ema_before[k] + (1 - d) * w, atol=1e-6), k
        assert not _same(ema_now, live)  # the average lags behind the trained weights


def test_resume_continues_the_average_exactly(run: Path, data: Path, tmp_path: Path) -> None:
    resumed = tmp_path / "resumed"
    assert main(["-q", "train", "ugatit", "--data", str(data), "--out", str(resumed), "--set", *TINY,
                 "iterations=6", "checkpoint_every=1", "keep_checkpoints=10", "sample_every=100",
                 f"ema_decay={DECAY}", "--resume", str(run / "checkpoints" / "step_00000003.pt")]) == 0
    assert _same(_ckpt(resumed, 6)["ema"], _ckpt(run, 6)["ema"])


def test_a_checkpoint_without_average_starts_it_from_the_trained_weights(run: Path, data: Path,
                                                                         tmp_path: Path) -> None:
    old = tmp_path / "old"
    assert main(["-q", "train", "ugatit", "--data", str(data), "--out", str(old), "--set", *TINY,
                 "iterations=2", "sample_every=100"]) == 0
    assert _ckpt(old, 2)["ema"] is None
    cfg = UGATITConfig(**{**TINY_CONFIG, "iterations": 3, "ema_decay": DECAY})
    trainer = UGATITTrainer(cfg, data, tmp_path / "continued", resume=old / "checkpoints" / "step_00000002.pt")
    assert trainer.averaged(trainer.gens.a2b) is trainer.gens.a2b  # nothing averaged yet
    trainer.fit()
    assert _same(trainer.averaged(trainer.gens.a2b).state_dict(), trainer.gens.a2b.state_dict())


def test_exports_inference_averages_and_the_full_training_state(run: Path, data: Path, tmp_path: Path) -> None:
    last = _ckpt(run, 6)
    ema = {k.removeprefix("module."): v for k, v in last["ema"].items() if k.startswith("module.")}
    live = last["trainer"]["gens"]

    def part(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
        return {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}

    infer = tmp_path / "inference"
    assert main(["-q", "export", "ugatit", str(run), str(infer)]) == 0
    assert sorted(p.name for p in infer.iterdir()) == ["a2b", "b2a"]
    for name in ("a2b", "b2a"):
        assert _same(load_pretrained(infer / name).state_dict(), part(ema, f"{name}."))
    meta = json.loads((infer / "a2b" / "config.json").read_text())["meta"]
    assert "moving average" in meta["weights"] and meta["config"]["ema_decay"] == DECAY

    state = tmp_path / "state"
    assert main(["-q", "export", "ugatit", str(run), str(state), "--discriminators"]) == 0
    assert sorted(p.name for p in state.iterdir()) == [
        "a2b", "b2a", "disc_ga", "disc_gb", "disc_la", "disc_lb", "ema_a2b", "ema_b2a"]
    assert _same(load_pretrained(state / "a2b").state_dict(), part(live, "a2b."))
    assert _same(load_pretrained(state / "ema_a2b").state_dict(), part(ema, "a2b."))
    trained_meta = json.loads((state / "a2b" / "config.json").read_text())["meta"]
    average_meta = json.loads((state / "ema_a2b" / "config.json").read_text())["meta"]
    assert trained_meta["weights"].startswith("trained") and average_meta["ema_updates"] == 6
    assert "weights" not in json.loads((state / "disc_ga" / "config.json").read_text())["meta"]

    # init_from that state: the trained weights train on, the average carries on from the exported one
    cfg = UGATITConfig(**{**TINY_CONFIG, "ema_decay": DECAY, "init_from": str(state)})
    warm = UGATITTrainer(cfg, data, tmp_path / "warm")
    assert warm.step == 6 and warm.ema is not None and warm.ema.updates == 6  # the warm-up goes on too
    assert _same(warm.gens.a2b.state_dict(), part(live, "a2b."))
    assert _same(warm.averaged(warm.gens.a2b).state_dict(), part(ema, "a2b."))
    assert _same(warm.averaged(warm.gens.b2a).state_dict(), part(ema, "b2a."))
    # ... a state with one generator's average: the other starts from its trained weights
    shutil.rmtree(state / "ema_b2a")
    warm = UGATITTrainer(cfg, data, tmp_path / "warm-half")
    assert _same(warm.averaged(warm.gens.a2b).state_dict(), part(ema, "a2b."))
    assert _same(warm.averaged(warm.gens.b2a).state_dict(), part(live, "b2a."))
    # ... and one without averages (an older state): the average starts from the trained weights
    shutil.rmtree(state / "ema_a2b")
    warm = UGATITTrainer(cfg, data, tmp_path / "warm-old")
    assert warm.ema is not None and not warm.ema.started
    assert warm.averaged(warm.gens.a2b) is warm.gens.a2b


def test_bad_ema_decay_is_a_one_line_error(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["-q", "train", "ugatit", "--data", str(data), "--out", str(tmp_path / "r"), "--set", *TINY,
                 "ema_decay=1.0"])
    one_line_error(capsys, code, "ema_decay")


def test_an_average_without_ema_decay_is_dropped_with_a_warning(run: Path, data: Path, tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    cfg = UGATITConfig(**{**TINY_CONFIG, "iterations": 6})
    with caplog.at_level(logging.WARNING):
        trainer = UGATITTrainer(cfg, data, tmp_path / "no-ema", resume=run / "checkpoints" / "step_00000004.pt")
    assert trainer.ema is None and "ema_decay = 0: it is dropped" in caplog.text


class _ScriptedValidation(UGATITTrainer):
    def validate(self) -> dict[str, float]:
        return {"kid_x100": 100.0 - self.step}


def test_best_state_holds_that_steps_average(data: Path, tmp_path: Path) -> None:
    cfg = UGATITConfig(**{**TINY_CONFIG, "iterations": 4, "validate_every": 2, "checkpoint_every": 2,
                          "sample_every": 100, "ema_decay": DECAY})
    trainer = _ScriptedValidation(cfg, data, tmp_path / "run")
    trainer.fit()
    best = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")
    assert best["step"] == 4 and _same(best["ema"], trainer.ema.state_dict() if trainer.ema else {})
    assert json.loads((tmp_path / "run" / "checkpoints" / "best.json").read_text())["weights"] == "average"
    trainer.close()
    # the run goes on without the average: its first validation of the trained weights is the new
    # best, even with a worse value, since the old one measured other weights
    cfg = UGATITConfig(**{**cfg.__dict__, "iterations": 6, "ema_decay": 0.0})
    trainer = _ScriptedWorse(cfg, data, tmp_path / "run", resume=True)
    trainer.fit()
    best_json = json.loads((tmp_path / "run" / "checkpoints" / "best.json").read_text())
    assert best_json == {"step": 6, "metric": "kid_x100", "value": 200.0, "weights": "trained",
                         "measure": {"kid_images": cfg.kid_images, "kid_backend": cfg.kid_backend}}
    trainer.close()


class _ScriptedWorse(UGATITTrainer):
    def validate(self) -> dict[str, float]:
        return {"kid_x100": 200.0}


@pytest.fixture(scope="module")
def real_data(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ema-real")
    for domain in ("trainA", "trainB"):
        (root / domain).mkdir()
        for f in sorted((shared / "data" / "selfie2anime" / domain).glob("*.jpg"))[:6]:
            shutil.copy(f, root / domain / f.name)
    return root


@pytest.mark.shared
def test_validation_reports_the_average_and_the_trained_weights(real_data: Path, tmp_path: Path) -> None:
    cfg = UGATITConfig(**{**TINY_CONFIG, "iterations": 3, "holdout": 3, "kid_images": 3, "validate_every": 3,
                          "sample_every": 100, "ema_decay": DECAY})
    trainer = UGATITTrainer(cfg, real_data, tmp_path / "run")
    trainer.fit()
    stats = [json.loads(line) for line in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()]
    assert [s["step"] for s in stats] == [3]
    assert {"kid_x100", "kid_x100_live"} <= set(stats[0]) and stats[0]["kid_x100"] != stats[0]["kid_x100_live"]
    x = trainer._val_batch(trainer.val_a[:2])
    nets = (trainer.averaged(trainer.gens.a2b), trainer.gens.a2b)
    modes = [net.training for net in nets]
    averaged, trained = trainer.translate(x, averaged=True)[0], trainer.translate(x, averaged=False)[0]
    assert not torch.equal(averaged, trained)
    assert [net.training for net in nets] == modes  # translate() leaves each network's mode as it was
    trainer.close()


def test_animegan_average_is_used_for_samples_and_export(tmp_path: Path) -> None:
    layout = make_layout(tmp_path / "layout")
    cfg = AnimeGANConfig(**{**ANIMEGAN_TINY, "iterations": 3, "ema_decay": DECAY, "sample_every": 100})
    trainer = AnimeGANTrainer(cfg, layout, tmp_path / "run")
    trainer.fit()  # init_steps = 2: the average restarts with the adversarial phase (step 3)
    assert trainer.ema is not None and trainer.ema.updates == 1
    assert _same(trainer.averaged(trainer.gen).state_dict(), trainer.gen.state_dict())
    trainer.config.iterations = 5
    trainer.fit()
    assert trainer.ema.updates == 3
    averaged = trainer.averaged(trainer.gen)
    assert averaged is not trainer.gen and not _same(averaged.state_dict(), trainer.gen.state_dict())
    used = []
    run_model = trainer._run
    trainer._run = lambda model, x: (used.append(model), run_model(model, x))[1]  # type: ignore[method-assign]
    trainer.sample_grid()
    assert used[0] is averaged
    trainer.export(tmp_path / "state", discriminators=True)
    trainer.export(tmp_path / "inference")
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == ["discriminator", "ema_generator", "generator"]
    assert _same(load_pretrained(tmp_path / "inference" / "generator").state_dict(), averaged.state_dict())
    assert _same(load_pretrained(tmp_path / "state" / "generator").state_dict(), trainer.gen.state_dict())
    cfg_warm = AnimeGANConfig(**{**ANIMEGAN_TINY, "ema_decay": DECAY, "init_from": str(tmp_path / "state")})
    warm = AnimeGANTrainer(cfg_warm, layout, tmp_path / "warm")
    assert _same(warm.averaged(warm.gen).state_dict(), averaged.state_dict()) and warm.ema is not None
    assert warm.ema.updates == 3
    trainer.close()
