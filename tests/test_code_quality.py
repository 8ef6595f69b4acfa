"""Static checks of the code base: flake8 and mypy, configured in ``setup.cfg``.

Both tools run as subprocesses of this interpreter from the repository root, so they read the
same ``[flake8]`` / ``[mypy]`` sections as a developer's command line. They are in the ``test``
extra; a test is skipped when its tool is not installed.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FLAKE8_PATHS = ["facetoon", "tests", "scripts", "benchmarks", "notebooks", "conftest.py"]
MYPY_PATHS = ["facetoon"]


def _run(tool: str, args: list[str]) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec(tool) is None:
        pytest.skip(f"{tool} is not installed (pip install -e \".[test]\")")
    return subprocess.run([sys.executable, "-m", tool, *args], cwd=REPO, capture_output=True, text=True)


def test_flake8_clean() -> None:
    proc = _run("flake8", FLAKE8_PATHS)
    assert proc.returncode == 0, f"flake8 {' '.join(FLAKE8_PATHS)} reports:\n{proc.stdout}{proc.stderr}"


@pytest.mark.slow  # ~30 s with a cold .mypy_cache, ~2 s with a warm one
def test_mypy_clean() -> None:
    proc = _run("mypy", MYPY_PATHS)
    assert proc.returncode == 0, f"mypy {' '.join(MYPY_PATHS)} reports:\n{proc.stdout}{proc.stderr}"
