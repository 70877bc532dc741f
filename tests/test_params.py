import pytest

from lib.params import ParameterError, as_bool, as_list, check_choice, check_float, check_int


@pytest.mark.parametrize(
    "value, expected",
    [
        (["a", "b"], ["a", "b"]),
        (("a",), ["a"]),
        (
            '["/data/aclImdb-set1", "/data/aclImdb-set2"]',
            ["/data/aclImdb-set1", "/data/aclImdb-set2"],
        ),
        ("[/data/a, /data/b]", ["/data/a", "/data/b"]),
        ("- /data/a\n- /data/b\n", ["/data/a", "/data/b"]),
        ("/data/only", ["/data/only"]),
    ],
)
def test_as_list_accepts_lists_and_json_or_yaml_strings(value, expected):
    assert as_list("raw_dirs", value) == expected


@pytest.mark.parametrize("value", ["", "[unclosed", '{"a": 1}', 3])
def test_as_list_rejects_with_the_parameter_named(value):
    with pytest.raises(ParameterError) as info:
        as_list("raw_dirs", value)
    assert "raw_dirs" in str(info.value)


def test_as_bool():
    assert as_bool("x", "True") is True
    assert as_bool("x", "no") is False
    assert as_bool("x", 1) is True
    with pytest.raises(ParameterError, match="'x'.*true or false"):
        as_bool("x", "maybe")


def test_checks_name_parameter_value_and_allowed():
    with pytest.raises(ParameterError, match=r"'optimiser' = 'adamw'.*'adam', 'rmsprop'"):
        check_choice("optimiser", "adamw", ["adam", "rmsprop"])
    with pytest.raises(ParameterError, match=r"'bs' = 0 .*>= 1"):
        check_int("bs", 0, minimum=1)
    with pytest.raises(ParameterError, match=r"'val_split' = 1.0 .*\(0, 1\)"):
        check_float("val_split", 1.0, 0, 1)
    assert check_int("epochs", 3.0, minimum=1) == 3
    assert check_float("val_split", "0.25", 0, 1) == 0.25
