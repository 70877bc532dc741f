"""The notebooks as committed: thin narratives over lib, parameterized, without outputs.

Layers point one way (notebooks -> runner -> lib): a notebook imports only lib, the
notebook helpers (scrapbook, pandas, matplotlib) and the standard library; import-linter
holds the runner over lib (``[tool.importlinter]`` in pyproject.toml).
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest

from lib.core.params import PARAMETERS_TAG

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
ALLOWED = {"lib", "scrapbook", "pandas", "matplotlib"} | set(sys.stdlib_module_names)


def _code_cells(path: Path) -> list[dict]:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return [c for c in cells if c["cell_type"] == "code"]


def _source(cell: dict) -> str:
    return cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])


def imported_modules(source: str) -> set[str]:
    """The top-level names of the modules that ``source`` imports (anywhere in it)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            found.add("." if node.level else (node.module or "").split(".")[0])
    return found


def test_the_project_has_its_notebooks():
    assert {p.name for p in NOTEBOOKS} >= {"prep.ipynb", "train.ipynb", "tune.ipynb"}


def test_imported_modules_sees_every_kind_of_import():
    source = "import os.path, mlflow as m\nfrom lib.x import y\nfrom . import z\n"
    source += "if True:\n    import numpy\n"
    assert imported_modules(source) == {"os", "mlflow", "lib", ".", "numpy"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_a_notebook_imports_only_lib_its_helpers_and_the_standard_library(path):
    imported = set()
    for cell in _code_cells(path):
        imported |= imported_modules(_source(cell))
    assert "lib" in imported
    assert imported <= ALLOWED, f"{path.name} imports {sorted(imported - ALLOWED)}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_a_notebook_has_one_parameters_cell_and_no_outputs(path):
    cells = _code_cells(path)
    tagged = [c for c in cells if PARAMETERS_TAG in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged {PARAMETERS_TAG!r}"
    assert cells[0] is tagged[0], f"{path.name}: the parameters cell is not the first code cell"
    for number, cell in enumerate(cells):
        assert cell["outputs"] == [], f"{path.name}: code cell {number} has outputs"
        assert cell["execution_count"] is None, f"{path.name}: code cell {number} was executed"
