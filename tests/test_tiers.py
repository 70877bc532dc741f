"""The fast tier's guard (tests/support/tiers.py): a tiny suite run with ``--tier fast`` in a
pytest subprocess, beside a fake ``tensorflow`` package (the guard refuses it before any of
its code runs; were the guard broken, the fake, not TensorFlow, would be imported)."""

from __future__ import annotations

import os
import sys

import pytest

from tests.support.tier_guard import refused_program

pytest_plugins = ["pytester"]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SUITE = """
import subprocess, sys
import pytest

def test_imports_tensorflow():
    import tensorflow  # noqa: F401

def test_swallows_the_import_error():
    try:
        import keras  # noqa: F401
    except ImportError:
        pass

def test_starts_docker():
    subprocess.run(["docker", "info"], capture_output=True)

def test_child_starts_a_server():
    code = "import subprocess; subprocess.run(['gunicorn', '--version'])"
    subprocess.run([sys.executable, "-c", code], capture_output=True)

def test_child_runs_python():
    out = subprocess.run([sys.executable, "-c", "print(6 * 7)"], capture_output=True, text=True)
    assert out.stdout == "42\\n"

@pytest.fixture(scope="session")
def engine():
    subprocess.run(["dockerd", "--version"], capture_output=True)

@pytest.fixture()
def pool():  # a fixture that fails on the refusal with an error of its own
    try:
        subprocess.run(["postgres", "-D", "data"], capture_output=True)
    except OSError as error:
        raise RuntimeError("the server did not start") from error

def test_engine(engine):
    pass

def test_engine_again(engine):  # the fixture's error, cached, raised again
    pass

def test_pool(pool):
    pass

@pytest.mark.slow
def test_slow_imports_tensorflow():
    import tensorflow
    assert tensorflow.FAKE
"""

SLOW_MODULE = """
import pytest
import tensorflow

pytestmark = pytest.mark.slow

def test_slow():
    assert tensorflow.FAKE
"""


@pytest.fixture()
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTHONPATH", ROOT)
    pytester.makeini("[pytest]\nmarkers =\n    slow: slow\n")
    fake = pytester.mkpydir("tensorflow")
    (fake / "__init__.py").write_text("FAKE = True\n")
    (pytester.mkpydir("keras") / "__init__.py").write_text("FAKE = True\n")
    pytester.makepyfile(test_suite=SUITE, test_slow_module=SLOW_MODULE)
    return pytester


def _run(suite: pytest.Pytester, *args: str) -> pytest.RunResult:
    return suite.runpytest_subprocess("-p", "tests.support.tiers", "-p", "no:cacheprovider", *args)


def test_fast_tier_fails_each_test_that_imports_or_starts_what_is_slow(suite):
    result = _run(suite, "--tier", "fast")
    result.assert_outcomes(passed=1, failed=4, errors=3, deselected=1)
    summary = result.stdout.str()
    for test, doing in [
        ("test_imports_tensorflow", "imports tensorflow in the pytest process (from "),
        ("test_swallows_the_import_error", "imports keras in the pytest process (from "),
        ("test_starts_docker", "starts a container (docker) (docker info)"),
        ("test_child_starts_a_server", "starts a web server (gunicorn) (gunicorn --version)"),
        ("test_engine", "starts a container engine (dockerd) (dockerd --version)"),
        ("test_engine_again", "starts a container engine (dockerd) (dockerd --version)"),
        ("test_pool", "starts PostgreSQL (postgres -D data)"),
    ]:
        assert f"test_suite.py::{test}: {doing}" in summary
    assert summary.count(": too slow for the fast tier; mark the test @pytest.mark.slow") >= 14
    # The slow module was not imported (it imports the fake at its top).
    assert "test_slow_module" not in summary


def test_a_module_that_imports_tensorflow_fails_its_collection(suite):
    suite.makepyfile(test_mixed="import tensorflow\n\ndef test_fast():\n    pass\n")
    result = _run(suite, "--tier", "fast", "test_mixed.py")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "test_mixed.py: imports tensorflow in the pytest process (from test_mixed.py:1): "
            "too slow for the fast tier; import it only in slow tests, or mark the module slow*"
        ]
    )


def test_slow_tier_runs_only_slow_tests_unguarded(suite):
    result = _run(suite, "--tier", "slow")
    result.assert_outcomes(passed=2, deselected=8)


def test_no_tier_runs_every_test_unguarded(suite):
    result = _run(suite, "-k", "not docker and not server and not engine and not pool")
    result.assert_outcomes(passed=5, deselected=5)


@pytest.mark.parametrize(
    ("argv", "what"),
    [
        ([sys.executable, "-m", "ipykernel_launcher", "-f", "k.json"], "a Jupyter kernel"),
        (["runuser", "-u", "postgres", "--", "/usr/lib/postgresql/15/bin/initdb"], "PostgreSQL"),
        (["python3", "-m", "mlflow", "server", "--port", "0"], "an MLflow server"),
        (["mlflow", "models", "serve", "-m", "model"], "an MLflow server"),
        (["/venv/bin/jupyter", "lab", "--no-browser"], "JupyterLab"),
        (["/venv/lib/playwright/driver/node", "cli.js", "run-driver"], "a browser"),
        (["nice", "-n", "19", "dockerd"], "a container engine (dockerd)"),
        ([sys.executable, "-m", "gcp_storage_emulator", "start"], "the GCS emulator"),
        ([sys.executable, "-m", "runner", "train"], None),
        (["git", "ls-files", "docker"], None),
        (["psql", "-U", "postgres"], None),
    ],
)
def test_refused_programs(argv, what):
    assert refused_program(argv) == what
