"""Download (or copy) and extract the aclImdb archive, atomically and only once.

The archive is extracted into a temporary folder beside the destination and renamed into
place only after its layout has been checked, so ``DIR/aclImdb`` is either absent, an earlier
complete extraction, or the new complete one: never half of an archive. A marker file inside
it records where it came from; its presence is what "already fetched" means.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import logging
import os
import shutil
import sys
import tarfile
import tempfile
import zlib
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

import requests
import urllib3

# tqdm.auto: a widget in a notebook (JupyterLab, with ipywidgets), text on a terminal.
from tqdm.auto import tqdm

from lib.core import paths
from lib.core.errors import FetchError

log = logging.getLogger(__name__)

OFFICIAL_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
MARKER = ".fetch-complete.json"
TIMEOUT_S = (30, 30)  # (connect, read): a stalled server fails instead of hanging a pipeline
_CHUNK = 1 << 20


def default_dest() -> Path:
    """Where the raw data goes unless told otherwise: ``data/raw`` in the project root."""
    return paths.data_dir() / "raw"


def is_complete(folder: Path) -> bool:
    """Whether ``folder`` (an ``aclImdb`` folder) holds a finished extraction."""
    return (
        (folder / MARKER).is_file() and (folder / "train").is_dir() and (folder / "test").is_dir()
    )


def fetch_data(
    source: str | os.PathLike[str] | None = None,
    dest: str | os.PathLike[str] | None = None,
    force: bool = False,
) -> Path:
    """Fetch ``source`` (an http(s) URL, a file:// URL or a local .tar.gz) into ``dest``.

    Returns the ``aclImdb`` folder inside ``dest``. Does nothing if a complete extraction is
    already there, unless ``force``. Raises FetchError with a message naming the source or
    folder, what went wrong and how to fix it.
    """
    source = str(source) if source is not None else OFFICIAL_URL
    dest_dir = default_dest() if dest is None else paths.resolve(dest)
    if dest_dir.exists() and not dest_dir.is_dir():
        raise FetchError(
            f"destination {dest_dir} exists but is a file; pass --dest with a folder path "
            "or remove the file"
        )
    target = dest_dir / "aclImdb"
    if not force and is_complete(target):
        log.info(
            "skipping fetch: %s already holds a complete extraction (from %s); "
            "pass --force to fetch again",
            target,
            _marker_source(target),
        )
        return target

    # Resolve a local source before creating anything, so a typo leaves no empty folders.
    url = urlparse(source)
    local = None if url.scheme in ("http", "https") else _local_archive(source)

    created = [p for p in (dest_dir, *dest_dir.parents) if not p.exists()]  # deepest first
    dest_dir.mkdir(parents=True, exist_ok=True)
    # Everything temporary lives in one hidden folder inside dest_dir: same file system, so
    # the final rename is atomic, and one rmtree cleans up after any failure.
    work = Path(tempfile.mkdtemp(prefix=".aclImdb-fetch-", dir=dest_dir))
    try:
        if local is None:
            archive, digest = _download(source, work)
        else:
            archive, digest = local, _sha256(local)
        extracted = work / "extracted"
        _extract(archive, extracted, source)
        new = extracted / "aclImdb"
        _check_layout(extracted, source)
        # The marker goes in before the rename, so it appears together with the data.
        record = {
            "source": source if local is None else str(local),
            "sha256": digest,
            "fetched_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        (new / MARKER).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        if paths.replace_folder(new, target, work / "previous"):
            log.info("replaced the earlier folder %s", target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        for folder in created:  # a failed first run leaves no empty folders behind
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    shutil.rmtree(work, ignore_errors=True)
    log.info("extracted %s into %s (sha256 %s)", record["source"], target, digest)
    return target


def _marker_source(folder: Path) -> str:
    try:
        return json.loads((folder / MARKER).read_text(encoding="utf-8")).get("source", "?")
    except (OSError, ValueError, AttributeError):
        return "?"


def _local_archive(source: str) -> Path:
    url = urlparse(source)
    if url.scheme == "file":
        path = Path(url2pathname(unquote(url.path)))
    elif url.scheme and len(url.scheme) > 1:  # a one-letter "scheme" is a Windows drive
        raise FetchError(
            f"source {source} has an unsupported scheme {url.scheme!r}; "
            "use an http(s) URL, a file:// URL or a local path"
        )
    else:
        given = Path(source).expanduser()
        path = given.absolute()
        # A project-relative path works from any cwd.
        if not path.exists() and not given.is_absolute() and paths.resolve(given).exists():
            path = paths.resolve(given)
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise FetchError(
            f"source archive {path} {what}; pass --source with the path or URL of "
            f"aclImdb_v1.tar.gz (default: {OFFICIAL_URL})"
        )
    return path.resolve()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _download(url: str, work: Path) -> tuple[Path, str]:
    """Stream ``url`` into ``work`` with a progress bar; returns the file and its sha256."""
    name = Path(urlparse(url).path).name or "aclImdb_v1.tar.gz"
    archive = work / name
    digest = hashlib.sha256()
    log.info("downloading %s", url)
    try:
        with requests.get(url, stream=True, timeout=TIMEOUT_S) as response:
            if response.status_code >= 400:
                raise FetchError(
                    f"downloading {url} failed: HTTP {response.status_code} {response.reason}; "
                    "check the URL, or download the archive yourself and pass its path "
                    "with --source"
                )
            total = int(response.headers.get("Content-Length", 0)) or None
            with (
                archive.open("wb") as f,
                tqdm(
                    total=total,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=name,
                    file=sys.stderr,
                ) as bar,
            ):
                # Raw bytes: a server that labels .tar.gz as Content-Encoding: gzip must not
                # get it decompressed on the way.
                for chunk in response.raw.stream(_CHUNK, decode_content=False):
                    f.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise FetchError(
            f"could not reach {url}: {exc}; check the network and the URL, or download the "
            "archive yourself and pass its path with --source"
        ) from None
    except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
        raise FetchError(
            f"downloading {url} broke off: {exc}; try again, or download the archive "
            "yourself and pass its path with --source"
        ) from None
    return archive, digest.hexdigest()


def _extract(archive: Path, into: Path, source: str) -> None:
    into.mkdir()
    try:
        with gzip.open(archive, "rb") as gz, tarfile.open(fileobj=gz, mode="r:") as tar:
            # "data" refuses absolute paths, ../ escapes, device files and outside links.
            tar.extractall(into, filter="data")
            # tarfile stops at the end-of-archive block; reading on to the end of the stream
            # makes gzip check its CRC and length, which catches damage in the tail too.
            while gz.read(_CHUNK):
                pass
    except tarfile.FilterError as exc:
        raise FetchError(
            f"archive {source} has an unsafe member ({exc}); it is not the aclImdb archive"
        ) from None
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        # Other OSErrors (disk full, permissions) are not the archive's fault: they propagate.
        raise FetchError(
            f"archive {source} is not a readable gzip tar (truncated or corrupt?): {exc}; "
            "download it again or pass --source with aclImdb_v1.tar.gz"
        ) from None


def _check_layout(extracted: Path, source: str) -> None:
    root = extracted / "aclImdb"
    missing = [name for name in ("train", "test") if not (root / name).is_dir()]
    if missing:
        found = sorted(p.name for p in extracted.iterdir())[:10]
        raise FetchError(
            f"archive {source} has no aclImdb/ folder with train/ and test/ "
            f"(missing: {', '.join('aclImdb/' + m for m in missing)}; top level: {found}); "
            "pass --source with the aclImdb_v1.tar.gz archive"
        )
