"""``inspect``: what a pack directory holds, a token histogram, a decoded sample document,
and checksum verification against the manifest."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from codekiln.data.shards import Shard, ShardError, sha256_file

__all__ = ["inspect_pack"]


def inspect_pack(
    directory: str | os.PathLike[str],
    *,
    verify: bool = True,
    sample: int | None = 0,
    top: int = 20,
    tokenizer: Any = None,
) -> dict[str, Any]:
    """Summarise ``directory``: per split the shard, document and token counts, document
    lengths, the ``top`` most frequent tokens (decoded when a tokenizer is available, by
    default the pack's ``tokenizer.json``), document ``sample`` of the train split decoded (an index across its shards),
    and with ``verify`` every shard's size, header and SHA-256 checked against the manifest
    (``problems`` lists what failed; empty means all good)."""
    from codekiln.data.pack import load_manifest

    d = os.fspath(directory)
    manifest = load_manifest(d)
    tok = tokenizer
    if tok is None and os.path.exists(os.path.join(d, "tokenizer.json")):
        tok = os.path.join(d, "tokenizer.json")
    if tok is not None:
        from codekiln.tokenizer import load_tokenizer

        tok = load_tokenizer(tok)
    problems: list[str] = []
    out: dict[str, Any] = {
        "directory": d,
        "status": manifest.get("status"),
        "tokenizer": manifest.get("tokenizer"),
        "report": manifest.get("report"),
        "splits": {},
        "problems": problems,
    }
    if sample is not None and (not isinstance(sample, int) or sample < 0):
        raise ValueError(f"sample must be a document index >= 0 (or None), got {sample!r}")
    train_shards: list[Shard] = []
    for split, info in manifest.get("splits", {}).items():
        counts = np.zeros(0, dtype=np.int64)
        doc_lens: list[np.ndarray] = []
        tokens = docs = 0
        for sh in info.get("shards", []):
            path = os.path.join(d, sh["file"])
            try:
                shard = Shard(path)
                if verify:
                    shard.check_index()
                    got = sha256_file(path)
                    if got != sh["sha256"]:
                        raise ShardError(
                            f"{path}: SHA-256 {got} does not match the manifest's {sh['sha256']}"
                        )
                    if (shard.header.token_count, shard.header.doc_count) != (
                        sh["tokens"],
                        sh["documents"],
                    ):
                        raise ShardError(f"{path}: counts differ from the manifest")
            except (ShardError, OSError) as e:
                problems.append(str(e))
                continue
            if split == "train":
                train_shards.append(shard)
            tokens += shard.header.token_count
            docs += shard.header.doc_count
            c = np.bincount(np.asarray(shard.tokens), minlength=shard.header.vocab_size)
            counts = c if counts.size == 0 else counts + c
            doc_lens.append(np.diff(np.asarray(shard.offsets, dtype=np.int64)) - 1)
        lens = np.concatenate(doc_lens) if doc_lens else np.zeros(0, dtype=np.int64)
        top_ids = np.argsort(-counts, kind="stable")[:top] if counts.size else []
        histogram = []
        for i in top_ids:
            if counts[i] == 0:
                break
            entry: dict[str, Any] = {"id": int(i), "count": int(counts[i])}
            if tok is not None:
                entry["token"] = tok.decode_bytes([int(i)]).decode("utf-8", "backslashreplace")
            histogram.append(entry)
        out["splits"][split] = {
            "shards": len(info.get("shards", [])),
            "documents": docs,
            "tokens": tokens,
            "distinct_tokens": int(np.count_nonzero(counts)) if counts.size else 0,
            "doc_tokens_mean": float(lens.mean()) if lens.size else 0.0,
            "doc_tokens_median": float(np.median(lens)) if lens.size else 0.0,
            "doc_tokens_max": int(lens.max()) if lens.size else 0,
            "top_tokens": histogram,
        }
    if sample is not None and train_shards:
        total = sum(len(sh) for sh in train_shards)
        if sample >= total:
            raise ValueError(
                f"sample={sample} (--sample): the train split has {total:,} documents "
                f"(0..{total - 1})"
            )
        i = sample
        for sh in train_shards:  # the document index runs across the split's shards
            if i < len(sh):
                break
            i -= len(sh)
        ids = sh.document(i)
        out["sample"] = {
            "document": sample,
            "shard": os.path.basename(sh.path),
            "tokens": len(ids),
            "text": tok.decode([int(t) for t in ids]) if tok is not None else None,
        }
    return out
