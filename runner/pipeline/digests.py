"""Content digests for the pipeline's decisions: what a stage reads and what it made.

Content decides, not timestamps. A file's sha256 is remembered in a cache keyed by its path,
size, mtime, ctime and inode (as git's index does: ctime changes on every write, rename or
chmod, and a program cannot set it back), so a warm pipeline stats the 50,000 raw reviews
instead of reading them. A file changed within :data:`RACY_S` seconds of being hashed is not
cached (its next change could keep the same times), as git treats a "racily clean" entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from lib.core import gcs, paths
from lib.data import prep, raw

PREFIX = "sha256:"
CACHE_FORMAT = 1
RACY_S = 2.0
# Manifest keys that say when and from what files a data set was made, not what it holds:
# a prep run that writes the same reviews writes the same data set for train and tune.
VOLATILE_MANIFEST_KEYS = ("created", "seconds", "fingerprint")


def short(digest: str | None) -> str:
    """``sha256:4849da78…`` for a message."""
    if not digest:
        return "none"
    return digest[: len(PREFIX) + 8] + "…"


def of_bytes(data: bytes) -> str:
    return PREFIX + hashlib.sha256(data).hexdigest()


def of_text(text: str) -> str:
    return of_bytes(text.encode("utf-8"))


def of_json(value: Any) -> str:
    """The digest of a JSON value, independent of key order."""
    return of_text(json.dumps(value, sort_keys=True, separators=(",", ":"), default=str))


def of_entries(entries: Iterable[tuple[str, str]]) -> str:
    """One digest for ``(name, digest)`` pairs, independent of their order."""
    return of_text("".join(f"{name}\0{digest}\n" for name, digest in sorted(entries)))


class FileDigests:
    """sha256 of files, remembered across runs in a JSON cache (``None``: not kept)."""

    def __init__(self, cache_path: Path | None = None) -> None:
        self.cache_path = cache_path
        self._known: dict[str, list[Any]] = {}
        self._changed = False
        if cache_path is not None:
            try:
                data = json.loads(cache_path.read_text(encoding="utf-8"))
                if data.get("format_version") == CACHE_FORMAT:
                    self._known = dict(data["files"])
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                self._known = {}  # no cache, or a damaged one: hash again

    def file(self, path: str | os.PathLike[str], st: os.stat_result | None = None) -> str:
        """The digest of the file at ``path`` (FileNotFoundError if absent)."""
        name = os.fspath(path)
        st = st or os.stat(name)
        key = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        known = self._known.get(name)
        if known is not None and known[:4] == key:
            return known[4]
        with open(name, "rb") as f:
            digest = PREFIX + hashlib.file_digest(f, "sha256").hexdigest()
        newest = max(st.st_mtime_ns, st.st_ctime_ns) / 1e9
        if time.time() - newest > RACY_S:
            self._known[name] = [*key, digest]
            self._changed = True
        else:
            self._known.pop(name, None)
        return digest

    def maybe_file(self, path: str | os.PathLike[str]) -> str | None:
        """The file's digest, or None when it is not there."""
        try:
            return self.file(path)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    def save(self) -> None:
        """Write the cache (atomically) if something new was hashed."""
        if self.cache_path is None or not self._changed:
            return
        text = json.dumps({"format_version": CACHE_FORMAT, "files": self._known})
        paths.atomic_write_text(self.cache_path, text)
        self._changed = False

    # -- what the stages read and write -------------------------------------------------

    def raw_data(self, raw_dirs: Sequence[str | os.PathLike[str]]) -> str:
        """The review files that prep reads (``*.txt`` in ``{train,test}/{pos,neg}``) of each
        raw folder, by path within the folder and content; a missing folder counts too."""
        parts = []
        for raw_dir in raw_dirs:
            root = paths.resolve(raw_dir)
            entries = []
            for split in raw.SPLITS:
                for label in raw.LABELS:
                    folder = root / split / label
                    try:
                        scan = list(os.scandir(folder))
                    except (FileNotFoundError, NotADirectoryError):
                        entries.append((f"{split}/{label}", "missing"))
                        continue
                    for entry in scan:
                        if entry.name.endswith(".txt") and entry.is_file():
                            digest = self.file(entry.path, entry.stat())
                            entries.append((f"{split}/{label}/{entry.name}", digest))
            parts.append((relative(root), of_entries(entries)))
        return of_text("".join(f"{name}\0{digest}\n" for name, digest in parts))  # in order

    def processed_data(self, processed_dir: str | os.PathLike[str]) -> str | None:
        """A processed data set's files (its manifest without the keys that record when and
        from which raw files it was made), or None when the folder is not a data set."""
        folder = paths.resolve(processed_dir)
        if not prep.is_processed_dir(folder):
            return None
        entries = []
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if not entry.is_file():
                continue
            if entry.name == prep.MANIFEST:
                try:
                    manifest = prep.read_manifest(folder)
                except (OSError, ValueError):
                    return None
                for key in VOLATILE_MANIFEST_KEYS:
                    manifest.pop(key, None)
                entries.append((entry.name, of_json(manifest)))
            else:
                entries.append((entry.name, self.file(entry.path, entry.stat())))
        return of_entries(entries)


def notebook_code(path: Path) -> str:
    """The digest of a notebook's code cells (markdown, outputs and metadata left out)."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    sources = [
        "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
        for c in cells
        if c.get("cell_type") == "code"
    ]
    return of_json(sources)


def relative(path: str | os.PathLike[str]) -> str:
    """``path`` relative to the project root when it lies inside it (stamps and messages stay
    the same for a copied project), else absolute; a ``gs://`` URI as it is."""
    if gcs.is_gcs_uri(path):
        return str(path)
    resolved = paths.resolve(path)
    try:
        return str(resolved.relative_to(paths.project_root()))
    except ValueError:
        return str(resolved)
