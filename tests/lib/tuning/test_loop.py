"""lib.tuning.loop: the trial loop, driven by a trivial trial function. Exactly n_trials
complete trials, whatever the threads and processes do, failures, surplus trials, a killed
process's trial retried. Every assertion is about the study's state, never about which
worker or process happened to run what."""

import _thread
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from lib import tuning
from lib.tuning import TrialOutcome
from tests.support.tuning import config, fake_trial, storage_url

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("kind", [None, "sqlite", "journal"])
def test_the_loop_runs_exactly_n_trials_n_jobs_at_a_time(tmp_path, kind):
    cfg = config(storage=storage_url(tmp_path, kind), n_trials=7, n_jobs=3)
    handle = tuning.open_study(cfg)
    lock, running, peak = threading.Lock(), set(), [0]
    # The first three trials wait for each other: they can only all pass if three run at
    # once (else the barrier breaks after its timeout, and they fail).
    together = threading.Barrier(3, timeout=60)

    def trial(number, sampled):
        with lock:
            running.add(number)
            peak[0] = max(peak[0], len(running))
        if number < 3:
            together.wait()
        with lock:
            running.discard(number)
        return fake_trial(number, sampled)

    run = tuning.run_study(handle.study, cfg, trial, poll_interval=0.1)
    states = [t.state for t in handle.study.trials]
    assert states == [TrialState.COMPLETE] * 7 and run.stopped is None and run.failed == []
    assert sorted(run.ran) == list(range(7)) and peak[0] == 3  # never more than n_jobs


def test_a_failing_trial_is_recorded_and_the_study_goes_on():
    cfg = config(n_trials=3, max_failures=2)
    handle = tuning.open_study(cfg)

    def sometimes_failing(number, sampled):
        if number == 1:
            return TrialOutcome(error="cell 5: ValueError: boom", user_attrs={"notebook": "x"})
        if number == 2:
            raise RuntimeError("a bug in the trial function")
        return fake_trial(number, sampled)

    run = tuning.run_study(handle.study, cfg, sometimes_failing, poll_interval=0.05)
    trials = handle.study.trials
    assert run.failed == [1, 2] and run.stopped and "max_failures=2" in run.stopped
    assert trials[1].state == TrialState.FAIL
    assert trials[1].user_attrs["error"] == "cell 5: ValueError: boom"
    assert trials[1].user_attrs["notebook"] == "x"
    assert "RuntimeError: a bug" in trials[2].user_attrs["error"]
    with pytest.raises(tuning.TuningError, match="2 trials failed"):
        run.raise_if_stopped()

    cfg = config(n_trials=3, max_failures=3)
    handle = tuning.open_study(cfg)
    run = tuning.run_study(handle.study, cfg, sometimes_failing, poll_interval=0.05)
    states = [t.state for t in handle.study.trials]
    assert run.stopped is None and states.count(TrialState.COMPLETE) == 3
    assert states.count(TrialState.FAIL) == 2
    run.raise_if_stopped()  # a complete study: nothing to raise


def test_a_missing_or_bad_objective_fails_the_trial():
    assert tuning.objective_values({"a": 1}, ["b"]) == (
        None,
        "the train notebook did not glue the objective 'b'",
    )
    assert "not a finite number" in tuning.objective_values({"a": float("nan")}, ["a"])[1]
    assert tuning.objective_values({"a": 1, "b": 0.5}, ["a", "b"]) == ([1.0, 0.5], None)
    cfg = config(n_trials=1, max_failures=1)
    handle = tuning.open_study(cfg)
    run = tuning.run_study(handle.study, cfg, lambda n, s: TrialOutcome(scraps={"val_loss": 1}))
    assert run.failed == [0] and "'val_accuracy'" in handle.study.trials[0].user_attrs["error"]


def test_enqueued_trials_run_first_with_their_values():
    cfg = config(n_trials=2, enqueue_trials=[{"val_split": 0.35, "optimiser": "rmsprop"}])
    handle = tuning.open_study(cfg)
    tuning.run_study(handle.study, cfg, fake_trial, poll_interval=0.05)
    assert handle.study.trials[0].params == {"val_split": 0.35, "optimiser": "rmsprop"}


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")
def test_a_trial_asked_in_a_race_is_put_back_to_waiting_and_run_by_a_later_study(tmp_path):
    """Between this process's check and its ask, another process took the last free place
    (a lower-numbered RUNNING trial): the new trial is not run, but put back to WAITING
    (not PRUNED: it never ran); the loop then waits for the other trial and ends with
    exactly n_trials. Resumed with a larger n_trials, the study runs that trial next."""
    cfg = config(storage=storage_url(tmp_path, "sqlite"), n_trials=2)
    study = tuning.open_study(cfg).study
    first = study.ask()
    tuning.sample(first, cfg.search_space)
    study.tell(first, [0.3, 0.7])
    original_ask, other = study.ask, []

    def racing_ask(*args, **kwargs):
        if not other:  # the other process asks first, just before us, and finishes later
            other.append(original_ask())
            tuning.sample(other[0], cfg.search_space)
            threading.Timer(0.5, lambda: study.tell(other[0], [0.2, 0.8])).start()
        return original_ask(*args, **kwargs)

    study.ask = racing_ask
    ran = []
    run = tuning.run_study(
        study, cfg, lambda n, s: ran.append(n) or fake_trial(n, s), poll_interval=0.05
    )
    trials = study.trials
    assert ran == [] and run.surplus == [2]
    assert trials[2].state == TrialState.WAITING and "surplus" not in trials[2].user_attrs
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 2
    assert tuning.trials_table(study, cfg.objectives).loc[2, "state"] == "WAITING"

    more = config(storage=storage_url(tmp_path, "sqlite"), n_trials=3)
    again = tuning.open_study(more).study
    run = tuning.run_study(
        again, more, lambda n, s: ran.append((n, s)) or fake_trial(n, s), poll_interval=0.05
    )
    assert [n for n, _ in ran] == [2] and again.trials[2].params == ran[0][1]
    assert [t.state for t in again.trials] == [TrialState.COMPLETE] * 3


def test_pruned_trials_count_toward_n_trials_and_keep_their_notebook_and_run():
    cfg = config(n_trials=4, n_jobs=2, max_failures=1)
    handle = tuning.open_study(cfg)

    def trial(number, sampled):
        if number % 2:  # what the runner returns for a pruned trial's notebook
            return TrialOutcome(
                scraps={tuning.PRUNED_SCRAP: 2, "mlflow_run_id": f"run-{number}"},
                error="cell 10: TrialPruned: trial 1 pruned at epoch 2: ...",
                user_attrs={"notebook": f"trial-{number}.ipynb", "mlflow_run_id": f"run-{number}"},
            )
        return fake_trial(number, sampled)

    run = tuning.run_study(handle.study, cfg, trial, poll_interval=0.05)
    trials = handle.study.trials
    assert [t.state.name for t in trials] == ["COMPLETE", "PRUNED", "COMPLETE", "PRUNED"]
    assert sorted(run.pruned) == [1, 3] and run.failed == [] and run.stopped is None
    assert trials[1].user_attrs["pruned_at_epoch"] == 2 and "error" not in trials[1].user_attrs
    assert trials[1].user_attrs["notebook"] == "trial-1.ipynb"
    assert trials[1].user_attrs["mlflow_run_id"] == "run-1"
    table = tuning.trials_table(handle.study, cfg.objectives)
    assert list(table["state"]) == ["COMPLETE", "PRUNED", "COMPLETE", "PRUNED"]
    assert table.loc[3, "pruned_at_epoch"] == 2
    event = tuning.loop.trials_progress(handle.study, cfg)
    assert (event["done"], event["total"]) == (4, 4)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")
def test_an_earlier_versions_surplus_trials_do_not_count(tmp_path):
    cfg = config(storage=storage_url(tmp_path, "journal"), n_trials=2)
    study = tuning.open_study(cfg).study
    old = study.ask()  # told PRUNED with the surplus mark, as the loop did before
    tuning.sample(old, cfg.search_space)
    old.set_user_attr(tuning.SURPLUS_ATTR, True)
    study.tell(old, state=TrialState.PRUNED)
    run = tuning.run_study(study, cfg, fake_trial, poll_interval=0.05)
    states = [t.state for t in study.trials]
    assert states == [TrialState.PRUNED, TrialState.COMPLETE, TrialState.COMPLETE]
    assert run.ran == [1, 2]
    assert tuning.trials_table(study, cfg.objectives).loc[0, "state"] == "SURPLUS"


@pytest.fixture()
def ctrl_c_raises():
    """Ctrl-C raises KeyboardInterrupt in this process, as in a terminal, however the tests were
    started: a process started in a background job or under nohup inherits SIGINT ignored, and
    ``_thread.interrupt_main`` then does nothing. Put back after the test."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_an_interrupt_calls_on_interrupt_and_waits_for_the_running_trial(ctrl_c_raises):
    cfg = config(n_trials=5)
    handle = tuning.open_study(cfg)
    interrupted, ended = threading.Event(), []

    def trial(number, sampled):
        _thread.interrupt_main()  # Ctrl-C while this trial runs
        assert interrupted.wait(60), "on_interrupt was not called"
        ended.append(number)  # the interrupted trial ends (its kernel was interrupted)
        return TrialOutcome(error="interrupted")

    with pytest.raises(KeyboardInterrupt):
        tuning.run_study(handle.study, cfg, trial, on_interrupt=interrupted.set)
    # run_study raised only once the trial had ended and been told; no trial came after it.
    assert ended == [0]
    assert [t.state for t in handle.study.trials] == [TrialState.FAIL]


@pytest.mark.parametrize("kind", [None, "sqlite"])
def test_an_interrupt_says_how_to_resume(tmp_path, caplog, kind, ctrl_c_raises):
    cfg = config(storage=storage_url(tmp_path, kind), n_trials=5)
    handle = tuning.open_study(cfg)
    interrupted = threading.Event()

    def trial(number, sampled):
        if number == 2:  # Ctrl-C while the third trial runs: it ends interrupted
            _thread.interrupt_main()
            assert interrupted.wait(60), "on_interrupt was not called"
            return TrialOutcome(error="interrupted")
        return fake_trial(number, sampled)

    with caplog.at_level("WARNING", logger="lib.tuning.loop"), pytest.raises(KeyboardInterrupt):
        tuning.run_study(handle.study, cfg, trial, on_interrupt=interrupted.set)
    (line,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    if kind is None:
        assert line == (
            "tuning interrupted: the study was in memory (storage: null): nothing to resume; "
            "give a storage to make studies resumable"
        )
    else:
        assert line == (
            "tuning interrupted: run the same command again to resume: the study keeps its "
            "2 finished trials"
        )


# --- several processes, and a killed one ----------------------------------------------

WORKER = textwrap.dedent(
    """
    import json, sys, time
    sys.path.insert(0, {root!r})
    from lib import tuning

    params = json.loads(sys.argv[1])
    hang_from = int(sys.argv[2])  # trials numbered from this one never end (killed)
    cfg = tuning.load_config(params)
    handle = tuning.open_study(cfg)

    def trial(number, sampled):
        print("start", number, flush=True)
        while number >= hang_from:
            time.sleep(1)
        split = sampled["val_split"]
        return tuning.TrialOutcome(scraps={{"val_loss": split, "val_accuracy": 1 - split}})

    run = tuning.run_study(handle.study, cfg, trial, poll_interval=0.2)
    print("ran", json.dumps(run.ran), flush=True)
    """
)


def _spawn(tmp_path, params, hang_from=10**6):
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(root=str(ROOT)))
    return subprocess.Popen(
        [sys.executable, str(script), json.dumps(params), str(hang_from)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "LOG_DIR": str(tmp_path / "logs")},
    )


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_two_processes_on_one_storage_end_with_exactly_n_trials(tmp_path, kind):
    params = {"storage": storage_url(tmp_path, kind), "n_trials": 5, "study_name": "shared"}
    procs = [_spawn(tmp_path, params) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    ran = [json.loads(o[0].splitlines()[-1].split(" ", 1)[1]) for o in outs]
    study = optuna.load_study(
        study_name="shared", storage=tuning.open_storage(params["storage"], 30, 120)
    )
    complete = sorted(t.number for t in study.trials if t.state == TrialState.COMPLETE)
    assert len(complete) == 5
    both = ran[0] + ran[1]  # which process ran how many is the scheduler's business
    assert len(both) == len(set(both))  # no trial number ran twice
    assert sorted(both) == complete  # and together they ran every completed trial
    others = [t for t in study.trials if t.state != TrialState.COMPLETE]
    assert all(t.state == TrialState.WAITING for t in others)  # surplus: asked, put back


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_a_killed_study_resumes_and_retries_its_running_trial(tmp_path, kind):
    params = {
        "storage": storage_url(tmp_path, kind),
        "n_trials": 3,
        "study_name": "resumable",
        "heartbeat_interval": 1,
        "grace_period": 2,
    }
    proc = _spawn(tmp_path, params, hang_from=1)  # trial 0 completes, trial 1 never does
    started = []
    while len(started) < 2:
        line = proc.stdout.readline()
        assert line, f"the worker ended early: {proc.communicate(timeout=30)}"
        if line.startswith("start"):
            started.append(int(line.split()[1]))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert started == [0, 1]

    cfg = tuning.load_config(params)
    handle = tuning.open_study(cfg)
    assert not handle.created
    before = {t.number: t for t in handle.study.trials}
    assert before[0].state == TrialState.COMPLETE and before[1].state == TrialState.RUNNING
    run = tuning.run_study(handle.study, cfg, fake_trial, poll_interval=0.2)
    trials = handle.study.trials
    states = [t.state for t in trials]
    assert states.count(TrialState.COMPLETE) == 3 and trials[1].state == TrialState.FAIL
    retry = next(t for t in trials if t.system_attrs.get("failed_trial") == 1)
    assert retry.state == TrialState.COMPLETE and retry.params == before[1].params
    assert 0 not in run.ran  # the completed trial was not run again


def test_each_finished_trial_reports_the_studys_progress(caplog):
    # Outside a kernel the event is a log line of lib.core.progress; in the tune notebook's
    # kernel the same event is a display message that the runner's progress display reads.
    cfg = config(n_trials=3, max_failures=3)
    handle = tuning.open_study(cfg)

    def trial(number, sampled):
        if number == 1:
            return TrialOutcome(error="cell 5: ValueError: boom")
        return TrialOutcome(scraps={"val_loss": 0.5 - 0.1 * number, "val_accuracy": 0.9})

    with caplog.at_level("INFO", logger="lib.core.progress"):
        tuning.run_study(handle.study, cfg, trial, poll_interval=0.1)
    lines = [r.getMessage() for r in caplog.records if r.name == "lib.core.progress"]
    # Trials 0, 1 (failed: no completed trial added), 2, 3: the study needs 3 completed.
    assert lines == [
        "trials 1/3 done, best so far 0.5000 (trial 0)",
        "trials 1/3 done, best so far 0.5000 (trial 0)",
        "trials 2/3 done, best so far 0.3000 (trial 2)",
        "trials 3/3 done, best so far 0.2000 (trial 3)",
    ]
    event = tuning.loop.trials_progress(handle.study, cfg)
    assert event == {
        "event": "trial",
        "done": 3,
        "total": 3,
        "best": 0.5 - 0.1 * 3,
        "best_trial": 3,
    }
