"""What differs between two runs' material (newer first): parameters, metrics (with the
difference and whether it is better for the metric's direction), data, code and
environment. Each function returns a pandas DataFrame (empty: nothing differs) or a small
mapping, for the notebook to show."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lib.comparison.material import Material
from lib.comparison.sources import GIT_DIRTY_TAG
from lib.core import paths
from lib.core.errors import DatasetError
from lib.data import prep
from lib.tracking.registry import DATA_FINGERPRINT_TAG, GIT_COMMIT_TAG

if TYPE_CHECKING:
    import pandas as pd

# A metric whose name holds one of these is better lower; any other, higher.
LOWER_IS_BETTER = ("loss", "error", "seconds", "false_", "n_failed", "n_pruned", "skipped")
# Parameters that name where a run went, not what it did: differ on every run.
_WHERE = frozenset({"model_dir", "mlflow_run_name", "output_path"})
MACHINE_KEYS = ("python", "tensorflow", "gpu", "cpu_count", "memory_bytes", "notebook")


def _frame(rows: list[dict[str, Any]], index: str) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(rows).set_index(index) if rows else pd.DataFrame()


def parameters(newer: Material, older: Material) -> pd.DataFrame:
    """The parameters that differ, and those only one run has (``—`` for the other)."""
    rows = []
    for name in sorted(set(newer.params) | set(older.params)):
        a, b = newer.params.get(name), older.params.get(name)
        if a != b and name not in _WHERE:
            rows.append({"parameter": name, "newer": _shown(a), "older": _shown(b)})
    return _frame(rows, "parameter")


def _shown(value: Any) -> str:
    return "—" if value is None else str(value)


def better(name: str, difference: float) -> str:
    """``newer``, ``older`` or ``same``: which run the difference favours for ``name``."""
    if difference == 0:
        return "same"
    lower = any(part in name for part in LOWER_IS_BETTER)
    return "newer" if (difference < 0) == lower else "older"


def metrics(newer: Material, older: Material) -> pd.DataFrame:
    """Every final metric of either run: both values, newer minus older, and which is better."""
    rows = []
    for name in sorted(set(newer.metrics) | set(older.metrics)):
        a, b = newer.metrics.get(name), older.metrics.get(name)
        row = {"metric": name, "newer": a, "older": b, "difference": None, "better": "—"}
        if a is not None and b is not None:
            row["difference"] = a - b
            row["better"] = better(name, a - b)
        rows.append(row)
    return _frame(rows, "metric")


def _split_rows(material: Material) -> dict[str, Any] | None:
    """The row counts of the run's data set by split, from its manifest at ``data_path``
    when it is still there and is the data set the run used (same fingerprint)."""
    where = material.params.get("data_path")
    if not where:
        return None
    try:
        manifest = prep.read_manifest(paths.resolve(where))
    except (OSError, ValueError, DatasetError):
        return None
    fingerprint = material.tags.get(DATA_FINGERPRINT_TAG)
    if fingerprint and manifest.get("fingerprint") != fingerprint:
        return None  # the folder now holds another data set
    return manifest.get("rows")


def data(newer: Material, older: Material) -> pd.DataFrame:
    """Each run's data set: its fingerprint, whether they are the same, its rows by split."""
    rows = []
    for side, material in (("newer", newer), ("older", older)):
        row: dict[str, Any] = {
            "run": side,
            "data_path": material.params.get("data_path", "—"),
            "fingerprint": material.tags.get(DATA_FINGERPRINT_TAG, "not recorded"),
        }
        for split, counts in (_split_rows(material) or {}).items():
            row[f"{split} rows"] = counts.get("total") if isinstance(counts, dict) else counts
        rows.append(row)
    return _frame(rows, "run")


def same_data(newer: Material, older: Material) -> str:
    """``same`` or ``different`` data set, by fingerprint; ``unknown`` when a run did not
    record its data set's."""
    a, b = newer.tags.get(DATA_FINGERPRINT_TAG), older.tags.get(DATA_FINGERPRINT_TAG)
    return "unknown" if not a or not b else ("same" if a == b else "different")


def _modules(material: Material) -> dict[str, str]:
    return dict((material.environment or {}).get("modules") or {})


def changed_modules(newer: Material, older: Material) -> pd.DataFrame:
    """The project modules whose digests differ, or that only one run's code held."""
    a, b = _modules(newer), _modules(older)
    rows = [
        {
            "module": name,
            "change": "changed"
            if name in a and name in b
            else ("only newer" if name in a else "only older"),
        }
        for name in sorted(set(a) | set(b))
        if a.get(name) != b.get(name)
    ]
    return _frame(rows, "module")


def _git(repository: Path | None, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["git", "-C", str(repository or paths.project_root()), *args],
        capture_output=True,
        timeout=30,
        check=False,
    )


def committed_file(commit: str | None, path: str, repository: Path | None = None) -> bytes | None:
    """``path`` as ``commit`` holds it in ``repository`` (default: this project's), or None
    (no commit, or the repository does not hold it)."""
    if not commit:
        return None
    try:
        done = _git(repository, "show", f"{commit}:{path}")
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def module_diffs(
    newer: Material, older: Material, modules: list[str], repository: Path | None = None
) -> dict[str, str]:
    """For each of ``modules``, the unified diff of its source at the older run's commit
    against the newer's, when the repository holds both; else why there is none. A file
    whose digest is not the one the run recorded (a dirty tree) is diffed with a note."""
    import difflib

    commits = [m.tags.get(GIT_COMMIT_TAG) for m in (newer, older)]
    out: dict[str, str] = {}
    for module in modules:
        texts = [committed_file(c, module, repository) for c in commits]
        if commits[0] is None or commits[1] is None:
            out[module] = "no diff: a run did not record its git commit"
            continue
        absent = [
            f"{side} {c[:10]}"
            for side, c, t in zip(("newer", "older"), commits, texts, strict=True)
            if t is None
        ]
        if absent:
            out[module] = f"no diff: this repository does not hold it at {' or '.join(absent)}"
            continue
        notes = [
            f"note: the {side} run's tree was dirty; its committed file is shown, not the one run"
            for side, m, text in (("newer", newer, texts[0]), ("older", older, texts[1]))
            if text is not None
            and _digest(text) != _modules(m).get(module)
            and m.tags.get(GIT_DIRTY_TAG) == "true"
        ]
        lines = difflib.unified_diff(
            texts[1].decode("utf-8", "replace").splitlines(keepends=True),
            texts[0].decode("utf-8", "replace").splitlines(keepends=True),
            f"older {commits[1][:10]}:{module}",
            f"newer {commits[0][:10]}:{module}",
        )
        out[module] = "".join(f"{n}\n" for n in notes) + "".join(lines)
    return out


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def packages(newer: Material, older: Material) -> pd.DataFrame:
    """The locked packages whose installed versions differ, or that only one run had."""
    a = dict((newer.environment or {}).get("packages") or {})
    b = dict((older.environment or {}).get("packages") or {})
    rows = [
        {"package": name, "newer": _shown(a.get(name)), "older": _shown(b.get(name))}
        for name in sorted(set(a) | set(b))
        if a.get(name) != b.get(name)
    ]
    return _frame(rows, "package")


def machine(newer: Material, older: Material) -> pd.DataFrame:
    """Python, TensorFlow, the GPU, CPUs, memory and the notebook of each run."""
    rows = []
    for key in MACHINE_KEYS:
        a = (newer.environment or {}).get(key)
        b = (older.environment or {}).get(key)
        rows.append({"": key, "newer": _shown(a), "older": _shown(b), "same": a == b})
    return _frame(rows, "")


def json_param(material: Material, name: str) -> Any:
    """A parameter logged as JSON (a tune parent's ``objectives``), or None."""
    try:
        return json.loads(material.params.get(name, "null"))
    except ValueError:
        return None
