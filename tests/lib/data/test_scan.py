"""lib.data.scan: every review file of some raw dirs, listed, read, fingerprinted and cleaned."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from lib.data import cleaning, scan
from tests.support.datagen import (
    add_special_entries,
    make_mixed_raw_dirs,
    make_raw_dir,
    write_review,
)


def _as_dict(result: scan.Scan) -> dict:
    fields = dataclasses.asdict(result)
    fields["texts"] = result.texts.to_pylist()
    return fields


def test_every_review_is_read_and_cleaned_in_listing_order(tmp_path):
    src = make_raw_dir(tmp_path / "raw", per_label=3)
    write_review(src, "train", 1, 100, 9, "A GREAT film!<br /><br />I loved it, 10/10.")
    result = scan.scan([src])
    texts = result.texts.to_pylist()
    assert len(result.files) == len(texts) == 13 and result.per_dir_files == [13]
    for f, text in zip(result.files, texts, strict=True):
        assert text == cleaning.clean_text(Path(f.path).read_text(encoding="utf-8"))
    assert texts[[f.id for f in result.files].index(100)] == "great film loved it 10 10"
    # Each split's rows are together: train/pos then train/neg, then test/pos, test/neg.
    assert [(f.split, f.label) for f in result.files] == (
        [("train", 1)] * 4 + [("train", 0)] * 3 + [("test", 1)] * 3 + [("test", 0)] * 3
    )
    assert result.split_ranges == {"train": [(0, 7)], "test": [(7, 13)]}
    assert not (result.bad_names or result.bad_ratings or result.missing_folders)
    assert not (result.duplicates or result.invalid or result.empty or result.empty_after)


def test_the_first_raw_dir_wins_a_duplicate(tmp_path):
    one = make_raw_dir(tmp_path / "set1", per_label=3, seed=1)
    two = make_raw_dir(tmp_path / "set2", per_label=3, seed=2, first_id=2)  # ids 2..4
    result = scan.scan([one, two])
    assert result.per_dir_files == [12, 8]  # the second dir's id 2 is in all four folders
    assert sorted(Path(p).name.split("_")[0] for p in result.duplicates) == ["2"] * 4
    assert all(p.startswith(str(two)) for p in result.duplicates)
    kept = {(f.split, f.label, f.id): f.source for f in result.files}
    assert kept[("train", 1, 2)] == 0 and kept[("train", 1, 4)] == 1
    assert len(kept) == len(result.files)  # no review twice
    # Rows of one split from two raw dirs: one range per dir, each row in its range's split.
    assert result.split_ranges == {"train": [(0, 6), (12, 16)], "test": [(6, 12), (16, 20)]}
    for split, ranges in result.split_ranges.items():
        assert all(result.files[i].split == split for a, b in ranges for i in range(a, b))


def test_what_cannot_be_used_is_left_out_or_marked(tmp_path):
    src = make_raw_dir(tmp_path / "raw", per_label=1)
    (src / "train" / "pos" / "notes.txt").write_text("not a review")
    (src / "train" / "pos" / "5_99.txt").write_text("rating out of range")
    write_review(src, "train", 0, 50, 2, "")
    write_review(src, "train", 0, 51, 2, " \u2003\n ")  # Unicode whitespace only
    write_review(src, "test", 1, 52, 8, "!!! ... ?")
    write_review(src, "test", 1, 53, 8, b"caf\xe9 was sup\xff erb")
    other = tmp_path / "other"
    write_review(other, "test", 0, 0, 1, "only test/neg here")
    result = scan.scan([src, other])
    by_name = {Path(f.path).name: i for i, f in enumerate(result.files)}
    assert [Path(p).name for p in result.bad_names] == ["notes.txt"]
    assert [Path(p).name for p in result.bad_ratings] == ["5_99.txt"]
    assert result.missing_folders == [
        str(other / "train" / "pos"),
        str(other / "train" / "neg"),
        str(other / "test" / "pos"),
    ]
    assert sorted(result.empty) == sorted([by_name["50_2.txt"], by_name["51_2.txt"]])
    assert result.empty_after == [by_name["52_8.txt"]]
    assert result.invalid == [by_name["53_8.txt"]]
    assert result.texts[by_name["53_8.txt"]].as_py() == "caf was sup erb"  # U+FFFD: cleaned


def test_the_fingerprint_follows_the_files_read_not_where_they_lie(tmp_path):
    src = make_raw_dir(tmp_path / "raw", per_label=2)
    first = scan.scan([src]).fingerprint
    assert first.startswith("sha256:") and len(first) == len("sha256:") + 64
    assert scan.scan([src]).fingerprint == first
    shutil.copytree(src, tmp_path / "elsewhere" / "copy")
    assert scan.scan([tmp_path / "elsewhere" / "copy"]).fingerprint == first
    write_review(src, "test", 0, 0, 2, "changed text")
    changed = scan.scan([src]).fingerprint
    assert changed != first
    # The same content under another name (a rating) is another data set.
    (src / "test" / "neg" / "0_2.txt").rename(src / "test" / "neg" / "0_3.txt")
    assert scan.scan([src]).fingerprint not in (first, changed)


def test_the_scan_does_not_depend_on_chunks_or_threads(tmp_path, monkeypatch):
    one, two = make_mixed_raw_dirs(tmp_path)
    whole = _as_dict(scan.scan([one, two], threads=1))
    assert whole["per_dir_files"] == [23, 6]  # set2: test ids 5, 6 (pos and neg), 53, 54
    monkeypatch.setattr(scan, "READ_CHUNK", 3)  # chunk bounds fall inside folders and dirs
    for threads in (1, 3):
        assert _as_dict(scan.scan([one, two], threads=threads)) == whole
    assert whole["texts"][whole["empty_after"][0]] == ""
    assert len(whole["empty"]) == 2 and len(whole["invalid"]) == 2


def test_a_link_into_another_raw_dir_is_read_and_the_rest_counted_by_reason(tmp_path):
    one = make_raw_dir(tmp_path / "set1", per_label=1)
    two = make_raw_dir(tmp_path / "set2", per_label=1, first_id=10)
    (one / "train" / "pos" / "20_9.txt").symlink_to(next((two / "test" / "neg").iterdir()))
    (tmp_path / "outside.txt").write_text("never a review")
    add_special_entries(two, tmp_path / "outside.txt")
    result = scan.scan([one, two])
    assert ("train", 1, 20) in {f.key for f in result.files}  # inside the raw dirs given
    assert {reason: len(paths) for reason, paths in result.special.items()} == {
        "link_outside_raw_dirs": 1,
        "broken_link": 1,
        "not_regular_file": 1,
    }
    assert all(p.startswith(str(two)) for paths in result.special.values() for p in paths)
