"""fetch-data: local and HTTP sources, skip/force, atomic replacement and clear errors.

Small archives are generated per test; the real archive is extracted once (slow). HTTP tests
use a real server on 127.0.0.1, so nothing reaches the internet.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import os
import socket
import tarfile
import threading
from pathlib import Path

import pytest

from lib.core.errors import FetchError
from lib.data.fetch import MARKER, fetch_data
from runner.cli.main import main

REVIEWS = {
    "aclImdb/README": "a tiny stand-in for the dataset\n",
    "aclImdb/train/pos/0_9.txt": "A wonderful film.",
    "aclImdb/train/neg/1_2.txt": "A dreadful film.",
    "aclImdb/test/pos/2_8.txt": "Loved it.",
    "aclImdb/test/neg/3_1.txt": "Hated it.",
}


def make_archive(path: Path, members: dict[str, str] | None = None) -> Path:
    """A .tar.gz at ``path`` holding ``members`` (name -> text), default a tiny aclImdb."""
    with tarfile.open(path, "w:gz") as tar:
        for name, text in (REVIEWS if members is None else members).items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(dest: Path) -> list[str]:
    """Entries in ``dest`` other than the aclImdb folder: temp files or folders left behind."""
    return sorted(p.name for p in dest.iterdir() if p.name != "aclImdb")


@pytest.fixture()
def archive(tmp_path: Path) -> Path:
    return make_archive(tmp_path / "aclImdb_v1.tar.gz")


@pytest.fixture()
def http_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A real HTTP server on 127.0.0.1 serving tmp_path/www; yields (folder, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")  # a CI proxy must not see these

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# --- local archives ---------------------------------------------------------------------


def test_local_archive_is_extracted_with_a_marker(tmp_path: Path, archive: Path):
    dest = tmp_path / "raw"
    out = fetch_data(source=str(archive), dest=dest)
    assert out == dest / "aclImdb"
    assert (out / "train" / "pos" / "0_9.txt").read_text() == "A wonderful film."
    assert (out / "test" / "neg" / "3_1.txt").is_file()
    marker = json.loads((out / MARKER).read_text())
    assert marker["source"] == str(archive)
    assert marker["sha256"] == sha256(archive)
    assert leftovers(dest) == []


def test_a_file_url_is_a_local_source(tmp_path: Path, archive: Path):
    out = fetch_data(source=archive.as_uri(), dest=tmp_path / "raw")
    assert (out / "train" / "neg" / "1_2.txt").is_file()


def test_default_and_relative_dest_follow_the_project_root(
    tmp_path: Path, archive: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path / "project"))
    assert fetch_data(source=archive) == tmp_path / "project" / "data" / "raw" / "aclImdb"
    out = fetch_data(source=archive, dest="elsewhere/raw")
    assert out == tmp_path / "project" / "elsewhere" / "raw" / "aclImdb"
    assert (out / MARKER).is_file()


def test_a_relative_source_is_taken_from_the_cwd_then_the_project_root(
    tmp_path: Path, archive: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(tmp_path)
    assert fetch_data(source=archive.name, dest=tmp_path / "a").is_dir()
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path / "a")
    assert fetch_data(source=archive.name, dest=tmp_path / "b").is_dir()


def test_a_second_call_skips_without_reading_the_source(tmp_path: Path, archive: Path):
    dest = tmp_path / "raw"
    out = fetch_data(source=archive, dest=dest)
    # Backdated: a rewrite would set a new time, however soon after the first run it came.
    os.utime(out / MARKER, ns=(1_000_000_000, 1_000_000_000))
    inode = (out / MARKER).stat().st_ino
    archive.unlink()  # a second run that touched the source would fail now
    assert fetch_data(source=archive, dest=dest) == out
    assert (out / MARKER).stat().st_mtime_ns == 1_000_000_000
    assert (out / MARKER).stat().st_ino == inode


def test_force_extracts_again(tmp_path: Path, archive: Path):
    dest = tmp_path / "raw"
    fetch_data(source=archive, dest=dest)
    (dest / "aclImdb" / "train" / "pos" / "stray.txt").write_text("not from the archive")
    newer = make_archive(tmp_path / "newer.tar.gz", {**REVIEWS, "aclImdb/test/pos/9_7.txt": "Ok"})
    out = fetch_data(source=newer, dest=dest, force=True)
    assert (out / "test" / "pos" / "9_7.txt").is_file()
    assert not (out / "train" / "pos" / "stray.txt").exists()
    assert json.loads((out / MARKER).read_text())["sha256"] == sha256(newer)
    assert leftovers(dest) == []


def test_an_incomplete_earlier_folder_is_replaced(tmp_path: Path, archive: Path):
    dest = tmp_path / "raw"
    (dest / "aclImdb" / "train").mkdir(parents=True)  # no marker: an interrupted older run
    (dest / "aclImdb" / "train" / "half.txt").write_text("x")
    out = fetch_data(source=archive, dest=dest)
    assert (out / MARKER).is_file()
    assert not (out / "train" / "half.txt").exists()


@pytest.mark.parametrize("damage", ["truncated", "not gzip", "bad crc"])
def test_a_corrupt_archive_leaves_the_earlier_extraction_alone(
    tmp_path: Path, archive: Path, damage: str
):
    dest = tmp_path / "raw"
    fetch_data(source=archive, dest=dest)
    before = (dest / "aclImdb" / MARKER).read_text()
    data = archive.read_bytes()
    bad = tmp_path / "bad.tar.gz"
    if damage == "truncated":
        bad.write_bytes(data[: len(data) // 2])
    elif damage == "not gzip":
        bad.write_text("<html>Not Found</html>")
    else:
        bad.write_bytes(data[:-8] + bytes(b ^ 0xFF for b in data[-8:-4]) + data[-4:])
    with pytest.raises(FetchError, match=r"bad\.tar\.gz is not a readable gzip tar"):
        fetch_data(source=bad, dest=dest, force=True)
    assert (dest / "aclImdb" / MARKER).read_text() == before
    assert (dest / "aclImdb" / "train" / "pos" / "0_9.txt").is_file()
    assert leftovers(dest) == []


@pytest.mark.parametrize(
    "members",
    [
        {"imdb/train/pos/0_9.txt": "x", "imdb/test/pos/1_9.txt": "y"},
        {"aclImdb/train/pos/0_9.txt": "x"},
    ],
    ids=["no aclImdb", "no test"],
)
def test_an_archive_without_the_aclimdb_layout_is_refused(tmp_path: Path, members):
    other = make_archive(tmp_path / "other.tar.gz", members)
    dest = tmp_path / "raw"
    with pytest.raises(FetchError, match=r"other\.tar\.gz has no aclImdb/ folder"):
        fetch_data(source=other, dest=dest)
    assert not dest.exists()  # a failed first run leaves not even an empty folder


def test_an_unsafe_member_is_refused(tmp_path: Path):
    evil = make_archive(tmp_path / "evil.tar.gz", {**REVIEWS, "../escaped.txt": "gotcha"})
    dest = tmp_path / "deep" / "raw"
    with pytest.raises(FetchError, match="unsafe member"):
        fetch_data(source=evil, dest=dest)
    assert not any(p.name == "escaped.txt" for p in tmp_path.rglob("*"))
    assert not (tmp_path / "deep").exists()


def test_a_missing_source_is_named(tmp_path: Path):
    missing = tmp_path / "nope.tar.gz"
    with pytest.raises(FetchError, match=r"nope\.tar\.gz does not exist.*--source"):
        fetch_data(source=missing, dest=tmp_path / "raw")
    assert not (tmp_path / "raw").exists()


def test_a_dest_that_is_a_file_is_refused(tmp_path: Path, archive: Path):
    dest = tmp_path / "raw"
    dest.write_text("oops")
    with pytest.raises(FetchError, match=r"raw exists but is a file"):
        fetch_data(source=archive, dest=dest)


def test_an_unsupported_scheme_is_refused(tmp_path: Path):
    with pytest.raises(FetchError, match="unsupported scheme 'ftp'"):
        fetch_data(source="ftp://example.org/a.tar.gz", dest=tmp_path / "raw")


# --- HTTP ---------------------------------------------------------------------------------


def test_download_over_http(tmp_path: Path, archive: Path, http_root, capfd):
    root, base = http_root
    served = root / "aclImdb_v1.tar.gz"
    served.write_bytes(archive.read_bytes())
    dest = tmp_path / "raw"
    out = fetch_data(source=f"{base}/aclImdb_v1.tar.gz", dest=dest)
    assert (out / "test" / "pos" / "2_8.txt").read_text() == "Loved it."
    marker = json.loads((out / MARKER).read_text())
    assert marker == {**marker, "source": f"{base}/aclImdb_v1.tar.gz", "sha256": sha256(served)}
    assert leftovers(dest) == []  # the downloaded archive is gone too
    assert "aclImdb_v1.tar.gz" in capfd.readouterr().err  # the progress bar


def test_an_http_error_names_status_and_url(tmp_path: Path, http_root):
    _, base = http_root
    dest = tmp_path / "raw"
    with pytest.raises(FetchError, match=rf"{base}/missing\.tar\.gz failed: HTTP 404"):
        fetch_data(source=f"{base}/missing.tar.gz", dest=dest)
    assert not dest.exists()


def test_a_failed_download_keeps_the_earlier_extraction(tmp_path: Path, archive: Path, http_root):
    _, base = http_root
    dest = tmp_path / "raw"
    fetch_data(source=archive, dest=dest)
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch_data(source=f"{base}/missing.tar.gz", dest=dest, force=True)
    assert (dest / "aclImdb" / MARKER).is_file()
    assert leftovers(dest) == []


def test_an_unreachable_host_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with socket.socket() as s:  # a port that was just free and now has no listener
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/aclImdb_v1.tar.gz"
    dest = tmp_path / "raw"
    with pytest.raises(FetchError, match=rf"could not reach {url}"):
        fetch_data(source=url, dest=dest)
    assert not dest.exists()


# --- CLI and the real archive ---------------------------------------------------------


def test_cli_reports_success_and_errors(tmp_path: Path, archive: Path, runner_logs, capsys):
    dest = tmp_path / "raw"
    assert main(["fetch-data", "--source", str(archive), "--dest", str(dest)]) == 0
    assert f"raw data ready: {dest / 'aclImdb'}" in capsys.readouterr().out

    missing = tmp_path / "gone.tar.gz"
    args = ["fetch-data", "--source", str(missing), "--dest", str(dest), "--force"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"error: source archive {missing} does not exist" in err


@pytest.mark.slow
def test_the_real_archive(tmp_path: Path, archive_path: Path, runner_logs, capsys):
    dest = tmp_path / "raw"
    assert main(["fetch-data", "--source", str(archive_path), "--dest", str(dest)]) == 0
    out = dest / "aclImdb"
    for split in ("train", "test"):
        for label in ("pos", "neg"):
            assert len(os.listdir(out / split / label)) == 12_500
    marker = json.loads((out / MARKER).read_text())
    expected = archive_path.with_name(archive_path.name + ".sha256")
    if expected.is_file():
        assert marker["sha256"] == expected.read_text().split()[0]
    assert leftovers(dest) == []
    capsys.readouterr()

    # Present now: the second run is a skip, so the marker is not rewritten.
    os.utime(out / MARKER, ns=(1_000_000_000, 1_000_000_000))  # a rewrite would show
    assert main(["fetch-data", "--source", str(archive_path), "--dest", str(dest)]) == 0
    assert (out / MARKER).stat().st_mtime_ns == 1_000_000_000
    assert "skipping fetch" in capsys.readouterr().err
