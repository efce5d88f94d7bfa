"""Exceptions raised in progress callbacks (Ctrl-C included) stop the Rust work and propagate."""

from __future__ import annotations

import pytest
from codekiln import _core


class Stop(Exception):
    pass


def _raise(*_: object) -> None:
    raise Stop


def test_train_callback_exception_propagates() -> None:
    t = _core.Trainer("code", True)
    t.add_texts(["abc def ghi jkl mno " * 200 + str(i) for i in range(300)], 2)
    with pytest.raises(Stop):
        t.train(5000, 1, 2, _raise)


def test_add_files_callback_exception_propagates(tmp_path) -> None:
    paths = []
    for i in range(3):
        p = tmp_path / f"f{i}.py"
        p.write_text("x = 1\n" * 1000)
        paths.append(str(p))
    t = _core.Trainer("code", True)
    with pytest.raises(Stop):
        t.add_files(paths, 2, _raise)


def test_trainer_cannot_be_reused_after_training() -> None:
    t = _core.Trainer("code", True)
    t.add_texts(["a b c a b c"], 1)
    t.train(10, 1, 1)
    with pytest.raises(ValueError, match="already been trained"):
        t.train(10, 1, 1)
    with pytest.raises(ValueError, match="already been trained"):
        t.add_texts(["x"], 1)
