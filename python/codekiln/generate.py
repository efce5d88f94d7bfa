"""Completions from a trained model: several samples in one batch with a KV cache.

>>> # model, tok = codekiln.load("run/")
>>> # complete(model, tok, "def fibonacci(n):", temperature=0)   # greedy
>>> # complete(model, tok, "def fibonacci(n):", num_samples=4, temperature=0.8, top_p=0.95, seed=0)

* The prompt is plain text with real newlines (any ``<N>`` convention stays inside the
  tokenizer). A prompt longer than the context keeps its tail.
* ``temperature == 0`` is greedy decoding; otherwise top-k and/or nucleus (top-p) sampling,
  reproducible with ``seed``.
* Each sample stops on its own, at the first stop string in its completion or at the end of
  text token; the returned text is what follows the prompt, cut before the stop string. The
  default stops are the "end of the first block" ones used for Python (HumanEval / Codex).
* When prompt + completion outgrow the model's ``block_size``, the cache is rebuilt from the
  last ``block_size // 2`` tokens (each rebuild buys ``block_size // 2`` cheap steps; nanoGPT
  instead recomputes the whole window for every token).
* Ids the model can emit but the tokenizer does not have (a vocabulary padded to a multiple of
  64) are never sampled.

The slow oracle is ``tests/reference_generate.py`` (greedy by recomputing the whole context
for every token, nanoGPT's way); ``benchmarks/bench_generate.py`` times both.

This module loads runs through :mod:`codekiln.checkpoint` and never imports ``codekiln.train``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch.nn import functional as F

if TYPE_CHECKING:
    from codekiln.attention import KVCache
    from codekiln.model import GPT
    from codekiln.tokenizer import Tokenizer

__all__ = ["DEFAULT_STOPS", "complete", "load", "resolve_device"]

#: Stop strings that end a Python completion after its first block (Codex / HumanEval).
DEFAULT_STOPS: tuple[str, ...] = ("\nclass", "\ndef", "\n#", "\n@", "\nprint", "\nif")


def resolve_device(device: str = "auto") -> str:
    """``"cuda"`` when ``device == "auto"`` and a GPU is present, ``"cpu"`` for ``"auto"``
    without one; any other value unchanged."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def load(run_dir: str, checkpoint: str = "best", device: str = "cpu") -> tuple[GPT, Tokenizer]:
    """``(model, tokenizer)`` of a run directory; see :func:`codekiln.checkpoint.load_model`.

    ``device="auto"`` picks CUDA when present (:func:`resolve_device`)."""
    from codekiln.checkpoint import load_model

    return load_model(run_dir, checkpoint=checkpoint, device=resolve_device(device))


def _filter_logits(logits: torch.Tensor, top_k: int | None, top_p: float | None) -> torch.Tensor:
    """Mask (to -inf) all but the top-k and the smallest set with probability >= top_p."""
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = F.softmax(sorted_logits, dim=-1)
        # drop a token when the tokens before it already reach top_p (the first always stays)
        drop = probs.cumsum(dim=-1) - probs >= top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    return logits


def _prefill(model: GPT, prompt: torch.Tensor, copies: int) -> tuple[torch.Tensor, KVCache]:
    """The prompt's logits (copies, T, vocab) and a cache holding it for ``copies`` rows: the
    prompt (1, T) runs once and its keys and values are repeated (one forward pass instead of
    ``copies`` identical ones)."""
    cache = model.new_cache()
    logits, _ = model(prompt, cache=cache)
    if copies > 1:
        for layer in range(cache.n_layer):
            k, v = cache.k[layer], cache.v[layer]
            assert k is not None and v is not None
            cache.k[layer] = k.expand(copies, -1, -1, -1).contiguous()
            cache.v[layer] = v.expand(copies, -1, -1, -1).contiguous()
        logits = logits.expand(copies, -1, -1)
    return logits, cache


def _cut(text: str, stops: Sequence[str], start: int = 0) -> tuple[str, bool]:
    """``text`` cut before the earliest stop string found at or after ``start``."""
    cut = min((i for i in (text.find(s, start) for s in stops if s) if i >= 0), default=-1)
    return (text, False) if cut < 0 else (text[:cut], True)


@torch.no_grad()
def complete(
    model: GPT,
    tokenizer: Tokenizer,
    prompt: str,
    *,
    max_new_tokens: int = 128,
    temperature: float = 0.8,
    top_k: int | None = None,
    top_p: float | None = 0.95,
    num_samples: int = 1,
    stop: Sequence[str] | None = DEFAULT_STOPS,
    seed: int | None = None,
) -> list[str]:
    """``num_samples`` completions of ``prompt`` (see the module docstring).

    Args:
        max_new_tokens: at most this many tokens per sample.
        temperature: 0 for greedy decoding; higher is more random.
        top_k: sample among the k most likely tokens only.
        top_p: nucleus sampling: among the most likely tokens whose probabilities sum to p.
        stop: stop strings (``None`` or empty: only the end-of-text token stops a sample).
        seed: makes sampling reproducible (a fixed generator on the model's device).
    """
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if isinstance(stop, str):
        raise TypeError("stop must be a sequence of strings, not one str (wrap it in a list)")
    stops = tuple(s for s in (stop or ()) if s)
    longest_stop = max((len(s) for s in stops), default=0)
    device = next(model.parameters()).device
    block = model.config.block_size
    ids = tokenizer.encode(prompt)
    eot = tokenizer.eot_id
    if not ids:  # an empty prompt starts from the document separator
        ids = [eot if eot is not None else 10]
    ids = ids[-(block - 1) :] if max_new_tokens else ids[-block:]
    generator = None
    if seed is not None:
        generator = torch.Generator(device=device)
        generator.manual_seed(seed)

    was_training = model.training
    model.eval()
    seqs = torch.tensor([ids] * num_samples, dtype=torch.long, device=device)  # (B, T)
    out: list[list[int]] = [[] for _ in range(num_samples)]
    searched = [0] * num_samples  # characters of each completion already searched for stops
    done = [False] * num_samples
    n_vocab = tokenizer.vocab_size  # ids >= this (padding rows of the model) are never chosen
    try:
        logits, cache = _prefill(model, seqs[:1], num_samples)
        for _ in range(max_new_tokens):
            last = logits[:, -1, :].to(torch.float32, copy=True)  # (B, vocab)
            if last.size(-1) > n_vocab:
                last[:, n_vocab:] = float("-inf")
            if temperature == 0:
                nxt = last.argmax(dim=-1, keepdim=True)
            else:
                last = _filter_logits(last / temperature, top_k, top_p)
                probs = F.softmax(last, dim=-1)
                nxt = torch.multinomial(probs, 1, generator=generator)  # (B, 1)
            nxt_list = nxt.view(-1).tolist()  # sync
            for b, t in enumerate(nxt_list):
                if done[b]:
                    continue
                if t == eot:
                    done[b] = True
                    continue
                out[b].append(t)
                if stops:
                    # a stop string may span tokens: search from just before the new text
                    text = tokenizer.decode(out[b])
                    if _cut(text, stops, max(0, searched[b] - longest_stop))[1]:
                        done[b] = True
                    # the last characters may be a partial UTF-8 sequence (U+FFFD) that changes
                    searched[b] = max(0, len(text) - 4)
            if all(done):
                break
            seqs = torch.cat((seqs, nxt), dim=1)
            if cache.length + 1 > cache.max_len:  # full: rebuild from the recent half
                cache = model.new_cache()
                logits, _ = model(seqs[:, -(block // 2) :], cache=cache)
            else:
                logits, _ = model(nxt, cache=cache)
    finally:
        model.train(was_training)
    return [_cut(tokenizer.decode(toks), stops)[0] for toks in out]
