"""The project's modules that a notebook runs, found statically (no import).

From the notebook's code cells, every import of a first-party package (``lib``, and
``runner`` for the trial backend that lib reaches through an entry point) is followed through
the sources of the modules it names: ``import lib.x``, ``from lib import x``, ``from lib.x
import y`` (``y`` may be a module), relative imports, and imports inside functions (the lazy
ones run too), but not those under ``if TYPE_CHECKING:`` (never run). Importing ``lib.a.b``
runs ``lib/__init__.py`` and ``lib/a/__init__.py``, so they count as well.
"""

from __future__ import annotations

import ast
import json
import time
from collections.abc import Iterable
from pathlib import Path

from lib.core import paths

PACKAGES = ("lib", "runner")


def module_file(name: str, root: Path | None = None) -> Path | None:
    """The source file of the first-party module ``name`` (a package: its ``__init__.py``)."""
    root = root or paths.project_root()
    if name.partition(".")[0] not in PACKAGES:
        return None
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def type_checking_only(tree: ast.AST) -> set[int]:
    """The ids of the nodes under ``if TYPE_CHECKING:`` (never run, so never imported)."""
    return {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for statement in node.body
        for inner in ast.walk(statement)
    }


def _imports(tree: ast.AST, module: str | None, is_package: bool) -> set[str]:
    """The dotted names that ``tree``'s imports may load (candidates: not all are modules)."""
    names: set[str] = set()
    skipped = type_checking_only(tree)
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level and module:
                parts = module.split(".")
                package = parts if is_package else parts[:-1]
                keep = len(package) - (node.level - 1)
                if keep <= 0:
                    continue
                base = ".".join(package[:keep] + ([base] if base else []))
            if not base:
                continue
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


# CPython 3.11 counts the AST constructor's recursion depth per interpreter, not per thread:
# when another thread builds an AST at the same moment (a kernel imports modules in the
# background while a notebook records its code), ast.parse can fail with "SystemError: AST
# constructor recursion depth mismatch" (python/cpython#106905); the same parse then succeeds.
PARSE_TRIES = 5
_ast_parse = ast.parse  # by this name, so that a test can stand in for it here only


def parse(source: str, filename: str = "<unknown>") -> ast.Module:
    """``ast.parse(source)``, tried again when another thread's parse got in its way."""
    for attempt in range(1, PARSE_TRIES):
        try:
            return _ast_parse(source, filename)
        except SystemError as exc:
            if "recursion depth mismatch" not in str(exc):
                raise
            time.sleep(0.05 * attempt)
    return _ast_parse(source, filename)


def closure(sources: Iterable[str], extra: Iterable[str] = (), root: Path | None = None):
    """``{module: source file}`` of every first-party module that code with these
    ``sources`` (plus the modules ``extra``) imports, directly or through other modules."""
    root = root or paths.project_root()
    found: dict[str, Path] = {}
    pending: list[str] = list(extra)
    for source in sources:
        pending.extend(_imports(parse(source), None, False))
    while pending:
        for name in _with_parents(pending.pop()):
            if name in found:
                continue
            path = module_file(name, root)
            if path is None:
                continue
            found[name] = path
            tree = parse(path.read_text(encoding="utf-8"), str(path))
            pending.extend(_imports(tree, name, path.name == "__init__.py"))
    return dict(sorted(found.items()))


def code_cells(notebook: Path) -> list[str]:
    """The sources of a notebook's code cells, IPython magics and shell lines left out."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    sources = []
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        text = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        lines = [line for line in text.splitlines() if not line.lstrip().startswith(("%", "!"))]
        sources.append("\n".join(lines))
    return sources
