"""Loss, perplexity and bits per byte of a model on packed shards or on raw source files.

The token stream (each document followed by ``<|endoftext|>``, as the packer writes it) is
cut into consecutive, non-overlapping windows of ``block_size + 1`` tokens (the last one may be
shorter); every token after a window's first is predicted once, from the tokens before it in
its window (the training loss's layout, so the figures compare with ``val_loss``).

* ``loss`` -- mean cross-entropy in nats over every predicted token (separators included, as
  in training), ``perplexity = exp(loss)``;
* ``bits_per_byte`` -- the summed loss in bits over the predicted tokens that are text (not
  special tokens), divided by their UTF-8 bytes. It does not depend on the tokenizer, so
  models with different vocabularies compare (nanochat's ``bpb``, The Pile's metric).

Raw inputs follow :mod:`codekiln.corpus` (files, directories, globs, ``.jsonl``, texts):

>>> # evaluate_files(model, tok, "held_out/")          # a directory of .py files
>>> # bits_per_byte_on_files("run/", ["a.py", "b.py"])  # from a run directory

The slow oracle is in ``tests/test_perplexity.py`` (a per-token loop of ``log_softmax``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from codekiln.model import GPT
    from codekiln.tokenizer import Tokenizer

__all__ = [
    "PerplexityResult",
    "bits_per_byte_on_files",
    "evaluate_files",
    "evaluate_packed",
    "evaluate_tokens",
    "token_byte_lengths",
]


@dataclass(frozen=True)
class PerplexityResult:
    """Figures of one evaluation (see the module docstring for their meaning)."""

    loss: float
    perplexity: float
    bits_per_byte: float
    tokens: int  # predicted tokens (the loss's denominator)
    text_tokens: int  # predicted tokens that are text (not special tokens)
    bytes: int  # UTF-8 bytes of the text tokens (the bits per byte's denominator)
    documents: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        rows = [
            ("loss (nats/token)", f"{self.loss:.4f}"),
            ("perplexity", f"{self.perplexity:.3f}"),
            ("bits per byte", f"{self.bits_per_byte:.4f}"),
            ("tokens", f"{self.tokens:,}"),
            ("bytes", f"{self.bytes:,}"),
        ]
        if self.documents is not None:
            rows.append(("documents", f"{self.documents:,}"))
        return "\n".join(f"{k:<20}{v}" for k, v in rows)


def token_byte_lengths(tokenizer: Tokenizer) -> np.ndarray:
    """UTF-8 bytes of each token id (int64); 0 for special tokens (``<N>`` is the newline
    byte, 1)."""
    special = {i for name, i in tokenizer.special_tokens.items() if name != "<N>"}
    return np.array(
        [0 if i in special else len(tokenizer.token_bytes(i)) for i in range(tokenizer.vocab_size)],
        dtype=np.int64,
    )


def _windows(tokens: np.ndarray, block_size: int) -> Iterator[np.ndarray]:
    for start in range(0, max(len(tokens) - 1, 0), block_size):
        yield tokens[start : start + block_size + 1]


def evaluate_tokens(
    model: GPT,
    tokenizer: Tokenizer,
    tokens: np.ndarray | Iterable[int],
    *,
    block_size: int | None = None,
    batch_size: int = 8,
    documents: int | None = None,
    progress: bool = False,
) -> PerplexityResult:
    """Evaluate ``model`` on one token stream (see the module docstring)."""
    import torch
    from torch.nn import functional as F
    from tqdm import tqdm

    tokens = np.asarray(tokens, dtype=np.int64)
    block = block_size or model.config.block_size
    if not 1 <= block <= model.config.block_size:
        raise ValueError(f"block_size must be in [1, {model.config.block_size}], got {block}")
    if len(tokens) < 2:
        raise ValueError(f"nothing to evaluate: {len(tokens)} token(s), need at least 2")
    if tokens.max() >= model.config.vocab_size:
        raise ValueError(
            f"token id {int(tokens.max())} is outside the model's vocabulary "
            f"({model.config.vocab_size}); was the data made with another tokenizer?"
        )
    nbytes = token_byte_lengths(tokenizer)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    nats = text_nats = 0.0
    count = text_count = byte_count = 0
    windows = list(_windows(tokens, block))
    # equal lengths batch together; only the last window can be shorter
    groups: list[list[np.ndarray]] = []
    for w in windows:
        if groups and len(groups[-1]) < batch_size and len(groups[-1][0]) == len(w):
            groups[-1].append(w)
        else:
            groups.append([w])
    try:
        with (
            torch.no_grad(),
            tqdm(
                total=len(windows),
                desc="evaluating",
                unit="block",
                disable=not progress,
                leave=False,
            ) as bar,
        ):
            for group in groups:
                batch = torch.from_numpy(np.stack(group)).to(device)  # (B, T + 1)
                x, y = batch[:, :-1], batch[:, 1:]
                logits, _ = model(x)
                losses = F.cross_entropy(
                    logits.float().reshape(-1, logits.size(-1)), y.reshape(-1), reduction="none"
                ).double()  # (B * T,) nats per predicted token
                targets = y.reshape(-1).cpu().numpy()
                is_text = nbytes[targets] > 0
                text_mask = torch.from_numpy(is_text).to(losses.device)
                nats += float(losses.sum())  # sync
                text_nats += float(losses[text_mask].sum())
                count += len(targets)
                text_count += int(is_text.sum())
                byte_count += int(nbytes[targets].sum())
                bar.update(len(group))
    finally:
        model.train(was_training)
    loss = nats / count
    return PerplexityResult(
        loss=loss,
        perplexity=math.exp(loss),
        bits_per_byte=text_nats / math.log(2) / byte_count if byte_count else float("nan"),
        tokens=count,
        text_tokens=text_count,
        bytes=byte_count,
        documents=documents,
    )


def _check_max_tokens(max_tokens: int | None) -> None:
    if max_tokens is not None and max_tokens < 2:
        raise ValueError(f"max_tokens must be >= 2, got {max_tokens}")


def evaluate_packed(
    model: GPT,
    tokenizer: Tokenizer,
    data_dir: str | os.PathLike[str],
    split: str = "valid",
    *,
    max_tokens: int | None = None,
    block_size: int | None = None,
    batch_size: int = 8,
    progress: bool = False,
) -> PerplexityResult:
    """Evaluate on the ``split`` shards of a pack directory (the first ``max_tokens`` tokens
    of the split's stream when given). The shards must come from ``tokenizer``."""
    from codekiln.data import PackedDataset

    _check_max_tokens(max_tokens)
    data_dir = os.fspath(data_dir)
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(2, "no such pack directory (--data)", data_dir)
    ds = PackedDataset(data_dir, split, block_size=1, as_numpy=True)
    if ds.fingerprint and ds.fingerprint != tokenizer.fingerprint:
        raise ValueError(
            f"{data_dir}: the {split!r} shards were packed with tokenizer {ds.fingerprint[:12]}, "
            f"the model uses {tokenizer.fingerprint[:12]}"
        )
    end = ds.num_tokens if max_tokens is None else min(ds.num_tokens, max_tokens)
    return evaluate_tokens(
        model,
        tokenizer,
        ds.tokens(0, end),
        block_size=block_size,
        batch_size=batch_size,
        documents=ds.num_documents if end == ds.num_tokens else None,
        progress=progress,
    )


def encode_documents(
    tokenizer: Tokenizer,
    source: object,
    *,
    text_field: str = "content",
    include: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    max_tokens: int | None = None,
) -> tuple[np.ndarray, int]:
    """The token stream of ``source`` (the input rule of :mod:`codekiln.corpus`): each
    document's tokens followed by ``<|endoftext|>``; and the number of documents read."""
    from codekiln import _readers, corpus

    resolved = corpus.resolve(source, include=include, exclude=exclude, text_field=text_field)
    report = _readers.ReadReport()
    eot = tokenizer.eot_id
    parts: list[np.ndarray] = []
    total = documents = 0
    for run in resolved.runs():
        if isinstance(run, corpus.RecordInput):
            texts = run.texts(report)
        else:
            texts = _readers.iter_documents([f.path for f in run], text_field, report)
        for text in texts:
            ids = tokenizer.encode(text)
            if eot is not None:
                ids.append(eot)
            parts.append(np.asarray(ids, dtype=np.int64))
            total += len(ids)
            documents += 1
            if max_tokens is not None and total >= max_tokens:
                break
        if max_tokens is not None and total >= max_tokens:
            break
    if not documents:
        raise ValueError(
            f"no documents to evaluate in the input ({report.skipped_files} files and "
            f"{report.skipped_documents} documents skipped)"
        )
    stream = np.concatenate(parts)
    return (stream if max_tokens is None else stream[:max_tokens]), documents


def evaluate_files(
    model: GPT,
    tokenizer: Tokenizer,
    source: object,
    *,
    text_field: str = "content",
    include: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    max_tokens: int | None = None,
    block_size: int | None = None,
    batch_size: int = 8,
    progress: bool = False,
) -> PerplexityResult:
    """Evaluate on raw documents (files, directories, globs, JSON lines, texts; see
    :mod:`codekiln.corpus`), encoded on the fly."""
    _check_max_tokens(max_tokens)
    stream, documents = encode_documents(
        tokenizer,
        source,
        text_field=text_field,
        include=include,
        exclude=exclude,
        max_tokens=max_tokens,
    )
    return evaluate_tokens(
        model,
        tokenizer,
        stream,
        block_size=block_size,
        batch_size=batch_size,
        documents=documents,
        progress=progress,
    )


def bits_per_byte_on_files(
    run_dir: str | os.PathLike[str],
    source: object,
    *,
    checkpoint: str = "best",
    device: str = "auto",
    **kwargs: Any,
) -> PerplexityResult:
    """:func:`evaluate_files` with the model of a run directory (loaded through
    :mod:`codekiln.checkpoint`): ``bits_per_byte_on_files("run/", held_out_paths).bits_per_byte``."""
    from codekiln.generate import load

    model, tok = load(os.fspath(run_dir), checkpoint, device=device)
    return evaluate_files(model, tok, source, **kwargs)
