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
