"""lib.data.raw: review names, raw folder checks, listing, reading and decoding review files."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from lib.core.errors import DatasetError
from lib.data import raw
from tests.support.datagen import add_special_entries, make_raw_dir, write_review


@pytest.mark.parametrize(
    "name, expected",
    [
        ("0_9.txt", (0, 9)),
        ("12499_10.txt", (12499, 10)),
        ("7_1.txt", (7, 1)),
        ("a_9.txt", None),
        ("3_9.md", None),
        ("3-9.txt", None),
        ("3_9_1.txt", None),
        ("_9.txt", None),
    ],
)
def test_parse_review_name(name, expected):
    assert raw.parse_review_name(name) == expected


# -- check_raw_dir ----------------------------------------------------------------------


def test_check_raw_dir_returns_the_resolved_folder(tmp_path, monkeypatch):
    make_raw_dir(tmp_path / "raw", per_label=1)
    monkeypatch.chdir(tmp_path)
    assert raw.check_raw_dir(Path("raw")) == (tmp_path / "raw").resolve()


def test_a_folder_with_reviews_in_one_split_and_label_is_enough(tmp_path):
    write_review(tmp_path / "raw", "test", 0, 1, 2, "dull")
    assert raw.check_raw_dir(tmp_path / "raw") == (tmp_path / "raw").resolve()


def test_a_missing_raw_dir_is_a_data_error_naming_the_path_and_the_fix(tmp_path):
    with pytest.raises(DatasetError) as info:
        raw.check_raw_dir(tmp_path / "nope")
    message = str(info.value)
    assert str(tmp_path / "nope") in message and "does not exist" in message
    assert "fetch-data" in message and "\n" not in message


def test_a_raw_dir_that_is_a_file_is_a_data_error(tmp_path):
    (tmp_path / "a.tar.gz").write_bytes(b"x")
    with pytest.raises(DatasetError) as info:
        raw.check_raw_dir(tmp_path / "a.tar.gz")
    assert "not a folder" in str(info.value) and str(tmp_path / "a.tar.gz") in str(info.value)


def test_a_raw_dir_without_review_files_is_a_data_error_that_shows_the_layout(tmp_path):
    (tmp_path / "aclImdb" / "train" / "pos").mkdir(parents=True)
    (tmp_path / "aclImdb" / "train" / "pos" / "notes.md").write_text("not a review")
    with pytest.raises(DatasetError) as info:
        raw.check_raw_dir(tmp_path)  # the folder above aclImdb/
    message = str(info.value)
    assert "holds no review files" in message and "train/pos/<id>_<rating>.txt" in message


# -- list_folder ------------------------------------------------------------------------


def test_list_folder_keeps_reviews_sorted_by_id_and_says_what_it_left_out(tmp_path):
    root = tmp_path / "raw"
    for review_id, rating in ((10, 9), (2, 7), (33, 10)):
        write_review(root, "train", 1, review_id, rating, "good")
    folder = root / "train" / "pos"
    (folder / "notes.txt").write_text("not a review")
    (folder / "5_11.txt").write_text("rating out of range")
    (folder / "6_0.txt").write_text("rating out of range")
    (folder / "readme.md").write_text("not a .txt file: not looked at")
    (folder / "8_8.txt").mkdir()  # a folder named like a review is not one

    listing = raw.list_folder(root, "train", "pos", source=3)
    assert [(f.id, f.rating) for f in listing.files] == [(2, 7), (10, 9), (33, 10)]
    first = listing.files[0]
    assert first == raw.ReviewFile(str(folder / "2_7.txt"), 3, "train", 1, 2, 7)
    assert first.key == ("train", 1, 2)
    assert listing.bad_names == [str(folder / "notes.txt")]
    assert sorted(listing.bad_ratings) == [str(folder / "5_11.txt"), str(folder / "6_0.txt")]
    assert listing.missing_folders == []


def test_list_folder_lists_only_regular_files_inside_the_raw_dirs(tmp_path):
    root = make_raw_dir(tmp_path / "raw", per_label=1)
    (tmp_path / "hostname").write_text("a file outside the raw folder")
    entries = add_special_entries(root, tmp_path / "hostname")
    folder = root / "train" / "pos"
    (folder / "8_8.txt").mkdir()  # a folder named like a review
    try:  # a device, where the container lets root make one
        os.mknod(folder / "905_9.txt", stat.S_IFCHR | 0o600, os.makedev(1, 3))
        device = [str(folder / "905_9.txt")]
    except PermissionError:
        device = []

    listing = raw.list_folder(root, "train", "pos", source=0)
    assert {reason: sorted(paths) for reason, paths in listing.special.items()} == {
        raw.LINK_OUTSIDE: [str(entries["link_out"])],
        raw.BROKEN_LINK: [str(entries["broken"])],
        raw.NOT_REGULAR: sorted([str(entries["fifo"]), str(folder / "8_8.txt"), *device]),
    }
    # A link to a review inside the raw dir is read, at its target (never through the link).
    assert [f.id for f in listing.files] == [0, 904]
    assert listing.files[0].path.startswith(str(folder))
    assert listing.files[1].path == str((root / "test" / "pos" / "900_9.txt").resolve())


def test_a_label_folder_linked_out_of_the_raw_dir_is_skipped_whole(tmp_path):
    elsewhere = make_raw_dir(tmp_path / "elsewhere", per_label=2)
    root = make_raw_dir(tmp_path / "raw", per_label=1)
    shutil.rmtree(root / "test")
    (root / "test").symlink_to(elsewhere / "test")
    listing = raw.list_folder(root, "test", "pos", source=0)
    assert listing.files == [] and listing.special[raw.LINK_OUTSIDE] == [str(root / "test/pos")]
    # Inside the raw dirs given (the roots), the same link is followed.
    roots = (str(root.resolve()), str(elsewhere.resolve()))
    assert len(raw.list_folder(root, "test", "pos", 0, roots).files) == 2


def test_list_folder_reports_a_missing_folder(tmp_path):
    write_review(tmp_path, "train", 1, 0, 9, "good")
    listing = raw.list_folder(tmp_path, "test", "neg", source=0)
    assert listing.files == [] and listing.bad_names == [] and listing.bad_ratings == []
    assert listing.missing_folders == [str(tmp_path / "test" / "neg")]


def test_the_same_id_in_other_label_or_split_folders_is_another_review(tmp_path):
    make_raw_dir(tmp_path, per_label=2)
    keys = {
        f.key
        for split in raw.SPLITS
        for label in raw.LABELS
        for f in raw.list_folder(tmp_path, split, label, 0).files
    }
    assert len(keys) == 2 * 2 * 2  # ids 0 and 1 in each of the four folders


# -- read_files -------------------------------------------------------------------------


def test_read_files_returns_each_file_whole_and_in_order(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    files = {
        tmp_path / "a" / "1.txt": b"one",
        tmp_path / "b" / "2.txt": b"",
        tmp_path / "a" / "3.txt": bytes(range(256)) * 1000,  # longer than one read
        tmp_path / "a" / "4.txt": "\u00e9t\u00e9".encode(),
    }
    for path, data in files.items():
        path.write_bytes(data)
    assert raw.read_files([str(p) for p in files]) == list(files.values())
    with pytest.raises(DatasetError) as info:  # gone since it was listed: one line naming it
        raw.read_files([str(tmp_path / "a" / "gone.txt")])
    assert str(tmp_path / "a" / "gone.txt") in str(info.value) and "\n" not in str(info.value)


def test_read_files_follows_no_link_and_waits_on_no_fifo(tmp_path):
    # Listed as regular files, replaced before the read: a link is not followed, a FIFO
    # with no writer reads as empty instead of blocking the prep.
    (tmp_path / "secret").write_bytes(b"not a review")
    (tmp_path / "1_9.txt").symlink_to(tmp_path / "secret")
    os.mkfifo(tmp_path / "2_9.txt")
    assert raw.read_files([str(tmp_path / "2_9.txt")]) == [b""]
    with pytest.raises(DatasetError, match="1_9.txt cannot be read"):
        raw.read_files([str(tmp_path / "1_9.txt")])


def test_read_files_leaves_access_times_alone(tmp_path):
    path = tmp_path / "1_9.txt"
    path.write_bytes(b"a review")
    stat = path.stat()
    os.utime(path, ns=(stat.st_mtime_ns - 10**9, stat.st_mtime_ns))  # relatime would stamp it
    assert raw.read_files([str(path)]) == [b"a review"]
    assert path.stat().st_atime_ns == stat.st_mtime_ns - 10**9


def test_read_files_without_o_noatime_rights(tmp_path, monkeypatch):
    files = [tmp_path / "a.txt", tmp_path / "b.txt"]
    for i, path in enumerate(files):
        path.write_bytes(b"x" * i)
    real_open, noatime_tries = os.open, []

    def open_as_another_user(path, flags, *args, **kwargs):
        if flags & os.O_NOATIME:  # what Linux answers when the caller does not own the file
            noatime_tries.append(path)
            raise PermissionError(1, "Operation not permitted", path)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_as_another_user)
    assert raw.read_files([str(p) for p in files]) == [b"", b"x"]
    assert noatime_tries == ["a.txt"]  # tried once, then plain opens
    monkeypatch.chdir(tmp_path)
    assert raw.read_files(["b.txt"]) == [b"x"]  # a bare name is read from the working folder


def test_read_files_of_nothing_is_nothing():
    assert raw.read_files([]) == []


# -- decode_utf8 ------------------------------------------------------------------------


def test_decode_utf8_replaces_invalid_bytes_and_says_where():
    contents = [b"fine", "caf\u00e9".encode(), b"caf\xe9", b"", b"sup\xff erb"]
    fixed, invalid = raw.decode_utf8(contents)
    assert invalid == [2, 4]
    assert fixed[:2] == contents[:2] and fixed[3] == b""
    assert fixed[2].decode("utf-8") == "caf\ufffd" and fixed[4].decode("utf-8") == "sup\ufffd erb"
    assert contents[2] == b"caf\xe9"  # the input list is left as it was
