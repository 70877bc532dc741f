"""The trial loop: exactly ``n_trials`` completed trials, across threads and processes.

Why not ``study.optimize(objective, n_jobs=..., callbacks=[MaxTrialsCallback(n)])``:
MaxTrialsCallback counts the finished trials only after a trial ends, and each of
``study.optimize``'s workers asks for its next trial without knowing what the others (or
other processes on the same storage) are running. With ``n_jobs`` workers, or several tune
processes sharing a study, the study then ends with up to ``n - 1`` trials too many, each
a full training. This loop decides before a trial starts: a newly asked trial runs only if
the completed trials plus the RUNNING/WAITING trials numbered below it leave room; if not
(another process asked at the same moment: rare, and cheap), it is told PRUNED with the
user attribute ``surplus`` and never runs. It also records the heartbeats and fails stale
trials itself, since ``study.optimize``'s heartbeat thread exists only inside
``study.optimize``.
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

from lib.errors import first_line
from lib.tuning import storage
from lib.tuning.config import TuneConfig
from lib.tuning.space import is_number, sample

if TYPE_CHECKING:
    import optuna

    from lib.tuning.trials import TrialFunction

log = logging.getLogger(__name__)

SURPLUS_ATTR = "surplus"  # a trial told PRUNED because another process took its place
_WAIT = "wait"


class TuningError(RuntimeError):
    """The study stopped before it was complete (too many failed trials): a failed
    execution, not an error of the user's input."""


@dataclass
class StudyRun:
    """What one call of :func:`run_study` did."""

    ran: list[int] = field(default_factory=list)  # trial numbers this process ran
    failed: list[int] = field(default_factory=list)
    surplus: list[int] = field(default_factory=list)
    stopped: str | None = None  # why the study stopped early, else None
    seconds: float = 0.0

    def raise_if_stopped(self) -> None:
        """TuningError if the study stopped before it was complete."""
        if self.stopped:
            raise TuningError(self.stopped)


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


def _counts(study: optuna.Study, below: int | None = None) -> tuple[int, int]:
    """COMPLETE trials, and the trials that may still complete: all RUNNING ones, or with
    ``below``, the RUNNING and WAITING ones numbered below it. WAITING trials (enqueued, or
    retries of stale ones) are what the next ``ask`` returns, so they do not make a worker
    wait."""
    from optuna.trial import TrialState

    complete = pending = 0
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.COMPLETE:
            complete += 1
        elif below is None:
            pending += t.state == TrialState.RUNNING
        elif t.state in (TrialState.RUNNING, TrialState.WAITING) and t.number < below:
            pending += 1
    return complete, pending


def run_study(
    study: optuna.Study,
    config: TuneConfig,
    run_trial: TrialFunction,
    *,
    poll_interval: float = 2.0,
    on_interrupt: Callable[[], None] | None = None,
) -> StudyRun:
    """Run trials until the study holds ``config.n_trials`` COMPLETE trials.

    ``config.n_jobs`` worker threads each ask for a trial as soon as their previous one
    ends (see the module's docstring for how the count stays exact). While the remaining
    trials run elsewhere, workers wait (and fail trials whose heartbeat stopped, so that
    they are retried). A failing trial is told FAIL with its error; after
    ``config.max_failures`` of them (in this process) the study stops: ``StudyRun.stopped``
    says why. ``run_trial(number, sampled)`` returns a :class:`~lib.tuning.TrialOutcome`;
    one that raises fails its trial, not the loop.
    """
    from optuna.trial import TrialState

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
                trial.set_user_attr(SURPLUS_ATTR, True)
                study.tell(trial, state=TrialState.PRUNED)
                result.surplus.append(trial.number)
                log.info("trial %d not needed (another process took its place)", trial.number)
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


def _run_one(study, config, trial, run_trial, result, stop, worker_index) -> None:
    import optuna
    from optuna.trial import TrialState

    sampled = sample(trial, config.search_space)
    retried = storage.retried_trial(study, trial)
    log.info(
        "trial %d starts%s: %s",
        trial.number,
        f" (retry of trial {retried})" if retried is not None else "",
        json.dumps(sampled),
    )
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}:{worker_index}")
    started = time.perf_counter()
    with _Heartbeat(study, trial):
        scraps, error, user_attrs = _call(run_trial, trial.number, sampled)
        values = None
        if error is None:
            values, error = objective_values(scraps, config.objectives)
        seconds = time.perf_counter() - started
        try:
            for key, value in {**user_attrs, "seconds": round(seconds, 2)}.items():
                if value is not None:
                    trial.set_user_attr(key, value)
            if error is None:
                trial.set_user_attr("objectives", dict(zip(config.objectives, values, strict=True)))
                study.tell(trial, values)
            else:
                trial.set_user_attr("error", error[:2000])
                study.tell(trial, state=TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            log.warning(
                "trial %d was failed meanwhile (its heartbeat was late); its result is dropped",
                trial.number,
            )
            return
    result.ran.append(trial.number)
    if error is None:
        shown = ", ".join(f"{o}={v:.4g}" for o, v in zip(config.objectives, values, strict=True))
        log.info("trial %d finished in %.1f s: %s", trial.number, seconds, shown)
        _report_progress(study, config)
        return
    result.failed.append(trial.number)
    log.error("trial %d failed after %.1f s: %s", trial.number, seconds, error)
    _report_progress(study, config)
    if len(result.failed) >= config.max_failures and not stop.is_set():
        result.stopped = (
            f"{len(result.failed)} trials failed (max_failures={config.max_failures}), so "
            f"the study stopped; the last, trial {trial.number}: {error}"
        )
        stop.set()


def trials_progress(study, config) -> dict:
    """The progress event of the study (:func:`lib.progress.trial_event`): its completed
    trials (every process's) of ``n_trials``, and the best value so far of the first
    objective with its trial number."""
    from optuna.trial import TrialState

    from lib import progress

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    best, best_trial = None, None
    if complete:
        sign = 1 if config.directions[0] == "minimize" else -1
        top = min(complete, key=lambda t: sign * t.values[0])
        best, best_trial = top.values[0], top.number
    return progress.trial_event(len(complete), config.n_trials, best, best_trial)


def _report_progress(study, config) -> None:
    from lib import progress

    progress.emit(trials_progress(study, config))
