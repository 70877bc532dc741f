"""Notebook parameter parsing and checks.

Notebook parameters arrive as Python values (papermill ``-p``/``-f``) or, from Polyaxon,
as strings: a list may come as ``'["a", "b"]'`` (JSON) or ``"[a, b]"`` (YAML). These helpers
accept both and fail with a message that names the parameter, the value and what is allowed.
"""

from __future__ import annotations

import ast
import difflib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from lib.core import paths
from lib.core.errors import ParameterError, first_line


def not_allowed(name: str, value: Any, allowed: str) -> ParameterError:
    """The error for a value that is not allowed, naming the value and what is:
    ``not_allowed("epochs", 0, "an integer >= 1")`` reads
    ``epochs: 0 is not allowed: an integer >= 1``."""
    shown = repr(value)
    if len(shown) > 120:  # one line, even for a long list or mapping
        shown = shown[:117] + "..."
    return ParameterError(name, f"{shown} is not allowed: {allowed}")


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """The closest of the ``known`` names to a misspelt ``name``, as the end of an error
    line: ``did you mean 'optimiser'?``; when none is close, ``known: a, b, ...``."""
    known = [str(k) for k in known]
    scored = sorted(
        ((difflib.SequenceMatcher(None, str(name), k).ratio(), k) for k in known),
        key=lambda pair: -pair[0],
    )
    # The close ones (difflib's usual 0.6), and of those only the nearly best: a near
    # miss should not be buried among names that merely share a suffix.
    close = [k for r, k in scored[:3] if r >= 0.6 and r >= scored[0][0] - 0.1]
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    return "known: " + ", ".join(known) if known else "none is known"


def unknown_name(
    where: str, name: str, known: Iterable[str], what: str = "parameter"
) -> ParameterError:
    """The error for a name that ``where`` does not have:
    ``train: unknown parameter 'optimizer'; did you mean 'optimiser'?``."""
    return ParameterError(where, f"unknown {what} {str(name)!r}; {did_you_mean(name, known)}")


def yaml_problem(exc: yaml.YAMLError) -> str:
    """One line for a YAML parse error: what is wrong and where (PyYAML's own message spans
    several lines)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if problem and mark is not None:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return first_line(exc)


def as_list(name: str, value: Any) -> list[Any]:
    """A list from a list/tuple, a JSON or YAML list string, or a single scalar string."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise not_allowed(name, value, 'a non-empty list, e.g. \'["a", "b"]\'')
        if text[0] in "[-{":
            try:
                parsed = yaml.safe_load(text)  # YAML is a superset of JSON
            except yaml.YAMLError as exc:
                raise not_allowed(
                    name, value, f"a JSON or YAML list; it does not parse: {yaml_problem(exc)}"
                ) from None
            if not isinstance(parsed, list):
                raise not_allowed(name, value, "a JSON or YAML list")
            return parsed
        return [text]
    raise not_allowed(name, value, "a list, or a JSON/YAML list given as a string")


def as_mapping(key: str, value: Any) -> dict[str, Any]:
    """A dict from a mapping, or from a YAML/JSON mapping given as a string; {} for None."""
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = yaml.safe_load(value) if value.strip() else {}
        except yaml.YAMLError as exc:
            raise ParameterError(
                key, f"{value!r} does not parse as YAML/JSON: {yaml_problem(exc)}"
            ) from None
    if not isinstance(value, Mapping):
        raise ParameterError(key, f"{value!r} is not a mapping")
    return dict(value)


def as_bool(name: str, value: Any) -> bool:
    """A bool from a bool or the strings true/false/yes/no/1/0 (any case)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in {"true", "yes", "1", "on"}:
            return True
        if lowered in {"false", "no", "0", "off", ""}:
            return False
    raise not_allowed(name, value, "true or false")


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """``value`` if it is one of ``choices``."""
    choices = list(choices)
    if value not in choices:
        raise not_allowed(name, value, "one of " + ", ".join(repr(c) for c in choices))
    return value


def check_int(name: str, value: Any, minimum: int | None = None) -> int:
    """An int (not a bool), at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        else:
            raise not_allowed(name, value, "an integer")
    if minimum is not None and value < minimum:
        raise not_allowed(name, value, f"an integer >= {minimum}")
    return value


def check_float(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    inclusive: bool = False,
) -> float:
    """A float in (low, high), or [low, high] when ``inclusive``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise not_allowed(name, value, "a number") from None
    if isinstance(value, bool):
        raise not_allowed(name, value, "a number")
    lo_ok = low is None or (number >= low if inclusive else number > low)
    hi_ok = high is None or (number <= high if inclusive else number < high)
    if not (lo_ok and hi_ok):
        brackets = "[]" if inclusive else "()"
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise not_allowed(name, value, f"a number in {brackets[0]}{lo}, {hi}{brackets[1]}")
    return number


PARAMETERS_TAG = "parameters"  # papermill's tag for the cell that holds the defaults


def _notebook_path(notebook: str | os.PathLike[str]) -> Path:
    if isinstance(notebook, os.PathLike) or str(notebook).endswith(".ipynb"):
        return Path(notebook)
    return paths.notebook_path(notebook)


def _parameters_cell(path: Path) -> ast.Module:
    """The parsed source of the notebook's one cell tagged ``parameters``."""
    try:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    except FileNotFoundError:
        raise FileNotFoundError(
            f"notebook {path} not found: name a notebook of {path.parent} or give its path"
        ) from None
    tagged = [c for c in cells if PARAMETERS_TAG in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise ValueError(
            f"{path} has {len(tagged)} cells tagged {PARAMETERS_TAG!r}: tag exactly one, "
            "the cell that holds the parameters' defaults"
        )
    source = tagged[0]["source"]
    return ast.parse(source if isinstance(source, str) else "".join(source), str(path))


def parameter_defaults(notebook: str | os.PathLike[str]) -> dict[str, Any]:
    """Each parameter of the notebook (see :func:`parameter_names`) and the value its
    ``parameters`` cell assigns, read without a kernel: the value of a literal, else the
    assignment's source text."""
    defaults: dict[str, Any] = {}
    for node in _parameters_cell(_notebook_path(notebook)).body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        names: dict[str, None] = {}
        for target in targets:
            _bound_names(target, names)
        single = len(targets) == 1 and isinstance(targets[0], ast.Name)
        for name in names:
            if single and not isinstance(node, ast.AugAssign):
                try:
                    defaults[name] = ast.literal_eval(value)
                    continue
                except (ValueError, SyntaxError, TypeError):
                    pass
            defaults[name] = ast.unparse(value)
    return defaults


def parameter_names(notebook: str | os.PathLike[str]) -> list[str]:
    """The names that the top-level assignments of the notebook's ``parameters`` cell bind, in
    order. ``notebook`` is a name (``"train"``: ``notebooks/train.ipynb``) or a file's path."""
    return list(parameter_defaults(notebook))


def _bound_names(target: ast.expr, names: dict[str, None]) -> None:
    # ``a, *b = ...`` binds a and b; ``a.x = ...`` and ``a[0] = ...`` bind nothing new.
    if isinstance(target, ast.Name):
        names.setdefault(target.id)
    elif isinstance(target, ast.Starred):
        _bound_names(target.value, names)
    elif isinstance(target, (ast.Tuple, ast.List)):
        for element in target.elts:
            _bound_names(element, names)


def notebook_parameters(
    namespace: Mapping[str, Any], notebook: str | os.PathLike[str]
) -> dict[str, Any]:
    """``{name: namespace[name]}`` for each parameter of the notebook (see
    :func:`parameter_names`), so a notebook gathers its parameters with one call:
    ``notebook_parameters(globals(), "train")``. Any mapping works as the namespace."""
    names = parameter_names(notebook)
    missing = [name for name in names if name not in namespace]
    if missing:
        raise NameError(
            f"parameters {', '.join(missing)} of {_notebook_path(notebook)} are not defined: "
            "run the notebook's parameters cell first"
        )
    return {name: namespace[name] for name in names}
