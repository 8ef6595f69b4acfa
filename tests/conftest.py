"""Shared test fixtures.

Tests that read the development data in ``../shared`` (beside the checkout) use the ``shared``
fixture, which skips them with a clear reason when that folder is absent (e.g. on a user's
machine). ``FACETOON_SHARED`` overrides the location.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FACETOON_SHARED", REPO.parent / "shared"))


def pytest_configure(config: pytest.Config) -> None:
    # Keep tests single-process friendly on the 2-core machines; torch is imported lazily.
    os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="session")
def shared() -> Path:
    """The ``../shared`` data folder; skips the test when it is absent."""
    if not (SHARED / "README.md").is_file():
        pytest.skip(f"needs the shared data folder at {SHARED} (absent here)")
    return SHARED


@pytest.fixture(scope="session")
def selfies(shared: Path) -> list[Path]:
    """A few real selfies of selfie2anime trainA (sorted, deterministic)."""
    files = sorted((shared / "data" / "selfie2anime" / "trainA").glob("*.jpg"))[:8]
    if not files:
        pytest.skip("selfie2anime/trainA has no images")
    return files


@pytest.fixture(scope="session")
def anime_faces(shared: Path) -> list[Path]:
    files = sorted((shared / "data" / "selfie2anime" / "trainB").glob("*.jpg"))[:8]
    if not files:
        pytest.skip("selfie2anime/trainB has no images")
    return files
