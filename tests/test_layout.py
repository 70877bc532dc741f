"""The layout of lib, app, runner and tools (issues 22, 26): no import cycle among the
project's modules, an import of the project's modules inside a function only with a comment
saying why, short modules grouped in packages. The layers between the groups are
import-linter's contracts (pyproject.toml, run by scripts/test.sh)."""

from __future__ import annotations

import ast
from pathlib import Path

from lib.core.code_deps import type_checking_only

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("lib", "app", "runner", "tools")
MAX_LINES = 400
MAX_TOP_LEVEL_MODULES = 4


def modules(root: Path = ROOT) -> dict[str, Path]:
    """``{dotted name: source file}`` of every module of lib and runner (a package: its
    ``__init__.py``)."""
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _imported(node: ast.Import | ast.ImportFrom, name: str, path: Path, known) -> set[str]:
    """The project modules one import statement loads by name: ``from pkg import sub`` is the
    submodule ``pkg.sub``, ``from pkg.mod import f`` is ``pkg.mod``."""

    def owner(dotted: str) -> str | None:
        while dotted and dotted not in known:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    if isinstance(node, ast.Import):
        found = {owner(alias.name) for alias in node.names}
    else:
        base = node.module or ""
        if node.level:
            package = name if path.name == "__init__.py" else name.rpartition(".")[0]
            parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            base = ".".join(parts + ([base] if base else []))
        found = {
            f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else owner(base)
            for alias in node.names
        }
    found.discard(None)
    found.discard(name)
    return found


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Each module's imports of the project's modules, over every import statement (inside
    functions too) but those under ``if TYPE_CHECKING:`` (never run)."""
    known = modules(root)
    graph = {}
    for name, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        skipped = type_checking_only(tree)
        graph[name] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in skipped:
                graph[name] |= _imported(node, name, path, known)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _write(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_cycle_check_sees_a_cycle_through_a_function_and_a_submodule(tmp_path):
    _write(
        tmp_path,
        {
            "lib/__init__.py": "",
            "lib/core/__init__.py": "",
            "lib/core/a.py": "def f():\n    from lib.core import b\n",
            "lib/core/b.py": "from lib.core.a import f\n",
            "lib/core/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from lib.core import d\n",
            "lib/core/d.py": "import lib.core.c\n",
            "runner/__init__.py": "",
        },
    )
    graph = import_graph(tmp_path)
    assert graph["lib.core.a"] == {"lib.core.b"}  # the submodule, not the package
    assert cycles(graph) == [["lib.core.a", "lib.core.b"]]  # c -> d is TYPE_CHECKING only


def test_no_import_cycle_among_the_projects_modules():
    found = cycles(import_graph())
    assert found == [], "import cycles (break them: see the layers in pyproject.toml):\n" + (
        "\n".join(" <-> ".join(cycle) for cycle in found)
    )


def _function_imports_without_why(
    path: Path, known: dict[str, Path], name: str, root: Path = ROOT
) -> list[str]:
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    tree = ast.parse(text, str(path))
    skipped = type_checking_only(tree)
    missing = []
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(function):
            if not isinstance(node, ast.Import | ast.ImportFrom) or id(node) in skipped:
                continue
            if not _imported(node, name, path, known):
                continue
            own = lines[node.lineno - 1]
            above = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
            if "#" not in own and not above.startswith("#"):
                missing.append(f"{path.relative_to(root)}:{node.lineno}: {own.strip()}")
    return sorted(set(missing))


def test_the_why_check_sees_an_import_inside_a_function_without_a_comment(tmp_path):
    _write(tmp_path, {"lib/__init__.py": "", "lib/a.py": "", "runner/__init__.py": ""})
    path = tmp_path / "lib" / "b.py"
    path.write_text("def f():\n    from lib import a\n\n\ndef g():\n    # why\n    import lib.a\n")
    known = modules(tmp_path)
    found = _function_imports_without_why(path, known, "lib.b", tmp_path)
    assert found == ["lib/b.py:2: from lib import a"]


def test_each_import_of_the_projects_modules_inside_a_function_says_why():
    known = modules()
    missing = [
        line
        for name, path in known.items()
        for line in _function_imports_without_why(path, known, name)
    ]
    assert missing == [], (
        "imports of the project's modules inside functions without a comment saying why "
        "(a measured start-up time, on the line or the line above; else import at the top):\n"
        + "\n".join(missing)
    )


def test_modules_are_short_and_grouped_in_packages():
    long = [
        f"{path.relative_to(ROOT)} ({count} lines)"
        for path in modules().values()
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    ]
    assert long == [], f"modules over {MAX_LINES} lines (one concern per module): {long}"
    for package in PACKAGES:
        top = sorted(p.name for p in (ROOT / package).glob("*.py"))
        assert len(top) <= MAX_TOP_LEVEL_MODULES, (
            f"{package}/ holds {top} directly: put modules in the group they serve"
        )
