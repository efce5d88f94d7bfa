"""The slow oracle of :func:`codekiln.generate.complete`: greedy decoding that recomputes the
whole context for every new token (nanoGPT's ``generate``: no KV cache), with the same stop
rules written the plain way (decode everything, search everything)."""

from __future__ import annotations

from collections.abc import Sequence

import torch


@torch.no_grad()
def reference_greedy_ids(model, tokenizer, prompt: str, max_new_tokens: int) -> list[int]:
    """Greedy ids after ``prompt`` (no stops, stopping only at end of text); the context must
    stay within ``block_size`` (no window policy here)."""
    ids = tokenizer.encode(prompt) or [tokenizer.eot_id]
    ids = ids[-(model.config.block_size - 1) :]
    out: list[int] = []
    model.eval()
    for _ in range(max_new_tokens):
        idx = torch.tensor([ids + out], dtype=torch.long)
        if idx.size(1) > model.config.block_size:
            raise ValueError("the reference does not slide a window; use a shorter run")
        logits, _ = model(idx)  # the whole context, every time
        last = logits[0, -1, : tokenizer.vocab_size]
        t = int(last.argmax())
        if t == tokenizer.eot_id:
            break
        out.append(t)
    return out


def reference_cut(text: str, stops: Sequence[str]) -> str:
    """``text`` before the earliest occurrence of any stop string."""
    positions = [text.find(s) for s in stops if s and s in text]
    return text[: min(positions)] if positions else text


def reference_greedy(
    model, tokenizer, prompt: str, max_new_tokens: int, stop: Sequence[str] = ()
) -> str:
    """The greedy completion cut at the first stop string (generation continues past stops
    here; the text before the first stop is the same)."""
    return reference_cut(
        tokenizer.decode(reference_greedy_ids(model, tokenizer, prompt, max_new_tokens)), stop
    )
