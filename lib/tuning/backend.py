"""The seam between a study and where its trials run.

``lib`` decides what a trial is: a :data:`TrialFunction`, sampled values in and a
:class:`TrialOutcome` out, with the train notebook's parameters from
:func:`lib.tuning.trials.trial_params`. Where trials run is a :class:`TrialBackend`'s
business; the runner provides one (trials as executed train notebooks, in pooled kernels)
and plugs it in through the Python entry-point group :data:`ENTRY_POINT_GROUP` (declared
in ``pyproject.toml``), so that ``lib`` names no runner module. Any callable with the
trial function's signature can stand in for a backend's (tests, benchmarks):
:func:`lib.tuning.loop.run_study` takes one directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from lib.core.errors import UserError

if TYPE_CHECKING:
    from lib.tuning.config import TuneConfig

ENTRY_POINT_GROUP = "imdb_sentiment.trial_backends"
DEFAULT_BACKEND = "notebook"


@dataclass
class TrialOutcome:
    """What running one trial gave: the train notebook's scraps, or an error."""

    scraps: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    user_attrs: dict[str, Any] = field(default_factory=dict)


# (trial number, sampled values) -> outcome; should not raise for a failing trial.
TrialFunction = Callable[[int, dict[str, Any]], TrialOutcome]


class TrialBackend(Protocol):
    """Runs a study's trials somewhere (the runner: train notebooks in pooled kernels).
    Made before the configuration is read, so that it can warm up meanwhile; a context
    manager that closes it."""

    def configure(self, config: TuneConfig) -> None:
        """Adapt to the checked configuration (``n_jobs``, kernel limits)."""

    def check(self, cases: list[dict[str, Any]]) -> dict[str, Any] | None:
        """Run :func:`lib.model.train_checks.check_train_params` on each case's ``"params"``
        where the trials run; the first failure as ``{"varied": ..., "name": ...,
        "error": "EName: message"}`` (with ``"index"``, the failing case's position in
        ``cases``, if the backend knows it), else None."""

    def trial_function(
        self,
        config: TuneConfig,
        trials_dir: Path,
        parent_run_id: str | None,
        hptuning_tag: str | None,
    ) -> TrialFunction:
        """The function that runs one trial, into ``trials_dir/trial-NNN/``."""

    def interrupt(self) -> None:
        """Stop the trials that are running (the user pressed Ctrl-C)."""

    def close(self) -> None:
        """Release everything the backend holds (its kernels)."""

    def __enter__(self) -> TrialBackend: ...

    def __exit__(self, *exc: object) -> None: ...


def backend_module(name: str = DEFAULT_BACKEND) -> tuple[str, ...]:
    """The module of the trial backend registered as ``name`` (none when not installed):
    code that a tune runs without importing it."""
    return tuple(point.module for point in entry_points(group=ENTRY_POINT_GROUP).select(name=name))


def open_backend(
    n_jobs: int, tracking_uri: str | None, name: str = DEFAULT_BACKEND
) -> TrialBackend:
    """The trial backend registered as ``name`` in :data:`ENTRY_POINT_GROUP`, made with
    ``n_jobs`` and ``tracking_uri``; it starts warming up at once."""
    found = entry_points(group=ENTRY_POINT_GROUP).select(name=name)
    if not found:
        raise UserError(
            f"no trial backend {name!r} in the entry points {ENTRY_POINT_GROUP!r}: the project "
            "is not installed; run scripts/setup.sh"
        )
    factory = next(iter(found)).load()
    return factory(n_jobs=n_jobs, tracking_uri=tracking_uri)
