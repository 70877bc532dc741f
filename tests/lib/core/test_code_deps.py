"""lib.core.code_deps: the modules a notebook's code imports, followed through lazy,
relative and from-imports, and none imported under TYPE_CHECKING only.
"""

from __future__ import annotations

import ast

import pytest

from lib.core import code_deps


def test_imports_are_followed_through_lazy_relative_and_from_imports(tmp_path):
    lib = tmp_path / "lib"
    (lib / "sub").mkdir(parents=True)
    (lib / "__init__.py").write_text("")
    (lib / "a.py").write_text("def f():\n    from lib import b\n")
    (lib / "b.py").write_text("import lib.sub.c\n")
    (lib / "sub" / "__init__.py").write_text("")
    (lib / "sub" / "c.py").write_text("from . import d\nfrom .e import thing\n")
    (lib / "sub" / "d.py").write_text("")
    (lib / "sub" / "e.py").write_text("thing = 1\n")
    (lib / "unused.py").write_text("")
    found = code_deps.closure(["import os\nfrom lib.a import f"], root=tmp_path)
    assert list(found) == [
        "lib",
        "lib.a",
        "lib.b",
        "lib.sub",
        "lib.sub.c",
        "lib.sub.d",
        "lib.sub.e",
    ]


def test_imports_under_type_checking_are_not_in_the_closure(tmp_path):
    # Never run, so never imported: editing the module they name changes nothing the notebook runs.
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "__init__.py").write_text("")
    (lib / "a.py").write_text(
        "from typing import TYPE_CHECKING\nimport lib.b\n"
        "if TYPE_CHECKING:\n    from lib import hinted\n"
    )
    (lib / "b.py").write_text("")
    (lib / "hinted.py").write_text("")
    found = code_deps.closure(["import lib.a"], root=tmp_path)
    assert list(found) == ["lib", "lib.a", "lib.b"]


def test_a_parse_that_another_threads_parse_got_in_the_way_of_is_tried_again(monkeypatch):
    # CPython 3.11's race (python/cpython#106905) cannot be staged on demand: ast.parse is
    # made to fail as it does there, twice, then to parse.
    real, failures = code_deps._ast_parse, []

    def flaky(source, filename="<unknown>"):
        if len(failures) < 2:
            failures.append(filename)
            raise SystemError("AST constructor recursion depth mismatch (before=96, after=23)")
        return real(source, filename)

    monkeypatch.setattr(code_deps, "_ast_parse", flaky)
    assert isinstance(code_deps.parse("import lib.core.paths", "x.py"), ast.Module)
    assert failures == ["x.py", "x.py"]

    def broken(source, filename="<unknown>"):
        raise SystemError("another interpreter error")

    monkeypatch.setattr(code_deps, "_ast_parse", broken)
    with pytest.raises(SystemError, match="another"):
        code_deps.parse("x = 1")  # any other SystemError is not retried
