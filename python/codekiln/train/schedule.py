"""The learning-rate schedule: linear warmup, then cosine decay to ``min_lr`` (nanoGPT's).

A pure function of the step, so a resumed run gets exactly the rates it would have had.
"""

from __future__ import annotations

import math

from codekiln.train.config import TrainConfig

__all__ = ["cosine_lr", "lr_at"]


def cosine_lr(
    step: int, *, learning_rate: float, min_lr: float, warmup_steps: int, decay_steps: int
) -> float:
    """The rate for optimizer step ``step`` (0-based).

    * ``step < warmup_steps``: ``learning_rate * (step + 1) / (warmup_steps + 1)`` (never 0, so
      the first update already moves);
    * up to ``decay_steps``: cosine from ``learning_rate`` down to ``min_lr``;
    * after ``decay_steps``: ``min_lr``.

    >>> [round(cosine_lr(s, learning_rate=1.0, min_lr=0.1, warmup_steps=2, decay_steps=10), 3)
    ...  for s in (0, 1, 2, 6, 10, 20)]
    [0.333, 0.667, 1.0, 0.55, 0.1, 0.1]
    """
    if step < warmup_steps:
        return learning_rate * (step + 1) / (warmup_steps + 1)
    if step >= decay_steps:
        return min_lr
    span = decay_steps - warmup_steps
    ratio = (step - warmup_steps) / span
    coeff = 0.5 * (1.0 + math.cos(math.pi * ratio))  # 1 -> 0
    return min_lr + coeff * (learning_rate - min_lr)


def lr_at(step: int, config: TrainConfig, max_steps: int | None = None) -> float:
    """The learning rate of ``step`` under ``config`` (``max_steps`` resolves a token budget)."""
    return cosine_lr(
        step,
        learning_rate=config.learning_rate,
        min_lr=config.resolved_min_lr(),
        warmup_steps=config.warmup_steps,
        decay_steps=config.resolved_decay_steps(max_steps),
    )
