"""``codekiln train`` and ``codekiln plot``.

Every :class:`~codekiln.train.config.TrainConfig` field has a flag (``--micro-batch-size``,
``--no-progress``, ...); ``--data``, ``--out`` and ``--model`` name the three used most.
``--config FILE`` (TOML or JSON) is read first and flags given on the command line override
it. Under ``torchrun -m codekiln train ...`` every process runs this command.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import typing
from typing import Any

from codekiln._cliargs import Float, Int
from codekiln.train.config import ConfigError, TrainConfig, load_config_file

__all__ = ["ConfigError", "add_train_commands", "config_from_args", "config_from_argv"]

#: Short names for the most used fields.
_ALIASES = {"data_dir": "--data", "out_dir": "--out"}
_HELP = {
    "data_dir": "pack directory written by `codekiln data pack` (shards + tokenizer.json)",
    "out_dir": "run directory (config.json, metrics.jsonl, checkpoints/)",
    "model": "model preset: tiny, gpt2-small, codeparrot-small",
    "model_overrides": "GPTConfig field over the preset, KEY=VALUE (repeatable), e.g. n_layer=6",
    "tokenizer": "tokenizer file (default: DATA/tokenizer.json; must match the shards)",
    "max_steps": "optimizer steps",
    "max_tokens": "token budget instead of --max-steps",
    "micro_batch_size": "sequences per forward pass per process",
    "grad_accum_steps": "micro-batches per optimizer step",
    "block_size": "tokens per sequence (default: the model's)",
    "min_lr": "cosine floor (default: learning rate / 10)",
    "decay_steps": "step where the cosine decay ends (default: max steps)",
    "grad_clip": "max gradient norm (0: no clipping)",
    "eval_every": "validate every N steps (0: never)",
    "eval_batches": "validation micro-batches (fixed blocks)",
    "checkpoint_every": "checkpoint every N steps (0: only at the end)",
    "keep_last": "step checkpoints kept besides best.pt",
    "device": "auto (CUDA if present), cpu or cuda",
    "precision": "auto (bf16 on CUDA, fp32 on CPU), fp32, bf16, fp16",
    "compile": "torch.compile the model",
    "strategy": "under torchrun: ddp, or fsdp (FSDP2) for models too big for one GPU",
    "on_nonfinite": "on a NaN/inf loss: stop, or skip the update",
    "loggers": "also log to: tensorboard, wandb",
    "init_from": "start from this run directory's weights (fine-tuning; fresh optimizer)",
    "resume": "continue the run in --out from its last checkpoint",
    "progress": "progress bar (--no-progress to hide)",
}


def _flag(name: str) -> str:
    return _ALIASES.get(name, "--" + name.replace("_", "-"))


def _scalar_type(tp: Any) -> Any:
    if typing.get_origin(tp) is typing.Literal:
        return tp
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if args else tp


def _parse_override(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        parsed: Any = json.loads(value)
    except ValueError:
        parsed = value  # a bare string such as rope or rmsnorm
    return key.strip(), parsed


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        flag, tp = _flag(f.name), hints[f.name]
        kw: dict[str, Any] = {
            "dest": f.name,
            "default": argparse.SUPPRESS,
            "help": _HELP.get(f.name),
        }
        if f.name == "model_overrides":
            p.add_argument(
                "--model-override", action="append", type=_parse_override, metavar="KEY=VALUE", **kw
            )
            continue
        if tp is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
            continue
        if f.name == "loggers":
            p.add_argument(flag, nargs="*", choices=["tensorboard", "wandb"], **kw)
            continue
        scalar = _scalar_type(tp)
        choices = typing.get_args(scalar) if typing.get_origin(scalar) is typing.Literal else None
        if choices:
            p.add_argument(flag, choices=choices, **kw)
        else:
            # Numbers are range-checked here only for size (a huge value is a usage error
            # naming the flag); TrainConfig's validation gives each field its own range.
            kind = {int: Int(), float: Float()}.get(scalar, scalar)
            p.add_argument(flag, type=kind, metavar=f.name.split("_")[-1].upper(), **kw)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` of parsed ``codekiln train`` arguments (file, then flags)."""
    values: dict[str, Any] = {}
    if getattr(args, "config", None):
        values.update(load_config_file(args.config))
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    for name in names:
        if hasattr(args, name):
            value = getattr(args, name)
            if name == "model_overrides":
                value = {**values.get("model_overrides", {}), **dict(value)}
            values[name] = value
    return TrainConfig.from_dict(values, source=args.config or "arguments")


def config_from_argv(argv: list[str]) -> TrainConfig:
    """The :class:`TrainConfig` that ``codekiln train ARGV...`` would run."""
    from codekiln.cli import build_parser

    return config_from_args(build_parser().parse_args(["train", *argv]))


def _train_cmd(args: argparse.Namespace) -> int:
    from codekiln.train.loop import TrainingError, train

    config = config_from_args(args)
    try:
        result = train(config)
    except TrainingError as e:
        print(f"codekiln: error: {e}", file=sys.stderr)
        return 1
    rank0 = os.environ.get("RANK", "0") == "0"
    if rank0 and not result.interrupted:
        parts = [
            f"trained {result.step} steps ({result.tokens:,} tokens) in {result.seconds:.0f} s"
        ]
        if result.initial_val_ppl is not None and result.final_val_ppl is not None:
            parts.append(
                f"validation perplexity {result.initial_val_ppl:,.1f} -> {result.final_val_ppl:,.2f}"
            )
        print("; ".join(parts) + f"; run: {result.run_dir}", file=sys.stderr)
    if result.interrupted:
        if not rank0:
            return 130
        print(
            f"codekiln: interrupted at step {result.step}; checkpoint saved in "
            f"{result.run_dir} (continue with --resume)",
            file=sys.stderr,
        )
        return 130
    return 0


def _plot_cmd(args: argparse.Namespace) -> int:
    from codekiln.train.plot import plot_runs

    print(plot_runs(args.runs, out=args.out))
    return 0


def add_train_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "train",
        help="train a GPT on packed shards (CPU, one GPU, or many under torchrun)",
        description="Train a GPT on packed shards. Every TrainConfig field is a flag; "
        "--config FILE (TOML/JSON) is read first and flags override it. Many GPUs: "
        "torchrun --nproc_per_node=N -m codekiln train ...",
    )
    p.add_argument("--config", metavar="FILE", default=None, help="TOML or JSON settings")
    _add_config_flags(p)
    p.set_defaults(func=_train_cmd)

    p = sub.add_parser(
        "plot",
        help="PNG plots of training/validation loss and perplexity of one or more runs",
    )
    p.add_argument("runs", nargs="+", metavar="RUN_DIR")
    p.add_argument(
        "--out",
        default=None,
        metavar="FILE",
        help="PNG to write (default: RUN_DIR/loss.png for one run, ./runs.png for several)",
    )
    p.set_defaults(func=_plot_cmd)
