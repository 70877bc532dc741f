"""Two executed notebooks cell by cell: their code cells paired (by source, so that a cell
added or removed does not shift the rest), which code differs and which outputs differ.
Text outputs are compared as a diff; images and tables are shown side by side."""

from __future__ import annotations

import difflib
import html
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# SVG is left out: it is markup that can hold script, and the notebooks here plot PNGs.
_IMAGES = ("image/png", "image/jpeg")
# What an HTML output (a pandas table) may keep: a run's notebook is a file that anyone who may
# write to the run could have replaced, and its outputs are shown here, so an HTML output is
# cleaned (bleach, through nbconvert's sanitizer) to table markup, never script or events.
_TABLE_TAGS = ["table", "thead", "tbody", "tfoot", "tr", "th", "td", "div", "p", "br", "span"]
_TABLE_ATTRIBUTES = {"table": ["class", "border"], "th": ["colspan", "rowspan"], "td": ["colspan"]}
_STYLE = re.compile(r"<style\b.*?</style\s*>", re.IGNORECASE | re.DOTALL)
_SIMILAR = 0.5  # a changed cell's source is at least this similar to its older self


@dataclass
class CellPair:
    """A newer cell and the older cell paired with it (None: only one notebook has it)."""

    newer: Any
    older: Any
    newer_index: int | None
    older_index: int | None
    texts: tuple[str, str] = ("", "")  # each side's text outputs
    rich: tuple[list[str], list[str]] = field(default_factory=lambda: ([], []))  # HTML pieces

    @property
    def code(self) -> str:
        if self.newer is None or self.older is None:
            return "only newer" if self.older is None else "only older"
        return "same" if self.newer.source == self.older.source else "changed"

    @property
    def outputs(self) -> str:
        return (
            "same" if self.texts[0] == self.texts[1] and self.rich[0] == self.rich[1] else "differ"
        )


def code_cells(notebook: Any) -> list[tuple[int, Any]]:
    """The notebook's code cells with their index among all its cells."""
    if notebook is None:
        return []
    return [(i, c) for i, c in enumerate(notebook.cells) if c.cell_type == "code"]


def _text_outputs(cell: Any) -> str:
    parts = []
    for output in cell.get("outputs", []) if cell is not None else []:
        kind = output.get("output_type")
        if kind == "stream":
            parts.append(output.get("text", ""))
        elif kind == "error":
            parts.append(f"{output.get('ename')}: {output.get('evalue')}\n")
        elif kind in ("execute_result", "display_data"):
            bundle = output.get("data", {})
            if not any(k in bundle for k in (*_IMAGES, "text/html")):
                parts.append(str(bundle.get("text/plain", "")) + "\n")
    return _ANSI.sub("", "".join(parts))


def _rich_outputs(cell: Any) -> list[str]:
    """Each image or table output of ``cell`` as an HTML piece."""
    pieces = []
    for output in cell.get("outputs", []) if cell is not None else []:
        bundle = output.get("data", {})
        for kind in _IMAGES:
            if kind in bundle:
                data = bundle[kind]
                source = html.escape(f"data:{kind};base64,{str(data).strip()}", quote=True)
                alt = html.escape(str(bundle.get("text/plain", "figure")), quote=True)
                pieces.append(f'<img src="{source}" alt="{alt}" style="max-width:100%">')
                break
        else:
            if "text/html" in bundle:
                pieces.append(safe_html(str(bundle["text/html"])))
    return pieces


def safe_html(fragment: str) -> str:
    """``fragment`` with only table markup left: no script, style, event attribute or link."""
    from nbconvert.preprocessors.sanitize import SanitizeHTML

    cleaner = SanitizeHTML(tags=_TABLE_TAGS, attributes=_TABLE_ATTRIBUTES, strip=True)
    return cleaner.sanitize_html_tags(_STYLE.sub("", fragment))


def pair_cells(newer: Any, older: Any) -> list[CellPair]:
    """The code cells of both notebooks, paired by their source where it matches."""
    a, b = code_cells(newer), code_cells(older)
    matcher = difflib.SequenceMatcher(
        a=[c.source for _, c in b], b=[c.source for _, c in a], autojunk=False
    )
    pairs: list[CellPair] = []
    for _tag, i1, i2, j1, j2 in matcher.get_opcodes():
        pairs.extend(_pair_block(a[j1:j2], b[i1:i2]))
    for pair in pairs:
        pair.texts = (_text_outputs(pair.newer), _text_outputs(pair.older))
        pair.rich = (_rich_outputs(pair.newer), _rich_outputs(pair.older))
    return pairs


def _pair_block(news: list[tuple[int, Any]], olds: list[tuple[int, Any]]) -> list[CellPair]:
    """Cells of a stretch where the notebooks differ: each newer cell paired, in order, with
    the most similar older cell left (a changed cell), else alone (added); the older cells
    left over stand alone (removed). Equal stretches pair one to one."""
    pairs: list[CellPair] = []
    next_old = 0
    for n_index, new in news:
        scores = [
            (difflib.SequenceMatcher(a=old.source, b=new.source).ratio(), k)
            for k, (_, old) in enumerate(olds[next_old:], start=next_old)
        ]
        score, k = max(scores, default=(0.0, -1))
        if score < _SIMILAR:
            pairs.append(CellPair(new, None, n_index, None))
            continue
        pairs += [CellPair(None, c, None, i) for i, c in olds[next_old:k]]  # removed before it
        pairs.append(CellPair(new, olds[k][1], n_index, olds[k][0]))
        next_old = k + 1
    pairs += [CellPair(None, c, None, i) for i, c in olds[next_old:]]
    return pairs


def table(pairs: list[CellPair]) -> pd.DataFrame:
    """One row per paired code cell: its index in each notebook, its first line, whether
    its code and its outputs differ."""
    import pandas as pd

    rows = []
    for pair in pairs:
        cell = pair.newer if pair.newer is not None else pair.older
        first = next((line for line in cell.source.splitlines() if line.strip()), "")
        rows.append(
            {
                "newer cell": pair.newer_index,
                "older cell": pair.older_index,
                "first line": first[:70],
                "code": pair.code,
                "outputs": pair.outputs,
            }
        )
    return pd.DataFrame(rows, dtype=object)


def diff_text(older: str, newer: str, what: str) -> str:
    """A unified diff of two texts (``what`` names them), empty when they are the same."""
    return "".join(
        difflib.unified_diff(
            older.splitlines(keepends=True),
            newer.splitlines(keepends=True),
            f"older {what}",
            f"newer {what}",
        )
    )


def code_diff(pairs: list[CellPair]) -> str:
    """The diff of the notebooks' code cells, one after another."""
    older = "\n".join(p.older.source for p in pairs if p.older is not None)
    newer = "\n".join(p.newer.source for p in pairs if p.newer is not None)
    return diff_text(older + "\n", newer + "\n", "notebook code")


def changed_outputs_html(pairs: list[CellPair]) -> str:
    """Each cell whose outputs differ: its text outputs as a diff, its images and tables
    side by side (newer left)."""
    blocks = []
    for pair in pairs:
        if pair.outputs == "same":
            continue
        title = f"cell {pair.newer_index} (newer) / {pair.older_index} (older)"
        block = [f"<h4>{html.escape(title)}</h4>"]
        text = diff_text(pair.texts[1], pair.texts[0], "outputs")
        if text:
            block.append(f"<pre>{html.escape(text)}</pre>")
        if pair.rich[0] != pair.rich[1]:
            block.append(side_by_side("".join(pair.rich[0]), "".join(pair.rich[1])))
        blocks.append("\n".join(block))
    return "\n".join(blocks)


def side_by_side(newer: str, older: str) -> str:
    """Two HTML pieces in a two-column table: newer left, older right."""
    cell = '<td style="vertical-align:top;width:50%">{}</td>'
    return (
        '<table style="width:100%"><tr><th>newer</th><th>older</th></tr><tr>'
        f"{cell.format(newer or '—')}{cell.format(older or '—')}</tr></table>"
    )
