"""Trials as executed train notebooks, in warm kernels: the runner's trial backend.

:class:`NotebookTrialBackend` is what :func:`lib.tuning.backend.open_backend` finds under the name
``notebook`` in the entry-point group ``imdb_sentiment.trial_backends`` (see
``pyproject.toml``). It starts a :class:`~runner.kernels.KernelPool` of trial kernels at
once, each importing TensorFlow, Keras and MLflow (:data:`WARMUP_MODULES`) while the tune
notebook reads its configuration and opens its study. :class:`NotebookTrials` runs one
trial as an execution of ``notebooks/train.ipynb`` in one of those kernels, with the
runner's masking, scraps and MLflow hooks.

Nothing here imports papermill at the top: the backend is opened in the tune notebook's
kernel, which starts the trial kernels before it has imported papermill (about 1.6 s).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lib.core import paths
from lib.core.errors import ParameterError
from lib.tracking.runs import (
    RUN_ID_SCRAP,
    log_notebook,
    resolve_tracking_uri,
    run_tags,
    store_modules,
)
from lib.tuning.attrs import MODEL_URI_ATTR, NOTEBOOK_ATTR, RUN_ID_ATTR, TAG_ATTR
from lib.tuning.backend import TrialFunction, TrialOutcome
from lib.tuning.config import TuneConfig, default_kernel_rss_mib
from lib.tuning.trials import trial_params
from runner.execution.run_stage import run_stage
from runner.execution.watch import INTERRUPTED, stop_all
from runner.kernels import KernelCodeError, KernelPool
from runner.stages import Stage, get_stage

if TYPE_CHECKING:
    from runner.execution.execute import Execution

log = logging.getLogger(__name__)

PREFLIGHT = "runner.kernels.inside:preflight"
# An interrupted trial's kernel is killed if it is still busy after this long: the whole
# stop (trials, their notebooks logged, kernels ended) must fit in a stopped job's grace
# period (Kubernetes' default: 30 s).
STOP_GRACE_S = 10.0
# Imported in each trial kernel before its first trial: the train notebook's imports
# (TensorFlow above all) and, through lib.tracking.runs.store_modules, the MLflow store's. A
# failed import is left for the trial itself to report. The store itself is not opened: a
# new local database is created by the tune notebook (the parent run); a kernel opening it
# at the same moment would race its schema migrations, and one killed mid-way leaves the
# database unusable.
WARMUP_MODULES = (
    "pandas",
    "scrapbook",
    "matplotlib.pyplot",
    "mlflow",
    "mlflow.keras",
    "mlflow.models",
    "tensorflow",
    "keras",
    "lib.data.datasets",
    "lib.model.evaluation",
    "lib.tracking.model_io",
    "lib.model.models",
    "lib.model.training",
    "lib.tracking.runs",
    "lib.core.logs",
    "lib.model.train_checks",
)


def warmup_modules(tracking_uri: str | None) -> list[str]:
    """What a trial kernel imports before its first trial, with the modules of the MLflow
    store at ``tracking_uri`` (None: no tracking)."""
    return list(WARMUP_MODULES) + store_modules(tracking_uri)


def kernel_env(n_jobs: int) -> dict[str, str]:
    """The trial kernels' environment: this one, and with several kernels on one machine,
    GPU memory taken as needed (TensorFlow takes all of it by default) unless set."""
    env = dict(os.environ)
    if n_jobs > 1:
        env.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    return env


class NotebookTrialBackend:
    """The ``notebook`` trial backend: trials as train-notebook executions in a pool of
    ``n_jobs`` warm kernels (more if the configuration asks for more). A context manager;
    ``close`` shuts the kernels down.

    ``stage`` (default: the ``train`` stage) and ``warmup`` (default
    :func:`warmup_modules`) let a test run a stand-in train notebook in lighter kernels.
    """

    def __init__(
        self,
        n_jobs: int,
        tracking_uri: str | None,
        *,
        stage: Stage | None = None,
        warmup: Sequence[str] | None = None,
    ) -> None:
        self.stage = stage or get_stage("train")
        self.pool = KernelPool(
            n_jobs,
            warmup_modules=warmup_modules(tracking_uri) if warmup is None else warmup,
            cwd=paths.project_root(),
            env=kernel_env(n_jobs),
        ).start()

    def configure(self, config: TuneConfig) -> None:
        """The kernels' limits from the configuration, and more kernels if ``n_jobs`` is
        above the number started."""
        self.pool.max_uses = config.kernel_max_trials
        self.pool.max_rss_mib = config.kernel_max_rss_mib or default_kernel_rss_mib(config.n_jobs)
        if config.n_jobs > self.pool.size:
            self.pool.grow(config.n_jobs - self.pool.size)

    def check(self, cases: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The train notebook's own parameter checks on each case, in a warm trial kernel
        (:func:`runner.kernels.inside.preflight`): the first failure, else None."""
        kernel = self.pool.acquire()
        try:
            found = self.pool.call(kernel, PREFLIGHT, cases)
        except KernelCodeError as exc:
            self.pool.release(kernel, reuse=False)
            raise ParameterError(
                "train_params", f"cannot check the train parameters in a kernel: {exc}"
            ) from None
        except BaseException:
            self.pool.release(kernel, reuse=False)
            raise
        self.pool.release(kernel, reuse=True)
        return found

    def trial_function(
        self,
        config: TuneConfig,
        trials_dir: Path,
        parent_run_id: str | None,
        hptuning_tag: str | None,
    ) -> TrialFunction:
        """A :class:`NotebookTrials` on this backend's kernels."""
        if config.n_jobs > 1 and Path.cwd() != paths.project_root():
            # papermill chdirs to the project root and back around each execution; with
            # several at once, "back" must be the same folder.
            os.chdir(paths.project_root())
        return NotebookTrials(
            config, self.pool, trials_dir, parent_run_id, hptuning_tag, self.stage
        )

    def interrupt(self) -> None:
        """Stop the running trials (the tune process got SIGTERM or Ctrl-C): each trial's
        kernel is interrupted, and killed if it has not stopped within
        :data:`STOP_GRACE_S`; no trial starts a further cell. They end FAIL with the error
        "interrupted", their MLflow runs KILLED with their partial notebooks."""
        stop_all(INTERRUPTED, grace_s=STOP_GRACE_S)

    def close(self) -> None:
        """Shut every kernel down."""
        self.pool.shutdown()

    def __enter__(self) -> NotebookTrialBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class NotebookTrials:
    """Runs one trial as an execution of the train notebook, in a warm kernel of ``pool``,
    into ``trials_dir/trial-NNN/`` (with the runner's masking, scraps and MLflow hooks)."""

    def __init__(
        self,
        config: TuneConfig,
        pool: KernelPool,
        trials_dir: Path,
        parent_run_id: str | None,
        hptuning_tag: str | None,
        stage: Stage,
    ) -> None:
        self.config = config
        self.pool = pool
        self.trials_dir = Path(trials_dir)
        self.parent_run_id = parent_run_id
        self.hptuning_tag = hptuning_tag
        self.stage = stage

    def trial_dir(self, number: int) -> Path:
        """Where trial ``number`` leaves its notebook and model."""
        return self.trials_dir / f"trial-{number:03d}"

    def __call__(self, number: int, sampled: dict[str, Any]) -> TrialOutcome:
        trial_dir = self.trial_dir(number)
        params = trial_params(
            self.config,
            number,
            sampled,
            trial_dir=trial_dir,
            parent_run_id=self.parent_run_id,
            hptuning_tag=self.hptuning_tag,
        )
        kernel = self.pool.acquire()
        ok = False
        try:
            _, execution = run_stage(
                self.stage,
                params,
                report=False,  # the tuning loop tells each trial's outcome
                run_dir=trial_dir,
                render=self.config.trial_html,
                execution_timeout=self.config.cell_timeout,
                time_limit_s=self.config.trial_timeout_s,
                km=kernel.km,
            )
            # A pruned trial ended as it should: its kernel is as good as a finished one's.
            ok = execution.ok or execution.pruned
        finally:
            self.pool.release(kernel, reuse=ok)
        scraps = execution.scraps
        run_id = scraps.get(RUN_ID_SCRAP)
        if not execution.ok and not run_id and self.config.setup_mlflow:
            run_id = record_failed_run(
                self.config, number, execution, self.parent_run_id, self.hptuning_tag
            )
        return TrialOutcome(
            scraps=scraps,
            error=execution.error,
            user_attrs={
                NOTEBOOK_ATTR: str(execution.output_path),
                RUN_ID_ATTR: run_id,
                MODEL_URI_ATTR: scraps.get("model_uri"),
                TAG_ATTR: self.hptuning_tag,
            },
        )


def record_failed_run(
    config: TuneConfig,
    number: int,
    execution: Execution,
    parent_run_id: str | None,
    hptuning_tag: str | None,
) -> str | None:
    """A FAILED (or KILLED: interrupted) child run holding the partial notebook of
    ``execution``, for a trial whose notebook stopped before it started its own run; its
    id, or None if MLflow could not take it (the trial is failed anyway)."""
    try:
        import mlflow

        uri = resolve_tracking_uri(config.mlflow_tracking_uri)
        client = mlflow.MlflowClient(uri)
        experiment = client.get_experiment_by_name(config.mlflow_exp_name)
        if experiment is None:
            return None
        tags = run_tags(
            hptuning_tag, {"study_name": config.study_name, "trial_number": str(number)}
        )
        if parent_run_id:
            tags["mlflow.parentRunId"] = parent_run_id
        run = client.create_run(experiment.experiment_id, run_name=f"trial-{number}", tags=tags)
        files = [execution.output_path] + ([execution.html_path] if execution.html_path else [])
        log_notebook(uri, run.info.run_id, files, status=execution.status, error=execution.error)
        return run.info.run_id
    except Exception as exc:
        log.warning("could not record failed trial %d in MLflow: %s", number, exc)
        return None
