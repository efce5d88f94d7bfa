"""Small run directories for the generation, evaluation and export tests: a tokenizer trained
on a few standard-library modules and a randomly initialised model saved in the checkpoint
format of :mod:`codekiln.checkpoint` (no training needed; ``train_helpers`` trains real ones)."""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
from typing import Any

import torch
from codekiln import checkpoint as ckpt
from codekiln.model import GPT, GPTConfig
from codekiln.quickstart import stdlib_files
from codekiln.tokenizer import Tokenizer

TINY = dict(block_size=128, n_layer=2, n_head=2, n_embd=32)


@functools.lru_cache(maxsize=4)
def tokenizer(vocab_size: int = 400, files: int = 12) -> Tokenizer:
    """A byte-level BPE trained on ``files`` standard-library modules (cached per process)."""
    return Tokenizer.train(
        stdlib_files()[:files], vocab_size=vocab_size, progress=False, num_threads=1
    )


def model(tok: Tokenizer, seed: int = 0, **overrides: Any) -> GPT:
    """A random-init model for ``tok`` with :data:`TINY` shapes (vocab padded to 64)."""
    torch.manual_seed(seed)
    vocab = 64 * -(-tok.vocab_size // 64)
    cfg = GPTConfig(**{**TINY, "vocab_size": vocab, **overrides})
    m = GPT(cfg)
    # random-init logits are nearly flat; larger embeddings make greedy choices clear-cut
    with torch.no_grad():
        m.transformer.wte.weight.mul_(20)
    return m.eval()


def write_run(run_dir: pathlib.Path, m: GPT, tok: Tokenizer, step: int = 1) -> pathlib.Path:
    """Save ``m`` and ``tok`` as a run directory that :func:`codekiln.load` reads."""
    cfg = dataclasses.asdict(m.config)
    (run_dir / ckpt.CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
    tok.save(run_dir / ckpt.TOKENIZER_FILE)
    (run_dir / ckpt.CONFIG_FILE).write_text(
        json.dumps({"model": cfg, "tokenizer_fingerprint": tok.fingerprint, "train": {}})
    )
    state = {
        "step": step,
        "model": m.state_dict(),
        "model_config": cfg,
        "tokenizer_fingerprint": tok.fingerprint,
    }
    ckpt.save_checkpoint(run_dir / ckpt.CHECKPOINT_DIR / ckpt.step_name(step), state)
    return run_dir
