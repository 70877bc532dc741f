"""Notebook parameter parsing and checks.

Notebook parameters arrive as Python values (papermill ``-p``/``-f``) or, from Polyaxon,
as strings: a list may come as ``'["a", "b"]'`` (JSON) or ``"[a, b]"`` (YAML). These helpers
accept both and fail with a message that names the parameter, the value and what is allowed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml


class ParameterError(ValueError):
    """A notebook parameter has a value that is not allowed."""

    def __init__(self, name: str, value: Any, allowed: str) -> None:
        self.name, self.value, self.allowed = name, value, allowed
        super().__init__(f"parameter {name!r} = {value!r} is not allowed: {allowed}")


def as_list(name: str, value: Any) -> list[Any]:
    """A list from a list/tuple, a JSON or YAML list string, or a single scalar string."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise ParameterError(name, value, 'a non-empty list, e.g. \'["a", "b"]\'')
        if text[0] in "[-{":
            try:
                parsed = yaml.safe_load(text)  # YAML is a superset of JSON
            except yaml.YAMLError as exc:
                raise ParameterError(
                    name, value, f"a JSON or YAML list; it does not parse: {exc}"
                ) from None
            if not isinstance(parsed, list):
                raise ParameterError(name, value, "a JSON or YAML list")
            return parsed
        return [text]
    raise ParameterError(name, value, "a list, or a JSON/YAML list given as a string")


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
    raise ParameterError(name, value, "true or false")


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """``value`` if it is one of ``choices``."""
    choices = list(choices)
    if value not in choices:
        raise ParameterError(name, value, "one of " + ", ".join(repr(c) for c in choices))
    return value


def check_int(name: str, value: Any, minimum: int | None = None) -> int:
    """An int (not a bool), at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        else:
            raise ParameterError(name, value, "an integer")
    if minimum is not None and value < minimum:
        raise ParameterError(name, value, f"an integer >= {minimum}")
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
        raise ParameterError(name, value, "a number") from None
    if isinstance(value, bool):
        raise ParameterError(name, value, "a number")
    lo_ok = low is None or (number >= low if inclusive else number > low)
    hi_ok = high is None or (number <= high if inclusive else number < high)
    if not (lo_ok and hi_ok):
        brackets = "[]" if inclusive else "()"
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise ParameterError(name, value, f"a number in {brackets[0]}{lo}, {hi}{brackets[1]}")
    return number
