"""Exceptions raised in progress callbacks (Ctrl-C included) stop the Rust work and propagate."""

from __future__ import annotations

import pytest
from codekiln import _core


class Stop(Exception):
    pass


def _raise(*_: object) -> None:
    raise Stop


def test_train_callback_exception_propagates() -> None:
    t = _core.Counter("code", True)
    t.add_texts(["abc def ghi jkl mno " * 200 + str(i) for i in range(300)], 2)
    with pytest.raises(Stop):
        t.train(5000, 1, 1, 2, _raise)


def test_add_files_callback_exception_propagates(tmp_path) -> None:
    paths = []
    for i in range(3):
        p = tmp_path / f"f{i}.py"
        p.write_text("x = 1\n" * 1000)
        paths.append(str(p))
    t = _core.Counter("code", True)
    with pytest.raises(Stop):
        t.add_files(paths, 2, _raise)


def test_counter_cannot_be_reused_after_training() -> None:
    t = _core.Counter("code", True)
    t.add_texts(["a b c a b c"], 1)
    t.train(10, 1, 1, 1)
    with pytest.raises(ValueError, match="used up"):
        t.train(10, 1, 1, 1)
    with pytest.raises(ValueError, match="used up"):
        t.add_texts(["x"], 1)
    with pytest.raises(ValueError, match="used up"):
        t.write("unused.bin")


def test_pack_progress_exception_propagates(tmp_path) -> None:
    from codekiln import Tokenizer
    from codekiln.data import PackConfig, pack

    src = tmp_path / "a.jsonl"
    src.write_text('{"content": "x = 1\\n"}\n' * 200)
    with pytest.raises(Stop):
        pack([src], Tokenizer.from_merges([]), tmp_path / "out", PackConfig(), progress=_raise)
    # The run did not complete: the manifest still says so.
    assert '"status": "running"' in (tmp_path / "out" / "MANIFEST.json").read_text()


_CTRL_C_CHILD = """
import sys
from codekiln import Tokenizer
from codekiln.data import PackConfig, pack
seen = [0]
def progress(documents, nbytes):
    seen[0] = nbytes
print("ready", flush=True)
try:
    pack(sys.argv[1], Tokenizer.from_merges([]), sys.argv[2], PackConfig(), progress=progress)
except KeyboardInterrupt:
    print("interrupted after", seen[0], flush=True)
    sys.exit(3)
print("completed", flush=True)
"""


def test_ctrl_c_stops_a_pack(tmp_path) -> None:
    # SIGINT reaches Python only on the main thread, which waits while a pool thread reads:
    # it must still stop the pack, before the input is read, with KeyboardInterrupt. The input
    # is one gzip member repeated (valid multi-member gzip): ~1 GB of JSON lines from ~1 MB
    # on disk, several seconds of decompression.
    import gzip
    import signal
    import subprocess
    import sys
    import time

    lines = "".join(
        '{"content": "%s"}\n' % (f"def f_{i}(x):\\n    return x * {i}\\n" * 40) for i in range(1000)
    )
    member = gzip.compress(lines.encode(), compresslevel=9)
    src = tmp_path / "big.jsonl.gz"
    with open(src, "wb") as f:
        for _ in range(1000):
            f.write(member)
    proc = subprocess.Popen(
        [sys.executable, "-c", _CTRL_C_CHILD, str(src), str(tmp_path / "out")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 3, out
    # Stopped early in the input: the signal comes ~0.5 s into several seconds of reading.
    # (Before, the reading went on to the end of the input and only then was the interrupt
    # raised: 1.31 of 1.41 GB had been read.)
    read = int(out.split("interrupted after")[1])
    assert 0 < read < 1000 * len(lines) // 2, out
