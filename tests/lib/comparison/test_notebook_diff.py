"""Two executed notebooks cell by cell: cells paired by source, code and outputs compared,
text outputs as a diff, images and tables side by side."""

from __future__ import annotations

from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from lib.comparison import notebook_diff


def _nb(*cells):
    return new_notebook(cells=list(cells))


def _cell(source, text=None, html=None, png=None):
    outputs = []
    if text is not None:
        outputs.append(new_output("stream", name="stdout", text=text))
    if html is not None:
        outputs.append(new_output("display_data", data={"text/html": html, "text/plain": "t"}))
    if png is not None:
        outputs.append(new_output("display_data", data={"image/png": png, "text/plain": "fig"}))
    return new_code_cell(source, outputs=outputs)


OLDER = _nb(
    new_markdown_cell("# title"),
    _cell("a = 1", text="1\n"),
    _cell("b = 2", html="<table><tr><td>old</td></tr></table>"),
    _cell("plot()", png="AAAA"),
    _cell("gone()"),
)
NEWER = _nb(
    _cell("a = 1", text="2\n"),
    _cell("added()"),
    _cell("b = 3", html="<table><tr><td>new</td></tr></table>"),
    _cell("plot()", png="AAAA"),
)


def test_cells_are_paired_by_source_and_each_pair_says_what_differs():
    pairs = notebook_diff.pair_cells(NEWER, OLDER)
    table = notebook_diff.table(pairs)
    assert table[["first line", "code", "outputs"]].values.tolist() == [
        ["a = 1", "same", "differ"],
        ["added()", "only newer", "same"],
        ["b = 3", "changed", "differ"],
        ["plot()", "same", "same"],
        ["gone()", "only older", "same"],
    ]
    assert table.loc[table["first line"] == "plot()", "older cell"].item() == 3  # after markdown
    assert set(table["code"]) <= {"same", "changed", "only newer", "only older"}


def test_an_added_cell_stands_alone_and_the_rest_stay_paired():
    older = _nb(_cell("x"), _cell("y"))
    newer = _nb(_cell("x"), _cell("new"), _cell("y"))
    rows = notebook_diff.table(notebook_diff.pair_cells(newer, older))
    assert rows[["first line", "code"]].values.tolist() == [
        ["x", "same"],
        ["new", "only newer"],
        ["y", "same"],
    ]


def test_text_outputs_differ_as_a_diff_and_tables_side_by_side():
    pairs = notebook_diff.pair_cells(NEWER, OLDER)
    html = notebook_diff.changed_outputs_html(pairs)
    assert "-1\n+2" in html
    assert "<th>newer</th><th>older</th>" in html
    assert html.index("<td>new</td>") < html.index("<td>old</td>")  # newer left
    assert "cell 3 (newer) / 4 (older)" not in html  # plot() outputs are the same


def test_the_code_diff_holds_the_changed_lines_only_as_changes():
    diff = notebook_diff.code_diff(notebook_diff.pair_cells(NEWER, OLDER))
    assert "-b = 2\n" in diff and "+b = 3\n" in diff and "+added()" in diff and "-gone()" in diff
    assert "-a = 1" not in diff
    same = notebook_diff.pair_cells(OLDER, OLDER)
    assert notebook_diff.code_diff(same) == ""


def test_a_missing_notebook_is_no_cells():
    assert notebook_diff.pair_cells(None, OLDER)[0].code == "only older"
    assert notebook_diff.pair_cells(None, None) == []


def test_a_replaced_notebooks_markup_is_shown_cleaned_never_run():
    # A run's notebook is a file anyone who may write to the run could have replaced.
    hostile = (
        '<style>td{color:red}</style><table class="dataframe"><tr><td onmouseover="x()">a</td>'
        '</tr></table><script>alert(1)</script><img src=x onerror=alert(2)><a href="javascript:y">'
    )
    svg = "<svg onload=alert(3)><script>alert(4)</script></svg>"
    newer = _nb(_cell("show()", html=hostile), new_code_cell("fig()", outputs=[
        new_output("display_data", data={"image/svg+xml": svg, "text/plain": "<Figure>"})
    ]))  # fmt: skip
    older = _nb(_cell("show()", html="<table><tr><td>b</td></tr></table>"), _cell("fig()"))
    html = notebook_diff.changed_outputs_html(notebook_diff.pair_cells(newer, older)).lower()
    assert "<td>a</td>" in html and "<td>b</td>" in html  # the tables themselves are kept
    for bad in ("<script", "onmouseover", "onerror", "onload", "javascript:", "<svg", "<style"):
        assert bad not in html, bad
