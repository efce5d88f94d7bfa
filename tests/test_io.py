"""Atomic writes (codekiln._io): all-or-nothing, through symlinks, no temp files left."""

from __future__ import annotations

import json
import os
import pathlib

import pytest
from codekiln._io import atomic_path, atomic_write, atomic_write_json, is_temp_file


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "f.txt"
    atomic_write(p, b"one")
    atomic_write(p, b"two")
    assert p.read_bytes() == b"two"
    assert os.listdir(tmp_path) == ["f.txt"]


def test_failure_keeps_the_old_file(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "ckpt.pt"
    p.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(p) as tmp:
        pathlib.Path(tmp).write_bytes(b"half")
        assert is_temp_file(os.path.basename(tmp), "ckpt.pt")
        raise RuntimeError("disk full")
    assert p.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["ckpt.pt"]
    with pytest.raises(KeyboardInterrupt), atomic_path(p) as tmp:
        pathlib.Path(tmp).write_bytes(b"half")
        raise KeyboardInterrupt
    assert p.read_bytes() == b"old" and os.listdir(tmp_path) == ["ckpt.pt"]


def test_writes_through_a_symlink(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "real.json"
    target.write_text("{}")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    atomic_write_json(link, {"a": "é"})
    assert link.is_symlink() and json.loads(target.read_text()) == {"a": "é"}
    assert target.read_text().endswith("\n")


def test_temp_names_are_unique(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "x"
    with atomic_path(p) as a, atomic_path(p) as b:
        assert a != b
        pathlib.Path(a).write_bytes(b"a")
        pathlib.Path(b).write_bytes(b"b")
    assert p.read_bytes() == b"a"  # the outer one finished last


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo")
def test_refuses_to_replace_a_non_regular_file(tmp_path: pathlib.Path) -> None:
    import stat

    from codekiln import Tokenizer
    from codekiln._io import NotARegularFileError

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(NotARegularFileError, match=r"pipe.*not a regular file"):
        atomic_write(fifo, b"x")
    # The tokenizer's save goes through the same helper; a link to the node is refused too.
    link = tmp_path / "tok.json"
    link.symlink_to(fifo)
    tok = Tokenizer.train(["def f():\n    return 1\n"] * 4, vocab_size=260, progress=False)
    with pytest.raises(NotARegularFileError):
        tok.save(link)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and link.is_symlink()
    assert sorted(os.listdir(tmp_path)) == ["pipe", "tok.json"]
    with pytest.raises(IsADirectoryError, match="is a directory"):
        atomic_write(tmp_path, b"x")
