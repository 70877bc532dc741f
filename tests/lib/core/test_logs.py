import io
import json
import logging
import re
import subprocess
import sys

import pytest

from lib.core.logs import setup_logging


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


def test_a_library_logger_with_its_own_stderr_handler_goes_through_ours(
    tmp_path, monkeypatch, restore_root
):
    import mlflow  # noqa: F401  (as it is imported, MLflow may give its logger a handler)

    logger = logging.getLogger("mlflow")
    monkeypatch.setattr(logger, "handlers", [logging.StreamHandler(io.StringIO())])
    monkeypatch.setattr(logger, "propagate", False)
    monkeypatch.setenv("DEMO_TOKEN", "tok-abcdef-123")
    setup_logging(log_dir=tmp_path)
    assert logger.handlers == [] and logger.propagate
    logger.warning("store at http://u:tok-abcdef-123@host")
    for handler in restore_root.handlers:
        handler.flush()
    record = json.loads((tmp_path / "info.log").read_text().splitlines()[-1])
    assert record["logger"] == "mlflow" and "tok-abcdef-123" not in record["message"]


@pytest.mark.slow
def test_in_a_notebook_kernel_the_console_is_plain_and_the_files_stay_json(tmp_path):
    import nbclient
    import nbformat

    code = (
        "import logging\n"
        "from lib.core.logs import setup_logging\n"
        f"setup_logging(log_dir={str(tmp_path)!r})\n"
        "logging.getLogger('lib.demo').info('hello %s', 'there')\n"
        "logging.getLogger('lib.demo').warning('careful')\n"
    )
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=120).execute()
    streams = {out["name"]: out["text"] for out in nb.cells[0].outputs}
    assert re.fullmatch(r"\d\d:\d\d:\d\d INFO lib\.demo: hello there\n", streams["stdout"])
    assert re.fullmatch(r"\d\d:\d\d:\d\d WARNING lib\.demo: careful\n", streams["stderr"])
    lines = (tmp_path / "info.log").read_text().splitlines()
    assert [json.loads(line)["message"] for line in lines] == ["hello there", "careful"]


@pytest.mark.slow
def test_optuna_imported_after_the_set_up_logs_through_ours(tmp_path):
    code = (
        "import logging, sys\n"
        "from lib.core.logs import setup_logging\n"
        f"setup_logging(log_dir={str(tmp_path)!r})\n"
        "assert 'optuna' not in sys.modules\n"
        "import optuna\n"
        "optuna.create_study(study_name='demo')\n"
        "print(logging.getLogger('optuna').handlers, logging.getLogger('optuna').propagate)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["[]", "True"]  # no stderr handler of its own
    records = [json.loads(line) for line in (tmp_path / "info.log").read_text().splitlines()]
    assert any("A new study created in memory with name: demo" in r["message"] for r in records)
    assert "\x1b[" not in result.stderr  # none of its colour codes


def _console(root: logging.Logger) -> logging.Handler:
    return next(h for h in root.handlers if h.name == "console")


def test_the_console_is_plain_by_default_and_json_when_asked(
    tmp_path, monkeypatch, capsys, restore_root
):
    monkeypatch.delenv("IMDB_LOG_FORMAT", raising=False)
    setup_logging(log_dir=tmp_path)
    logging.getLogger("lib.demo").warning("plain %s", "words")
    err = capsys.readouterr().err
    assert re.fullmatch(r"\d\d:\d\d:\d\d WARNING lib\.demo: plain words\n", err)
    for asked in ({"fmt": "json"}, {}):
        if not asked:
            monkeypatch.setenv("IMDB_LOG_FORMAT", "json")
        setup_logging(log_dir=tmp_path, **asked)
        logging.getLogger("lib.demo").warning("as json", extra={"stage": "train"})
        record = json.loads(capsys.readouterr().err)
        assert record["message"] == "as json" and record["stage"] == "train"
    # The files are JSON lines whatever the console's format.
    lines = (tmp_path / "info.log").read_text().splitlines()
    assert [json.loads(line)["message"] for line in lines] == ["plain words", "as json", "as json"]


def test_absl_notices_are_quiet_unless_the_level_is_debug(
    tmp_path, monkeypatch, capsys, restore_root
):
    monkeypatch.delenv("IMDB_LOG_LEVEL", raising=False)
    absl = logging.getLogger("absl")
    monkeypatch.setattr(absl, "level", absl.level)
    setup_logging(log_dir=tmp_path)
    absl.warning("a notice")
    absl.error("a real error")
    assert "a notice" not in (err := capsys.readouterr().err) and "a real error" in err
    monkeypatch.setenv("IMDB_LOG_LEVEL", "debug")  # plain papermill, JupyterLab
    setup_logging(log_dir=tmp_path)
    assert _console(restore_root).level == logging.DEBUG
    absl.warning("a notice")
    logging.getLogger("lib.demo").debug("a detail")
    err = capsys.readouterr().err
    assert "WARNING absl: a notice" in err and "DEBUG lib.demo: a detail" in err
    monkeypatch.setenv("IMDB_LOG_LEVEL", "loud")  # not a level: the file's
    setup_logging(log_dir=tmp_path)
    assert _console(restore_root).level == logging.INFO
