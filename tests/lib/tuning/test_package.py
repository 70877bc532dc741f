"""lib.tuning itself: importing the package imports none of its modules (the train
notebook imports lib.tuning.pruning alone, and its code closure must not hold the tune's
modules), its names still resolve, and its modules import each other one way."""

import ast
import subprocess
import sys
from pathlib import Path

import lib.tuning
from lib import tuning
from lib.tuning import attrs

PACKAGE = Path(lib.tuning.__file__).parent


def test_importing_the_package_imports_none_of_its_modules():
    code = (
        "import sys, lib.tuning; "
        "print(sorted(m for m in sys.modules if m.startswith('lib.tuning.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_name_of_the_package_resolves_to_the_one_in_its_module():
    import importlib

    for name in tuning.__all__:
        module = importlib.import_module(f"lib.tuning.{tuning._HOME[name]}")
        assert getattr(tuning, name) is getattr(module, name), name
    assert tuning.PRUNED_SCRAP is attrs.PRUNED_SCRAP


def _imports(path: Path) -> set[str]:
    """The lib.tuning modules that ``path`` imports, in functions too, not for type checks."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for statement in block.body
        for node in ast.walk(statement)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module == "lib.tuning":
            found |= {a.name for a in node.names if (PACKAGE / f"{a.name}.py").is_file()}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lib.tuning."):
            found.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[2] for a in node.names if a.name.startswith("lib.tuning.")}
    return found - {path.stem}


def test_the_modules_import_each_other_one_way():
    graph = {p.stem: _imports(p) for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, "import cycle: " + " -> ".join([*path, module])
        if module not in done:
            for imported in graph[module]:
                visit(imported, (*path, module))
            done.add(module)

    for module in graph:
        visit(module, ())
    assert graph["attrs"] == set() and "config" not in graph["pruning"]
