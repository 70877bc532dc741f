"""Keep secrets out of notebooks, parameters and logs.

Secrets reach the code through the environment only (``MLFLOW_TRACKING_PASSWORD``,
``GOOGLE_APPLICATION_CREDENTIALS``, ...), never as notebook parameters, because papermill
writes parameters into the executed notebook. What still leaks into text (a traceback, a
printed config) is masked: ``secret_values`` lists what to hide, ``mask_text`` hides it (the
runner masks every save of a notebook as text), ``SecretFilter`` hides it in log records.
A URL's own ``user:password@`` is a secret too: refused in a parameter's value
(:func:`check_parameter_names`), and its password masked in any text, known beforehand or not.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from lib.core.errors import ParameterError

MASK = "********"
MIN_SECRET_LENGTH = 4  # shorter values would mask half of every text
_MULTILINE_PART_LENGTH = 16  # lines of a multi-line secret (a PEM key) masked on their own

# Values that are never worth masking even when a secret-looking variable holds them.
_TRIVIAL_VALUES = {"true", "false", "none", "null", "yes", "no", "on", "off"}
# Variables named like this hold secrets (besides is_secret_name's rules for parameters).
_SECRET_ENV_SUFFIXES = ("_PASSWORD", "_PASSWD", "_TOKEN", "_SECRET", "_KEY")
_SECRET_ENV_NAMES = ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "PGPASSWORD")
_CREDENTIALS_ENV = "GOOGLE_APPLICATION_CREDENTIALS"
# Fields of a Google credentials file whose values are the same public constants for everyone.
_PUBLIC_CREDENTIAL_FIELDS = {
    "type",
    "auth_uri",
    "token_uri",
    "auth_provider_x509_cert_url",
    "universe_domain",
}
_MAX_CREDENTIALS_FILE_BYTES = 1_000_000
_RECORD_ATTRIBUTES = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
}

# Parts of a name: "apiKey" -> api, key; "MLFLOW_TRACKING_PASSWORD" -> mlflow, tracking, password.
_NAME_PARTS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_SECRET_PARTS = {"key", "token", "passphrase"}
_SECRET_SUBSTRINGS = ("password", "passwd", "secret", "credential")

# ://user:password@ in any text (the scheme is not needed to find it, and a pattern that
# starts at "://" stays linear on long runs of letters, such as a notebook's base64 images).
# The password runs to the netloc's last "@" (urllib splits there too), never past a "/",
# "?", "#", a space, a quote or an angle bracket.
_URL_CREDENTIALS = re.compile(r"://([^\s/?#@:\"'<>\\]*):([^\s/?#\"'<>\\]+)@")
# A ${VAR} in place of the password: replaced from the environment where the URL is opened
# (an Optuna storage), so not a secret itself.
_PLACEHOLDER = re.compile(r"\$\{\w+\}")
_MLFLOW_CREDENTIALS = "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
_STORAGE_CREDENTIALS = "PGPASSWORD (PostgreSQL), or ${VAR} in place of the password"


def is_secret_name(name: str) -> bool:
    """Whether ``name`` looks like it holds a secret (case-insensitive).

    True for names containing password, passwd, secret or credential(s), and for names with
    ``key`` or ``token`` as a word part (``api_key``, ``KEY``, ``apiKey``, ``access_token``);
    not for ``keyword``, ``monkey`` or ``max_tokens``.
    """
    lowered = name.lower()
    if any(s in lowered for s in _SECRET_SUBSTRINGS):
        return True
    return any(part.lower() in _SECRET_PARTS for part in _NAME_PARTS.findall(name))


def check_parameter_names(params: Mapping[str, Any]) -> None:
    """Raise ParameterError if a notebook parameter's name looks like a secret, or if its
    value holds a URL with a password in it (``scheme://user:password@...``), nested
    mappings and lists included (``train_params.mlflow_tracking_uri``).

    Parameters are written into the executed notebook (and its HTML), so secrets must come
    from the environment instead.
    """
    bad = sorted(str(name) for name in params if is_secret_name(str(name)))
    if bad:
        raise ParameterError(
            ", ".join(bad),
            f"{'this name looks' if len(bad) == 1 else 'these names look'} like a secret, and "
            "notebook parameters are saved in the executed notebook: pass secrets through the "
            "environment instead (e.g. MLFLOW_TRACKING_PASSWORD, "
            "GOOGLE_APPLICATION_CREDENTIALS), not as parameters",
        )
    for name, value in params.items():
        for key, url in _urls_with_passwords(str(name), value):
            raise ParameterError(
                key,
                "a password in a URL would be saved in the executed notebook: give the URL "
                "without user:password@, and the credentials through the environment: "
                f"{_credentials_hint(key, url)}",
            )


def _urls_with_passwords(key: str, value: Any) -> Iterable[tuple[str, str]]:
    """``(dotted key, URL)`` for each string under ``value`` holding a password in a URL."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _urls_with_passwords(f"{key}.{k}", v)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _urls_with_passwords(f"{key}[{i}]", v)
    elif isinstance(value, str):
        for match in _url_credentials(value):
            yield key, value[: match.end()]


def _credentials_hint(key: str, url: str) -> str:
    """Where the credentials of ``url`` (the value of ``key``) go instead."""
    lowered = key.lower()
    if "mlflow" in lowered:
        return _MLFLOW_CREDENTIALS
    if "storage" in lowered:
        return _STORAGE_CREDENTIALS
    if url.lower().endswith(("http", "https"), 0, url.index("://")):
        return f"{_MLFLOW_CREDENTIALS} for an MLflow server"
    return f"{_STORAGE_CREDENTIALS} for an Optuna storage"


def _url_credentials(text: str) -> Iterable[re.Match[str]]:
    """The ``scheme://user:password@`` matches in ``text`` (not ``${VAR}`` passwords)."""
    if "://" not in text or "@" not in text:  # the common case, without the regex
        return
    for match in _URL_CREDENTIALS.finditer(text):
        if not _not_secret(match.group(2)):
            yield match


def _not_secret(password: str, mask: str = MASK) -> bool:
    """Already masked, or a ${VAR} placeholder."""
    return password == mask or _PLACEHOLDER.fullmatch(password) is not None


def url_passwords(text: str) -> list[str]:
    """The passwords of the URLs with credentials in ``text``, as written and decoded."""
    from urllib.parse import unquote

    found = []
    for match in _url_credentials(text):
        found += [match.group(2), unquote(match.group(2))]
    return found


def mask_url_passwords(text: str, mask: str = MASK) -> str:
    """``text`` with the password of each ``scheme://user:password@`` replaced by ``mask``."""
    if "://" not in text or "@" not in text:
        return text

    def masked(match: re.Match[str]) -> str:
        if _not_secret(match.group(2), mask):
            return match.group(0)
        return f"://{match.group(1)}:{mask}@"

    return _URL_CREDENTIALS.sub(masked, text)


def _worth_masking(value: Any) -> bool:
    return (
        isinstance(value, str)
        and len(value.strip()) >= MIN_SECRET_LENGTH
        and value.strip().lower() not in _TRIVIAL_VALUES
    )


def _json_strings(data: Any, key: str | None = None) -> Iterable[str]:
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _json_strings(v, str(k))
    elif isinstance(data, list):
        for v in data:
            yield from _json_strings(v, key)
    elif isinstance(data, str) and key not in _PUBLIC_CREDENTIAL_FIELDS:
        yield data


@lru_cache(maxsize=8)
def _credentials_file_values(path: str, mtime: float, size: int) -> tuple[str, ...]:
    """The content of a credentials file and, if it is JSON, the string values in it."""
    del mtime, size  # only part of the cache key
    try:
        content = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ()
    values = [content, content.strip()]
    try:
        values.extend(_json_strings(json.loads(content)))
    except ValueError:
        pass
    return tuple(values)


def _credentials_values(path: str) -> tuple[str, ...]:
    try:
        st = os.stat(path)
    except OSError:
        return ()
    if not Path(path).is_file() or st.st_size > _MAX_CREDENTIALS_FILE_BYTES:
        return ()
    return _credentials_file_values(path, st.st_mtime, st.st_size)


def _is_secret_env_name(name: str) -> bool:
    upper = name.upper()
    return upper in _SECRET_ENV_NAMES or upper.endswith(_SECRET_ENV_SUFFIXES)


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """The secret values found in ``environ`` (default ``os.environ``), longest first.

    MLFLOW_TRACKING_PASSWORD/TOKEN, every ``*_PASSWORD``, ``*_PASSWD``, ``*_TOKEN``,
    ``*_SECRET`` and ``*_KEY`` variable, GOOGLE_APPLICATION_CREDENTIALS (the path), the
    content of the file it names and, when that is JSON, each string value in it (such as
    private_key and private_key_id; not the public constants such as token_uri), and the
    password of any URL with credentials in any variable (``MLFLOW_TRACKING_URI``,
    ``DATABASE_URL``, ...). Values shorter than 4 characters and words such as ``true`` are
    skipped.
    """
    environ = os.environ if environ is None else environ
    found: list[str] = []
    for name, value in environ.items():
        if _is_secret_env_name(name):
            found.append(value)
        elif _may_hold_url_credentials(value):
            found.extend(url_passwords(value))
    credentials = environ.get(_CREDENTIALS_ENV)
    if credentials:
        found.append(credentials)
        found.extend(_credentials_values(credentials))
    unique = {v for v in found if _worth_masking(v)}
    return sorted(unique, key=lambda v: (-len(v), v))


def _may_hold_url_credentials(value: str) -> bool:
    return "://" in value and "@" in value


def _variants(value: str) -> Iterable[str]:
    """The forms a value can take in text: raw, JSON/repr-escaped, and long lines of it."""
    yield value
    escaped = json.dumps(value)[1:-1]
    if escaped != value:
        yield escaped
        yield json.dumps(value, ensure_ascii=False)[1:-1]
    if "\n" in value:
        for line in value.splitlines():
            if len(line.strip()) >= _MULTILINE_PART_LENGTH:
                yield line.strip()


@lru_cache(maxsize=32)
def _pattern(values: tuple[str, ...]) -> re.Pattern[str] | None:
    forms = {form for v in values if _worth_masking(v) for form in _variants(v)}
    if not forms:
        return None
    # Longest first: alternation takes the first alternative that matches at a position.
    ordered = sorted(forms, key=lambda f: (-len(f), f))
    return re.compile("|".join(re.escape(f) for f in ordered))


def mask_text(text: str, values: Iterable[str], mask: str = MASK) -> str:
    """``text`` with every occurrence of each value (raw or JSON-escaped) replaced by
    ``mask``, and the password of every ``scheme://user:password@`` in it too."""
    if not text or not isinstance(text, str):
        return text
    pattern = _pattern(tuple(values))
    if pattern is not None:
        text = pattern.sub(lambda _: mask, text)
    return mask_url_passwords(text, mask)


class SecretFilter(logging.Filter):
    """A logging filter that masks secret values in records (message, args, traceback).

    With ``values=None`` the values are taken from the environment when a record is
    filtered (and recomputed only when the relevant variables change), so secrets set after
    logging was configured are masked too. Add it to handlers, not loggers, so that records
    from every logger pass through it.
    """

    def __init__(self, values: Iterable[str] | None = None, mask: str = MASK, name: str = ""):
        super().__init__(name)
        self._fixed = None if values is None else tuple(values)
        self.mask = mask
        self._env_key: tuple[tuple[str, str], ...] | None = None
        self._env_values: tuple[str, ...] = ()

    def values(self) -> tuple[str, ...]:
        """The values this filter masks now."""
        if self._fixed is not None:
            return self._fixed
        key = tuple(
            sorted(
                (k, v)
                for k, v in os.environ.items()
                if _is_secret_env_name(k) or k == _CREDENTIALS_ENV or _may_hold_url_credentials(v)
            )
        )
        if key != self._env_key:
            self._env_key, self._env_values = key, tuple(secret_values())
        return self._env_values

    def filter(self, record: logging.LogRecord) -> bool:
        values = self.values()
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: mask the parts as they are
            message = None
        if message is not None:
            masked = mask_text(message, values, self.mask)
            if masked != message:
                record.msg, record.args = masked, None
        else:
            record.msg = mask_text(str(record.msg), values, self.mask)
            if isinstance(record.args, tuple):
                record.args = tuple(
                    mask_text(a, values, self.mask) if isinstance(a, str) else a
                    for a in record.args
                )
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            masked = mask_text(record.exc_text, values, self.mask)
            if masked != record.exc_text:
                # Formatters (python-json-logger's too) format exc_info when it is set.
                record.exc_text, record.exc_info = masked, None
        if record.stack_info:
            record.stack_info = mask_text(record.stack_info, values, self.mask)
        for name, value in list(vars(record).items()):  # extra={...} fields
            if name not in _RECORD_ATTRIBUTES and isinstance(value, str):
                setattr(record, name, mask_text(value, values, self.mask))
        return True
