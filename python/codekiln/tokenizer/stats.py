"""How well a tokenizer fits a corpus: the checks of the CodeParrot chapter.

* **bytes per token** on the given files (higher is better compression);
* **Python keywords**: which of :data:`keyword.kwlist` are a single token, bare (``"def"``) and
  after a space (``" def"``);
* **the longest tokens** (often a sign of what the corpus over-represents);
* **unused tokens**: ids never produced when encoding the given files (a vocabulary trained on
  a different corpus wastes these).

>>> from codekiln import Tokenizer
>>> tok = Tokenizer.train(["def f():\\n    return 1\\n"] * 20, vocab_size=270, progress=False)
>>> s = compute_stats(tok, ["def g():\\n    return 2\\n"])
>>> s.tokens > 0 and s.bytes_per_token > 1
True
"""

from __future__ import annotations

import keyword
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from codekiln import _readers, corpus
from codekiln._threads import resolve_threads
from codekiln.tokenizer.core import Tokenizer

__all__ = ["KeywordStat", "TokenizerStats", "compute_stats", "keyword_stats"]

_BATCH_DOCUMENTS = 256


@dataclass(frozen=True)
class KeywordStat:
    """How many tokens a keyword takes bare (``"def"``) and after a space (``" def"``)."""

    keyword: str
    bare_tokens: int
    spaced_tokens: int


@dataclass
class TokenizerStats:
    """What :func:`compute_stats` measured; :meth:`to_dict` is JSON-ready, :meth:`format` is
    the human-readable report."""

    vocab_size: int
    documents: int
    bytes: int
    tokens: int
    bytes_per_token: float
    keywords: list[KeywordStat]
    longest_tokens: list[tuple[int, str]]
    """(id, text) of the longest ordinary tokens, longest first (text decoded with U+FFFD)."""
    unused_tokens: int
    """Ordinary (byte and merged) tokens never produced on the corpus."""
    unused_merged_tokens: int
    ordinary_tokens: int
    merged_tokens: int
    skipped_files: int = 0
    skipped_documents: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def unused_share(self) -> float:
        """Share of the ordinary tokens (bytes and merges) never used."""
        return self.unused_tokens / self.ordinary_tokens if self.ordinary_tokens else 0.0

    @property
    def unused_merged_share(self) -> float:
        """Share of the merged tokens (ids >= 256) never used."""
        return self.unused_merged_tokens / self.merged_tokens if self.merged_tokens else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["keywords"] = [asdict(k) for k in self.keywords]
        out["longest_tokens"] = [{"id": i, "text": t} for i, t in self.longest_tokens]
        out["skipped"] = [list(s) for s in self.skipped[:100]]
        out["keywords_single_token"] = {
            "bare": [k.keyword for k in self.keywords if k.bare_tokens == 1],
            "spaced": [k.keyword for k in self.keywords if k.spaced_tokens == 1],
        }
        out["unused_share"] = self.unused_share
        out["unused_merged_share"] = self.unused_merged_share
        return out

    def format(self) -> str:
        bare = [k.keyword for k in self.keywords if k.bare_tokens > 1]
        spaced = [k.keyword for k in self.keywords if k.spaced_tokens > 1]
        n = len(self.keywords)
        lines = [
            f"vocab size           {self.vocab_size}",
            f"corpus               {self.documents} documents, {self.bytes:,} bytes",
            f"tokens               {self.tokens:,}",
            f"bytes per token      {self.bytes_per_token:.3f}",
            f"unused tokens        {self.unused_tokens} of {self.ordinary_tokens} "
            f"({self.unused_share:.1%}); merged tokens: {self.unused_merged_tokens} of "
            f"{self.merged_tokens} ({self.unused_merged_share:.1%})",
            f"keywords             of {n} Python keywords, {n - len(bare)} are one token "
            f'bare ("def"), {n - len(spaced)} after a space (" def")',
        ]
        if bare:
            lines.append(f"  not one token bare:          {', '.join(bare)}")
        if spaced:
            lines.append(f"  not one token after a space: {', '.join(spaced)}")
        lines.append("longest tokens:")
        lines.extend(f"  {i:>7}  {text!r}" for i, text in self.longest_tokens)
        if self.skipped_files or self.skipped_documents:
            lines.append(
                f"skipped              {self.skipped_files} files, {self.skipped_documents} "
                "documents (undecodable, or not regular files)"
            )
        return "\n".join(lines)


def keyword_stats(tok: Tokenizer, keywords: list[str] | None = None) -> list[KeywordStat]:
    """Token counts of each Python keyword bare and after a space.

    >>> from codekiln import Tokenizer
    >>> keyword_stats(Tokenizer.from_merges([], special_tokens=[]), ["if"])
    [KeywordStat(keyword='if', bare_tokens=2, spaced_tokens=3)]
    """
    words = keyword.kwlist if keywords is None else keywords
    # " kw" is measured inside a line ("x kw" minus "x"): at the start of a text the space
    # would be line-start indentation, a piece of its own in the "code" pattern.
    base = len(tok.encode("x"))
    return [KeywordStat(k, len(tok.encode(k)), len(tok.encode("x " + k)) - base) for k in words]


def _documents(
    resolved: corpus.Corpus, text_field: str, report: _readers.ReadReport
) -> Iterator[str]:
    for run in resolved.runs():
        if isinstance(run, corpus.RecordInput):
            yield from run.texts(report)
        else:
            yield from _readers.iter_documents([f.path for f in run], text_field, report)


def _batches(texts: Iterator[str]) -> Iterator[list[str]]:
    batch: list[str] = []
    for text in texts:
        batch.append(text)
        if len(batch) >= _BATCH_DOCUMENTS:
            yield batch
            batch = []
    if batch:
        yield batch


def compute_stats(
    tok: Tokenizer,
    source: object,
    *,
    text_field: str = "content",
    num_threads: int | None = None,
    longest: int = 20,
    progress: bool = False,
    include: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
) -> TokenizerStats:
    """Measure ``tok`` on ``source`` (the input rule of :mod:`codekiln.corpus`, the same
    ``include`` / ``exclude`` and readers as :meth:`Tokenizer.train`, so both see the same
    documents). Raises ``ValueError`` when the source holds no text."""
    import numpy as np
    from tqdm import tqdm

    threads = resolve_threads(num_threads)
    resolved = corpus.resolve(source, include=include, exclude=exclude, text_field=text_field)
    report = _readers.ReadReport()
    report.add_skipped_files(resolved.skipped)
    texts = _documents(resolved, text_field, report)
    counts = np.zeros(tok.vocab_size, dtype=np.int64)
    documents = n_bytes = n_tokens = 0
    with tqdm(disable=not progress, desc="encoding", unit="doc", leave=False) as bar:
        for batch in _batches(texts):
            flat, _ = tok.encode_batch(batch, num_threads=threads, output="flat")
            counts += np.bincount(flat, minlength=tok.vocab_size)
            n_tokens += len(flat)
            documents += len(batch)
            n_bytes += sum(len(t.encode("utf-8")) for t in batch)
            bar.update(len(batch))
    if n_bytes == 0:
        raise ValueError(
            f"no text to measure ({documents} documents, {report.skipped_files} files skipped)"
        )
    ordinary = tok.vocab_size - len([n for n in tok.special_tokens if n != "<N>"])
    used = counts[:ordinary] > 0
    by_length = sorted(range(256, ordinary), key=lambda i: (-len(tok.token_bytes(i)), i))
    return TokenizerStats(
        vocab_size=tok.vocab_size,
        documents=documents,
        bytes=n_bytes,
        tokens=n_tokens,
        bytes_per_token=n_bytes / n_tokens if n_tokens else 0.0,
        keywords=keyword_stats(tok),
        longest_tokens=[(i, tok.decode([i])) for i in by_length[: max(longest, 0)]],
        unused_tokens=int(ordinary - used.sum()),
        unused_merged_tokens=int((ordinary - 256) - used[256:].sum()),
        ordinary_tokens=ordinary,
        merged_tokens=ordinary - 256,
        skipped_files=report.skipped_files,
        skipped_documents=report.skipped_documents,
        skipped=list(report.skipped),
    )
