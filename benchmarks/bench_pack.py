"""End-to-end packing throughput against the tokenizer's raw speed and a nanoGPT-style baseline.

    python benchmarks/bench_pack.py --corpus ../shared/corpus [--files 1] [--repeat 2]

Measured on the same text, in the same run (figures go to BENCHMARKS.md):

1. ``encode_batch`` (texts already in memory) with 1 and 2 threads: the tokenizer's raw speed;
2. ``codekiln.data.pack`` end to end from the ``.jsonl.gz`` files (decompression, JSON,
   default filters, exact dedup, tokenization, shard writing) with 1 and 2 threads, without
   and with redaction; the ratio to (1) is the pipeline's overhead;
3. near-dedup (MinHash signatures + LSH) throughput on one thread;
4. peak memory of a pack of 1 file versus all 5 files (60 MB vs 300 MB), in subprocesses;
5. the nanoGPT ``prepare.py`` recipe: ``datasets`` ``load_dataset("json")`` + ``.map(num_proc=2)``
   with tiktoken (the same 32k vocabulary exported with ``Tokenizer.to_tiktoken``) + an
   ``np.memmap`` of uint16.

Throughput is MB (10^6 bytes) of source text (the ``content`` fields) per second of wall time.
The tokenizer (32,768 ids) is trained once on the valid shard and cached next to the output.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import pathlib
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from codekiln import Tokenizer
from codekiln.data import PackConfig, find_near_duplicates, pack


def cpu_time() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Rounds:
    """Interleaved measurements: every round runs each measurement once, in the same order, so
    a slow spell of a shared machine hits all of them alike. Reports medians, and ratios taken
    within a round (pack / encode_batch, 2 / 1 threads) before their median is taken."""

    def __init__(self) -> None:
        self.runs: dict[str, list[tuple[float, float]]] = {}

    def run(self, name: str, f: Callable[[], Any]) -> None:
        c, t = cpu_time(), time.perf_counter()
        f()
        wall = time.perf_counter() - t
        self.runs.setdefault(name, []).append((wall, cpu_time() - c))

    def wall(self, name: str) -> float:
        return statistics.median(w for w, _ in self.runs[name])

    def cpu(self, name: str) -> float:
        return statistics.median(c for _, c in self.runs[name])

    def speedups(self, slow: str, fast: str) -> list[float]:
        """Per round: wall(slow) / wall(fast), i.e. how many times faster ``fast`` ran."""
        return [a / b for (a, _), (b, _) in zip(self.runs[slow], self.runs[fast], strict=True)]


def describe(ratios: list[float], percent: bool = False) -> str:
    fmt = (lambda x: f"{x:.0%}") if percent else (lambda x: f"{x:.2f}x")
    return f"median {fmt(statistics.median(ratios))} (range {fmt(min(ratios))}-{fmt(max(ratios))})"


def load_texts(files: list[pathlib.Path]) -> list[str]:
    out = []
    for f in files:
        with gzip.open(f, "rt", encoding="utf-8") as fh:
            out.extend(json.loads(line)["content"] for line in fh)
    return out


def get_tokenizer(corpus: pathlib.Path, cache: pathlib.Path, vocab: int) -> Tokenizer:
    path = cache / f"tok{vocab}.json"
    if path.exists():
        return Tokenizer.load(path)
    tok = Tokenizer.train(corpus / "valid-00000.jsonl.gz", vocab_size=vocab, progress=False)
    tok.save(path)
    return tok


def baseline_nanogpt(files: list[pathlib.Path], tok: Tokenizer, work: pathlib.Path) -> float:
    """nanoGPT prepare.py: datasets + map(num_proc=2) + tiktoken + np.memmap; seconds."""
    import datasets

    enc = tok.to_tiktoken()
    eot = tok.eot_id
    cache = work / "hf-cache"
    shutil.rmtree(cache, ignore_errors=True)
    t = time.perf_counter()
    ds = datasets.load_dataset(
        "json", data_files=[str(f) for f in files], split="train", cache_dir=str(cache)
    )

    def process(example: dict[str, Any]) -> dict[str, Any]:
        ids = enc.encode_ordinary(example["content"])
        ids.append(eot)
        return {"ids": ids, "len": len(ids)}

    tokenized = ds.map(
        process,
        remove_columns=ds.column_names,
        num_proc=2,
        desc="tokenizing",
        load_from_cache_file=False,
    )
    total = int(np.sum(tokenized["len"], dtype=np.uint64))
    arr = np.memmap(work / "baseline.bin", dtype=np.uint16, mode="w+", shape=(total,))
    shards = 64
    idx = 0
    for i in range(shards):
        part = tokenized.shard(num_shards=shards, index=i, contiguous=True).with_format("numpy")
        batch = np.concatenate(part["ids"])
        arr[idx : idx + len(batch)] = batch
        idx += len(batch)
    arr.flush()
    seconds = time.perf_counter() - t
    shutil.rmtree(cache, ignore_errors=True)
    return seconds


CHILD = """
import pathlib, sys, time
from codekiln.data import PackConfig, pack
t = time.perf_counter()
m = pack([pathlib.Path(p) for p in sys.argv[3:]], sys.argv[1], sys.argv[2], PackConfig(num_threads=2), progress=False, overwrite=True)
secs = time.perf_counter() - t
# VmHWM: this process's peak RSS (ru_maxrss would include the parent's, inherited at fork).
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(m["report"]["bytes_in"], secs, hwm)
"""


def peak_memory(
    files: list[pathlib.Path], tok_path: pathlib.Path, out: pathlib.Path
) -> tuple[float, float, float]:
    """(MB of source, seconds, peak RSS in MB) of a pack in a fresh process."""
    r = subprocess.run(
        [sys.executable, "-c", CHILD, str(tok_path), str(out), *map(str, files)],
        check=True,
        capture_output=True,
        text=True,
    )
    nbytes, secs, rss_kb = r.stdout.split()
    return int(nbytes) / 1e6, float(secs), int(rss_kb) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--corpus", type=pathlib.Path, default=pathlib.Path("../shared/corpus"))
    ap.add_argument("--files", type=int, default=1, help="train shards for the throughput runs")
    ap.add_argument("--vocab", type=int, default=32768)
    ap.add_argument("--repeat", type=int, default=5, help="interleaved rounds (medians)")
    ap.add_argument(
        "--work", type=pathlib.Path, default=None, help="scratch dir (default: a temp dir)"
    )
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    args = ap.parse_args()

    work = args.work or pathlib.Path(tempfile.mkdtemp(prefix="bench-pack-"))
    work.mkdir(parents=True, exist_ok=True)
    all_files = sorted(args.corpus.glob("train-*.jsonl.gz"))
    files = all_files[: args.files]
    tok = get_tokenizer(args.corpus, work, args.vocab)
    tok_path = work / f"tok{args.vocab}.json"
    texts = load_texts(files)
    mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    print(
        f"{len(files)} file(s), {len(texts):,} documents, {mb:.1f} MB of source; vocab {tok.vocab_size}"
    )
    print(f"cpus: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.2f}")
    rounds = Rounds()

    def pack_once(th: int, redact: bool) -> None:
        shutil.rmtree(out, ignore_errors=True)
        pack(files, tok, out, PackConfig(num_threads=th, redact=redact), progress=False)

    out = work / "out"
    for _ in range(args.repeat):
        for th in (1, 2):
            rounds.run(f"encode_batch_{th}", lambda th=th: tok.encode_batch(texts, num_threads=th))
            rounds.run(f"pack_{th}", lambda th=th: pack_once(th, False))
            rounds.run(f"pack_{th}_redact", lambda th=th: pack_once(th, True))
            rounds.run(
                f"near_dedup_{th}", lambda th=th: find_near_duplicates(texts, num_threads=th)
            )

    print()
    print(f"medians of {args.repeat} interleaved rounds")
    print("| measurement | MB/s (wall) | MB per CPU-second | cores busy |")
    print("|---|---|---|---|")
    for k in rounds.runs:
        w, c = rounds.wall(k), rounds.cpu(k)
        print(f"| {k} | {mb / w:.1f} | {mb / c:.1f} | {c / w:.2f} |")
    print()
    for th in (1, 2):
        r = rounds.speedups(f"encode_batch_{th}", f"pack_{th}")
        print(f"pack / encode_batch, {th} thread(s): {describe(r, percent=True)} (target >= 85%)")
    print(f"pack 2 threads vs 1: {describe(rounds.speedups('pack_1', 'pack_2'))} (target >= 1.8x)")
    print(
        f"encode_batch 2 threads vs 1: {describe(rounds.speedups('encode_batch_1', 'encode_batch_2'))}"
    )
    p2 = mb / rounds.wall("pack_2")
    print(f"near-dedup per core: {mb / rounds.wall('near_dedup_1'):.1f} MB/s (target >= 20)")

    if not args.skip_baseline:
        s = baseline_nanogpt(files, tok, work)
        print(
            f"nanoGPT baseline (datasets.map(num_proc=2) + tiktoken + memmap): {mb / s:.1f} MB/s; "
            f"codekiln pack (2 threads) is {p2 / (mb / s):.1f}x faster (target >= 3x)"
        )
    if not args.skip_memory:
        for group in (all_files[:1], all_files):
            m, secs, rss = peak_memory(group, tok_path, work / "mem")
            print(f"peak RSS packing {m:.0f} MB of source: {rss:.0f} MB ({m / secs:.1f} MB/s)")
    print(
        f"max RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
