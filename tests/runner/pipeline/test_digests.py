"""runner.pipeline.digests: the digest cache sees a rewrite that keeps a file's size and mtime,
and does not cache a file changed just now.
"""

from __future__ import annotations

import json
import os
import time

from runner.pipeline import digests


def test_the_digest_cache_sees_a_rewrite_that_keeps_size_and_mtime(tmp_path, monkeypatch):
    monkeypatch.setattr(digests, "RACY_S", -1.0)  # cache even what was just written
    path = tmp_path / "review.txt"
    path.write_text("good")
    os.utime(path, (1_000_000_000, 1_000_000_000))
    cache = tmp_path / "cache.json"
    files = digests.FileDigests(cache)
    before = files.file(path)
    files.save()
    assert str(path) in json.loads(cache.read_text())["files"]  # cached
    assert digests.FileDigests(cache).file(path) == before
    time.sleep(0.05)
    path.write_text("evil")  # the same size
    os.utime(path, (1_000_000_000, 1_000_000_000))  # mtime put back; ctime moved on
    assert digests.FileDigests(cache).file(path) == digests.of_bytes(b"evil") != before


def test_a_file_changed_just_now_is_not_cached(tmp_path):
    path = tmp_path / "review.txt"
    path.write_text("fresh")
    files = digests.FileDigests(tmp_path / "cache.json")
    files.file(path)
    files.save()
    assert not (tmp_path / "cache.json").exists()  # racily clean: hashed again next time
