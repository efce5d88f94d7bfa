"""``TrainConfig``: every setting of a training run, as one dataclass.

The CLI maps one flag onto each field (``--micro-batch-size`` for ``micro_batch_size``), and
``--config FILE`` (TOML or JSON) fills fields before the flags override them. The resolved
config (model shape and schedule filled in) is written to the run directory as
``config.json``; ``--resume`` compares it with the saved one and names every field that
differs.

This module imports nothing heavy (no torch), so the CLI can build its parser quickly.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "RESUME_MAY_CHANGE",
    "ConfigError",
    "TrainConfig",
    "load_config_file",
]

Device = Literal["auto", "cpu", "cuda"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
Strategy = Literal["ddp", "fsdp"]
OnNonFinite = Literal["stop", "skip"]


class ConfigError(ValueError):
    """A setting is out of range or inconsistent (the message names the field)."""


@dataclass
class TrainConfig:
    """Settings of one training run. Defaults suit a small model on a laptop CPU.

    >>> cfg = TrainConfig(data_dir="packed/", out_dir="run/", max_steps=100)
    >>> cfg.decay_steps is None and cfg.resolved_decay_steps() == 100
    True
    """

    # ---- data and output
    data_dir: str = ""  # a pack directory (codekiln data pack): shards + tokenizer.json
    out_dir: str = "run"  # the run directory: config.json, metrics.jsonl, checkpoints/
    train_split: str = "train"
    valid_split: str = "valid"
    tokenizer: str | None = None  # default: <data_dir>/tokenizer.json (must match the shards)

    # ---- model
    model: str = "tiny"  # a preset of codekiln.model.PRESETS
    # GPTConfig fields over the preset, e.g. {"n_layer": 6, "dropout": 0.1}. vocab_size
    # defaults to the tokenizer's, rounded up to a multiple of 64 (faster matmuls).
    model_overrides: dict[str, Any] = field(default_factory=dict)
    block_size: int | None = None  # tokens per training sequence (default: the model's)

    # ---- batch and length
    micro_batch_size: int = 16  # sequences per forward pass on each process
    grad_accum_steps: int = 1  # micro-batches per optimizer step on each process
    max_steps: int | None = 1000  # optimizer steps; or give max_tokens
    max_tokens: int | None = None  # a token budget (global): max_steps = ceil(tokens / batch)

    # ---- optimizer and schedule
    learning_rate: float = 1e-3  # peak learning rate, reached after warmup_steps
    min_lr: float | None = None  # floor of the cosine decay (default: learning_rate / 10)
    warmup_steps: int = 100  # linear warmup from 0
    decay_steps: int | None = None  # step where the cosine decay ends (default: max_steps)
    weight_decay: float = 0.1  # on matrices only (not biases, norms)
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping

    # ---- evaluation and checkpoints
    eval_every: int = 100  # validate every N steps (and at step 0 and at the end); 0: never
    eval_batches: int = 20  # fixed validation blocks = eval_batches x micro_batch_size
    checkpoint_every: int = 100  # save every N steps (and at the end); 0: only at the end
    keep_last: int = 2  # step checkpoints kept besides best.pt

    # ---- run
    seed: int = 1337
    device: Device = "auto"  # "auto": CUDA when present, else CPU
    precision: Precision = "auto"  # "auto": bf16 autocast on CUDA, fp32 on CPU
    compile: bool = False  # torch.compile the model
    strategy: Strategy = "ddp"  # under torchrun: DDP, or FSDP2 (fully_shard) for big models
    on_nonfinite: OnNonFinite = "stop"  # a NaN/inf loss stops the run, or skips that step
    log_every: int = 10  # train loss / lr / tokens per s to metrics.jsonl every N steps
    loggers: list[str] = field(default_factory=list)  # "tensorboard", "wandb"
    wandb_project: str = "codekiln"
    progress: bool = True  # a tqdm progress bar
    init_from: str | None = None  # a run directory: start from its weights (fresh optimizer)
    resume: bool = False  # continue the run in out_dir from its latest checkpoint

    def __post_init__(self) -> None:
        self.validate()

    # ---- derived values

    def resolved_max_steps(self, tokens_per_step: int) -> int:
        """``max_steps``, or the steps needed for ``max_tokens`` at ``tokens_per_step``."""
        if self.max_tokens is not None:
            return max(1, math.ceil(self.max_tokens / tokens_per_step))
        assert self.max_steps is not None
        return self.max_steps

    def resolved_decay_steps(self, max_steps: int | None = None) -> int:
        if self.decay_steps is not None:
            return self.decay_steps
        steps = self.max_steps if max_steps is None else max_steps
        if steps is None:
            raise ConfigError("decay_steps: set it, or max_steps, when using max_tokens")
        return steps

    def resolved_min_lr(self) -> float:
        return self.learning_rate / 10 if self.min_lr is None else self.min_lr

    # ---- checks

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first bad field."""

        def need(ok: bool, name: str, message: str) -> None:
            if not ok:
                value = getattr(self, name)
                raise ConfigError(f"{name}={value!r}: {message}")

        def is_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        for name in ("micro_batch_size", "grad_accum_steps"):
            need(is_int(getattr(self, name)) and getattr(self, name) >= 1, name, "must be >= 1")
        for name in ("max_steps", "max_tokens", "block_size", "decay_steps"):
            v = getattr(self, name)
            need(v is None or (is_int(v) and v >= 1), name, "must be an int >= 1 (or unset)")
        need(
            self.max_steps is not None or self.max_tokens is not None,
            "max_steps",
            "set max_steps or max_tokens",
        )
        for name in (
            "warmup_steps",
            "eval_every",
            "checkpoint_every",
            "keep_last",
            "seed",
            "eval_batches",
        ):
            v = getattr(self, name)
            need(is_int(v) and v >= 0, name, "must be an int >= 0")
        need(self.log_every >= 1 if is_int(self.log_every) else False, "log_every", "must be >= 1")
        need(self.eval_every == 0 or self.eval_batches >= 1, "eval_batches", "must be >= 1")
        need(self.keep_last >= 1, "keep_last", "must be >= 1")
        for name in ("learning_rate", "weight_decay", "grad_clip"):
            v = getattr(self, name)
            need(isinstance(v, (int, float)) and math.isfinite(v) and v >= 0, name, "must be >= 0")
        need(self.learning_rate > 0, "learning_rate", "must be > 0")
        need(
            self.min_lr is None or 0 <= self.min_lr <= self.learning_rate,
            "min_lr",
            "must be in [0, learning_rate]",
        )
        for name in ("beta1", "beta2"):
            need(0 <= getattr(self, name) < 1, name, "must be in [0, 1)")
        choices = {
            "device": ("auto", "cpu", "cuda"),
            "precision": ("auto", "fp32", "bf16", "fp16"),
            "strategy": ("ddp", "fsdp"),
            "on_nonfinite": ("stop", "skip"),
        }
        for name, allowed in choices.items():
            need(getattr(self, name) in allowed, name, f"choose one of {', '.join(allowed)}")
        need(isinstance(self.model_overrides, dict), "model_overrides", "must be a dict")
        for name in self.loggers:
            if name not in ("tensorboard", "wandb"):
                raise ConfigError(f"loggers: unknown logger {name!r} (tensorboard, wandb)")
        need(isinstance(self.data_dir, str), "data_dir", "must be a path")
        need(bool(self.out_dir), "out_dir", "must be a directory path")

    # ---- (de)serialisation

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, source: str = "config") -> TrainConfig:
        """A config from a dict; unknown keys are an error naming them and ``source``."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"{source}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return cls(**values)


#: Fields that may differ between a run and its ``--resume``: where files go, how progress
#: is shown, when checkpoints are written, how long to train (the schedule is pinned by the
#: resolved ``decay_steps``), and how the global batch is split into micro-batches and
#: processes (the resolved ``global_batch_size`` must stay). Everything else must match.
RESUME_MAY_CHANGE = frozenset(
    {
        "max_steps",
        "max_tokens",
        "micro_batch_size",
        "grad_accum_steps",
        "resume",
        "progress",
        "loggers",
        "wandb_project",
        "checkpoint_every",
        "keep_last",
        "log_every",
        "device",
        "compile",
        "data_dir",
        "out_dir",
        "tokenizer",
        "init_from",
    }
)


def load_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The settings in a TOML (``.toml``) or JSON file, as a dict of field names.

    Keys may use dashes or underscores (``max-steps`` or ``max_steps``). A ``[train]`` table
    in TOML (or ``"train"`` object in JSON) is used when present.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ConfigError(f"--config {path}: {e.strerror}") from None
    try:
        if path.endswith(".toml"):
            try:
                import tomllib
            except ImportError:  # Python 3.10
                import tomli as tomllib  # type: ignore[no-redef]
            data = tomllib.loads(raw.decode("utf-8"))
        else:
            data = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(
            f"--config {path}: not valid {'TOML' if path.endswith('.toml') else 'JSON'}: {e}"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path}: expected a table/object of settings")
    if isinstance(data.get("train"), dict):
        data = data["train"]
    return {str(k).replace("-", "_"): v for k, v in data.items()}
