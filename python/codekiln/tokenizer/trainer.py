"""Running the Rust trainer on a corpus: batching texts, progress bars, the training report.

:meth:`codekiln.Tokenizer.train` validates its arguments, resolves ``source`` with
:func:`codekiln.corpus.resolve` and then calls :func:`count_and_merge`; the algorithm itself
(parallel counting, the merge loop, the tie-break) lives in the Rust core (``rust/``). Files
are read by the Rust multi-file reader; texts, records, Parquet and ``datasets`` are read in
Python and handed over in batches.

The counting goes through ``_core.Counter``; with a memory budget (``max_memory``) it spills
sorted runs under a temporary directory and merges them from disk (``rust/bpe/spill.rs``),
and ``min_piece_count`` prunes rare pieces before the merge phase; see ``docs/scale.md``.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from collections.abc import Callable
from typing import Any

from codekiln import _core
from codekiln._readers import ReadReport, batched_texts
from codekiln.corpus import Corpus, FileInput, RecordInput

# Texts are handed to the Rust counter in batches of about this many characters: big enough
# that the per-call overhead and the GIL hand-offs vanish, small enough to bound the memory of
# a generator-fed corpus.
TEXT_BATCH_CHARS = 4 << 20
MAX_SKIPPED_LISTED = 100


def count_and_merge(
    corpus: Corpus,
    *,
    pattern: str,
    newline: bool,
    text_field: str,
    num_merges: int,
    min_frequency: int,
    num_threads: int,
    progress: bool,
    max_memory: int | None = None,
    spill_dir: str | os.PathLike[str] | None = None,
    min_piece_count: int = 1,
    strict: bool = False,
) -> tuple[list[tuple[int, int]], dict[str, Any]]:
    """Count the pieces of ``corpus`` and learn up to ``num_merges`` merges.

    ``max_memory`` (bytes; validated by the caller) bounds the piece tables: past it, sorted
    runs spill to a temporary directory under ``spill_dir`` (default: the system's temp dir)
    that is removed afterwards. ``min_piece_count > 1`` drops rarer pieces before merging.
    Returns the merges and the training report (see :attr:`codekiln.Tokenizer.train_report`).
    Raises ``ValueError`` when the corpus holds no text.
    """
    start = time.perf_counter()
    with spill_directory(max_memory, spill_dir) as tmp:
        counter = _core.Counter(pattern, newline, text_field, max_memory, tmp)
        read = count_corpus(counter, corpus, num_threads, progress, strict=strict)
        documents, total_bytes = int(counter.documents), int(counter.total_bytes)
        pieces, runs = int(counter.total_pieces), int(counter.runs)
        with progress_bar(progress, desc="merging", total=num_merges, unit="merge") as bar:
            merges, distinct, kept = counter.train(
                num_merges, min_frequency, min_piece_count, num_threads, merge_callback(bar)
            )
    report = {
        "files": read.files,
        "documents": documents,
        "bytes": total_bytes,
        "skipped_files": read.skipped_files,
        "skipped_documents": read.skipped_documents,
        "skipped": [(str(p), str(r)) for p, r in read.skipped[:MAX_SKIPPED_LISTED]],
        "pieces": pieces,
        "unique_pieces": int(distinct),
        "kept_pieces": int(kept),
        "min_piece_count": min_piece_count,
        "max_memory": max_memory,
        "spill_runs": runs,
        "merges_requested": num_merges,
        "merges_learned": len(merges),
        "min_frequency": min_frequency,
        "num_threads": num_threads,
        "seconds": round(time.perf_counter() - start, 3),
    }
    return [(int(a), int(b)) for a, b in merges], report


_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
_UNITS.update({"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40})
# The smallest budget accepted: smaller ones spill runs of a few thousand pieces each, and
# merging thousands of runs costs more than the memory saved.
MIN_MEMORY = 1 << 20


def parse_memory(value: object, name: str = "max_memory") -> int | None:
    """A memory size in bytes from an int or a string such as ``"4GB"``, ``"512MiB"`` or
    ``"1.5GB"`` (decimal units KB/MB/GB/TB, binary KiB/MiB/GiB/TiB); ``None`` stays ``None``.

    >>> parse_memory("4GB"), parse_memory("512MiB"), parse_memory(2**20)
    (4000000000, 536870912, 1048576)
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int or a string such as '4GB', not bool")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str):
        m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([A-Za-z]*)\s*", value)
        unit = m.group(2).upper() if m else ""
        if not m or unit not in _UNITS:
            raise ValueError(
                f"{name}={value!r} is not a size: give bytes or a number with a unit "
                f"(KB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. '4GB'"
            )
        size = int(float(m.group(1)) * _UNITS[unit])
    else:
        raise TypeError(
            f"{name} must be an int or a string such as '4GB', not {type(value).__name__}"
        )
    if size < MIN_MEMORY:
        raise ValueError(f"{name}={value!r} is too small: give at least 1MiB ({MIN_MEMORY} bytes)")
    return size


def spill_directory(max_memory: int | None, spill_dir: str | os.PathLike[str] | None) -> Any:
    """A temporary directory for spilled runs (removed on exit), or ``None`` without a
    budget. ``spill_dir`` must be an existing directory."""
    if max_memory is None:
        return contextlib.nullcontext(None)
    if spill_dir is not None and not os.path.isdir(spill_dir):
        raise FileNotFoundError(f"spill_dir {os.fspath(spill_dir)!r} is not a directory")
    return tempfile.TemporaryDirectory(prefix="codekiln-spill-", dir=spill_dir)


def count_corpus(
    counter: Any,
    corpus: Corpus,
    num_threads: int,
    progress: bool,
    *,
    allow_empty: bool = False,
    strict: bool = False,
) -> ReadReport:
    """Feed every input of ``corpus`` to ``counter`` (a ``_core.Counter``); raises ``ValueError`` when it held no text, unless ``allow_empty``.
    A file that cannot be read to its end is skipped from the damage on and listed in the
    report, or with ``strict`` an ``OSError`` naming it (the packer's policy)."""
    read = ReadReport()
    read.add_skipped_files(corpus.skipped)
    for run in corpus.runs():
        if isinstance(run, RecordInput):
            _count_texts(counter, run, read, num_threads, progress)
        else:
            _count_files(counter, run, read, num_threads, progress, strict)
    if counter.total_bytes == 0 and not allow_empty:
        if read.files or read.skipped_files:
            what = f"{read.files} file(s) read, {read.skipped_files} skipped"
        else:
            what = f"{counter.documents} text(s)"
        raise ValueError(f"empty corpus: no text to train on ({what})")
    return read


def progress_bar(progress: bool, **kwargs: Any) -> Any:
    from tqdm import tqdm

    return tqdm(disable=not progress, leave=False, dynamic_ncols=True, **kwargs)


def rss_bytes() -> int | None:
    """This process's resident memory now (Linux ``/proc``), or ``None`` elsewhere."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _count_files(
    trainer: Any,
    files: list[FileInput],
    read: ReadReport,
    threads: int,
    progress: bool,
    strict: bool = False,
) -> None:
    with progress_bar(
        progress, desc="reading", unit="B", unit_scale=True, unit_divisor=1024
    ) as bar:

        def report(done: int, total: int, *tables: int) -> None:
            # MB read and MB/s are the bar itself; the counter adds its tables:
            # (distinct pieces in memory, their bytes, runs spilled).
            if bar.total != total:
                bar.total = total
            if tables and progress:
                rss = rss_bytes()
                bar.set_postfix(
                    pieces=f"{tables[0]:,}",
                    tables=f"{tables[1] / 2**20:.0f}MB",
                    runs=tables[2],
                    rss="?" if rss is None else f"{rss / 2**20:.0f}MB",
                    refresh=False,
                )
            bar.update(done - bar.n)

        got = trainer.add_files([f.path for f in files], threads, report, strict=strict)
    read.files += int(got.get("files", 0))
    read.skipped_files += int(got.get("skipped_files", 0))
    read.skipped_documents += int(got.get("skipped_documents", 0))
    read.skipped.extend(got.get("skipped", []))


def _count_texts(
    trainer: Any, src: RecordInput, read: ReadReport, threads: int, progress: bool
) -> None:
    base = trainer.total_bytes
    with progress_bar(
        progress, desc="counting", unit="B", unit_scale=True, unit_divisor=1024
    ) as bar:
        for batch in batched_texts(src.texts(read), TEXT_BATCH_CHARS):
            # Texts without a UTF-8 form (lone surrogates) are skipped and counted, like
            # undecodable lines of a file.
            read.skipped_documents += int(trainer.add_texts(batch, threads))
            bar.update(trainer.total_bytes - base - bar.n)


def merge_callback(bar: Any) -> Callable[[int], None]:
    return lambda done: bar.update(done - bar.n)
