"""Helpers shared by the trainer tests (tests/test_ugatit_train.py, tests/test_animegan_train.py)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest
import torch

from facetoon.train.checkpoint import list_checkpoints

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny networks on a busy 2-core machine: one thread. Module scope, so that it also covers the
    module-scoped training-run fixtures; import it into a test module to apply it there."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def subprocess_env() -> dict[str, str]:
    """Environment of CLI subprocesses: this checkout's facetoon, one thread."""
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def read_losses(run: Path) -> list[dict[str, str]]:
    with (run / "losses.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def ckpt_steps(run: Path) -> list[int]:
    return [int(p.stem.split("_")[1]) for p in list_checkpoints(run)]


def one_line_error(capsys: pytest.CaptureFixture[str], code: int, *needles: str,
                   allow_warnings: bool = False) -> str:
    """Assert the CLI failed with one ``facetoon: error:`` line and no traceback; return that line.

    ``allow_warnings``: log lines starting with ``WARNING: `` may precede it.
    """
    err = capsys.readouterr().err.strip()
    assert code == 1, err
    lines = [ln for ln in err.splitlines() if not (allow_warnings and ln.startswith("WARNING: "))]
    assert len(lines) == 1 and lines[0].startswith("facetoon: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def rank_dump_script(module: str, trainer: str, attributes: tuple[str, ...]) -> str:
    """Source of a script for ``torchrun``: the facetoon CLI unchanged, except that at the end each
    rank also saves ``step`` and the state dicts of ``attributes`` to ``DUMP/rank{r}.pt`` (DUMP: the
    script's first argument)."""
    saved = ", ".join(f'"{a}": self.{a}.state_dict()' for a in attributes)
    return f'''import sys
from pathlib import Path

import torch

import {module} as trainer_module
from facetoon.cli import main

DUMP = Path(sys.argv.pop(1))
_close = trainer_module.{trainer}.close


def close(self):
    torch.save({{"step": self.step, {saved}}}, DUMP / f"rank{{self.dist.rank}}.pt")
    _close(self)


trainer_module.{trainer}.close = close
sys.exit(main(sys.argv[1:]))
'''
