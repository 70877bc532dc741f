"""Scores written in chunks to ``.jsonl``, ``.parquet`` or ``.csv``, under their final name
only when complete.

:func:`check_output` refuses an output before anything is read; :func:`open_scores` writes
under a temporary name beside the final one (``.NAME.partial-PID``) and links it to the final
name only when the block ends normally (an output that appeared meanwhile is not replaced
unless ``overwrite``). On an exception, KeyboardInterrupt included, the temporary file is
removed and nothing exists under the final name. On ``gs://`` the file is written in a
local temporary folder and uploaded once, at the end.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from lib.core import gcs
from lib.core.errors import ParameterError, output_faults

OUTPUT_EXTENSIONS: tuple[str, ...] = (".jsonl", ".parquet", ".csv")
_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.EXDEV}
COLUMNS: tuple[str, ...] = ("id", "probability", "label", "model_name", "model_version")


def output_extension(output_path: str | os.PathLike[str]) -> str:
    """The output's extension, or ParameterError naming those accepted."""
    extension = Path(os.fspath(output_path)).suffix.lower()
    if extension not in OUTPUT_EXTENSIONS:
        raise ParameterError(
            "output_path",
            f"{os.fspath(output_path)} has the extension {extension or '(none)'!r}: write "
            f"scores to a file ending in {', '.join(OUTPUT_EXTENSIONS)}",
        )
    return extension


def check_output(output_path: str | os.PathLike[str], overwrite: bool = False) -> str:
    """``output_path`` as a string when it can be written: an accepted extension, and no
    file there unless ``overwrite``; else ParameterError (one line)."""
    path = os.fspath(output_path)
    output_extension(path)
    there = gcs.exists(path) if gcs.is_gcs_uri(path) else os.path.lexists(path)
    if there and not overwrite:
        raise ParameterError(
            "output_path",
            f"{path} already exists: choose another output or set overwrite to True",
        )
    if not gcs.is_gcs_uri(path) and Path(path).is_dir():
        raise ParameterError("output_path", f"{path} is a folder: name a file in it")
    return path


class ScoreWriter:
    """Writes the rows of scored reviews to one open file, chunk by chunk."""

    def __init__(
        self, path: Path, extension: str, model_name: str, model_version: str, include_text: bool
    ) -> None:
        self.path = path
        self.extension = extension
        self.model_name = str(model_name)
        self.model_version = str(model_version)
        self.include_text = include_text
        self.rows = 0
        self._file = path.open("wb")
        self._arrow_writer = None
        self._schema: pa.Schema | None = None

    def write(
        self,
        ids: Sequence[str | int],
        probabilities: np.ndarray,
        labels: np.ndarray,
        texts: Sequence[str] | None = None,
    ) -> None:
        """Append one row per review: id, probability of positive, label, model name and
        version (and the text when ``include_text``)."""
        probabilities = np.asarray(probabilities, dtype=np.float64).ravel()
        labels = np.asarray(labels).astype(np.int64).ravel()
        if not len(ids) == len(probabilities) == len(labels):
            raise ValueError("ids, probabilities and labels differ in length")  # a caller's bug
        if self.extension == ".jsonl":
            self._write_jsonl(ids, probabilities, labels, texts)
        else:
            self._write_arrow(ids, probabilities, labels, texts)
        self.rows += len(ids)

    def _write_jsonl(self, ids, probabilities, labels, texts) -> None:
        base = {"model_name": self.model_name, "model_version": self.model_version}
        lines = []
        for i, review_id in enumerate(ids):
            row = {"id": review_id, "probability": float(probabilities[i]), "label": int(labels[i])}
            row.update(base)
            if self.include_text and texts is not None:
                row["text"] = texts[i]
            lines.append(json.dumps(row, ensure_ascii=False))
        if lines:
            self._file.write(("\n".join(lines) + "\n").encode("utf-8"))

    def _write_arrow(self, ids, probabilities, labels, texts) -> None:
        n = len(ids)
        columns = {
            "id": pa.array(list(ids)),
            "probability": pa.array(probabilities, pa.float64()),
            "label": pa.array(labels, pa.int64()),
            "model_name": pa.array([self.model_name] * n, pa.string()),
            "model_version": pa.array([self.model_version] * n, pa.string()),
        }
        if self.include_text:
            columns["text"] = pa.array(list(texts or [""] * n), pa.large_string())
        table = pa.table(columns)
        if self._schema is None:
            self._schema = table.schema
            self._arrow_writer = self._open_arrow_writer(table.schema)
        self._arrow_writer.write_table(table.cast(self._schema))

    def _open_arrow_writer(self, schema: pa.Schema):
        if self.extension == ".parquet":
            import pyarrow.parquet as pq

            return pq.ParquetWriter(self._file, schema)
        import pyarrow.csv as pcsv

        return pcsv.CSVWriter(self._file, schema)

    def close(self) -> None:
        """Finish the file (a Parquet footer, an empty table's header) and close it."""
        if self.extension != ".jsonl" and self._arrow_writer is None:
            self._write_arrow([], np.zeros(0), np.zeros(0), [])
        if self._arrow_writer is not None:
            self._arrow_writer.close()
        self._file.close()

    def abort(self) -> None:
        """Close without finishing: the file is being thrown away."""
        if self._arrow_writer is not None:
            # Closing writes a footer into a file about to be removed; left open, the writer
            # would complain when collected.
            with contextlib.suppress(OSError, pa.ArrowException):
                self._arrow_writer.close()
        self._file.close()


def _publish(temporary: Path, final: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(temporary, final)
        return
    appeared = ParameterError(
        "output_path",
        f"{final} appeared while scoring: choose another output or set overwrite to True",
    )
    try:
        os.link(temporary, final)  # fails, instead of replacing, when an output appeared
    except FileExistsError:
        raise appeared from None
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        # A file system without hard links (some network and FUSE mounts): check, then rename.
        if os.path.lexists(final):
            raise appeared from None
        os.replace(temporary, final)
    finally:
        temporary.unlink(missing_ok=True)


@contextlib.contextmanager
def open_scores(
    output_path: str | os.PathLike[str],
    *,
    model_name: str,
    model_version: str,
    include_text: bool = False,
    overwrite: bool = False,
) -> Iterator[ScoreWriter]:
    """A :class:`ScoreWriter` whose file appears under ``output_path`` (local or ``gs://``)
    only when the block ends normally."""
    path = check_output(output_path, overwrite)
    extension = output_extension(path)
    with contextlib.ExitStack() as stack:
        if gcs.is_gcs_uri(path):
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="scores-")))
            final = folder / Path(path).name
            temporary = folder / f".{final.name}.partial"
        else:
            final = Path(path)
            with output_faults("output_path", final.parent):
                final.parent.mkdir(parents=True, exist_ok=True)
            temporary = final.with_name(f".{final.name}.partial-{os.getpid()}")
        with output_faults("output_path", path):
            writer = ScoreWriter(temporary, extension, model_name, model_version, include_text)
        try:
            yield writer
            with output_faults("output_path", path):
                writer.close()
                if gcs.is_gcs_uri(path):
                    gcs.upload(temporary, path)
                else:
                    _publish(temporary, final, overwrite)
        except BaseException:
            writer.abort()
            temporary.unlink(missing_ok=True)
            raise
