"""lib.inference.server: the model it is given is checked before anything starts (one line
naming the problem). The server itself, serving a real model: tests/system/test_serving.py,
tests/system/test_serving_limits.py, tests/system/test_serving_load.py.
"""

from __future__ import annotations

import pytest

from lib.core.errors import ModelError
from lib.inference import server


def test_a_model_folder_is_served_where_it_is(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "MLmodel").write_text("flavors: {}\n", encoding="utf-8")
    assert server.fetch_model(str(model), tmp_path / "work") == model


def test_a_path_that_is_not_there_is_one_line_naming_what_to_serve(tmp_path):
    with pytest.raises(ModelError) as info:
        server.fetch_model(str(tmp_path / "nothing"), tmp_path)
    message = str(info.value)
    assert "does not exist" in message and "models:/NAME@ALIAS" in message
    assert "\n" not in message


def test_a_folder_without_an_mlmodel_is_not_a_model(tmp_path):
    (tmp_path / "model.keras").write_bytes(b"PK")
    with pytest.raises(ModelError) as info:
        server.fetch_model(str(tmp_path), tmp_path / "work")
    assert "is not an MLflow model (no MLmodel)" in str(info.value)
