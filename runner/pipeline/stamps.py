"""A stage's stamp: what it read and made at its last successful execution, and the decision
whether it is up to date.

A stamp (``runs/.pipeline/<stage>.json``, written atomically) records the digests of the
stage's inputs (its notebooks' code cells, its resolved parameters, its data, the project's
modules its notebooks import, the lock of its role and any other file it reads), the
digests of its products and its run (folder, time, MLflow run id). A stage is up to date when
every input is what the stamp says and every product is still there, unchanged. A stamp that
cannot be read is never taken as up to date.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lib.core import paths
from runner.pipeline.digests import short

FORMAT = "imdb-sentiment-stamp"
FORMAT_VERSION = 1


@dataclass
class Inputs:
    """What a stage reads. ``data``: ``{"what": "raw data", "digest": ...}`` (and
    ``"shown"``: what a message says of it, as ``version 4`` of a registered model);
    ``others``: its other data inputs, ``{"model": {"digest": ..., "shown": ...}}``; ``code``
    and ``files`` map a path relative to the project root to its digest."""

    notebooks: dict[str, str]
    parameters: dict[str, Any]
    data: dict[str, Any]
    code: dict[str, str]
    files: dict[str, str]
    others: dict[str, dict[str, Any]] = field(default_factory=dict)  # absent from older stamps


@dataclass
class Stamp:
    stage: str
    inputs: Inputs
    # name -> {"path": ..., "digest": ...}
    products: dict[str, dict[str, Any]] = field(default_factory=dict)
    # run_dir, name, finished (ISO 8601, UTC), seconds, mlflow_run_id, tracking_uri
    run: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        data = {"format": FORMAT, "format_version": FORMAT_VERSION, **asdict(self)}
        return json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"


class UnreadableStamp(Exception):
    """A stamp file that is not a stamp this code can read; ``str()`` says why."""


def normalised(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples as lists, keys as strings)."""
    return json.loads(json.dumps(value, default=str))


def read_stamp(path: Path) -> Stamp | None:
    """The stamp at ``path``; None when there is none; UnreadableStamp when it is damaged or
    of another format version."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise UnreadableStamp(f"cannot be read ({exc})") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UnreadableStamp(f"not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UnreadableStamp("not a pipeline stamp")
    if data.get("format_version") != FORMAT_VERSION:
        raise UnreadableStamp(
            f"format version {data.get('format_version')!r}, not {FORMAT_VERSION}"
        )
    try:
        inputs = Inputs(**data["inputs"])
        return Stamp(data["stage"], inputs, dict(data["products"]), dict(data["run"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise UnreadableStamp(f"incomplete ({type(exc).__name__}: {exc})") from None


def write_stamp(path: Path, stamp: Stamp) -> None:
    paths.atomic_write_text(path, stamp.to_json())


@dataclass
class Decision:
    stage: str
    up_to_date: bool
    reasons: list[str]  # what changed; empty when up to date
    stamp: Stamp | None = None

    def line(self) -> str:
        """One line: why the stage runs, or why it is skipped."""
        if not self.up_to_date:
            return f"{self.stage}: {'; '.join(self.reasons)}"
        assert self.stamp is not None
        inputs = self.stamp.inputs
        data = [{"what": "data", **inputs.data}] if inputs.data else []
        data += [{"what": what, **entry} for what, entry in inputs.others.items()]
        seen = "".join(f"{d['what']} {d.get('shown') or short(d.get('digest'))}, " for d in data)
        return (
            f"{self.stage}: up to date: {seen}"
            f"notebook, parameters and code unchanged since run {run_label(self.stamp)}"
        )


def run_label(stamp: Stamp) -> str:
    """The run's name: its folder's UTC time (``20261201T090559Z``)."""
    name = stamp.run.get("name") or Path(str(stamp.run.get("run_dir", "?"))).name
    return name.removesuffix(f"-{stamp.stage}")


def _show(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."


def parameter_changes(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """``epochs 5 -> 3`` for each parameter whose value differs."""
    unset = object()
    changes = []
    for name in sorted(set(before) | set(now)):
        old, new = before.get(name, unset), now.get(name, unset)
        if old != new:
            shown_old = "unset" if old is unset else _show(old)
            shown_new = "unset" if new is unset else _show(new)
            changes.append(f"{name} {shown_old} -> {shown_new}")
    return changes


def _changed_keys(before: dict[str, str], now: dict[str, str]) -> list[str]:
    return sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))


def _names(keys: list[str], most: int = 3) -> str:
    return ", ".join(keys[:most]) + (f" and {len(keys) - most} more" if len(keys) > most else "")


def _input_change(what: str, before: dict[str, Any], now: dict[str, Any]) -> str | None:
    """``model changed: version 3 -> version 4`` (or ``reviews changed``), None if the
    same."""
    if before.get("digest") == now.get("digest"):
        return None
    old, new = before.get("shown"), now.get("shown")
    return f"{what} changed: {old} -> {new}" if old and new and old != new else f"{what} changed"


def decide(
    stage: str,
    stamp: Stamp | None,
    inputs: Inputs,
    products_now: dict[str, str | None],
    force: bool = False,
    unreadable: str | None = None,
) -> Decision:
    """Whether ``stage`` is up to date against its ``stamp`` (None: never run), given what
    its inputs are now and the current digest of each product that the stamp lists (None
    when the product is gone). ``unreadable``: why the stamp file could not be read."""
    if unreadable:
        return Decision(stage, False, [f"stamp unreadable ({unreadable}): running it again"])
    if stamp is None:
        return Decision(stage, False, ["no earlier successful run"])
    reasons = []
    if force:
        reasons.append("forced (--force)")
    before = stamp.inputs
    if before.data.get("what") != inputs.data.get("what"):
        reasons.append(f"{inputs.data.get('what', 'data')} changed")
    elif why := _input_change(inputs.data.get("what", "data"), before.data, inputs.data):
        reasons.append(why)
    for what in list(inputs.others) + [w for w in before.others if w not in inputs.others]:
        if why := _input_change(what, before.others.get(what, {}), inputs.others.get(what, {})):
            reasons.append(why)
    if changed := _changed_keys(before.notebooks, inputs.notebooks):
        reasons.append(f"notebook changed: {_names(changed)}")
    if changed := parameter_changes(before.parameters, normalised(inputs.parameters)):
        reasons.append(f"parameters changed: {_names(changed)}")
    if changed := _changed_keys(before.code, inputs.code):
        reasons.append(f"code changed: {_names(changed)}")
    if changed := _changed_keys(before.files, inputs.files):
        reasons.append(f"changed: {_names(changed)}")
    for name, product in stamp.products.items():
        now = products_now.get(name)
        if now is None:
            reasons.append(f"{name} {product.get('path')} is gone")
        elif now != product.get("digest"):
            reasons.append(f"{name} {product.get('path')} was changed since")
    return Decision(stage, not reasons, reasons, stamp)
