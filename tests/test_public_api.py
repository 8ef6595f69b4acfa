"""The package namespace: every public subpackage is an attribute of ``facetoon`` after a plain
``import facetoon`` (imported on first access) and is listed by ``dir()``."""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import facetoon

REPO = Path(__file__).resolve().parents[1]


def test_submodule_list_is_complete() -> None:
    public = {m.name for m in pkgutil.iter_modules(facetoon.__path__) if not m.name.startswith("_")}
    assert set(facetoon._SUBMODULES) == public  # noqa: SLF001


def test_subpackages_resolve_lazily_after_import_facetoon() -> None:
    """In a fresh process: ``dir(facetoon)`` lists the subpackages without importing them, and
    the README's dotted forms work without importing the subpackage first."""
    code = (
        "import pkgutil, sys\n"
        "import facetoon\n"
        "public = sorted(m.name for m in pkgutil.iter_modules(facetoon.__path__) if m.name[0] != '_')\n"
        "names = dir(facetoon)\n"
        "assert 'torch' not in sys.modules, 'dir(facetoon) imported torch'\n"
        "missing = [m for m in public if m not in names]\n"
        "assert not missing, f'dir(facetoon) lacks {missing}'\n"
        "assert 'stylize' in names and 'InvalidImageError' in names\n"
        "for m in public:\n"
        "    mod = getattr(facetoon, m)\n"
        "    assert mod is sys.modules['facetoon.' + m], m\n"
        "for f in (facetoon.io.set_max_pixels, facetoon.models.save_pretrained,\n"
        "          facetoon.face.warp_to_image, facetoon.background.BackgroundStylizer,\n"
        "          facetoon.metrics.FeatureExtractor, facetoon.viz.draw_faces):\n"
        "    assert callable(f)\n"
        "import facetoon.metrics as metrics\n"
        "assert {'FeatureExtractor', 'extract_features', 'get_extractor', 'kid'} <= set(dir(metrics))\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'nonexistent'"):
        facetoon.nonexistent  # noqa: B018
