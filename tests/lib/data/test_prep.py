import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from lib.core.errors import DatasetError, OutputError
from lib.data import prep, scan
from tests.support.datagen import (
    add_special_entries,
    make_mixed_raw_dirs,
    make_raw_dir,
    write_review,
)


def _read(processed: Path, split: str) -> list[dict]:
    return pq.read_table(processed / f"{split}.parquet").to_pylist()


def test_prepare_writes_both_splits_with_all_columns(tmp_path):
    src = make_raw_dir(tmp_path / "raw", per_label=4)
    write_review(src, "train", 1, 100, 9, "A GREAT film!<br /><br />I loved it, 10/10.")
    manifest = prep.prepare([src], tmp_path / "out")
    assert prep.is_processed_dir(tmp_path / "out")
    train = _read(tmp_path / "out", "train")
    assert set(train[0]) == {"id", "rating", "label", "text", "source"}
    row = next(r for r in train if r["id"] == 100 and r["label"] == 1)
    assert row == {
        "id": 100,
        "rating": 9,
        "label": 1,
        "text": "great film loved it 10 10",
        "source": str(src.resolve()),
    }
    assert manifest["rows"] == {
        "train": {"total": 9, "pos": 5, "neg": 4},
        "test": {"total": 8, "pos": 4, "neg": 4},
    }
    assert all(r["rating"] >= 7 for r in train if r["label"] == 1)
    assert all(r["rating"] <= 4 for r in train if r["label"] == 0)
    on_disk = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert on_disk["fingerprint"].startswith("sha256:") and on_disk["cleaning_version"] == "1"
    assert on_disk["seconds"] >= 0 and on_disk["raw_dirs"][0]["rows"] == 17


def test_two_raw_dirs_are_combined_and_duplicates_counted(tmp_path):
    one = make_raw_dir(tmp_path / "set1", per_label=3, seed=1)
    two = make_raw_dir(tmp_path / "set2", per_label=3, seed=2, first_id=2)  # ids 2..4
    manifest = prep.prepare([str(one), str(two)], tmp_path / "out")
    train = _read(tmp_path / "out", "train")
    # ids 0..4 per label: id 2 exists in both; the first raw dir's copy is kept
    assert sorted((r["label"], r["id"]) for r in train) == [(0, i) for i in range(5)] + [
        (1, i) for i in range(5)
    ]
    kept = {(r["label"], r["id"]): r["source"] for r in train}
    assert kept[(1, 2)] == str(one.resolve()) and kept[(1, 4)] == str(two.resolve())
    assert manifest["skipped"]["duplicate_id"]["count"] == 4  # id 2 in 2 splits x 2 labels
    assert [d["rows"] for d in manifest["raw_dirs"]] == [12, 8]


def test_fingerprint_follows_the_content(tmp_path):
    src = make_raw_dir(tmp_path / "raw", per_label=2)
    first = prep.prepare([src], tmp_path / "a")["fingerprint"]
    assert prep.prepare([src], tmp_path / "b")["fingerprint"] == first
    write_review(src, "test", 0, 0, 2, "changed text")
    assert prep.prepare([src], tmp_path / "c")["fingerprint"] != first


def test_bad_files_are_skipped_counted_and_shown(tmp_path):
    src = make_raw_dir(tmp_path / "raw", per_label=3)
    (src / "train" / "pos" / "notes.txt").write_text("not a review")
    (src / "train" / "pos" / "5_99.txt").write_text("rating out of range")
    write_review(src, "train", 0, 50, 2, "")
    write_review(src, "train", 0, 51, 2, "  \n ")
    write_review(src, "test", 1, 52, 8, "!!! ... ?")
    write_review(src, "test", 1, 53, 8, b"caf\xe9 was sup\xff erb")
    manifest = prep.prepare([src], tmp_path / "out")
    skipped = manifest["skipped"]
    assert skipped["bad_name"]["count"] == 1 and skipped["bad_name"]["examples"][0].endswith(
        "notes.txt"
    )
    assert skipped["rating_out_of_range"]["count"] == 1
    assert skipped["empty"]["count"] == 2
    assert skipped["empty_after_cleaning"]["count"] == 1
    non_utf8 = manifest["non_utf8_decoded_with_replacement"]
    assert non_utf8["count"] == 1 and non_utf8["examples"][0].endswith("53_8.txt")
    test_rows = {r["id"]: r for r in _read(tmp_path / "out", "test")}
    assert test_rows[53]["text"] == "caf was sup erb"  # U+FFFD is a symbol: cleaned away
    assert 52 not in test_rows
    assert manifest["rows"]["train"]["total"] == 6


def test_missing_raw_dir_names_the_path(tmp_path):
    with pytest.raises(DatasetError, match=r"does not exist.*fetch-data"):
        prep.prepare([tmp_path / "nope"], tmp_path / "out")


def test_raw_dir_that_is_a_file(tmp_path):
    (tmp_path / "a.tar.gz").write_bytes(b"x")
    with pytest.raises(DatasetError, match="is not a folder"):
        prep.prepare([tmp_path / "a.tar.gz"], tmp_path / "out")


def test_raw_dir_without_reviews(tmp_path):
    (tmp_path / "empty" / "train" / "pos").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"holds no review files.*train/pos/<id>_<rating>\.txt"):
        prep.prepare([tmp_path / "empty"], tmp_path / "out")


def test_processed_dir_inside_a_raw_dir_is_refused(tmp_path):
    src = make_raw_dir(tmp_path / "raw", per_label=1)
    with pytest.raises(DatasetError, match="inside raw dir"):
        prep.prepare([src], src / "processed")
    with pytest.raises(DatasetError, match="would delete the raw data"):
        prep.prepare([src], tmp_path)


def test_a_non_dataset_folder_is_never_replaced(tmp_path):
    src = make_raw_dir(tmp_path / "raw", per_label=1)
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "thesis.tex").write_text("keep me")
    with pytest.raises(DatasetError, match="not a processed data set"):
        prep.prepare([src], precious)
    assert (precious / "thesis.tex").read_text() == "keep me"


def test_nothing_left_fails_and_keeps_the_earlier_data_set(tmp_path):
    good = make_raw_dir(tmp_path / "good", per_label=2)
    prep.prepare([good], tmp_path / "out")
    before = (tmp_path / "out" / "train.parquet").read_bytes()
    bad = tmp_path / "bad"
    write_review(bad, "train", 1, 0, 9, "")
    write_review(bad, "test", 1, 0, 9, "...")
    with pytest.raises(DatasetError, match="nothing left to write"):
        prep.prepare([bad], tmp_path / "out")
    assert (tmp_path / "out" / "train.parquet").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad", "good", "out"]  # no temp left


def test_a_rerun_replaces_the_data_set_atomically(tmp_path):
    src = make_raw_dir(tmp_path / "raw", per_label=2)
    prep.prepare([src], tmp_path / "out")
    write_review(src, "train", 1, 77, 8, "another fine film")
    manifest = prep.prepare([src], tmp_path / "out")
    assert manifest["rows"]["train"]["total"] == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "raw"]


def test_before_and_after(tmp_path):
    src = make_raw_dir(tmp_path / "raw", per_label=2)
    prep.prepare([src], tmp_path / "out")
    table = prep.before_and_after(tmp_path / "out", n=1)
    assert list(table["label"]) == [1, 0]
    assert "<br />" in table["raw"][0] and "<br" not in table["cleaned"][0]


def test_rows_and_skipped_tables_show_the_manifest(tmp_path):
    src = make_raw_dir(tmp_path / "raw", per_label=3)
    for n in range(4):
        (src / "train" / "pos" / f"notes{n}.txt").write_text("not a review")
    write_review(src, "test", 1, 53, 8, b"caf\xe9")
    manifest = prep.prepare([src], tmp_path / "out")
    rows = prep.rows_table(manifest)
    assert list(rows.columns) == ["pos", "neg", "total"] and list(rows.index) == ["train", "test"]
    assert rows.loc["test"].tolist() == [4, 3, 7] and rows.loc["train", "total"] == 6
    skipped = prep.skipped_table(manifest, examples=2)
    assert list(skipped.index) == [
        *manifest["skipped"],
        "non_utf8 (kept, decoded with replacement)",
    ]
    assert skipped.loc["bad_name", "count"] == 4 and len(skipped.loc["bad_name", "examples"]) == 2
    assert skipped.loc["empty", "count"] == 0 and skipped.loc["empty", "examples"] == []
    kept = skipped.loc["non_utf8 (kept, decoded with replacement)"]
    assert kept["count"] == 1 and kept["examples"][0].endswith("53_8.txt")


def test_the_data_set_does_not_depend_on_how_files_are_chunked(tmp_path, monkeypatch):
    one, two = make_mixed_raw_dirs(tmp_path)
    whole = prep.prepare([one, two], tmp_path / "whole")
    monkeypatch.setattr(scan, "READ_CHUNK", 3)  # chunk bounds fall inside folders and dirs
    chunked = prep.prepare([one, two], tmp_path / "chunked", threads=3)
    for manifest in (whole, chunked):
        del manifest["created"], manifest["seconds"]
    assert chunked == whole  # the fingerprint and every skip, with the right file names
    assert chunked["skipped"]["empty"]["count"] == 2
    assert chunked["skipped"]["empty_after_cleaning"]["examples"][0].endswith("52_8.txt")
    assert [Path(p).name for p in chunked["non_utf8_decoded_with_replacement"]["examples"]] == [
        "51_9.txt",
        "54_3.txt",
    ]
    for split in ("train", "test"):
        assert _read(tmp_path / "chunked", split) == _read(tmp_path / "whole", split)
    assert chunked["rows"]["train"]["total"] == 11  # set1's 10, and 51; 50 is empty
    assert chunked["rows"]["test"]["total"] == 15  # set1's 10, set2's ids 5 and 6, and 54
    assert [d["rows"] for d in chunked["raw_dirs"]] == [11 + 10, 5]


def test_links_out_broken_links_and_fifos_are_skipped_and_counted(tmp_path):
    src = make_raw_dir(tmp_path / "raw", per_label=2)
    (tmp_path / "hostname").write_text("my-host-name")  # as /etc/hostname: never a review
    entries = add_special_entries(src, tmp_path / "hostname")
    manifest = prep.prepare([src], tmp_path / "out")
    skipped = manifest["skipped"]
    for reason, entry in (
        ("link_outside_raw_dirs", "link_out"),
        ("broken_link", "broken"),
        ("not_regular_file", "fifo"),
    ):
        assert skipped[reason] == {"count": 1, "examples": [str(entries[entry])]}
    train = _read(tmp_path / "out", "train")
    assert not any("host" in r["text"] for r in train)
    # The link to a review inside the raw dir is read: the same text under the link's id.
    assert [r["text"] for r in train if r["id"] == 904] == ["wonderful film linked from train"]
    table = prep.skipped_table(manifest)
    assert table.loc["link_outside_raw_dirs", "count"] == 1


@pytest.mark.parametrize("fault", ["read_only_dir", "full_dir"])
def test_a_read_only_or_full_processed_dir_is_one_line_naming_it(tmp_path, request, fault):
    src = make_raw_dir(tmp_path / "raw", per_label=2)
    out = request.getfixturevalue(fault) / "processed"
    with pytest.raises(OutputError) as info:
        prep.prepare([src], out)
    message = str(info.value)
    assert message.startswith(f"processed_dir {out} cannot be written") and "\n" not in message
    assert ("read-only" if fault == "read_only_dir" else "no space left") in message
    assert not out.exists() and not any(out.parent.glob(".processed.tmp-*"))  # nothing left
