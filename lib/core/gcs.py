"""Copy files and folders to and from Google Cloud Storage (``gs://bucket/prefix``).

Credentials come from the environment: GOOGLE_APPLICATION_CREDENTIALS (a service account
key file) or other Application Default Credentials; with STORAGE_EMULATOR_HOST set
(``http://127.0.0.1:9023``) the client talks to a local emulator anonymously instead. The
client is created on first use, once per such environment.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from lib.core.errors import StorageError, first_line

if TYPE_CHECKING:
    from google.cloud.storage import Blob, Client

GCS_SCHEME = "gs://"

_clients: dict[tuple[str | None, str | None], Client] = {}
_clients_lock = threading.Lock()


def is_gcs_uri(s: object) -> bool:
    """Whether ``s`` is a string starting with ``gs://``."""
    return isinstance(s, str) and s.startswith(GCS_SCHEME)


def split_gcs_uri(uri: str) -> tuple[str, str]:
    """``gs://bucket/a/b`` -> ``("bucket", "a/b")``; the prefix has no leading slash."""
    if not is_gcs_uri(uri):
        raise ValueError(f"not a gs:// URI: {uri!r}")  # the callers' check: is_gcs_uri
    bucket, _, prefix = uri[len(GCS_SCHEME) :].partition("/")
    if not bucket:
        raise StorageError(f"no bucket in {uri!r}: write it as gs://BUCKET/PATH")
    return bucket, prefix.lstrip("/")


def _credentials_error(exc: Exception) -> StorageError:
    return StorageError(
        "no Google Cloud credentials found: set GOOGLE_APPLICATION_CREDENTIALS to the path of "
        "a service account key file (or run `gcloud auth application-default login`), or set "
        "STORAGE_EMULATOR_HOST (e.g. http://127.0.0.1:9023) to use a local GCS emulator "
        f"({exc.__class__.__name__})"
    )


def get_client() -> Client:
    """The storage client for the current environment (created lazily, then reused)."""
    from google.auth.exceptions import DefaultCredentialsError
    from google.cloud import storage

    key = (
        os.environ.get("STORAGE_EMULATOR_HOST"),
        os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"),
    )
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            try:
                client = storage.Client()
            except DefaultCredentialsError as exc:
                raise _credentials_error(exc) from exc
            _clients[key] = client
        return client


def _translate(exc: Exception, bucket: str, uri: str, blob: str | None = None) -> StorageError:
    """A StorageError for ``exc``; a NotFound means the bucket unless ``blob`` is named."""
    from google.api_core import exceptions as api
    from google.auth.exceptions import DefaultCredentialsError, RefreshError

    if isinstance(exc, api.NotFound):
        if blob is not None:
            return StorageError(
                f"gs://{bucket}/{blob} disappeared while copying {uri}: copy it again"
            )
        return StorageError(f"bucket {bucket!r} does not exist (for {uri}): create it first")
    if isinstance(exc, api.Forbidden | api.Unauthorized):
        return StorageError(
            f"no permission for bucket {bucket!r} ({uri}): check the roles of the account in "
            f"GOOGLE_APPLICATION_CREDENTIALS: {first_line(exc)}"
        )
    if isinstance(exc, DefaultCredentialsError | RefreshError):
        return _credentials_error(exc)
    return StorageError(
        f"{uri}: {exc.__class__.__name__}: {first_line(exc)}; check the bucket and the network"
    )


def _translated_errors() -> tuple[type[Exception], ...]:
    from google.api_core.exceptions import GoogleAPIError
    from google.auth.exceptions import GoogleAuthError

    return (GoogleAPIError, GoogleAuthError)


def check_bucket(gs_uri: str, client: Client | None = None) -> None:
    """Raise StorageError (naming the bucket) unless ``gs_uri``'s bucket can be listed.

    Listing one object needs only the object permissions an artifact writer has anyway,
    unlike reading the bucket's metadata.
    """
    bucket_name, prefix = split_gcs_uri(gs_uri)
    try:
        client = client or get_client()
    except StorageError as exc:
        raise StorageError(f"cannot use bucket {bucket_name!r} ({gs_uri}): {exc}") from None
    try:
        list(client.list_blobs(bucket_name, prefix=prefix or None, max_results=1))
    except _translated_errors() as exc:
        error = _translate(exc, bucket_name, gs_uri)
        if bucket_name not in str(error):
            error = StorageError(f"cannot use bucket {bucket_name!r} ({gs_uri}): {error}")
        raise error from exc


def exists(gs_uri: str, client: Client | None = None) -> bool:
    """Whether the object ``gs_uri`` exists (StorageError when the bucket cannot be used)."""
    bucket_name, name = split_gcs_uri(gs_uri)
    try:
        return (client or get_client()).bucket(bucket_name).blob(name).exists()
    except _translated_errors() as exc:
        raise _translate(exc, bucket_name, gs_uri) from exc


def upload(
    local_path: str | os.PathLike[str], gs_uri: str, client: Client | None = None
) -> list[str]:
    """Copy a file or a whole folder (recursively) to ``gs_uri``; return the blob URIs.

    A file goes to ``gs_uri`` itself, or into it when ``gs_uri`` ends with ``/``. A folder's
    files go under ``gs_uri`` keeping their relative paths (``dir/a/b.txt`` ->
    ``gs_uri/a/b.txt``).
    """
    local = Path(local_path)
    bucket_name, prefix = split_gcs_uri(gs_uri)
    if local.is_file():
        name = prefix + local.name if not prefix or prefix.endswith("/") else prefix
        pairs = [(local, name)]
    elif local.is_dir():
        base = prefix.rstrip("/")
        pairs = [
            (f, f"{base}/{f.relative_to(local).as_posix()}".lstrip("/"))
            for f in sorted(local.rglob("*"))
            if f.is_file()
        ]
    else:
        raise FileNotFoundError(f"nothing to upload: {local} does not exist")
    try:
        bucket = (client or get_client()).bucket(bucket_name)
        uploaded = []
        for path, name in pairs:
            bucket.blob(name).upload_from_filename(str(path))
            uploaded.append(f"{GCS_SCHEME}{bucket_name}/{name}")
    except _translated_errors() as exc:
        raise _translate(exc, bucket_name, gs_uri) from exc
    return uploaded


def _objects_at(gs_uri: str, client: Client | None) -> tuple[str, list[tuple[Blob, str]]]:
    """The bucket's name, and the object ``gs_uri`` names as ``[(blob, "")]``, else every
    object under it as a folder with its name relative to it (none: an empty list)."""
    bucket_name, prefix = split_gcs_uri(gs_uri)
    folder = prefix.rstrip("/")
    try:
        client = client or get_client()
        blobs = list(client.list_blobs(bucket_name, prefix=folder or None))
    except _translated_errors() as exc:
        raise _translate(exc, bucket_name, gs_uri) from exc
    exact = [b for b in blobs if b.name == folder and not prefix.endswith("/")]
    if exact:
        return bucket_name, [(exact[0], "")]
    found = []
    for blob in blobs:
        if (folder and not blob.name.startswith(folder + "/")) or blob.name.endswith("/"):
            continue  # a sibling such as "folder2/x", or a folder placeholder
        found.append((blob, blob.name[len(folder) :].lstrip("/")))
    return bucket_name, found


def content_hashes(gs_uri: str, client: Client | None = None) -> dict[str, str]:
    """What the store says of the content of the object ``gs_uri`` (key ``""``), else of
    each object under it as a folder (keys: names relative to it), without downloading:
    its MD5, else its CRC32C (a composite object has no MD5), else its generation. Empty
    when there is nothing there."""
    _, found = _objects_at(gs_uri, client)
    return {
        relative: (
            f"md5:{blob.md5_hash}"
            if blob.md5_hash
            else f"crc32c:{blob.crc32c}"
            if blob.crc32c
            else f"generation:{blob.generation}"
        )
        for blob, relative in found
    }


def download(
    gs_uri: str, local_path: str | os.PathLike[str], client: Client | None = None
) -> list[Path]:
    """Copy the blob ``gs_uri``, or every blob under it as a folder, to ``local_path``.

    A single blob is written to ``local_path`` (or into it, if that is an existing folder);
    a folder's blobs are written under ``local_path`` keeping their relative paths. Returns
    the local files written.
    """
    bucket_name, found = _objects_at(gs_uri, client)
    local = Path(local_path)
    if found and found[0][1] == "":  # the object itself
        name = PurePosixPath(found[0][0].name).name
        plan = [(found[0][0], local / name if local.is_dir() else local)]
    else:
        plan = []
        for blob, relative in found:
            target = local.joinpath(*PurePosixPath(relative).parts)
            if ".." in PurePosixPath(relative).parts:
                raise StorageError(
                    f"refusing to write {blob.name!r} outside {local}: the object's name holds "
                    "'..'; rename it in the bucket"
                )
            plan.append((blob, target))
        if not plan:
            raise StorageError(f"nothing at {gs_uri}: no such object or folder; check the path")
    written = []
    for blob, target in plan:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            blob.download_to_filename(str(target))
        except _translated_errors() as exc:
            raise _translate(exc, bucket_name, gs_uri, blob=blob.name) from exc
        written.append(target)
    return written
