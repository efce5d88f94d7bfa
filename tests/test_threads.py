"""One meaning of ``num_threads`` (codekiln._threads) at every entry point."""

from __future__ import annotations

import os
import time

import pytest
from codekiln import Tokenizer
from codekiln._threads import available_cpus, resolve_threads
from codekiln.data import FilterConfig, PackConfig, find_near_duplicates, pack
from codekiln.tokenizer.stats import compute_stats

TEXTS = ["def f(x):\n    return x + 1\n", "class A:\n    pass\n", "import os\n"] * 4


def test_resolve_threads() -> None:
    cpus = available_cpus()
    if hasattr(os, "sched_getaffinity"):
        assert cpus == len(os.sched_getaffinity(0))
    assert resolve_threads(None) == cpus
    assert resolve_threads(1) == 1
    assert resolve_threads(cpus + 1000) == cpus  # capped
    assert resolve_threads(None, work_items=1) == 1
    assert resolve_threads(None, work_items=0) == 1
    for bad in (0, -1):
        with pytest.raises(ValueError, match=rf"threads must be at least 1 .*got {bad}"):
            resolve_threads(bad, "threads")
    for bad in (1.5, "2", True):
        with pytest.raises(ValueError, match="num_threads must be an int >= 1 or None"):
            resolve_threads(bad)


@pytest.mark.parametrize("bad", [0, -2, 2.0])
def test_every_entry_point_rejects_the_same_values(bad: object, tmp_path) -> None:
    tok = Tokenizer.from_merges([])
    calls = [
        lambda: Tokenizer.train(TEXTS, vocab_size=260, num_threads=bad, progress=False),
        lambda: tok.encode_batch(TEXTS, num_threads=bad),
        lambda: compute_stats(tok, TEXTS, num_threads=bad),
        lambda: PackConfig(num_threads=bad),
        lambda: find_near_duplicates(TEXTS, num_threads=bad),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="num_threads must be"):
            call()


def test_none_and_big_values_mean_the_available_cpus(tmp_path) -> None:
    tok = Tokenizer.train(TEXTS, vocab_size=260, progress=False)
    assert tok.train_report["num_threads"] == available_cpus()
    big = Tokenizer.train(TEXTS, vocab_size=260, num_threads=10_000, progress=False)
    assert big.train_report["num_threads"] == available_cpus()
    assert big.merges == tok.merges
    cfg = PackConfig(filters=FilterConfig.none(), num_threads=10_000)
    m = pack(TEXTS, tok, tmp_path / "out", cfg, progress=False)
    assert m["settings"]["num_threads"] == available_cpus()
    assert find_near_duplicates(TEXTS) == find_near_duplicates(TEXTS, num_threads=1)


def _os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs /proc (Linux)")
def test_encode_batch_with_absurd_thread_count_is_fast_and_spawns_few() -> None:
    tok = Tokenizer.from_merges([])
    texts = ["a = 1\n", "b = 2\n", "c = 3\n"]
    before = _os_threads()
    start = time.perf_counter()
    assert tok.encode_batch(texts, num_threads=3000) == [tok.encode(t) for t in texts]
    assert time.perf_counter() - start < 2.0  # was 8.8 s spawning 3,000 threads
    assert _os_threads() - before <= len(texts)  # never more threads than texts
