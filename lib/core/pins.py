"""Reading the locks that scripts/lock.py compiles (docs/dependencies.md): each package's
pinned version and hashes, and which packages the lock's input names directly.

Standard library only: scripts/lock.py imports it before any environment exists.
"""

from __future__ import annotations

import re
from pathlib import Path

# The lock of the training role (train, tune and batch scoring run in its image): what the
# pipeline's stamps cover and what a run records the installed versions of.
TRAIN_LOCK = "requirements.lock"

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(\S+)")
_HASH = re.compile(r"--hash=(sha256:[0-9a-f]{64})")


def normalized(name: str) -> str:
    """A distribution name as the package index compares it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_lines(name: str, root: Path) -> list[str]:
    """The requirement and option lines of an input, ``-r`` files inlined, comments dropped."""
    lines = []
    for raw in (root / name).read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-r "):
            lines += requirement_lines(line[3:].strip(), root)
        else:
            lines.append(line)
    return lines


def read_lock(path: Path) -> dict[str, tuple[str, frozenset[str]]]:
    """A lock's packages: normalized name -> (version, the hashes of its files)."""
    out: dict[str, tuple[str, frozenset[str]]] = {}
    current = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if pin := _PIN.match(line):
            current = normalized(pin.group(1))
            out[current] = (pin.group(2), frozenset())
        elif current and (found := _HASH.search(line)):
            version, hashes = out[current]
            out[current] = (version, hashes | {found.group(1)})
    return out


def direct_names(path: Path) -> set[str]:
    """The normalized names of the packages a lock's input requires itself: uv's ``# via``
    annotation names the input (``-r requirements-x.txt``) under each of them."""
    direct, current = set(), None
    for line in path.read_text(encoding="utf-8").splitlines():
        if pin := _PIN.match(line):
            current = normalized(pin.group(1))
        elif current and line.lstrip("# ").startswith(("-r ", "via -r ")):
            direct.add(current)
    return direct
