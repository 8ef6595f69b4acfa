"""The notebooks in ``notebooks/`` are stored clean and portable.

They are *executed* by nbmake as part of ``python -m pytest`` (``--nbmake``, fast mode via
``FACETOON_FAST=1``); these tests check how they are stored: valid nbformat 4, the ``python3``
kernel, no outputs or execution counts (no bulky images in the repository), no saved widget
state, the fast-mode switch, only facetoon's public names, no machine-specific paths, and a
README entry for each.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
EXPECTED = ["01_face_alignment.ipynb", "02_stylize_portraits.ipynb", "03_train_ugatit_selfie2anime.ipynb"]
MAX_BYTES = 100_000  # sources only; an executed notebook with figures is several MB


def _paths() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def _code(nb: nbformat.NotebookNode) -> str:
    return "\n".join(c.source for c in nb.cells if c.cell_type == "code")


def test_expected_notebooks_present() -> None:
    names = [p.name for p in _paths()]
    missing = [n for n in EXPECTED if n not in names]
    assert not missing, f"missing notebooks: {missing}"


@pytest.fixture(params=_paths(), ids=lambda p: p.name)
def notebook(request: pytest.FixtureRequest) -> tuple[Path, nbformat.NotebookNode]:
    path: Path = request.param
    return path, nbformat.read(str(path), as_version=nbformat.NO_CONVERT)


def test_valid_nbformat_4(notebook: tuple[Path, nbformat.NotebookNode]) -> None:
    path, nb = notebook
    assert nb.nbformat == 4, f"{path.name}: nbformat {nb.nbformat}, expected 4"
    nbformat.validate(nb)  # raises ValidationError on a malformed notebook
    ids = [c.get("id") for c in nb.cells]
    assert all(ids) and len(set(ids)) == len(ids), f"{path.name}: cell ids missing or repeated"


def test_python3_kernel(notebook: tuple[Path, nbformat.NotebookNode]) -> None:
    path, nb = notebook
    spec = nb.metadata.get("kernelspec", {})
    assert spec.get("name") == "python3", f"{path.name}: kernelspec {spec!r}, expected name 'python3'"
    assert nb.metadata.get("language_info", {}).get("name") == "python"


def test_stored_without_outputs(notebook: tuple[Path, nbformat.NotebookNode]) -> None:
    path, nb = notebook
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {i}: has outputs (clear them before committing)"
            assert cell.execution_count is None, \
                f"{path.name} cell {i}: execution_count {cell.execution_count}"
        assert not cell.get("attachments"), f"{path.name} cell {i}: has attachments (embedded images)"
    assert "widgets" not in nb.metadata, f"{path.name}: saved ipywidgets state in the metadata"
    size = path.stat().st_size
    assert size < MAX_BYTES, f"{path.name}: {size} bytes, more than {MAX_BYTES}"


def test_has_fast_mode_and_headless_plots(notebook: tuple[Path, nbformat.NotebookNode]) -> None:
    path, nb = notebook
    code = _code(nb)
    assert 'os.environ.get("FACETOON_FAST") == "1"' in code, f"{path.name}: does not read FACETOON_FAST"
    assert "%matplotlib inline" in code, f"{path.name}: set the inline backend (runs headless in CI)"
    first = next(c for c in nb.cells if c.cell_type == "markdown")
    assert first.source.startswith("# "), f"{path.name}: the first markdown cell should be a title"


def test_public_api_only_and_portable(notebook: tuple[Path, nbformat.NotebookNode]) -> None:
    path, nb = notebook
    code = _code(nb)
    private = re.findall(r"\bfacetoon(?:\.\w+)*\._(?!_)\w+"
                         r"|from facetoon[\w.]* import [^\n]*\b_(?!_)\w+", code)
    assert not private, f"{path.name}: uses private facetoon names {private}"
    machine = re.findall(r"['\"](?:/work/|/home/|/root/|/tmp/|[A-Z]:\\\\)[^'\"]*['\"]", code)
    assert not machine, f"{path.name}: machine-specific paths {machine}"


def test_readme_lists_every_notebook() -> None:
    readme = NOTEBOOKS / "README.md"
    assert readme.is_file(), "notebooks/README.md is missing"
    text = readme.read_text(encoding="utf-8")
    unlisted = [p.name for p in _paths() if p.name not in text]
    assert not unlisted, f"notebooks/README.md does not mention {unlisted}"
