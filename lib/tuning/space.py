"""The search space: which train parameters a study varies, over which values.

A search space is a mapping ``{name: spec}``; each spec is ``{type: int|float, low, high,
step or log}`` or ``{type: categorical, choices: [...]}``. A dotted name
(``model_params.ngram_max``) sets one key of a mapping parameter. Every bad entry is a
:class:`lib.core.errors.ParameterError` naming ``search_space.<name>[.<key>]``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from lib.core.errors import ParameterError

if TYPE_CHECKING:
    import optuna

TYPES = ("int", "float", "categorical")


def is_number(value: Any) -> bool:
    """A finite int or float (a bool is not a number here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _number_text(value: Any) -> Any:
    """``value``, or the float that a string such as ``"1e-5"`` spells: YAML 1.1 (PyYAML)
    reads an exponent without a dot as a string, so ``low: 1e-5`` arrives as text."""
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        return number if math.isfinite(number) else value
    return value


def _steps(low: float, high: float, step: float) -> int:
    """How many whole steps fit in [low, high], counted in decimal (0.2 + 6 * 0.025 is
    0.35, not 0.35000000000000003)."""
    return int((Decimal(str(high)) - Decimal(str(low))) / Decimal(str(step)))


@dataclass(frozen=True)
class SearchParam:
    """One searched train parameter. ``name`` may be dotted (``model_params.ngram_max``
    sets one key of the ``model_params`` mapping)."""

    name: str
    type: str
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def distribution(self) -> optuna.distributions.BaseDistribution:
        """The Optuna distribution that samples this parameter."""
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        if self.type == "categorical":
            return CategoricalDistribution(self.choices)
        if self.type == "int":
            return IntDistribution(self.low, self.high, log=self.log, step=self.step or 1)
        return FloatDistribution(self.low, self.high, log=self.log, step=self.step)

    def suggest(self, trial: optuna.Trial) -> Any:
        """Ask ``trial`` for a value of this parameter."""
        if self.type == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.type == "int":
            return trial.suggest_int(
                self.name, self.low, self.high, step=self.step or 1, log=self.log
            )
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def edge_values(self) -> list[Any]:
        """Values that together exercise the whole range: both ends, or every choice."""
        if self.type == "categorical":
            return list(self.choices)
        high = self.high
        if self.step:  # the last point of the grid
            high = self.low + _steps(self.low, self.high, self.step) * self.step
            high = round(high, 12) if self.type == "float" else int(high)
        return [self.low] if high == self.low else [self.low, high]

    def grid(self) -> list[Any] | None:
        """Every value (categorical or stepped), else None."""
        if self.type == "categorical":
            return list(self.choices)
        if self.type == "int":
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        if self.step:
            n = _steps(self.low, self.high, self.step)
            return [round(self.low + i * self.step, 12) for i in range(n + 1)]
        return None

    def contains(self, value: Any) -> bool:
        """Whether the study could sample ``value`` for this parameter."""
        if self.type == "categorical":
            return value in self.choices
        if not is_number(value) or (self.type == "int" and not float(value).is_integer()):
            return False
        if not self.low <= value <= self.high:
            return False
        if not self.step:
            return True
        return (Decimal(str(value)) - Decimal(str(self.low))) % Decimal(str(self.step)) == 0

    def describe(self) -> str:
        """One line: ``float [0.2, 0.35] step 0.025``, ``categorical ['adam', 'rmsprop']``."""
        if self.type == "categorical":
            return f"categorical {list(self.choices)}"
        extra = " log" if self.log else (f" step {self.step}" if self.step else "")
        return f"{self.type} [{self.low}, {self.high}]{extra}"


def _parse_choices(key: str, spec: Mapping[str, Any]) -> tuple[Any, ...]:
    choices = spec.get("choices")
    if not isinstance(choices, (list, tuple)) or not choices:
        raise ParameterError(f"{key}.choices", f"{choices!r} is not a non-empty list")
    for choice in choices:
        if choice is not None and not isinstance(choice, (bool, int, float, str)):
            raise ParameterError(
                f"{key}.choices",
                f"{choice!r} is not allowed: choices are strings, numbers, booleans or null",
            )
    if len({json.dumps(c) for c in choices}) < len(choices):
        raise ParameterError(f"{key}.choices", f"{list(choices)} has duplicates")
    return tuple(choices)


def _parse_bounds(key: str, kind: str, spec: Mapping[str, Any]) -> tuple[Any, Any]:
    for bound in ("low", "high"):
        if bound not in spec:
            raise ParameterError(f"{key}.{bound}", f"missing (type {kind} needs low and high)")
        value = spec[bound]
        if not is_number(value) or (kind == "int" and not float(value).is_integer()):
            what = "an integer" if kind == "int" else "a number"
            raise ParameterError(f"{key}.{bound}", f"{value!r} is not {what}")
    cast = int if kind == "int" else float
    low, high = cast(spec["low"]), cast(spec["high"])
    if low > high:
        raise ParameterError(f"{key}.low", f"low {low} is above high {high}")
    return low, high


def _parse_step(key: str, kind: str, low: Any, high: Any, step: Any) -> int | float:
    if not is_number(step) or step <= 0 or (kind == "int" and not float(step).is_integer()):
        what = "a positive integer" if kind == "int" else "a positive number"
        raise ParameterError(f"{key}.step", f"{step!r} is not {what}")
    step = int(step) if kind == "int" else float(step)
    try:
        fits = (Decimal(str(high)) - Decimal(str(low))) % Decimal(str(step)) == 0
    except InvalidOperation:
        fits = False
    if not fits:
        raise ParameterError(
            f"{key}.step",
            f"step {step} does not fit the range [{low}, {high}]: high - low must be a "
            "whole number of steps",
        )
    return step


def parse_param(name: str, spec: Any) -> SearchParam:
    """One search-space entry, checked; ParameterError names ``search_space.<name>[.<key>]``."""
    key = f"search_space.{name}"
    if not isinstance(spec, Mapping):
        raise ParameterError(
            key, f"{spec!r} is not a mapping such as {{type: float, low: 0.1, high: 0.3}}"
        )
    kind = spec.get("type")
    if kind not in TYPES:
        raise ParameterError(f"{key}.type", f"unknown type {kind!r}; allowed: {', '.join(TYPES)}")
    allowed = (
        {"type", "choices"} if kind == "categorical" else {"type", "low", "high", "step", "log"}
    )
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise ParameterError(
            f"{key}.{unknown[0]}",
            f"unknown key for type {kind}; allowed: {', '.join(sorted(allowed))}",
        )
    if kind == "categorical":
        return SearchParam(name, kind, choices=_parse_choices(key, spec))

    spec = {k: _number_text(v) if k in ("low", "high", "step") else v for k, v in spec.items()}
    low, high = _parse_bounds(key, kind, spec)
    log_scale = spec.get("log", False)
    if not isinstance(log_scale, bool):
        raise ParameterError(f"{key}.log", f"{log_scale!r} is not true or false")
    step = spec.get("step")
    if log_scale and step is not None:
        raise ParameterError(f"{key}.step", "step and log cannot be used together")
    if log_scale and low <= 0:
        raise ParameterError(f"{key}.low", f"low {low} must be above 0 with log: true")
    if step is not None:
        step = _parse_step(key, kind, low, high, step)
    return SearchParam(name, kind, low=low, high=high, step=step, log=log_scale)


def parse_search_space(space: Any) -> dict[str, SearchParam]:
    """The search space (a mapping of names to specs), checked; ParameterError names the
    bad key."""
    if not isinstance(space, Mapping) or not space:
        raise ParameterError("search_space", f"{space!r} is not a non-empty mapping")
    return {str(name): parse_param(str(name), spec) for name, spec in space.items()}


def sample(trial: optuna.Trial, space: Mapping[str, SearchParam]) -> dict[str, Any]:
    """Ask the trial for a value of every searched parameter."""
    return {name: param.suggest(trial) for name, param in space.items()}
