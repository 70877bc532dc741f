"""runner.stages: the one table of stage names and their notebooks."""

import nbformat
import pytest

from runner.stages import STAGES, get_stage


@pytest.mark.parametrize("name", sorted(STAGES))
def test_each_stage_names_a_notebook_with_one_parameters_cell(name):
    stage = get_stage(name)
    assert stage.name == name and stage.description
    nb = nbformat.read(stage.path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1


def test_the_stages_are_prep_train_tune_infer():
    assert list(STAGES) == ["prep", "train", "tune", "infer"]


def test_an_unknown_stage_lists_the_known_ones():
    with pytest.raises(
        ValueError, match="unknown stage 'evaluate'; known stages: prep, train, tune, infer"
    ):
        get_stage("evaluate")


def test_an_absolute_notebook_path_wins(tmp_path):
    from runner.stages import Stage

    assert Stage("x", str(tmp_path / "x.ipynb"), "").path == tmp_path / "x.ipynb"


def test_a_name_the_notebook_lacks_is_refused_with_the_closest_names():
    from lib.core.errors import ParameterError

    with pytest.raises(ParameterError) as info:
        get_stage("train").check_parameters({"epochs": 2, "optimizer": "sgd"})
    assert str(info.value) == "train: unknown parameter 'optimizer'; did you mean 'optimiser'?"
    get_stage("train").check_parameters({"epochs": 2, "optimiser": "sgd"})


@pytest.mark.parametrize(
    "stage, given, message",
    [
        ("prep", {"raw_dirs": "[]"}, "raw_dirs: empty"),
        ("prep", {"processed_dir": "notebooks"}, "processed_dir: notebooks is the project's"),
        ("train", {"bs": 0}, "bs: 0 is not allowed: an integer >= 1"),
        ("train", {"metric": "f1"}, "metric: 'f1' is not allowed: one of 'accuracy', 'auc'"),
        ("tune", {"n_jobs": "two"}, "n_jobs: 'two' is not allowed: an integer"),
        ("tune", {"train_params": {"bs": 0}}, "train_params.bs: the train notebook refuses it"),
    ],
)
def test_each_stage_checks_its_values_with_the_notebooks_defaults_for_the_rest(
    stage, given, message
):
    from lib.core.errors import ParameterError

    assert all(s.check is not None for s in STAGES.values())  # every stage has its checks
    get_stage(stage).check_parameters({})  # the defaults pass
    with pytest.raises(ParameterError) as info:
        get_stage(stage).check_parameters(given)
    assert str(info.value).startswith(message)


# -- adding a stage: one record plus its notebook ---------------------------------------------


def _tiny_notebook(path, code: str) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(
        'data_path = "data/processed"\nthreshold = 0.5\nscores_path = "scores/out.csv"'
    )
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(code)]
    nbformat.write(nb, path)


def test_a_new_stage_is_one_record_planned_stamped_and_shown_by_status(tmp_path, monkeypatch):
    from lib.core.errors import ParameterError
    from runner.cli.main import build_parser
    from runner.cli.pipeline import stage_parameters
    from runner.pipeline.plan import State, judge, plan, products_of, status_lines
    from runner.pipeline.stamps import Stamp, write_stamp
    from runner.stages import DataInput, Product, Stage, Upstream
    from tests.support.pipeline_project import prepared_project

    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path / "project"))
    root = prepared_project(tmp_path / "project")
    notebook = tmp_path / "score.ipynb"
    _tiny_notebook(notebook, "from lib.core import paths\nprint(paths.resolve(data_path))")
    score = Stage(
        "score",
        str(notebook),
        "score a processed data set",
        tracked=False,
        upstream=(Upstream("data_path", "prep", "processed_dir"),),
        data=DataInput("processed data", "data_path", "data set"),
        products=(Product("scores", "file", lambda params, scraps, run: params["scores_path"]),),
        requirements=("requirements.txt",),
    )
    monkeypatch.setitem(STAGES, "score", score)

    # Its parameters on the pipeline's command line, checked against its notebook.
    args = build_parser().parse_args(["pipeline", "-p", "score.threshold", "0.7"])
    assert args.stages == ["prep", "train", "score"]  # in the default pipeline, in order
    given = stage_parameters(args.params)
    assert given["score"] == {"threshold": 0.7}
    with pytest.raises(ParameterError, match="score: unknown parameter 'treshold'"):
        plan(["score"], {"score": {"treshold": 1}})

    # Wired to prep: its data_path is prep's processed_dir unless given.
    (elsewhere,) = plan(["score"], {"prep": {"processed_dir": "x/p"}})
    assert elsewhere.overrides["data_path"] == "x/p"
    (planned,) = plan(["score"], given)
    assert planned.overrides == {"threshold": 0.7, "data_path": "data/processed"}

    # Stamped: its notebook, the code it imports, its requirements and its data.
    state, files = State(), State().digests()
    decision, inputs = judge(planned, state, files)
    assert decision.reasons == ["no earlier successful run"]
    assert list(inputs.notebooks) == [str(notebook)]
    assert "lib/core/paths.py" in inputs.code and list(inputs.files) == ["requirements.txt"]
    assert inputs.data["what"] == "processed data" and inputs.data["digest"]
    (root / "scores").mkdir()
    (root / "scores" / "out.csv").write_text("id,score\n")
    products = products_of(planned, {}, root / "runs" / "x", files)
    assert products == {
        "scores": {"path": "scores/out.csv", "digest": files.file(root / "scores/out.csv")}
    }
    run = {"run_dir": "runs/x-score", "finished": "2026-12-01T09:06:20+00:00", "seconds": 1.5}
    write_stamp(state.stamp_path("score"), Stamp("score", inputs, products, run))
    assert judge(planned, state, files)[0].up_to_date

    # Shown by status; outdated when its upstream's data set or its product changes.
    assert status_lines(["score"], given, state) == [
        "score: up to date",
        "  last run: runs/x-score (finished 2026-12-01T09:06:20+00:00, 1.5 s)",
        "  scores: scores/out.csv",
    ]
    (root / "scores" / "out.csv").unlink()
    (root / "data" / "processed" / "test.parquet").unlink()
    lines = status_lines(["score"], given, state)
    assert lines[0].startswith("score: outdated: ")
    assert "processed data changed" in lines[0] and "scores scores/out.csv is gone" in lines[0]


def test_every_stage_has_its_notebook():
    for stage in STAGES.values():
        assert stage.path.name == f"{stage.name}.ipynb"
    with pytest.raises(ValueError, match="unknown stage 'nope'"):
        get_stage("nope")


def test_compare_is_executed_like_a_stage_but_is_no_pipeline_stage():
    from runner.stages import COMPARE

    assert COMPARE.path.name == "compare.ipynb" and COMPARE.tracked
    assert "compare" not in STAGES and not COMPARE.in_default_pipeline
    assert set(COMPARE.defaults()) >= {"run_a", "run_b", "experiment", "stage"}
