import io
import json
import logging

import pytest

from lib.logs import setup_logging


@pytest.fixture
def restore_root():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_to_rotating_files_with_secrets_masked(tmp_path, monkeypatch, restore_root):
    monkeypatch.setenv("DEMO_TOKEN", "tok-abcdef-123")
    foreign = logging.StreamHandler(io.StringIO())
    restore_root.addHandler(foreign)
    setup_logging(log_dir=tmp_path)
    setup_logging(log_dir=tmp_path)  # again: replaces its own handlers, keeps others
    ours = [h for h in restore_root.handlers if getattr(h, "_imdb_sentiment_handler", False)]
    assert len(ours) == 3 and foreign in restore_root.handlers
    logging.getLogger("lib.demo").info("using %s", "tok-abcdef-123", extra={"stage": "prep"})
    logging.getLogger("lib.demo").error("bad thing")
    for handler in ours:
        handler.flush()
    lines = (tmp_path / "info.log").read_text().splitlines()
    record = json.loads(lines[-2])
    assert record["message"] == "using ********" and record["logger"] == "lib.demo"
    assert record["level"] == "INFO" and record["stage"] == "prep"
    assert json.loads((tmp_path / "error.log").read_text().splitlines()[-1])["level"] == "ERROR"
    assert not foreign.stream.closed
