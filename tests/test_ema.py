"""The generator weight average (``ema_decay``): its arithmetic, checkpoints, exports and warm starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from facetoon.cli import main
from facetoon.models import load_pretrained
from facetoon.train.animegan import AnimeGANConfig, AnimeGANTrainer
from facetoon.train.checkpoint import load_checkpoint
from facetoon.train.ema import WeightAverage
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
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_weight_average_arithmetic() -> None:
    net = nn.Linear(3, 2)
    avg = WeightAverage(net, 0.9)
    assert not avg.started
    with torch.no_grad():
        net.weight.fill_(1.0)
    avg.update(net)  # the first update copies
    assert avg.started and torch.equal(avg.module.weight, torch.ones(2, 3))
    with torch.no_grad():
        net.weight.fill_(3.0)
    avg.update(net)
    assert torch.allclose(avg.module.weight, torch.full((2, 3), 0.9 * 1 + 0.1 * 3))
    assert not avg.module.weight.requires_grad
    restored = WeightAverage(nn.Linear(3, 2), 0.9)
    restored.load_state_dict(avg.state_dict())
    assert restored.started and torch.equal(restored.module.weight, avg.module.weight)
    avg.restart()
    avg.update(net)
    assert torch.equal(avg.module.weight, net.weight)
    for bad in (0.0, 1.0, -0.5):
        with pytest.raises(ValueError, match="ema_decay"):
            WeightAverage(net, bad)


def test_checkpoints_hold_the_average_of_the_trained_weights(run: Path) -> None:
    for step in range(2, 7):
        before, now = _ckpt(run, step - 1), _ckpt(run, step)
        live = now["trainer"]["gens"]
        ema_before = {k.removeprefix("module."): v for k, v in before["ema"].items() if k.startswith("module.")}
        ema_now = {k.removeprefix("module."): v for k, v in now["ema"].items() if k.startswith("module.")}
        assert int(now["ema"]["n_averaged"]) == step
        for k, w in live.items():
            if w.is_floating_point():
                assert torch.allclose(ema_now[k], DECAY * ema_before[k] + (1 - DECAY) * w, atol=1e-6), k
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
    assert "weights" not in json.loads((state / "a2b" / "config.json").read_text())["meta"]

    # init_from that state: the trained weights train on, the average carries on from the exported one
    cfg = UGATITConfig(**{**TINY_CONFIG, "ema_decay": DECAY, "init_from": str(state)})
    warm = UGATITTrainer(cfg, data, tmp_path / "warm")
    assert warm.step == 6 and warm.ema is not None and warm.ema.started
    assert _same(warm.gens.a2b.state_dict(), part(live, "a2b."))
    assert _same(warm.averaged(warm.gens.a2b).state_dict(), part(ema, "a2b."))
    assert _same(warm.averaged(warm.gens.b2a).state_dict(), part(ema, "b2a."))
    # ... and one without averages (an older state): the average starts from the trained weights
    for name in ("ema_a2b", "ema_b2a"):
        for p in (state / name).iterdir():
            p.unlink()
        (state / name).rmdir()
    warm = UGATITTrainer(cfg, data, tmp_path / "warm-old")
    assert warm.ema is not None and not warm.ema.started
    assert warm.averaged(warm.gens.a2b) is warm.gens.a2b


def test_bad_ema_decay_is_a_one_line_error(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["-q", "train", "ugatit", "--data", str(data), "--out", str(tmp_path / "r"), "--set", *TINY,
                 "ema_decay=1.0"])
    one_line_error(capsys, code, "ema_decay")


def test_animegan_average_is_used_for_samples_and_export(tmp_path: Path) -> None:
    layout = make_layout(tmp_path / "layout")
    cfg = AnimeGANConfig(**{**ANIMEGAN_TINY, "iterations": 4, "ema_decay": DECAY, "sample_every": 100})
    trainer = AnimeGANTrainer(cfg, layout, tmp_path / "run")
    trainer.fit()
    averaged = trainer.averaged(trainer.gen)
    assert averaged is not trainer.gen and not _same(averaged.state_dict(), trainer.gen.state_dict())
    trainer.export(tmp_path / "state", discriminators=True)
    trainer.export(tmp_path / "inference")
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == ["discriminator", "ema_generator", "generator"]
    assert _same(load_pretrained(tmp_path / "inference" / "generator").state_dict(), averaged.state_dict())
    assert _same(load_pretrained(tmp_path / "state" / "generator").state_dict(), trainer.gen.state_dict())
    cfg_warm = AnimeGANConfig(**{**ANIMEGAN_TINY, "ema_decay": DECAY, "init_from": str(tmp_path / "state")})
    warm = AnimeGANTrainer(cfg_warm, layout, tmp_path / "warm")
    assert _same(warm.averaged(warm.gen).state_dict(), averaged.state_dict())
    trainer.close()
