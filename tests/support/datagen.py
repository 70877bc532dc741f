"""Small generated review folders in the aclImdb layout (no real reviews in the repo)."""

from __future__ import annotations

import random
from pathlib import Path

POSITIVE = "wonderful superb brilliant moving delightful masterpiece great loved touching".split()
NEGATIVE = "awful boring terrible dull waste worst poorly mess annoying".split()
NEUTRAL = "the movie film plot actor scene story director cast music ending it was and".split()


def review_text(label: int, rng: random.Random, words: int = 30) -> str:
    """A short review whose sentiment words carry the label, with HTML and punctuation."""
    cue = POSITIVE if label == 1 else NEGATIVE
    tokens = [rng.choice(cue) if rng.random() < 0.3 else rng.choice(NEUTRAL) for _ in range(words)]
    tokens[0] = tokens[0].capitalize()
    return " ".join(tokens[:10]) + ", I think!<br /><br />" + " ".join(tokens[10:]) + "."


def write_review(root: Path, split: str, label: int, review_id: int, rating: int, text) -> Path:
    folder = root / split / ("pos" if label == 1 else "neg")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{review_id}_{rating}.txt"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def make_raw_dir(
    root: Path, per_label: int = 10, seed: int = 0, first_id: int = 0, words: int = 30
) -> Path:
    """``root`` with ``per_label`` reviews in each of train/test x pos/neg."""
    rng = random.Random(seed)
    for split in ("train", "test"):
        for label in (1, 0):
            for i in range(per_label):
                rating = rng.randint(7, 10) if label == 1 else rng.randint(1, 4)
                write_review(
                    root, split, label, first_id + i, rating, review_text(label, rng, words)
                )
    return root


def make_mixed_raw_dirs(tmp_path: Path) -> tuple[Path, Path]:
    """Two raw dirs with every awkward case the scan meets: ids in both (the first wins),
    a second dir with test reviews only, an empty file, non-UTF-8 bytes, reviews that
    clean to nothing."""
    import shutil

    one = make_raw_dir(tmp_path / "set1", per_label=5, seed=1)
    two = make_raw_dir(tmp_path / "set2", per_label=4, seed=2, first_id=3)  # ids 3, 4 twice
    shutil.rmtree(two / "train")  # the second raw dir adds test reviews only
    write_review(one, "train", 0, 50, 2, "")
    write_review(one, "train", 1, 51, 9, b"caf\xe9 ok")
    write_review(one, "test", 1, 52, 8, "!!! ?")
    write_review(two, "test", 0, 53, 3, " \u2003 ")
    write_review(two, "test", 0, 54, 3, b"bad \xff byte")
    return one, two


def add_special_entries(root: Path, outside: Path) -> dict[str, Path]:
    """Entries in ``root``'s train/pos named like reviews that are not regular files inside
    ``root``: a link to the file ``outside``, a broken link and a FIFO (prep skips each); and
    ``link_in``, a link to a review of ``root``'s test/pos (prep reads it)."""
    import os

    inside = write_review(root, "test", 1, 900, 9, "a wonderful film, linked from train")
    folder = root / "train" / "pos"
    folder.mkdir(parents=True, exist_ok=True)
    entries = {
        "link_out": folder / "901_9.txt",
        "broken": folder / "902_9.txt",
        "fifo": folder / "903_9.txt",
        "link_in": folder / "904_9.txt",
    }
    entries["link_out"].symlink_to(outside)
    entries["broken"].symlink_to(folder / "gone.txt")
    os.mkfifo(entries["fifo"])
    entries["link_in"].symlink_to(os.path.relpath(inside, folder))
    return entries
