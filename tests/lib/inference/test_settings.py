"""lib.inference.settings: checked as they are made, and found again by a worker process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from lib.core.errors import ParameterError
from lib.inference import settings
from lib.inference.settings import Settings


@pytest.mark.parametrize(
    "changes, option",
    [
        ({"port": 0}, "--port"),
        ({"port": 70000}, "--port"),
        ({"workers": 0}, "--workers"),
        ({"threads": 0}, "--threads"),
        ({"max_body_bytes": 0}, "--max-body-mb"),
        ({"stall_s": 0}, "--stall-timeout"),
        ({"predict_timeout_s": -1}, "--predict-timeout"),
    ],
)
def test_a_setting_out_of_range_is_one_line_naming_the_option(changes, option):
    with pytest.raises(ParameterError) as info:
        Settings(model_dir="m", **changes)
    assert str(info.value).startswith(f"{option}: ") and "\n" not in str(info.value)


def test_a_1000_review_request_of_the_longest_reviews_fits_the_default_body_limit():
    # The 1,000 longest IMDB reviews average about 5,300 characters (docs/serving.md): 6,500
    # each leaves room.
    body = json.dumps({"inputs": ["x" * 6500] * 1000}).encode()
    assert len(body) < settings.MAX_BODY_BYTES


def test_the_exported_settings_are_what_a_process_started_after_finds(monkeypatch):
    monkeypatch.setenv(settings.ENV, "")  # export sets it: undone after the test
    chosen = Settings(model_dir="/tmp/m", port=8080, workers=2, stall_s=2.5)
    chosen.export()
    assert settings.current() == chosen
    code = "from lib.inference import settings; print(settings.current().stall_s)"
    done = subprocess.run(
        [sys.executable, "-c", code], env=os.environ.copy(), capture_output=True, text=True
    )
    assert done.stdout.strip() == "2.5", done.stderr
    settings.current.cache_clear()
