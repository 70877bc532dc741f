"""Raw review folders in the aclImdb layout: finding, naming and reading review files.

Layout: ``<dir>/{train,test}/{pos,neg}/<id>_<rating>.txt``. Review ids are unique within
one split and label folder (``train/pos/0_9.txt`` and ``train/neg/0_3.txt`` are different
reviews), so a review's key is (split, label, id).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from lib.core.errors import DatasetError

SPLITS: tuple[str, ...] = ("train", "test")
LABELS: dict[str, int] = {"pos": 1, "neg": 0}
REVIEW_NAME = re.compile(r"^(\d+)_(\d+)\.txt$")
MIN_RATING, MAX_RATING = 1, 10
# Why a review-named entry that is not a regular file inside the raw dirs is skipped (its
# reason in the manifest): it is never read, so a link cannot bring in a file from elsewhere
# (/etc/hostname as a review) and a FIFO cannot block the prep.
LINK_OUTSIDE = "link_outside_raw_dirs"
BROKEN_LINK = "broken_link"
NOT_REGULAR = "not_regular_file"  # a FIFO, a device, a socket, a folder
SPECIAL_REASONS: tuple[str, ...] = (LINK_OUTSIDE, BROKEN_LINK, NOT_REGULAR)


class ReviewFile(NamedTuple):  # a tuple: 50,000 of these are made in 10 ms, not 30
    path: str
    source: int  # index into the list of raw dirs
    split: str
    label: int
    id: int
    rating: int

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.split, self.label, self.id)


def parse_review_name(name: str) -> tuple[int, int] | None:
    """``(id, rating)`` from ``<id>_<rating>.txt``, or None if the name does not parse."""
    match = REVIEW_NAME.match(name)
    return (int(match.group(1)), int(match.group(2))) if match else None


def check_raw_dir(path: Path) -> Path:
    """The resolved folder, or DatasetError if it is missing, a file, or holds no reviews."""
    if not path.exists():
        raise DatasetError(
            f"raw data folder {path} does not exist; run `python -m runner fetch-data` "
            "or pass the folder that holds train/ and test/ in raw_dirs"
        )
    if not path.is_dir():
        raise DatasetError(
            f"raw data path {path} is not a folder; raw_dirs takes folders in the aclImdb "
            "layout (<dir>/train/pos/<id>_<rating>.txt ...), not archives or files"
        )
    has_reviews = any(
        (path / split / label).is_dir()
        and any(e.name.endswith(".txt") for e in os.scandir(path / split / label))
        for split in SPLITS
        for label in LABELS
    )
    if not has_reviews:
        raise DatasetError(
            f"raw data folder {path} holds no review files: expected "
            f"{path}/train/pos/<id>_<rating>.txt (and train/neg, test/pos, test/neg); "
            "is it the folder above aclImdb/? then pass .../aclImdb"
        )
    return path.resolve()


def _no_specials() -> dict[str, list[str]]:
    return {reason: [] for reason in SPECIAL_REASONS}


@dataclass
class Listing:
    """The review files found in one folder, and what was left out and why."""

    files: list[ReviewFile]
    bad_names: list[str]
    bad_ratings: list[str]
    missing_folders: list[str]
    special: dict[str, list[str]] = field(default_factory=_no_specials)  # by SPECIAL_REASONS


def _inside(path: str, roots: Sequence[str]) -> bool:
    return any(path == root or path.startswith(root + os.sep) for root in roots)


def _special(entry: os.DirEntry, roots: Sequence[str]) -> tuple[str | None, str]:
    """For an entry that is not a regular file itself: ``(None, target)`` for a link to a
    regular file inside ``roots`` (read there), else ``(reason, entry's path)``."""
    if not entry.is_symlink():
        return NOT_REGULAR, entry.path
    try:
        target = os.path.realpath(entry.path, strict=True)
    except OSError:  # dangling, or a loop of links
        return BROKEN_LINK, entry.path
    if not _inside(target, roots):
        return LINK_OUTSIDE, entry.path
    try:
        regular = stat.S_ISREG(os.stat(target).st_mode)
    except OSError:  # gone since realpath looked
        return BROKEN_LINK, entry.path
    return (None, target) if regular else (NOT_REGULAR, entry.path)


def list_folder(
    raw_dir: Path,
    split: str,
    label_name: str,
    source: int,
    roots: Sequence[str] | None = None,
) -> Listing:
    """The ``*.txt`` review files of ``raw_dir/split/label_name``, sorted by id.

    Only regular files inside ``roots`` (resolved folders; default ``raw_dir``) are listed:
    a link is followed only to a regular file inside them; other entries named ``*.txt``
    are skipped by reason (``Listing.special``)."""
    listing = Listing([], [], [], [])
    folder = raw_dir / split / label_name
    if not folder.is_dir():
        listing.missing_folders.append(str(folder))
        return listing
    roots = roots or (os.path.realpath(raw_dir),)
    if not _inside(os.path.realpath(folder), roots):  # train/ or train/pos linked elsewhere
        listing.special[LINK_OUTSIDE].append(str(folder))
        return listing
    label = LABELS[label_name]
    for entry in os.scandir(folder):
        if not entry.name.endswith(".txt"):
            continue  # urls_*.txt live one level up; other files are not reviews
        path = entry.path
        # From the listing's file type: no stat for a regular file (all but a few).
        if not entry.is_file(follow_symlinks=False):
            reason, path = _special(entry, roots)
            if reason is not None:
                listing.special[reason].append(path)
                continue
        parsed = parse_review_name(entry.name)
        if parsed is None:
            listing.bad_names.append(entry.path)
            continue
        review_id, rating = parsed
        if not MIN_RATING <= rating <= MAX_RATING:
            listing.bad_ratings.append(entry.path)
            continue
        listing.files.append(ReviewFile(path, source, split, label, review_id, rating))
    listing.files.sort(key=lambda f: f.id)
    return listing


def read_files(paths: list[str]) -> list[bytes]:
    """Contents of many small files, in order.

    One thread: on a warm page cache the kernel's work dominates and a second reading thread
    gains nothing. ``prepare`` reads in one thread while others clean what was read.
    """
    out = []
    folder, folder_fd = None, -1
    # Never through a link (a listed link was replaced by its target), and a FIFO put in
    # place of a listed file reads as empty instead of blocking.
    plain = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
    # Reading need not stamp each file's access time: on files just extracted (which the
    # kernel's relatime would stamp) that is a fifth of the reading time.
    flags = plain | getattr(os, "O_NOATIME", 0)
    path = ""
    try:
        for path in paths:
            parent, slash, name = path.rpartition("/")
            parent = parent or slash or "."
            if parent != folder:
                if folder_fd >= 0:
                    os.close(folder_fd)
                    folder_fd = -1
                folder = parent
                folder_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
            # Opening by name relative to the open folder skips the path walk (15% of the
            # time); os.read skips the buffered-file machinery (half the CPU of open().read()).
            try:
                fd = os.open(name, flags, dir_fd=folder_fd)
            except PermissionError:
                if flags == plain:
                    raise
                flags = plain  # O_NOATIME is for the files' owner only
                fd = os.open(name, flags, dir_fd=folder_fd)
            try:
                parts = []
                while block := os.read(fd, 1 << 16):
                    parts.append(block)
            finally:
                os.close(fd)
            out.append(parts[0] if len(parts) == 1 else b"".join(parts))
    except OSError as exc:  # unreadable, or changed since it was listed
        raise DatasetError(
            f"review file {path} cannot be read ({exc.strerror}); make it readable or move it "
            "out of the raw folder, then run prep again"
        ) from None
    finally:
        if folder_fd >= 0:
            os.close(folder_fd)
    return out


def decode_utf8(contents: list[bytes]) -> tuple[list[bytes], list[int]]:
    """UTF-8 bytes for every file: invalid ones decoded with replacement (their indices)."""
    fixed, invalid = list(contents), []
    for i, data in enumerate(contents):
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            fixed[i] = data.decode("utf-8", errors="replace").encode("utf-8")
            invalid.append(i)
    return fixed, invalid
