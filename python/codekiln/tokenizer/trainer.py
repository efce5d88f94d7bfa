"""Running the Rust trainer on a corpus: batching texts, progress bars, the training report.

:meth:`codekiln.Tokenizer.train` validates its arguments, resolves ``source`` with
:func:`codekiln.corpus.resolve` and then calls :func:`count_and_merge`; the algorithm itself
(parallel counting, the merge loop, the tie-break) lives in the Rust core (``rust/``). Files
are read by the Rust multi-file reader; texts, records, Parquet and ``datasets`` are read in
Python and handed over in batches.
"""

from __future__ import annotations

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
) -> tuple[list[tuple[int, int]], dict[str, Any]]:
    """Count the pieces of ``corpus`` and learn up to ``num_merges`` merges.

    Returns the merges and the training report (see :attr:`codekiln.Tokenizer.train_report`).
    Raises ``ValueError`` when the corpus holds no text.
    """
    start = time.perf_counter()
    trainer = _core.Trainer(pattern, newline, text_field)
    read = ReadReport()
    read.add_skipped_files(corpus.skipped)
    for run in corpus.runs():
        if isinstance(run, RecordInput):
            _count_texts(trainer, run, read, num_threads, progress)
        else:
            _count_files(trainer, run, read, num_threads, progress)
    if trainer.total_bytes == 0:
        if read.files or read.skipped_files:
            what = f"{read.files} file(s) read, {read.skipped_files} skipped"
        else:
            what = f"{trainer.documents} text(s)"
        raise ValueError(f"empty corpus: no text to train on ({what})")
    unique_pieces = int(trainer.unique_pieces)  # training frees the counts
    merges = _learn(trainer, num_merges, min_frequency, num_threads, progress)
    report = {
        "files": read.files,
        "documents": int(trainer.documents),
        "bytes": int(trainer.total_bytes),
        "skipped_files": read.skipped_files,
        "skipped_documents": read.skipped_documents,
        "skipped": [(str(p), str(r)) for p, r in read.skipped[:MAX_SKIPPED_LISTED]],
        "pieces": int(trainer.total_pieces),
        "unique_pieces": unique_pieces,
        "merges_requested": num_merges,
        "merges_learned": len(merges),
        "min_frequency": min_frequency,
        "num_threads": num_threads,
        "seconds": round(time.perf_counter() - start, 3),
    }
    return merges, report


def _bar(progress: bool, **kwargs: Any) -> Any:
    from tqdm import tqdm

    return tqdm(disable=not progress, leave=False, dynamic_ncols=True, **kwargs)


def _count_files(
    trainer: _core.Trainer,
    files: list[FileInput],
    read: ReadReport,
    threads: int,
    progress: bool,
) -> None:
    with _bar(progress, desc="reading", unit="B", unit_scale=True, unit_divisor=1024) as bar:

        def report(done: int, total: int) -> None:
            if bar.total != total:
                bar.total = total
            bar.update(done - bar.n)

        got = trainer.add_files([f.path for f in files], threads, report)
    read.files += int(got.get("files", 0))
    read.skipped_files += int(got.get("skipped_files", 0))
    read.skipped_documents += int(got.get("skipped_documents", 0))
    read.skipped.extend(got.get("skipped", []))


def _count_texts(
    trainer: _core.Trainer, src: RecordInput, read: ReadReport, threads: int, progress: bool
) -> None:
    base = trainer.total_bytes
    with _bar(progress, desc="counting", unit="B", unit_scale=True, unit_divisor=1024) as bar:
        for batch in batched_texts(src.texts(read), TEXT_BATCH_CHARS):
            trainer.add_texts(batch, threads)
            bar.update(trainer.total_bytes - base - bar.n)


def _learn(
    trainer: _core.Trainer, num_merges: int, min_frequency: int, threads: int, progress: bool
) -> list[tuple[int, int]]:
    with _bar(progress, desc="merging", total=num_merges, unit="merge") as bar:
        callback: Callable[[int], None] = lambda done: bar.update(done - bar.n)  # noqa: E731
        merges = trainer.train(num_merges, min_frequency, threads, callback)
        bar.update(len(merges) - bar.n)
    return [(int(a), int(b)) for a, b in merges]
