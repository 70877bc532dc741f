"""Where a study lives (in memory, an RDB URL, a journal file) and how it samples.

Every Optuna internal that the package relies on is used in this module and only here:
``optuna.storages._heartbeat.BaseHeartbeat``, ``Study._storage``, ``Study._study_id``,
``Trial._trial_id`` and ``FrozenTrial._trial_id``. Optuna's JournalStorage has no heartbeat
(https://github.com/optuna/optuna/issues/6615; the pull request that would add one,
https://github.com/optuna/optuna/pull/6622, was closed unmerged, and Optuna 5.0 lacks it),
so a trial left RUNNING by a killed process on a journal file would never be failed and
retried. :class:`HeartbeatJournalStorage` adds one; the trial loop records heartbeats and
fails stale trials itself through the helpers at the end of this module.

A storage URL holds no password (a notebook parameter would show it): ``${VAR}`` in it is
replaced by the environment's value only here, when the storage is opened
(:func:`expand_storage`), never in what is shown or logged.
"""

from __future__ import annotations

import inspect
import logging
import os
import re
import time
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from lib.core import paths
from lib.core.errors import ParameterError, first_line
from lib.core.secrets import check_parameter_names
from lib.tracking.store_check import public_uri
from lib.tuning.attrs import HEARTBEAT_ATTR, RETRIED_ATTR

if TYPE_CHECKING:
    import optuna

    from lib.tuning.space import SearchParam

log = logging.getLogger(__name__)

MEMORY_STORAGE = "memory"  # a storage value that keeps the study in memory, like null
_RDB_ATTEMPTS = 5
_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


# -- samplers ----------------------------------------------------------------------------


def _sampler_classes() -> dict[str, type]:
    import optuna.samplers as s

    return {
        "tpe": s.TPESampler,
        "random": s.RandomSampler,
        "nsgaii": s.NSGAIISampler,
        "nsgaiii": s.NSGAIIISampler,
        "qmc": s.QMCSampler,
        "grid": s.GridSampler,
        "bruteforce": s.BruteForceSampler,
    }


def optuna_object(
    key: str,
    classes: Mapping[str, type],
    spec: Mapping[str, Any],
    known: str,
    given: Mapping[str, Any] | None = None,
) -> Any:
    """An instance of ``classes[spec["name"]]`` with the spec's other keys as its
    arguments (and ``given``, which the spec may not set): a sampler, a pruner.
    ParameterError names ``<key>.<argument>``; ``known`` lists the names for the error."""
    name = str(spec.get("name", "")).lower()
    if name not in classes:
        raise ParameterError(f"{key}.name", f"unknown {key} {name!r}; known: {known}")
    cls = classes[name]
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    accepted = set(inspect.signature(cls).parameters) - set(given or {})
    for arg in kwargs:
        if arg not in accepted:
            raise ParameterError(
                f"{key}.{arg}",
                f"not an argument of {cls.__name__}; it takes {', '.join(sorted(accepted))}",
            )
    try:
        return cls(**kwargs, **(given or {}))
    except (TypeError, ValueError) as exc:
        raise ParameterError(key, f"{cls.__name__} refuses {kwargs}: {exc}") from None


def make_sampler(
    spec: Mapping[str, Any], space: Mapping[str, SearchParam]
) -> optuna.samplers.BaseSampler:
    """An Optuna sampler from ``{name: tpe, seed: 123, ...}``; other keys are its arguments.
    ParameterError names ``sampler.<key>`` (or the search-space entry a grid cannot use)."""
    classes = _sampler_classes()
    given = None
    if str(spec.get("name", "")).lower() == "grid":
        grid = {n: p.grid() for n, p in space.items()}
        loose = [n for n, g in grid.items() if g is None]
        if loose:
            raise ParameterError(
                f"search_space.{loose[0]}", "the grid sampler needs a step or choices"
            )
        given = {"search_space": grid}
    return optuna_object("sampler", classes, spec, ", ".join(classes), given)


# -- storages ----------------------------------------------------------------------------


def public_storage(storage: str | None) -> str | None:
    """The storage as it may be shown or logged: a URL without its password."""
    if storage is None or "://" not in storage:
        return storage
    return public_uri(storage)


def check_storage_url(storage: str | None) -> None:
    """Refuse a storage URL with a password in it: the tune passes the URL to every trial's
    notebook as a parameter, so the password would be written into the notebooks. A
    ``${VAR}`` placeholder as the password is fine."""
    check_parameter_names({"storage": storage})


def expand_storage(storage: str) -> tuple[str, list[str]]:
    """``storage`` with each ``${VAR}`` replaced by $VAR, and the values put in (to keep out
    of messages). ParameterError names a variable that is not set."""
    values: list[str] = []

    def value(match: re.Match) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ParameterError(
                "storage", f"${{{name}}} in the storage URL, but ${name} is not set: export it"
            )
        values.append(os.environ[name])
        return os.environ[name]

    return _PLACEHOLDER.sub(value, storage), values


def _hide(text: str, values: list[str]) -> str:
    for value in values:
        if value:
            text = text.replace(value, "********")
    return text


def _heartbeat_journal_storage_class() -> type:
    """JournalStorage with a heartbeat (see the module's docstring): the last one is kept as
    a trial system attribute (wall-clock time), so that fail_stale_trials works on journal
    files too. Built on first use: importing Optuna's storages takes a while."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages._heartbeat import BaseHeartbeat
    from optuna.trial import TrialState

    class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
        def __init__(self, backend, heartbeat_interval, grace_period, stale_callback) -> None:
            super().__init__(backend)
            self._heartbeat_interval = heartbeat_interval
            self._grace_period = grace_period
            self._stale_callback = stale_callback

        def record_heartbeat(self, trial_id: int) -> None:
            try:
                self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())
            except optuna.exceptions.UpdateFinishedTrialError:
                pass

        def _get_stale_trial_ids(self, study_id: int) -> list[int]:
            now = time.time()
            stale = []
            for trial in self.get_all_trials(
                study_id, deepcopy=False, states=(TrialState.RUNNING,)
            ):
                beat = trial.system_attrs.get(HEARTBEAT_ATTR)
                if beat is None and trial.datetime_start is not None:
                    beat = trial.datetime_start.timestamp()
                if beat is not None and now - beat > self._grace_period:
                    stale.append(trial._trial_id)
            return stale

        def get_heartbeat_interval(self) -> int | None:
            return self._heartbeat_interval

        def get_heartbeat_stale_trial_callback(self) -> Callable | None:
            return self._stale_callback

    return HeartbeatJournalStorage


def _open_journal(
    storage: str, heartbeat_interval: int | None, grace_period: int | None, retry
) -> Any:
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    path = paths.resolve(storage)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        backend = JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path)))
        cls = _heartbeat_journal_storage_class()
        return cls(backend, heartbeat_interval, grace_period, retry)
    except Exception as exc:
        raise ParameterError("storage", f"cannot open the journal file {path}: {exc}") from None


def _rdb_url(storage: str) -> tuple[str, dict[str, Any]]:
    """The URL to open (a relative SQLite path taken from the project root) and the
    engine's arguments."""
    if storage.startswith("sqlite:///"):
        db = paths.sqlite_path(storage)
        url = storage
        if db is not None:
            try:
                db.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ParameterError("storage", f"cannot create {db.parent}: {exc}") from None
            url = f"sqlite:///{db}"
        # Several processes and threads write: wait for the lock instead of failing.
        return url, {"connect_args": {"timeout": 60}}
    if storage.startswith(("postgresql", "mysql")):
        return storage, {"connect_args": {"connect_timeout": 15}}
    return storage, {}


def _open_rdb(storage: str, heartbeat_interval: int | None, grace_period: int | None, retry) -> Any:
    from optuna.storages import RDBStorage

    url, values = expand_storage(storage)
    url, engine_kwargs = _rdb_url(url)
    try:
        for attempt in range(_RDB_ATTEMPTS):
            try:
                return RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=heartbeat_interval,
                    grace_period=grace_period,
                    heartbeat_stale_trial_callback=retry,
                )
            except Exception as exc:
                # Two processes creating the tables of a new database at once: one loses
                # the race; the tables exist by the next try.
                text = f"{type(exc).__name__} {exc}"
                racing = any(w in text for w in ("IntegrityError", "already exists", "locked"))
                if not racing or attempt == _RDB_ATTEMPTS - 1:
                    raise
                time.sleep(0.5 * (attempt + 1))
    except ModuleNotFoundError as exc:
        raise ParameterError(
            "storage",
            f"{public_storage(storage)}: the database driver is not installed ({exc.name})",
        ) from None
    except Exception as exc:
        problem = _hide(first_line(exc), values)
        raise ParameterError(
            "storage", f"cannot use the Optuna storage {public_storage(storage)}: {problem}"
        ) from None


def open_storage(
    storage: str | None, heartbeat_interval: int | None = 30, grace_period: int | None = 120
) -> optuna.storages.BaseStorage:
    """The Optuna storage: None (in memory), an RDB URL (``sqlite:///...``,
    ``postgresql://...``) or a journal file path, with heartbeats so that trials left
    RUNNING by a dead process are failed and retried (``heartbeat_interval`` None: none,
    for a trial kernel that only reports to its trial). ``${VAR}`` placeholders are
    expanded from the environment. Checks that it can be used:
    ``ParameterError("storage", ...)`` otherwise."""
    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    if storage is None:
        return optuna.storages.InMemoryStorage()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # A trial whose process died is failed, then run again with the same parameters.
        retry = RetryHeartbeatStaleTrialCallback(max_retry=3) if heartbeat_interval else None
        if not heartbeat_interval:
            grace_period = None
        if "://" not in storage:
            path = expand_storage(storage)[0]
            return _open_journal(path, heartbeat_interval, grace_period, retry)
        return _open_rdb(storage, heartbeat_interval, grace_period, retry)


# -- heartbeats and trials, as the trial loop needs them ---------------------------------


def heartbeat_interval(study: optuna.Study) -> int | None:
    """Seconds between a running trial's heartbeats; None: the storage keeps none."""
    from optuna.storages._heartbeat import BaseHeartbeat

    storage = study._storage
    return storage.get_heartbeat_interval() if isinstance(storage, BaseHeartbeat) else None


def record_heartbeat(study: optuna.Study, trial: optuna.Trial) -> None:
    """Record that ``trial`` is alive now (nothing for a storage without heartbeats)."""
    if heartbeat_interval(study):
        study._storage.record_heartbeat(trial._trial_id)


def retried_trial(study: optuna.Study, trial: optuna.Trial) -> int | None:
    """The number of the stale trial that ``trial`` retries, else None."""
    return study._storage.get_trial(trial._trial_id).system_attrs.get(RETRIED_ATTR)


def fail_stale_trials(study: optuna.Study) -> None:
    """Fail the trials whose heartbeat stopped (their retries are then enqueued)."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def trial_by_number(study: optuna.Study, number: int) -> optuna.Trial:
    """Trial ``number`` of ``study``, to report to (it runs in another process)."""
    import optuna

    trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    return optuna.Trial(study, trial_id)


def put_back(study: optuna.Study, trial: optuna.Trial) -> bool:
    """Make a trial that was asked but will not run WAITING again, with its sampled
    parameters, so that the next ``ask`` (of any process) takes it; False if the storage
    refused (the caller then fails it)."""
    from optuna.trial import TrialState

    storage = study._storage
    try:
        ok = storage.set_trial_state_values(trial._trial_id, TrialState.WAITING)
    except Exception as exc:
        log.warning("could not put trial %d back to WAITING: %s", trial.number, exc)
        return False
    if ok and HEARTBEAT_ATTR in storage.get_trial(trial._trial_id).system_attrs:
        # A journal trial's last heartbeat is dropped: when it runs again, its staleness
        # is judged from its new start, not from this old beat.
        storage.set_trial_system_attr(trial._trial_id, HEARTBEAT_ATTR, None)
    return bool(ok)
