"""The test tree mirrors the code (docs/tests.md): the tests of ``lib/core/paths.py`` are
``tests/lib/core/test_paths.py``, a file split by concern adds a suffix
(``tests/runner/execution/test_stopping_signals.py``), a package's own code is tested in its
folder's ``test_package.py``. Every test file holds at most 400 lines, every folder is a
package (tests import each other as ``tests.x.y``), no module star-imports, and the modules
that run containers, which share one test process, exist."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import DOCKER_MODULES

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
MIRRORED = ("lib", "app", "runner", "tools")
MAX_LINES = 400

# Modules whose tests live in another module's test file, with that file: it must exist and
# import the module (a module listed here that gets a mirrored test file fails: drop it here).
TESTED_ELSEWHERE = {
    "lib/core/pins.py": "tests/lib/tracking/test_model_requirements.py",
    "lib/model/train_spec.py": "tests/lib/model/test_models.py",
    "lib/tuning/attrs.py": "tests/lib/tuning/test_storage.py",
}


def _python_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "fixtures" not in p.relative_to(TESTS).parts)


def _defines_code(path: Path) -> bool:
    """Whether a module defines a function or a class (a package's ``__init__.py`` that only
    re-exports and documents needs no test of its own)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return any(isinstance(n, (ast.FunctionDef, ast.ClassDef)) for n in tree.body)


def mirror_problems(root: Path = ROOT) -> list[str]:
    """What breaks the mirror under ``root``: a test file under tests/lib|runner|tools named
    after no module beside its mirrored path, a module with code but no test file at its
    mirrored path (nor in TESTED_ELSEWHERE), a test under tests/bench|scripts named after no
    script."""
    problems = []
    for package in MIRRORED:
        for test in sorted((root / "tests" / package).rglob("test_*.py")):
            code = root / test.parent.relative_to(root / "tests")
            name = test.stem.removeprefix("test_")
            if name == "package" and (code / "__init__.py").is_file():
                continue
            stems = [name] + [name[:i] for i, c in enumerate(name) if c == "_"]
            if not any((code / f"{s}.py").is_file() or (code / s).is_dir() for s in stems):
                problems.append(
                    f"{test.relative_to(root)} tests no module of {code.relative_to(root)}/"
                )
        for module in sorted((root / package).rglob("*.py")):
            rel = module.relative_to(root)
            folder = root / "tests" / rel.parent
            if module.name == "__main__.py" or rel.as_posix() in TESTED_ELSEWHERE:
                continue
            if module.name == "__init__.py":
                if _defines_code(module) and not (folder / "test_package.py").is_file():
                    problems.append(
                        f"{rel} has no test: {folder.relative_to(root)}/test_package.py"
                    )
                continue
            if not list(folder.glob(f"test_{module.stem}.py")) + list(
                folder.glob(f"test_{module.stem}_*.py")
            ):
                problems.append(
                    f"{rel} has no test: {folder.relative_to(root)}/test_{module.stem}.py"
                )
    for folder in ("bench", "scripts"):  # their tests name the script they run
        for test in sorted((root / "tests" / folder).glob("test_*.py")):
            name = test.stem.removeprefix("test_")
            if not any((root / folder / f"{name}{ext}").is_file() for ext in (".py", ".sh")):
                problems.append(f"{test.relative_to(root)} tests no script of {folder}/")
    return problems


def test_each_module_is_tested_at_its_mirrored_path_and_each_test_names_its_module():
    assert mirror_problems() == []


def test_the_mirror_check_sees_an_untested_module_and_a_stray_test(tmp_path):
    (tmp_path / "lib" / "core").mkdir(parents=True)
    (tmp_path / "lib" / "core" / "paths.py").write_text("def f(): pass\n")
    (tmp_path / "lib" / "core" / "errors.py").write_text("def f(): pass\n")
    (tmp_path / "tests" / "lib" / "core").mkdir(parents=True)
    (tmp_path / "tests" / "lib" / "core" / "test_paths_on_windows.py").write_text("")
    (tmp_path / "tests" / "lib" / "core" / "test_gcs.py").write_text("")
    (tmp_path / "tests" / "bench").mkdir()
    (tmp_path / "tests" / "bench" / "test_serve.py").write_text("")
    assert mirror_problems(tmp_path) == [
        "tests/lib/core/test_gcs.py tests no module of lib/core/",
        "lib/core/errors.py has no test: tests/lib/core/test_errors.py",
        "tests/bench/test_serve.py tests no script of bench/",
    ]


def test_the_modules_tested_elsewhere_are_imported_by_their_test_file_and_have_none_of_their_own():
    for module, test in TESTED_ELSEWHERE.items():
        dotted = module.removesuffix(".py").replace("/", ".")
        package, _, name = dotted.rpartition(".")
        text = (ROOT / test).read_text(encoding="utf-8")
        assert dotted in text or f"from {package} import" in text and name in text, (module, test)
        mirrored = ROOT / "tests" / Path(module).parent / f"test_{Path(module).stem}.py"
        assert not mirrored.exists(), f"{mirrored.relative_to(ROOT)} exists: drop {module} here"


def test_every_test_file_and_helper_holds_at_most_400_lines():
    long = [
        f"{path.relative_to(ROOT)} ({count} lines)"
        for path in _python_files(TESTS)
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    ]
    assert long == [], f"split these by concern (docs/tests.md): {long}"


def test_every_test_folder_is_a_package():
    # A folder of a sitecustomize.py alone is put on a child's PYTHONPATH, never imported.
    folders = {path.parent for path in _python_files(TESTS) if path.name != "sitecustomize.py"}
    missing = sorted(str(f.relative_to(ROOT)) for f in folders if not (f / "__init__.py").is_file())
    assert missing == []


def test_no_test_module_star_imports():
    starred = [
        str(path.relative_to(ROOT))
        for path in _python_files(TESTS)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ImportFrom) and any(alias.name == "*" for alias in node.names)
    ]
    assert starred == [], "name what you import (fixture modules: pytest_plugins in conftest)"


def test_the_docker_modules_exist_and_are_every_module_that_asks_for_the_engine():
    assert DOCKER_MODULES, "no module runs containers?"
    missing = sorted(path for path in DOCKER_MODULES if not (ROOT / path).is_file())
    assert missing == [], f"tests/conftest.py's DOCKER_MODULES names missing files: {missing}"
    asking = {
        path.relative_to(ROOT).as_posix()
        for path in _python_files(TESTS)
        if path.name.startswith("test_") and path.name != Path(__file__).name
        if "docker_engine" in path.read_text(encoding="utf-8")
    }
    assert asking == set(DOCKER_MODULES), "list every module that asks for docker_engine"
    assert all(path.startswith("tests/system/") for path in asking)
