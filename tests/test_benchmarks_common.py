"""benchmarks/_common.py: multiply-accumulate counts and the machine summary."""

from __future__ import annotations

import importlib.util
import math
import platform
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch
from torch import nn

PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "_common.py"


@pytest.fixture(scope="module")
def common() -> ModuleType:
    """benchmarks/_common.py, loaded from its path (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location("facetoon_bench_common", PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _tiny_net() -> nn.Module:
    # per sample, input 3x10x10; MACs worked out by hand in test_count_macs_by_hand
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),                # out 8x10x10
        nn.BatchNorm2d(8), nn.ReLU(),                  # not counted
        nn.Conv2d(8, 8, 3, padding=1, groups=8),       # depthwise, out 8x10x10
        nn.Conv2d(8, 4, 1, stride=2, bias=False),      # out 4x5x5
        nn.ConvTranspose2d(4, 6, 2, stride=2),         # in 4x5x5, out 6x10x10
        nn.Conv2d(6, 4, 3, padding=1, groups=2),       # grouped, out 4x10x10
        nn.Flatten(),
        nn.Linear(400, 5),
    ).eval()


@pytest.mark.parametrize("meta", [True, False])
def test_count_macs_by_hand(common: ModuleType, meta: bool) -> None:
    per_sample = (
        8 * 10 * 10 * 3 * 9      # conv 3 -> 8, 3x3: 21,600
        + 8 * 10 * 10 * 1 * 9    # depthwise 3x3: one input channel per output: 7,200
        + 4 * 5 * 5 * 8 * 1      # 1x1 stride 2: 800
        + 4 * 5 * 5 * 6 * 4      # transposed 2x2: each input value feeds 6 channels x 4 taps: 2,400
        + 4 * 10 * 10 * 3 * 9    # groups 2: 6 / 2 input channels per output: 10,800
        + 5 * 400                # linear: 2,000
    )
    assert per_sample == 44_800
    net = _tiny_net()
    assert common.count_macs(net, torch.zeros(2, 3, 10, 10), meta=meta) == 2 * per_sample
    # the model itself is left as it was: on the CPU, no hooks
    assert all(p.device.type == "cpu" for p in net.parameters())
    assert all(not m._forward_hooks for m in net.modules())


def test_count_macs_counts_every_call(common: ModuleType) -> None:
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4, bias=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.fc(x))

    assert common.count_macs(Twice(), torch.zeros(3, 4)) == 2 * 3 * 4 * 4


def test_count_macs_runs_on_meta(common: ModuleType) -> None:
    seen: list[str] = []

    class Spy(nn.Linear):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(x.device.type)
            return super().forward(x)

    assert common.count_macs(Spy(4, 2), torch.zeros(1, 4)) == 8
    assert seen == ["meta"]  # shapes only: no arithmetic on the real weights


def test_count_macs_animegan_v2(common: ModuleType) -> None:
    from facetoon.models.animegan import Generator

    macs = common.count_macs(Generator("v2").eval(), torch.zeros(1, 3, 256, 256))
    assert macs == pytest.approx(26.3e9, rel=0.02)


def test_machine_summary(common: ModuleType) -> None:
    text = common.machine_summary(probe_seconds=0.05)
    assert torch.__version__ in text
    name = common.cpu_info().get("model name") or platform.processor() or platform.machine()
    assert name in text
    assert len(text.splitlines()) == 2


def test_other_load(common: ModuleType) -> None:
    cores = common.other_load(0.05)
    if Path("/proc/self/stat").exists():
        assert math.isfinite(cores) and cores >= 0
    else:
        assert math.isnan(cores)


def test_run_case_subprocess_returns_the_last_json_line(common: ModuleType, tmp_path: Path) -> None:
    script = tmp_path / "case.py"
    script.write_text("import json, os, sys\n"
                      "print('progress line')\n"
                      "if sys.argv[2] == 'fail':\n"
                      "    sys.exit('the case broke')\n"
                      "print(json.dumps({'case': sys.argv[2], 'cwd': os.getcwd(),\n"
                      "                  'path': os.environ['PYTHONPATH']}))\n")
    got = common.run_case_subprocess(script, ["--case", "ok"])
    assert got == {"case": "ok", "cwd": str(common.REPO), "path": str(common.REPO)}
    with pytest.raises(common.CaseFailed, match="exited with 1") as info:
        common.run_case_subprocess(script, ["--case", "fail"])
    assert "the case broke" in info.value.stderr


def test_other_load_note(common: ModuleType) -> None:
    quiet = [{"other_load": 0.1}, {"other_load": math.nan}]
    assert common.other_load_note(quiet, "upper bounds") is None
    note = common.other_load_note(quiet + [{"other_load": 0.8}], "upper bounds of the times")
    assert note is not None and "upper bounds of the times" in note
