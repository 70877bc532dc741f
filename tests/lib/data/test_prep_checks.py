"""lib.data.prep_checks: the prep notebook's parameters checked before any kernel starts:
``raw_dirs`` as a list, and a ``processed_dir`` that would replace or lie among the project's
notebooks refused in one line naming it."""

from __future__ import annotations

import pytest

from lib.core.errors import ParameterError
from lib.data.prep_checks import check_prep_params


def test_raw_dirs_become_a_list_and_the_other_parameters_pass_through():
    assert check_prep_params({"raw_dirs": "a", "processed_dir": "x/p"}) == {
        "raw_dirs": ["a"],
        "processed_dir": "x/p",
    }
    checked = check_prep_params({"raw_dirs": ["a", "b"], "processed_dir": "x/p", "seed": 1})
    assert checked == {"raw_dirs": ["a", "b"], "processed_dir": "x/p", "seed": 1}


@pytest.mark.parametrize(
    "params, message",
    [
        ({"raw_dirs": [], "processed_dir": "x/p"}, "raw_dirs: empty: give at least one raw folder"),
        ({"raw_dirs": "a", "processed_dir": "notebooks"}, "processed_dir: notebooks is the"),
        ({"raw_dirs": "a", "processed_dir": "notebooks/p"}, "processed_dir: notebooks/p is inside"),
        ({"raw_dirs": "a", "processed_dir": "."}, "processed_dir: . holds the project's notebooks"),
    ],
)
def test_a_bad_parameter_is_one_line_naming_it(params, message):
    with pytest.raises(ParameterError) as info:
        check_prep_params(params)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)
