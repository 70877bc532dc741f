"""The trial loop: exactly ``n_trials`` finished trials, across threads and processes.

A trial is finished when it is COMPLETE or PRUNED (its pruner stopped it: it ran, and
counts). Why not ``study.optimize(objective, n_jobs=..., callbacks=[MaxTrialsCallback(n)])``:
MaxTrialsCallback counts the finished trials only after a trial ends, and each of
``study.optimize``'s workers asks for its next trial without knowing what the others (or
other processes on the same storage) are running. With ``n_jobs`` workers, or several tune
processes sharing a study, the study then ends with up to ``n - 1`` trials too many, each
a full training. This loop decides before a trial starts: a newly asked trial runs only if
the finished trials plus the RUNNING/WAITING trials numbered below it leave room; if not
(another process asked at the same moment: rare, and cheap), it is a surplus trial: it is
put back to WAITING with its sampled parameters (the next ``ask`` of any process, or a
resume with a larger ``n_trials``, takes it), or where the storage refuses, failed with the
user attribute ``surplus``; it never runs now. (Studies of earlier versions told surplus
trials PRUNED with that attribute: those are not counted.) It also records the heartbeats
and fails stale trials itself, since ``study.optimize``'s heartbeat thread exists only
inside ``study.optimize``.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lib.core import progress
from lib.core.errors import first_line
from lib.tuning import storage
from lib.tuning.attrs import (
    ERROR_ATTR,
    METRICS_ATTR,
    OBJECTIVES_ATTR,
    PRUNED_SCRAP,
    SECONDS_ATTR,
    SURPLUS_ATTR,
    WORKER_ATTR,
)
from lib.tuning.space import is_number, sample

if TYPE_CHECKING:
    import optuna

    from lib.tuning.backend import TrialFunction
    from lib.tuning.config import TuneConfig

log = logging.getLogger(__name__)

_WAIT = "wait"


class TuningError(RuntimeError):
    """The study stopped before it was complete (too many failed trials): a failed
    execution, not an error of the user's input."""


@dataclass
class StudyRun:
    """What one call of :func:`run_study` did."""

    ran: list[int] = field(default_factory=list)  # trial numbers this process ran
    failed: list[int] = field(default_factory=list)
    pruned: list[int] = field(default_factory=list)
    surplus: list[int] = field(default_factory=list)  # asked, not run: put back to WAITING
    stopped: str | None = None  # why the study stopped early, else None
    seconds: float = 0.0

    def raise_if_stopped(self) -> None:
        """TuningError if the study stopped before it was complete."""
        if self.stopped:
            raise TuningError(self.stopped)


def trial_metrics(scraps: Mapping[str, Any]) -> dict[str, float]:
    """The numbers among a trial's scraps (what :data:`METRICS_ATTR` holds)."""
    return {
        k: float(v)
        for k, v in scraps.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def objective_values(
    scraps: Mapping[str, Any], objectives: Sequence[str]
) -> tuple[list[float] | None, str | None]:
    """The objectives' values from a trial's scraps, or an error naming what is missing."""
    values = []
    for name in objectives:
        if name not in scraps:
            return None, f"the train notebook did not glue the objective {name!r}"
        value = scraps[name]
        if not is_number(value):
            return None, f"objective {name!r} = {value!r} is not a finite number"
        values.append(float(value))
    return values, None


class _Heartbeat:
    """Records a trial's heartbeat every interval while it runs (RDB and journal storages)."""

    def __init__(self, study: optuna.Study, trial: optuna.Trial) -> None:
        self._study, self._trial = study, trial
        self._interval = storage.heartbeat_interval(study)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> _Heartbeat:
        if self._interval:
            self.beat()  # at once: a trial without any heartbeat is never found stale
            self._thread = threading.Thread(target=self._beat, daemon=True, name="heartbeat")
            self._thread.start()
        return self

    def beat(self) -> None:
        try:
            storage.record_heartbeat(self._study, self._trial)
        except Exception as exc:  # a storage hiccup must not end the trial
            log.warning("heartbeat of trial %d failed: %s", self._trial.number, exc)

    def _beat(self) -> None:
        while not self._stop.wait(self._interval):
            self.beat()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def is_finished(trial: optuna.trial.FrozenTrial) -> bool:
    """COMPLETE, or PRUNED by its pruner (not a surplus trial of an earlier version)."""
    from optuna.trial import TrialState

    if trial.state == TrialState.PRUNED:
        return not trial.user_attrs.get(SURPLUS_ATTR)
    return trial.state == TrialState.COMPLETE


def _counts(study: optuna.Study, below: int | None = None) -> tuple[int, int]:
    """Finished trials (:func:`is_finished`), and the trials that may still finish: all
    RUNNING ones, or with ``below``, the RUNNING and WAITING ones numbered below it.
    WAITING trials (enqueued, put back, or retries of stale ones) are what the next
    ``ask`` returns, so they do not make a worker wait."""
    from optuna.trial import TrialState

    done = pending = 0
    for t in study.get_trials(deepcopy=False):
        if is_finished(t):
            done += 1
        elif below is None:
            pending += t.state == TrialState.RUNNING
        elif t.state in (TrialState.RUNNING, TrialState.WAITING) and t.number < below:
            pending += 1
    return done, pending


def _set_aside(study: optuna.Study, trial: optuna.Trial) -> None:
    """A surplus trial: back to WAITING for a later ask, else FAIL marked surplus."""
    from optuna.trial import TrialState

    if storage.put_back(study, trial):
        log.info("trial %d not needed now (another process took its place): WAITING", trial.number)
        return
    trial.set_user_attr(SURPLUS_ATTR, True)
    study.tell(trial, state=TrialState.FAIL)
    log.info("trial %d not needed (another process took its place): failed", trial.number)


def resume_hint(study: optuna.Study, config: TuneConfig) -> str:
    """What an interrupted tune can do next: resume (with a storage) or nothing."""
    if config.storage is None:
        return (
            "the study was in memory (storage: null): nothing to resume; give a storage to "
            "make studies resumable"
        )
    done, _ = _counts(study)
    return f"run the same command again to resume: the study keeps its {done} finished trials"


def run_study(
    study: optuna.Study,
    config: TuneConfig,
    run_trial: TrialFunction,
    *,
    poll_interval: float = 2.0,
    on_interrupt: Callable[[], None] | None = None,
) -> StudyRun:
    """Run trials until the study holds ``config.n_trials`` finished (COMPLETE or PRUNED)
    trials.

    ``config.n_jobs`` worker threads each ask for a trial as soon as their previous one
    ends (see the module's docstring for how the count stays exact). While the remaining
    trials run elsewhere, workers wait (and fail trials whose heartbeat stopped, so that
    they are retried). A failing trial is told FAIL with its error; after
    ``config.max_failures`` of them (in this process) the study stops: ``StudyRun.stopped``
    says why. ``run_trial(number, sampled)`` returns a :class:`~lib.tuning.TrialOutcome`;
    one that raises fails its trial, not the loop.
    """
    result = StudyRun()
    stop = threading.Event()
    ask_lock = threading.Lock()  # this process's workers ask one at a time
    started = time.perf_counter()
    n = config.n_trials

    def next_trial() -> optuna.Trial | str | None:
        """A trial to run, None when the study is complete, or "wait"."""
        with ask_lock:
            storage.fail_stale_trials(study)
            complete, pending = _counts(study)
            if complete >= n:
                return None
            if complete + pending >= n:
                return _WAIT
            with warnings.catch_warnings():
                # Optuna warns that heartbeats are meant for Study.optimize: this loop
                # records them itself (_Heartbeat) and fails stale trials.
                warnings.filterwarnings("ignore", "Heartbeat of storage", UserWarning)
                trial = study.ask()
            _Heartbeat(study, trial).beat()  # the first one, as soon as the trial exists
            complete, lower = _counts(study, below=trial.number)
            if complete + lower >= n:
                _set_aside(study, trial)
                result.surplus.append(trial.number)
                return _WAIT
            return trial

    def worker(index: int) -> None:
        try:
            while not stop.is_set():
                trial = next_trial()
                if trial is None:
                    return
                if trial == _WAIT:
                    stop.wait(poll_interval)
                    continue
                _run_one(study, config, trial, run_trial, result, stop, index)
        except Exception as exc:  # the storage failed: stop, and say why
            log.exception("tuning worker %d stopped", index)
            if not result.stopped:
                result.stopped = f"a tuning worker stopped: {type(exc).__name__}: {first_line(exc)}"
            stop.set()
        finally:
            done[index].set()

    # Each worker says when it is done through an Event, not Thread.join: a Ctrl-C that
    # interrupts a join leaves the thread marked as stopped (CPython's fix for bpo-45274
    # releases the lock of the thread, still running), and every later join returns at once.
    done = [threading.Event() for _ in range(config.n_jobs)]
    threads = [
        threading.Thread(target=worker, args=(i,), name=f"tune-worker-{i}", daemon=True)
        for i in range(config.n_jobs)
    ]
    try:  # a Ctrl-C while the workers start is an interrupt too
        for thread in threads:
            thread.start()
        for event in done:
            while not event.wait(0.5):
                pass
    except KeyboardInterrupt:
        stop.set()
        result.stopped = "interrupted"
        if on_interrupt is not None:
            on_interrupt()
        for thread, event in zip(threads, done, strict=True):
            if thread.ident is not None:  # started: it ends its trial (interrupted), then stops
                event.wait()
        try:
            hint = f"tuning interrupted: {resume_hint(study, config)}"
        except Exception as exc:  # the storage is gone too: the interrupt still goes up
            hint = f"tuning interrupted (the study could not be read: {first_line(exc)})"
        # A notice: the notebook shows it, and the runner prints it on its console.
        progress.emit(progress.notice_event(hint))
        raise
    finally:
        result.seconds = time.perf_counter() - started
    return result


def _call(run_trial: TrialFunction, number: int, sampled: dict[str, Any]):
    """``(scraps, error, user_attrs)`` of one call of the trial function."""
    try:
        outcome = run_trial(number, sampled)
    except Exception as exc:  # a bug in the trial function: the trial fails, not the loop
        log.exception("trial %d raised", number)
        return {}, f"{type(exc).__name__}: {exc}", {}
    return outcome.scraps, outcome.error, outcome.user_attrs


def _tell(study, config, trial, scraps, error, user_attrs, seconds) -> tuple[str, Any]:
    """Record the trial's outcome: ``("pruned", epoch)``, ``("complete", values)`` or
    ``("failed", error)``. A trial that glued :data:`PRUNED_SCRAP` was pruned, whatever
    error its notebook stopped with."""
    from optuna.trial import TrialState

    values = None
    pruned_at = scraps.get(PRUNED_SCRAP)
    if pruned_at is None and error is None:
        values, error = objective_values(scraps, config.objectives)
    attrs = {**user_attrs, SECONDS_ATTR: round(seconds, 2)}
    if pruned_at is None and error is None:  # what a `select` metric may choose by
        attrs[METRICS_ATTR] = trial_metrics(scraps)
    if pruned_at is not None:
        attrs[PRUNED_SCRAP] = int(pruned_at)
    for key, value in attrs.items():
        if value is not None:
            trial.set_user_attr(key, value)
    if pruned_at is not None:
        study.tell(trial, state=TrialState.PRUNED)
        return "pruned", int(pruned_at)
    if error is None:
        trial.set_user_attr(OBJECTIVES_ATTR, dict(zip(config.objectives, values, strict=True)))
        study.tell(trial, values)
        return "complete", values
    trial.set_user_attr(ERROR_ATTR, error[:2000])
    study.tell(trial, state=TrialState.FAIL)
    return "failed", error


def _run_one(study, config, trial, run_trial, result, stop, worker_index) -> None:
    import optuna

    sampled = sample(trial, config.search_space)
    retried = storage.retried_trial(study, trial)
    log.info(
        "trial %d starts%s: %s",
        trial.number,
        f" (retry of trial {retried})" if retried is not None else "",
        json.dumps(sampled),
    )
    trial.set_user_attr(WORKER_ATTR, f"{socket.gethostname()}:{os.getpid()}:{worker_index}")
    started = time.perf_counter()
    with _Heartbeat(study, trial):
        scraps, error, user_attrs = _call(run_trial, trial.number, sampled)
        seconds = time.perf_counter() - started
        try:
            outcome, detail = _tell(study, config, trial, scraps, error, user_attrs, seconds)
        except optuna.exceptions.UpdateFinishedTrialError:
            log.warning(
                "trial %d was failed meanwhile (its heartbeat was late); its result is dropped",
                trial.number,
            )
            return
    result.ran.append(trial.number)
    if outcome == "complete":
        shown = ", ".join(f"{o}={v:.4g}" for o, v in zip(config.objectives, detail, strict=True))
        log.info("trial %d finished in %.1f s: %s", trial.number, seconds, shown)
    elif outcome == "pruned":
        result.pruned.append(trial.number)
        log.info("trial %d pruned at epoch %d, after %.1f s", trial.number, detail, seconds)
    else:
        result.failed.append(trial.number)
        log.error("trial %d failed after %.1f s: %s", trial.number, seconds, detail)
    _report_progress(study, config)
    if outcome == "failed" and len(result.failed) >= config.max_failures and not stop.is_set():
        result.stopped = (
            f"{len(result.failed)} trials failed (max_failures={config.max_failures}), so "
            f"the study stopped; the last, trial {trial.number}: {detail}"
        )
        stop.set()


def trials_progress(study, config) -> dict:
    """The progress event of the study (:func:`lib.core.progress.trial_event`): its finished
    trials (COMPLETE or PRUNED, every process's) of ``n_trials``, and the best value so
    far of the first objective (of the COMPLETE ones) with its trial number."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best, best_trial = None, None
    if complete:
        sign = 1 if config.directions[0] == "minimize" else -1
        top = min(complete, key=lambda t: sign * t.values[0])
        best, best_trial = top.values[0], top.number
    done = sum(1 for t in trials if is_finished(t))
    return progress.trial_event(done, config.n_trials, best, best_trial)


def _report_progress(study, config) -> None:
    progress.emit(trials_progress(study, config))
