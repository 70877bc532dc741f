"""runner.cli.options: parameters given on the command line, typed as papermill types them and
merged in the order given; a parameters file that is not a mapping is refused in one line.
"""

from pathlib import Path

import pytest

from lib.core.errors import ParameterError
from runner.cli.main import build_parser
from runner.cli.options import collect_parameters, resolve_type


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
    with pytest.raises(ParameterError, match="a YAML list, not a mapping") as info:
        collect_parameters([("f", str(bad))])
    assert info.value.name == f"-f {bad}"
    with pytest.raises(ParameterError, match="no such file"):
        collect_parameters([("f", str(tmp_path / "missing.yml"))])
    with pytest.raises(ParameterError, match=r"^-y: not valid YAML: .*\(line 1, column 6\)"):
        collect_parameters([("y", "{a: [}")])
