"""Count files: count the pieces of each shard (on as many machines as you like), merge the
counts, and train once -- the same tokenizer as one pass over all the input.

A count file (``rust/bpe/countfile.rs``) holds the distinct pre-token pieces of its input with
their counts, sorted, plus the pre-tokenizer settings (pattern, newline, newline rule), what was counted
(documents, bytes, pieces) and a SHA-256 checksum; it is versioned. Files made with different
settings cannot be merged (a ``ValueError`` names both files); a corrupt or truncated file is
an ``OSError`` naming it. Merging is a streaming k-way merge: its memory does not depend on
the size of the files. See ``docs/scale.md``.

>>> import os, tempfile
>>> d = tempfile.mkdtemp()
>>> a, b = os.path.join(d, "a.bin"), os.path.join(d, "b.bin")
>>> _ = count_pieces(["x = 1\\n"] * 5, a, progress=False)
>>> _ = count_pieces(["y = 2\\n"] * 5, b, progress=False)
>>> merge_counts([a, b], os.path.join(d, "all.bin"))["documents"]
10
>>> tok = train_from_counts([a, b], vocab_size=260, progress=False)
>>> tok == Tokenizer.train(["x = 1\\n"] * 5 + ["y = 2\\n"] * 5, vocab_size=260, progress=False)
True
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

from codekiln import _core, corpus
from codekiln._io import atomic_path
from codekiln._threads import resolve_threads
from codekiln.tokenizer import trainer
from codekiln.tokenizer.core import Tokenizer, _check_config, _check_int, _other_specials
from codekiln.tokenizer.format import ENDOFTEXT, NEWLINE_TOKEN

__all__ = [
    "count_pieces",
    "inspect_counts",
    "inspect_settings",
    "merge_counts",
    "train_from_counts",
]

PathLike = str | os.PathLike[str]


def count_pieces(
    source: object,
    out: PathLike,
    *,
    pattern: str = "code",
    newline: str | None = NEWLINE_TOKEN,
    newline_rule: str = "merged",
    text_field: str = "content",
    include: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    num_threads: int | None = None,
    max_memory: int | str | None = None,
    spill_dir: PathLike | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Count the pre-token pieces of ``source`` (the one input rule, as
    :meth:`Tokenizer.train`) and write them to the count file ``out`` (atomically).

    ``pattern``, ``newline`` and ``newline_rule`` must be those the tokenizer will be trained
    with (they are stored in the file). ``max_memory``/``spill_dir`` bound the counting tables
    as in :meth:`Tokenizer.train`. Returns ``{"pattern", "newline", "newline_rule",
    "documents", "bytes", "pieces", "distinct_pieces", "files", "skipped_files",
    "skipped_documents", "seconds"}``.
    """
    split_newlines = _check_config(pattern, newline, newline_rule)
    threads = resolve_threads(num_threads)
    budget = trainer.parse_memory(max_memory)
    if spill_dir is not None and budget is None:
        raise ValueError("spill_dir is only used with max_memory; give both")
    if not isinstance(text_field, str) or not text_field:
        raise ValueError(f"text_field must be a non-empty str, got {text_field!r}")
    start = time.perf_counter()
    resolved = corpus.resolve(source, include=include, exclude=exclude, text_field=text_field)
    with trainer.spill_directory(budget, spill_dir) as tmp:
        counter = _core.Counter(
            pattern,
            split_newlines,
            text_field,
            budget,
            tmp,
            newline_token=newline == NEWLINE_TOKEN,
        )
        # An input without text (all skipped, say) writes an empty count file: one empty
        # shard must not fail a distributed count; training from only empty files fails.
        read = trainer.count_corpus(counter, resolved, threads, progress, allow_empty=True)
        with atomic_path(out) as tmp_out:
            stats = _public(counter.write(tmp_out))
    stats.update(
        files=read.files,
        skipped_files=read.skipped_files,
        skipped_documents=read.skipped_documents,
        seconds=round(time.perf_counter() - start, 3),
    )
    return stats


def _newline_mode(split: bool, token: bool) -> tuple[str | None, str]:
    """(newline, newline_rule) of a count file's flags."""
    if not token:
        return None, "merged"
    return NEWLINE_TOKEN, "strict" if split else "merged"


def _public(stats: Any) -> dict[str, Any]:
    """A core stats dict with the settings as the tokenizer names them."""
    d = dict(stats)
    if "newline_token" in d:
        d["newline"], d["newline_rule"] = _newline_mode(
            bool(d["newline"]), bool(d.pop("newline_token"))
        )
    return d


def _paths(paths: Sequence[PathLike] | PathLike, name: str) -> list[str]:
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    out = [os.fspath(p) for p in paths]
    if not out:
        raise ValueError(f"{name}: no count files given")
    return out


def merge_counts(inputs: Sequence[PathLike], out: PathLike) -> dict[str, Any]:
    """Merge count files (made with the same settings) into ``out`` (atomically; ``out`` may
    be one of the inputs). Returns the settings and the summed stats, as
    :func:`inspect_counts`."""
    paths = _paths(inputs, "inputs")
    with atomic_path(out) as tmp:
        return _public(_core.merge_count_files(paths, tmp))


def inspect_counts(path: PathLike) -> dict[str, Any]:
    """Read a count file to its end, verifying its checksum: ``{"pattern", "newline",
    "newline_rule", "documents", "bytes", "pieces", "distinct_pieces"}``."""
    return _public(_core.inspect_count_file(os.fspath(path)))


def inspect_settings(path: PathLike) -> tuple[str, str | None, str]:
    """A count file's ``(pattern, newline, newline_rule)`` from its header alone (fast);
    ``newline`` is ``"<N>"`` or None, as :meth:`Tokenizer.train` takes it."""
    pattern, split, token = _core.count_file_settings(os.fspath(path))
    return (str(pattern), *_newline_mode(bool(split), bool(token)))


def train_from_counts(
    paths: Sequence[PathLike] | PathLike,
    *,
    vocab_size: int,
    special_tokens: Iterable[str] = (ENDOFTEXT,),
    min_frequency: int = 2,
    min_piece_count: int = 1,
    num_threads: int | None = None,
    progress: bool = True,
) -> Tokenizer:
    """Learn a tokenizer from count files, merged as they are read: with
    ``min_piece_count=1`` exactly the tokenizer one :meth:`Tokenizer.train` pass over all
    the counted input gives. The pattern, newline and newline rule come from the files
    (they must agree). Arguments otherwise as :meth:`Tokenizer.train`.
    """
    files = _paths(paths, "paths")
    pattern, newline, newline_rule = inspect_settings(files[0])
    others = _other_specials(special_tokens, newline)
    vocab_size = _check_int("vocab_size", vocab_size, 0)
    minimum = 256 + len(others)
    if vocab_size < minimum:
        raise ValueError(
            f"vocab_size={vocab_size} is too small: it must be at least {minimum} "
            f"(256 byte tokens + {len(others)} special token(s))"
        )
    min_frequency = _check_int("min_frequency", min_frequency, 1)
    min_piece_count = _check_int("min_piece_count", min_piece_count, 1)
    threads = resolve_threads(num_threads)
    num_merges = vocab_size - minimum
    start = time.perf_counter()
    with trainer.progress_bar(progress, desc="merging", total=num_merges, unit="merge") as bar:
        stats, merges, distinct, kept = _core.train_count_files(
            files, num_merges, min_frequency, min_piece_count, threads, trainer.merge_callback(bar)
        )
    if int(stats["bytes"]) == 0:
        raise ValueError(f"empty corpus: the {len(files)} count file(s) hold no text")
    if len(merges) < num_merges:
        warnings.warn(
            f"learned only {len(merges)} of {num_merges} merges: no pair of tokens occurs "
            f"{min_frequency}+ times in the counts any more",
            UserWarning,
            stacklevel=2,
        )
    tok = Tokenizer.from_merges(
        [(int(a), int(b)) for a, b in merges],
        pattern=pattern,
        newline=newline,
        newline_rule=newline_rule,
        special_tokens=others,
    )
    tok.train_report = {
        "from_counts": files,
        "documents": int(stats["documents"]),
        "bytes": int(stats["bytes"]),
        "pieces": int(stats["pieces"]),
        "unique_pieces": int(distinct),
        "kept_pieces": int(kept),
        "min_piece_count": min_piece_count,
        "merges_requested": num_merges,
        "merges_learned": len(merges),
        "min_frequency": min_frequency,
        "num_threads": threads,
        "seconds": round(time.perf_counter() - start, 3),
    }
    return tok
