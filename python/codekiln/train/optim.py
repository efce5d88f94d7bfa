"""The optimizer: AdamW with the model's decay groups (matrices decayed; biases, norms not).

Fused AdamW on CUDA (one kernel for all parameters). The learning rate is set on every
group before each step from :func:`codekiln.train.schedule.lr_at`.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from codekiln.train.config import TrainConfig

__all__ = ["build_optimizer", "set_lr"]


def build_optimizer(
    model: torch.nn.Module, config: TrainConfig, device_type: str
) -> torch.optim.AdamW:
    """AdamW over ``model``'s trainable parameters: weight decay on tensors with >= 2 dims."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    extra = {}
    if device_type == "cuda" and "fused" in inspect.signature(torch.optim.AdamW).parameters:
        extra["fused"] = True
    return torch.optim.AdamW(
        groups, lr=config.learning_rate, betas=(config.beta1, config.beta2), **extra
    )


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
