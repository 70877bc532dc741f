"""The test tiers (pytest plugin, registered by tests/conftest.py).

``--tier fast`` runs the tests not marked ``slow`` (pyproject.toml's markers) under the guard
of tests/support/tier_guard.py: a test that imports TensorFlow or Keras in the pytest process,
or starts a Jupyter kernel, a server, a browser, a container or JupyterLab (itself, or in a
Python process it starts) fails with one line saying which and that it should be marked slow.
A module marked slow as a whole (``pytestmark = pytest.mark.slow``) is not even imported.
``--tier slow`` runs the tests marked ``slow``. scripts/test.sh runs one tier, then the other.
"""

from __future__ import annotations

import ast
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support.tier_guard import (
    FIX_MODULE,
    FIX_TEST,
    Guard,
    RefusedImport,
    RefusedProgram,
    violation,
)

_GUARD = pytest.StashKey[Guard]()
_SLOW = {"fast": "not slow", "slow": "slow"}
_PROPERTY = "tier_violation"
_REFUSED = (RefusedImport, RefusedProgram)
# The refused tests' lines, for the summary (a hook that sees reports is given no config).
_LOGGED: list[str] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--tier",
        choices=sorted(_SLOW),
        default=None,
        help="fast: the tests not marked slow, failing any that starts a kernel, server, "
        "browser, container or TensorFlow; slow: the tests marked slow",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # A pytest run started by a guarded test (pytester) guards itself, or not, by its options.
    child = getattr(sys.modules.get("sitecustomize"), "GUARD", None)
    if child is not None:
        child.stop()
    _LOGGED.clear()
    tier = config.getoption("tier")
    if tier is None:
        return
    given = config.option.markexpr
    config.option.markexpr = f"({given}) and {_SLOW[tier]}" if given else _SLOW[tier]
    if tier != "fast":
        return
    folder = Path(tempfile.mkdtemp(prefix="pytest-tier-"))
    guard = Guard(folder / "children.txt")
    if guard.loaded():
        raise pytest.UsageError(
            f"the fast tier found {', '.join(guard.loaded())} imported before the tests "
            "(by a conftest or a plugin): import it only in the slow tests"
        )
    guard.start()
    config.stash[_GUARD] = guard


def pytest_unconfigure(config: pytest.Config) -> None:
    guard = config.stash.get(_GUARD, None)
    if guard is not None:
        guard.stop()
        shutil.rmtree(guard.report.parent, ignore_errors=True)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """In the fast tier, a module marked slow as a whole is not imported (nor what it imports)."""
    if config.getoption("tier") != "fast" or collection_path.suffix != ".py":
        return None
    if not collection_path.name.startswith("test_"):
        return None
    return True if _module_marked_slow(collection_path) else None


def _module_marked_slow(path: Path) -> bool:
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError):  # pytest reports it when it imports the module
        return False
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "pytestmark" for target in node.targets
        ):
            value = node.value
            marks = value.elts if isinstance(value, (ast.List, ast.Tuple)) else [value]
            return any(ast.unparse(mark) == "pytest.mark.slow" for mark in marks)
    return False


def _violations(config: pytest.Config) -> list[str]:
    guard = config.stash.get(_GUARD, None)
    if guard is None:
        return []
    around = guard.new_loaded()
    return guard.take() + [
        violation(f"imported {name} in the pytest process (around the guard)") for name in around
    ]


def _refusals(error: BaseException | None) -> list[str]:
    """The refusal that ``error`` is, or was raised from or during (its first one)."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, _REFUSED):
            return [str(error)]
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return []


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    report = yield
    found = _violations(collector.config)
    if found:
        report.outcome = "failed"
        report.longrepr = f"{collector.nodeid}: {found[0]}".replace(FIX_TEST, FIX_MODULE)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    unformatted: Exception | None = None
    try:
        report = yield
    except Exception as error:  # noqa: BLE001 (re-raised below unless the guard explains it)
        # pytest could not format the failure (CPython 3.11's "AST constructor recursion depth
        # mismatch", seen after a refused kernel's retries): the refusal is the report.
        unformatted = error
        report = pytest.TestReport(
            item.nodeid, item.location, dict.fromkeys(item.keywords, 1), "failed", None, call.when
        )
    found = _violations(item.config)
    if not found and call.excinfo is not None:
        # A refusal recorded earlier and raised again (a fixture's error is cached), maybe
        # wrapped in the error of what it stopped (a kernel pool that could not start).
        found = _refusals(call.excinfo.value)
    if unformatted is not None and not found:
        raise unformatted
    if found:
        report.outcome = "failed"
        report.longrepr = found[0]
        report.user_properties.append((_PROPERTY, found[0]))
    return report


@pytest.hookimpl(trylast=True)
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # Also in xdist's controller: the workers' reports carry their user_properties.
    found = [value for name, value in report.user_properties if name == _PROPERTY]
    _LOGGED.extend(f"{report.nodeid}: {value}" for value in found)


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    if _LOGGED:
        terminalreporter.section("tests the fast tier refused (mark them slow)")
        for line in dict.fromkeys(_LOGGED):
            terminalreporter.write_line(line)
