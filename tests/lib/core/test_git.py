"""The checkout's commit and state, as runs record them (git itself, in a folder of the test's)."""

import subprocess

from lib.core import git


def _git(root, *args):
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


def test_a_checkout_has_a_commit_and_says_when_its_tree_differs(tmp_path, monkeypatch):
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    _git(tmp_path, "init", "-q")
    (tmp_path / ".gitignore").write_text("ignored/\n")
    (tmp_path / "a.py").write_text("x = 1\n")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    head = git.head_commit()
    assert head and len(head) == 40 and int(head, 16) >= 0
    assert git.tree_dirty() is False
    (tmp_path / "ignored").mkdir()
    (tmp_path / "ignored" / "b.py").write_text("")
    assert git.tree_dirty() is False  # an ignored file does not count
    (tmp_path / "new.py").write_text("")
    assert git.tree_dirty() is True  # an untracked one does
    (tmp_path / "new.py").unlink()
    (tmp_path / "a.py").write_text("x = 2\n")
    assert git.tree_dirty() is True and git.head_commit() == head


def test_outside_a_checkout_git_cannot_tell(tmp_path, monkeypatch):
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert git.head_commit() is None and git.tree_dirty() is None
