from pathlib import Path

import pytest

from runner.cli import build_parser, collect_parameters, resolve_type
from runner.stages import STAGES, get_stage


def test_parameters_follow_papermill_typing_and_order(tmp_path: Path):
    params_file = tmp_path / "p.yml"
    params_file.write_text("epochs: 2\nraw_dirs: [a, b]\n")
    args = build_parser().parse_args(
        [
            "train",
            "-f",
            str(params_file),
            "-p",
            "epochs",
            "5",
            "-p",
            "val_split",
            "0.25",
            "-r",
            "seed",
            "7",
            "-p",
            "setup_mlflow",
            "False",
            "-y",
            "optimiser: rmsprop",
        ]
    )
    params = collect_parameters(args.params)
    assert params == {
        "epochs": 5,
        "raw_dirs": ["a", "b"],
        "val_split": 0.25,
        "seed": "7",
        "setup_mlflow": False,
        "optimiser": "rmsprop",
    }


@pytest.mark.parametrize(
    "value",
    [
        "True",
        "False",
        "None",
        "true",
        "none",
        "7",
        "-3",
        " 8 ",
        "1_000",
        "0x10",
        "07",
        "0.25",
        "1e-3",
        ".5",
        "nan",
        "-inf",
        "Infinity",
        "1.5.2",
        "",
        " ",
        "adam",
        "[1, 2]",
        "True ",
    ],
)
def test_parameter_typing_is_papermills(value: str):
    from papermill.cli import _resolve_type

    expected = _resolve_type(value)
    got = resolve_type(value)
    assert type(got) is type(expected)
    assert got == expected or (got != got and expected != expected)  # nan


def test_a_params_file_that_is_not_a_mapping_is_refused(tmp_path: Path):
    bad = tmp_path / "bad.yml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(SystemExit, match="YAML mapping"):
        collect_parameters([("f", str(bad))])
    with pytest.raises(SystemExit, match="does not exist"):
        collect_parameters([("f", str(tmp_path / "missing.yml"))])


def test_every_stage_has_its_notebook():
    for stage in STAGES.values():
        assert stage.path.name == f"{stage.name}.ipynb"
    with pytest.raises(ValueError, match="unknown stage 'nope'"):
        get_stage("nope")
