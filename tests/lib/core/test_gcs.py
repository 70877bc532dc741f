import uuid

import pytest

from lib.core import gcs
from lib.core.errors import StorageError
from lib.core.gcs import download, is_gcs_uri, split_gcs_uri, upload
from tests.support.services import BUCKET


@pytest.mark.parametrize(
    "uri, expected",
    [
        ("gs://bucket", ("bucket", "")),
        ("gs://bucket/", ("bucket", "")),
        ("gs://bucket/a/b.txt", ("bucket", "a/b.txt")),
        ("gs://bucket/folder/", ("bucket", "folder/")),
    ],
)
def test_split_gcs_uri(uri, expected):
    assert is_gcs_uri(uri)
    assert split_gcs_uri(uri) == expected


@pytest.mark.parametrize("value", ["/tmp/x", "s3://bucket/x", "gs:/bucket", "", None])
def test_not_gcs_uris(value):
    assert not is_gcs_uri(value)


def test_split_gcs_uri_rejects_bad_uris():
    with pytest.raises(ValueError, match="not a gs://"):
        split_gcs_uri("/local/path")
    with pytest.raises(StorageError, match="no bucket"):
        split_gcs_uri("gs:///path")


def _tree(folder):
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.slow
@pytest.mark.services
def test_folder_round_trip(gcs_env, tmp_path):
    from google.cloud import storage as cloud_storage

    src = tmp_path / "model"
    (src / "assets" / "deep").mkdir(parents=True)
    (src / "saved_model.pb").write_bytes(b"\x00\x01binary")
    (src / "assets" / "vocab.txt").write_text("the\nmovie\n", encoding="utf-8")
    (src / "assets" / "deep" / "x.json").write_text('{"a": 1}', encoding="utf-8")
    prefix = f"storage-tests/{uuid.uuid4().hex}/model"
    uri = f"gs://{BUCKET}/{prefix}"

    uploaded = upload(src, uri)
    assert sorted(uploaded) == sorted(f"{uri}/{name}" for name in _tree(src))
    names = {b.name for b in cloud_storage.Client().list_blobs(BUCKET, prefix=prefix + "/")}
    assert names == {f"{prefix}/{name}" for name in _tree(src)}

    dest = tmp_path / "copy"
    written = download(uri, dest)
    assert len(written) == 3
    assert _tree(dest) == _tree(src)
    # a trailing slash means the same folder; a sibling prefix ("model2") is not included
    upload(src / "saved_model.pb", f"gs://{BUCKET}/{prefix}2/other.pb")
    assert len(download(uri + "/", tmp_path / "copy2")) == 3
    assert _tree(tmp_path / "copy2") == _tree(src)


@pytest.mark.slow
@pytest.mark.services
def test_single_file_round_trip(gcs_env, tmp_path):
    src = tmp_path / "metrics.json"
    src.write_text('{"accuracy": 0.9}', encoding="utf-8")
    base = f"gs://{BUCKET}/storage-tests/{uuid.uuid4().hex}"

    assert upload(src, f"{base}/renamed.json") == [f"{base}/renamed.json"]
    assert upload(src, f"{base}/into/") == [f"{base}/into/metrics.json"]

    target = tmp_path / "out" / "m.json"
    assert download(f"{base}/renamed.json", target) == [target]
    assert target.read_text(encoding="utf-8") == '{"accuracy": 0.9}'
    into = tmp_path / "existing"
    into.mkdir()
    assert download(f"{base}/into/metrics.json", into) == [into / "metrics.json"]


@pytest.mark.slow
@pytest.mark.services
def test_missing_object_and_bucket_errors(gcs_env, tmp_path):
    with pytest.raises(StorageError, match="nothing at"):
        download(f"gs://{BUCKET}/storage-tests/{uuid.uuid4().hex}/absent", tmp_path / "x")
    with pytest.raises(FileNotFoundError):
        upload(tmp_path / "absent", f"gs://{BUCKET}/x")

    src = tmp_path / "f.txt"
    src.write_text("x", encoding="utf-8")
    missing = f"no-such-bucket-{uuid.uuid4().hex[:8]}"
    with pytest.raises(StorageError) as info:
        upload(src, f"gs://{missing}/a/f.txt")
    assert missing in str(info.value) and "does not exist" in str(info.value)
    with pytest.raises(StorageError) as info:
        download(f"gs://{missing}/a", tmp_path / "out")
    assert missing in str(info.value) and "does not exist" in str(info.value)


def test_missing_credentials_says_what_to_set(monkeypatch, tmp_path):
    for name in (
        "STORAGE_EMULATOR_HOST",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "GOOGLE_CLOUD_PROJECT",
        "GCLOUD_PROJECT",
    ):
        monkeypatch.delenv(name, raising=False)
    empty = tmp_path / "home"
    empty.mkdir()
    monkeypatch.setenv("HOME", str(empty))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(empty / "gcloud"))
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")  # no metadata server: fail fast
    monkeypatch.setattr(gcs, "_clients", {})  # no client cached by an earlier test
    src = tmp_path / "f.txt"
    src.write_text("x", encoding="utf-8")
    with pytest.raises(StorageError) as info:
        upload(src, "gs://any-bucket/f.txt")
    message = str(info.value)
    assert "GOOGLE_APPLICATION_CREDENTIALS" in message
    assert "STORAGE_EMULATOR_HOST" in message


@pytest.mark.slow
@pytest.mark.services
def test_content_hashes_say_what_changed_without_downloading(gcs_env, tmp_path):
    src = tmp_path / "reviews"
    (src / "pos").mkdir(parents=True)
    (src / "a.txt").write_text("a fine film")
    (src / "pos" / "b.txt").write_text("a great film")
    uri = f"gs://{BUCKET}/storage-tests/{uuid.uuid4().hex}/reviews"
    upload(src, uri)
    folder = gcs.content_hashes(uri)
    assert sorted(folder) == ["a.txt", "pos/b.txt"]
    assert all(value.startswith(("md5:", "crc32c:")) for value in folder.values())
    assert gcs.content_hashes(f"{uri}/pos/b.txt") == {"": folder["pos/b.txt"]}
    assert gcs.content_hashes(f"{uri}/pos/") == {"b.txt": folder["pos/b.txt"]}
    (src / "pos" / "b.txt").write_text("a dull film")
    upload(src / "pos" / "b.txt", f"{uri}/pos/b.txt")
    assert gcs.content_hashes(uri) == {**folder, "pos/b.txt": gcs.content_hashes(uri)["pos/b.txt"]}
    assert gcs.content_hashes(uri)["pos/b.txt"] != folder["pos/b.txt"]
    assert gcs.content_hashes(f"{uri}-gone") == {}  # nothing there: nothing to hash
