"""Training: ``codekiln.train.train(TrainConfig(...))`` or ``codekiln train ...``.

>>> from codekiln.train import TrainConfig, lr_at
>>> lr_at(0, TrainConfig(data_dir="packed/", max_steps=10, warmup_steps=0)) == 1e-3
True

Modules: :mod:`~codekiln.train.config` (the settings), :mod:`~codekiln.train.loop` (the loop),
:mod:`~codekiln.train.schedule` (learning rate), :mod:`~codekiln.train.optim` (AdamW),
:mod:`~codekiln.train.batches` (prefetched batches), :mod:`~codekiln.train.ddp` (torchrun,
DDP, FSDP2), :mod:`~codekiln.train.mfu`, :mod:`~codekiln.train.log` (metrics.jsonl, TensorBoard,
W&B), :mod:`~codekiln.train.plot` (loss curves), :mod:`~codekiln.train.cli`. Checkpoints and the
run-directory format live in :mod:`codekiln.checkpoint`, shared with generation and evaluation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from codekiln.train.config import ConfigError, TrainConfig, load_config_file
from codekiln.train.schedule import cosine_lr, lr_at

__all__ = [
    "ConfigError",
    "TrainConfig",
    "TrainResult",
    "TrainingError",
    "cosine_lr",
    "load_config_file",
    "lr_at",
    "train",
]

if TYPE_CHECKING:
    from codekiln.train.loop import TrainingError, TrainResult, train


def __getattr__(name: str) -> Any:
    # The loop imports torch; the config and schedule do not (the CLI parser needs only those).
    if name in ("train", "TrainResult", "TrainingError"):
        from codekiln.train import loop

        return getattr(loop, name)
    raise AttributeError(f"module 'codekiln.train' has no attribute {name!r}")
