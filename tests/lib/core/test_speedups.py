from pathlib import Path

import nbformat
import pytest

from lib.core.speedups import UNUSED_SLOW_MODULES
from runner.execution.execute import execute_stage
from runner.kernels import KernelPool
from runner.stages import Stage
from tests.support.runner_process import run_python

ROOT = Path(__file__).resolve().parents[3]
SKIPPED = f"all(__import__('sys').modules.get(m, 0) is None for m in {UNUSED_SLOW_MODULES!r})"


@pytest.fixture(autouse=True)
def tricks_on(monkeypatch):
    """Every trick on, whatever $IMDB_SPEEDUPS says: these tests are the tricks' own (the
    processes and kernels they start inherit this environment)."""
    monkeypatch.delenv("IMDB_SPEEDUPS", raising=False)


def test_import_in_background_loads_what_is_missing():
    out = run_python(
        """
        import sys
        from lib.core.speedups import import_in_background
        assert import_in_background(["sys"]) is None  # nothing to do
        import_in_background(["colorsys", "sys"]).join()
        print("colorsys" in sys.modules)
        """
    )
    assert out == "True"


def test_nbformat_works_without_the_unused_slow_modules():
    check = """
        import sys
        {skip}
        import nbformat
        nbformat.validate(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")]))
        print(sorted(m for m in ("lark", *{modules!r}) if sys.modules.get(m) is not None))
        """
    skip = "from lib.core.speedups import skip_unused_slow_imports; skip_unused_slow_imports()"
    # Without the skip they are imported: the day they are not, the skip can go.
    assert run_python(check.format(skip="", modules=UNUSED_SLOW_MODULES)) != "[]"
    assert run_python(check.format(skip=skip, modules=UNUSED_SLOW_MODULES)) == "[]"


@pytest.mark.parametrize("switch, kept", [("on", "True"), ("-keras_without_sklearn", "False")])
def test_keras_wrappers_alone_are_kept_from_sklearn(switch, kept):
    # A module named as Keras's wrappers imports sklearn as they do (in a try); then
    # anyone else imports it: sklearn is found for them, and was kept from the wrapper.
    out = run_python(
        f"""
        import os, sys, types
        os.environ["IMDB_SPEEDUPS"] = "{switch}"
        from lib.core.speedups import keep_sklearn_from_keras
        keep_sklearn_from_keras()
        keep_sklearn_from_keras()  # once is enough; twice installs it once
        wrapper = types.ModuleType("keras.src.wrappers.fixes")
        exec("try:\\n import sklearn\\nexcept ImportError:\\n sklearn = None", wrapper.__dict__)
        import sklearn
        assert sklearn.__version__ and sum(type(f).__name__ == "type" and
            f.__name__ == "_NoSklearnForKeras" for f in sys.meta_path) <= 1
        print(wrapper.sklearn is None)
        """
    )
    assert out == kept


@pytest.mark.slow
def test_kernels_started_by_the_runner_skip_them(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells.append(
        nbformat.v4.new_code_cell(
            "import scrapbook as sb\n"
            f"sb.glue('skipped', {SKIPPED})\n"
            "sb.glue('names', sorted(n for n in dir() if not n.startswith('_')))"
        )
    )
    nbformat.write(nb, tmp_path / "check.ipynb")
    execution = execute_stage(
        Stage("check", str(tmp_path / "check.ipynb"), ""), {}, run_dir=tmp_path, render=False
    )
    assert execution.ok, execution.error
    assert execution.scraps["skipped"] is True
    assert "speedups" not in execution.scraps["names"] and "lib" not in execution.scraps["names"]
    with KernelPool(1, warmup_modules=["scrapbook"], cwd=ROOT) as pool:
        kernel = pool.acquire(timeout=120)
        # find_spec gives None for a module that sys.modules holds as None (a spec else)
        for name in UNUSED_SLOW_MODULES:
            assert pool.call(kernel, "importlib.util:find_spec", name) is None


@pytest.mark.parametrize("switch, frozen", [("on", "True"), ("off", "False")])
def test_a_kernel_freezes_what_is_alive_when_it_exits(switch, frozen):
    out = run_python(
        f"""
        import atexit, gc, os
        os.environ["IMDB_SPEEDUPS"] = "{switch}"
        # Registered first, so run last: after the exit handler that kernel_started adds.
        atexit.register(lambda: print(gc.get_freeze_count() > 0))
        from lib.core.speedups import kernel_started
        kernel_started()
        """
    )
    assert out == frozen


def test_a_memo_keeps_the_last_values_and_drops_the_oldest_first():
    from lib.core.speedups import Memo

    memo: Memo[str] = Memo("test", size=2)
    made: list[str] = []

    def make(value: str):
        return lambda: made.append(value) or value.upper()

    assert memo.get("a", make("a")) == "A" and memo.get("b", make("b")) == "B"
    assert memo.get("a", make("a")) == "A"  # kept: not made again, and now the newest
    assert memo.get("c", make("c")) == "C"  # "b" is the oldest: dropped
    assert memo.get("a", make("a")) == "A" and memo.get("b", make("b")) == "B"
    assert made == ["a", "b", "c", "b"]
    assert (memo.hits, memo.misses) == (2, 4)


def test_a_memo_keeps_nothing_of_a_failed_computation():
    from lib.core.speedups import Memo

    memo: Memo[int] = Memo("test", size=1)
    memo.get("old", lambda: 1)

    def fail() -> int:
        raise RuntimeError("no")

    with pytest.raises(RuntimeError, match="no"):
        memo.get("new", fail)
    assert memo.get("new", lambda: 2) == 2
    assert memo.get("old", lambda: 3) == 3  # dropped for "new", with size 1
