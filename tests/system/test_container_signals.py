"""The runner as a container's PID 1, with no tini: ``docker run --entrypoint python IMAGE
-m runner tune ...`` in the CPU training image, run as the pods run (user 2222, read-only
root). It reaps the orphans handed to it (a process whose parent exited is re-parented to
PID 1, and stays a zombie until PID 1 waits for it), and ``docker stop`` (SIGTERM) stops the
study as it does outside a container: the running trial recorded, the parent run KILLED,
exit 143 from the runner itself (the engine's SIGKILL after the grace would be 137)."""

from __future__ import annotations

import json
import re
import time
import uuid

import mlflow
import optuna
import pytest
from optuna.trial import TrialState

from lib.data import prep
from tests.support import kubelet
from tests.support.datagen import make_raw_dir
from tests.support.images import POD_ARGS, built_image
from tests.support.signals import cell_running

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("docker_engine")]
OUT = "/out"
# Every process of the container: pid, parent, status, command line.
PROCESSES = (
    "import json, psutil; print(json.dumps([(p.pid, p.ppid(), p.status(), ' '.join(p.cmdline()))"
    " for p in psutil.process_iter()]))"
)


def run_processes(name: str) -> list[tuple[int, int, str, str]]:
    out = kubelet.docker("exec", name, "python", "-c", PROCESSES)
    return [tuple(p) for p in json.loads(out.strip().splitlines()[-1])]


@pytest.fixture
def out(tmp_path):
    """The container's one writable volume: the data, the stores and the run folder."""
    folder = tmp_path / "out"
    prep.prepare([make_raw_dir(tmp_path / "raw", per_label=20, words=30)], folder / "data")
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o777 if path.is_dir() else 0o666)  # for the pod's uid 2222
    return folder


def test_the_runner_as_pid_1_reaps_orphans_and_stops_a_study_on_docker_stop(out):
    image, name = built_image("model-training-cpu"), f"imdb-test-pid1-{uuid.uuid4().hex[:8]}"
    config = {
        "n_trials": 2,
        "train_params": {"data_path": f"{OUT}/data", "epochs": 100000, "bs": 8},
    }
    kubelet.docker(
        "run", "--detach", "--name", name, *POD_ARGS, "--network", "none",
        "--volume", f"{out}:{OUT}", "--env", "TF_CPP_MIN_LOG_LEVEL=2",
        "--entrypoint", "python", image,
        "-m", "runner", "tune", "-r", "storage", f"sqlite:///{OUT}/optuna.db",
        "-r", "study_name", "pid1", "-r", "mlflow_tracking_uri", f"sqlite:///{OUT}/mlflow.db",
        "-r", "mlflow_artifact_location", f"file://{OUT}/mlartifacts",
        "-y", json.dumps(config), "--output-dir", f"{OUT}/run",
    )  # fmt: skip
    container = kubelet.Container(name)
    try:
        notebook = out / "run" / "trials" / "trial-000" / "train.ipynb"
        deadline = time.monotonic() + 600
        while not cell_running(notebook, "models.build_model("):
            assert container.state()["Running"], container.logs()[-3000:]
            assert time.monotonic() < deadline, "no trial training within 600 s"
            time.sleep(0.5)
        first = run_processes(name)
        assert "-m runner tune" in {pid: cmd for pid, _, _, cmd in first}[1]  # the runner is PID 1

        # An orphan: the exec'd python exits at once, its child is re-parented to PID 1.
        spawn = "import subprocess; print(subprocess.Popen(['sleep', '1']).pid)"
        orphan = int(kubelet.docker("exec", name, "python", "-c", spawn).strip().splitlines()[-1])
        time.sleep(7)  # it ends after 1 s; the reaper waits for a zombie seen twice, 2 s apart
        left = {pid: (ppid, status) for pid, ppid, status, _ in run_processes(name)}
        assert orphan not in left, left[orphan]  # reaped, not a zombie
        assert not [pid for pid, (_, status) in left.items() if status == "zombie"], left

        kubelet.docker("stop", "--time", "60", name, timeout=120)
        state, logs = container.state(), container.logs()
    finally:
        container.remove()
    assert state["ExitCode"] == 143 and not state["OOMKilled"], logs[-3000:]
    assert logs.strip().splitlines()[-1] == "terminated (SIGTERM): tune stopped", logs[-3000:]

    trials = optuna.load_study(study_name="pid1", storage=f"sqlite:///{out}/optuna.db").trials
    assert [t.state for t in trials] == [TrialState.FAIL]
    assert re.fullmatch(r"interrupted \(cell \d+\)", trials[0].user_attrs["error"]), trials[0]
    client = mlflow.MlflowClient(f"sqlite:///{out}/mlflow.db")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert {r.info.run_name: r.info.status for r in runs} == {
        "study-pid1": "KILLED",
        "trial-0": "KILLED",
    }
    for run in runs:  # each with its partial notebook (file:///out/... is out/ here)
        artifacts = out / "mlartifacts" / run.info.run_id / "artifacts" / "notebook"
        assert list(artifacts.glob("*.ipynb")), run.info
