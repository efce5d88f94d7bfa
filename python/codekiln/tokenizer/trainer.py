"""Running the Rust trainer on a source: batching texts, progress bars, the training report.

:meth:`codekiln.Tokenizer.train` validates its arguments and then calls
:func:`count_and_merge`; the algorithm itself (parallel counting, the merge loop, the
tie-break) lives in the Rust core (``rust/``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from codekiln import _core, _sources

# Texts are handed to the Rust counter in batches of about this many characters: big enough
# that the per-call overhead and the GIL hand-offs vanish, small enough to bound the memory of
# a generator-fed corpus.
TEXT_BATCH_CHARS = 4 << 20
MAX_SKIPPED_LISTED = 100


def count_and_merge(
    src: _sources.FileSource | _sources.TextSource,
    *,
    pattern: str,
    newline: bool,
    text_field: str,
    num_merges: int,
    min_frequency: int,
    num_threads: int,
    progress: bool,
) -> tuple[list[tuple[int, int]], dict[str, Any]]:
    """Count the pieces of ``src`` and learn up to ``num_merges`` merges.

    Returns the merges and the training report (see :attr:`codekiln.Tokenizer.train_report`).
    Raises ``ValueError`` when the source holds no text.
    """
    start = time.perf_counter()
    trainer = _core.Trainer(pattern, newline, text_field)
    if isinstance(src, _sources.FileSource):
        read = _count_files(trainer, src.paths, num_threads, progress)
    else:
        read = _count_texts(trainer, src, num_threads, progress)
    if trainer.total_bytes == 0:
        what = (
            f"{read['files']} file(s) read, {read['skipped_files']} skipped"
            if isinstance(src, _sources.FileSource)
            else f"{read['documents']} text(s)"
        )
        raise ValueError(f"empty corpus: no text to train on ({what})")
    unique_pieces = int(trainer.unique_pieces)  # training frees the counts
    merges = _learn(trainer, num_merges, min_frequency, num_threads, progress)
    skipped = list(read.get("skipped", []))
    report = {
        "files": int(read.get("files", 0)),
        "documents": int(trainer.documents),
        "bytes": int(trainer.total_bytes),
        "skipped_files": int(read.get("skipped_files", 0)),
        "skipped_documents": int(read.get("skipped_documents", 0)),
        "skipped": [(str(p), str(r)) for p, r in skipped[:MAX_SKIPPED_LISTED]],
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
    trainer: _core.Trainer, paths: list[str], threads: int, progress: bool
) -> dict[str, Any]:
    if not paths:
        raise ValueError(
            "empty corpus: no input files found (directories are searched for "
            f"{', '.join(_sources.CORPUS_SUFFIXES)})"
        )
    with _bar(progress, desc="reading", unit="B", unit_scale=True, unit_divisor=1024) as bar:

        def report(done: int, total: int) -> None:
            if bar.total != total:
                bar.total = total
            bar.update(done - bar.n)

        return dict(trainer.add_files(paths, threads, report))


def _count_texts(
    trainer: _core.Trainer, src: _sources.TextSource, threads: int, progress: bool
) -> dict[str, Any]:
    with _bar(progress, desc="counting", unit="B", unit_scale=True, unit_divisor=1024) as bar:
        for batch in _sources.batched_texts(src.texts, TEXT_BATCH_CHARS):
            trainer.add_texts(batch, threads)
            bar.update(trainer.total_bytes - bar.n)
    return {"documents": trainer.documents}


def _learn(
    trainer: _core.Trainer, num_merges: int, min_frequency: int, threads: int, progress: bool
) -> list[tuple[int, int]]:
    with _bar(progress, desc="merging", total=num_merges, unit="merge") as bar:
        callback: Callable[[int], None] = lambda done: bar.update(done - bar.n)  # noqa: E731
        merges = trainer.train(num_merges, min_frequency, threads, callback)
        bar.update(len(merges) - bar.n)
    return [(int(a), int(b)) for a, b in merges]
