"""``train(config)``: the training loop, importable and tested without the CLI.

One step = ``grad_accum_steps`` micro-batches of ``micro_batch_size`` blocks on every process,
gradients averaged (DDP all-reduces only on the last micro-batch), clipped, one AdamW update
at the learning rate of :func:`~codekiln.train.schedule.lr_at`. Around it:

* validation at step 0, every ``eval_every`` steps and at the end, on a fixed set of
  validation blocks spread evenly over the split (``val_loss``, ``val_ppl = exp(val_loss)``);
* checkpoints every ``checkpoint_every`` steps and at the end (the last ``keep_last`` plus
  ``best.pt``), written atomically by rank 0;
* SIGINT / SIGTERM finish the current step, save a checkpoint and return
  (``result.interrupted``); a second Ctrl-C stops at once;
* ``resume=True`` restores weights, optimizer, step, RNG states and the data position, so
  the losses continue exactly as if the run had never stopped (on CPU, bit for bit);
* a non-finite loss stops the run naming the step (``on_nonfinite="stop"``) or skips that
  update (``"skip"``).

The CPU-GPU synchronisation points are marked ``# sync``: one per step (the loss value, needed
to refuse a non-finite loss before the update) and the logging/eval points.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import random
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from codekiln import checkpoint as ckpt
from codekiln._io import atomic_path, atomic_write_json
from codekiln.data import BlockSampler, PackedDataset, ShardError
from codekiln.model import GPT, PRESETS, GPTConfig
from codekiln.train import ddp
from codekiln.train.batches import BatchLoader
from codekiln.train.config import RESUME_MAY_CHANGE, ConfigError, TrainConfig
from codekiln.train.log import MetricsLog, check_loggers
from codekiln.train.mfu import estimate_mfu, peak_flops
from codekiln.train.optim import build_optimizer, set_lr
from codekiln.train.schedule import lr_at

__all__ = ["TrainResult", "TrainingError", "train"]


class TrainingError(RuntimeError):
    """The run cannot go on (e.g. a non-finite loss); the message says where and what to do."""


@dataclass
class TrainResult:
    """What a run did. Losses are mean cross-entropies in nats per token."""

    run_dir: str
    step: int  # optimizer steps done
    max_steps: int
    tokens: int  # tokens trained on (all processes)
    initial_val_loss: float | None = None  # at step 0 (a resumed run: from its metrics)
    final_val_loss: float | None = None
    best_val_loss: float | None = None
    last_train_loss: float | None = None
    interrupted: bool = False
    skipped_steps: int = 0
    checkpoint: str | None = None  # the last checkpoint written
    seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)  # this process's records

    @property
    def initial_val_ppl(self) -> float | None:
        return None if self.initial_val_loss is None else math.exp(self.initial_val_loss)

    @property
    def final_val_ppl(self) -> float | None:
        return None if self.final_val_loss is None else math.exp(self.final_val_loss)


# ------------------------------------------------------------------------------ set-up helpers


def _load_tokenizer(config: TrainConfig, dataset: PackedDataset) -> Any:
    from codekiln.tokenizer import load_tokenizer

    path = config.tokenizer or os.path.join(config.data_dir, "tokenizer.json")
    if not os.path.exists(path):
        raise ConfigError(
            f"{path}: no tokenizer file; give --tokenizer FILE (the one the shards were packed with)"
        )
    tok = load_tokenizer(path)
    if tok.fingerprint != dataset.fingerprint:
        raise ConfigError(
            f"{path}: tokenizer fingerprint {tok.fingerprint[:12]} differs from the one the "
            f"shards in {config.data_dir} were packed with ({dataset.fingerprint[:12]}); pack "
            "the data with this tokenizer or train with the pack's own tokenizer.json"
        )
    return tok


def _open_split(config: TrainConfig, split: str, block_size: int) -> PackedDataset:
    if not config.data_dir:
        raise ConfigError("data_dir: give the directory written by `codekiln data pack` (--data)")
    if not os.path.isdir(config.data_dir):
        raise ConfigError(f"data_dir {config.data_dir!r}: no such directory")
    try:
        ds = PackedDataset(config.data_dir, split, block_size)
    except (ShardError, ValueError) as e:
        raise ConfigError(f"data_dir {config.data_dir!r}, split {split!r}: {e}") from None
    if len(ds) == 0:
        raise ConfigError(
            f"data_dir {config.data_dir!r}: split {split!r} has {ds.num_tokens} tokens, fewer "
            f"than one block of {block_size + 1}; use a smaller --block-size or more data"
        )
    return ds


def _model_config(config: TrainConfig, vocab_size: int, init: dict[str, Any] | None) -> GPTConfig:
    if init is not None:  # fine-tuning: the architecture is the init run's
        base = dict(init)
        for k, v in config.model_overrides.items():
            if k in ("dropout", "attention"):
                base[k] = v
            elif base.get(k) != v:
                raise ConfigError(
                    f"model_overrides: {k}={v!r} differs from the --init-from model's {base.get(k)!r}"
                )
    else:
        if config.model not in PRESETS:
            raise ConfigError(
                f"model {config.model!r}: unknown preset; choose one of {sorted(PRESETS)}"
            )
        base = {**PRESETS[config.model], "vocab_size": 64 * math.ceil(vocab_size / 64)}
        base.update(config.model_overrides)
    try:
        mc = GPTConfig(**base)
    except TypeError as e:
        raise ConfigError(f"model_overrides: {e}") from None
    if mc.vocab_size < vocab_size:
        raise ConfigError(
            f"the tokenizer has {vocab_size} ids but the model's vocab_size is {mc.vocab_size}; "
            "drop the vocab_size override or make it at least the tokenizer's"
        )
    if config.block_size is not None and config.block_size > mc.block_size:
        raise ConfigError(
            f"block_size={config.block_size} is larger than the model's block_size="
            f"{mc.block_size}; lower --block-size or set model_overrides block_size"
        )
    return mc


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy(), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        with contextlib.suppress(RuntimeError, IndexError):
            torch.cuda.set_rng_state_all(state["cuda"])


def _sampler_position(state: dict[str, Any]) -> tuple[int, int]:
    """(epoch, blocks consumed by all ranks in that epoch) of a saved sampler state."""
    return int(state["epoch"]), int(state["position"]) * int(state["world_size"])


def _restore_sampler(sampler: BlockSampler, saved: dict[str, Any]) -> None:
    epoch, consumed = _sampler_position(saved)
    if saved["num_blocks"] != sampler.num_blocks:
        raise ConfigError(
            f"the train split now has {sampler.num_blocks} blocks, the checkpoint was made "
            f"with {saved['num_blocks']}: resume on the same data and block_size"
        )
    state = sampler.state_dict()
    # Another world size: continue at the same global position (rounded up to a whole
    # per-rank position, so no block is seen twice).
    state.update(epoch=epoch, position=-(-consumed // sampler.world_size))
    sampler.load_state_dict(state)


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    if precision in ("bf16", "fp16"):
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(device_type=device.type, dtype=dtype)
    return contextlib.nullcontext()


def _resolve_precision(config: TrainConfig, device: torch.device) -> str:
    if config.precision != "auto":
        if config.precision == "fp16" and device.type != "cuda":
            raise ConfigError("precision='fp16' needs CUDA (use bf16 or fp32 on the CPU)")
        return config.precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def _diff_configs(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [
        f"{k}: {old.get(k)!r} -> {new.get(k)!r}"
        for k in keys
        if k not in RESUME_MAY_CHANGE and old.get(k) != new.get(k)
    ]


class _StopFlag:
    """SIGINT / SIGTERM ask the loop to stop after the current step (a 2nd SIGINT: at once)."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


# ------------------------------------------------------------------------------ the loop


def train(config: TrainConfig) -> TrainResult:
    """Train a GPT on packed shards as ``config`` says; returns what happened.

    >>> # result = train(TrainConfig(data_dir="packed/", out_dir="run/", max_steps=200))
    """
    config.validate()
    check_loggers(config.loggers)
    info = ddp.setup(config.device)
    try:
        return _train(config, info)
    finally:
        ddp.teardown(info)


def _train(config: TrainConfig, info: ddp.DistInfo) -> TrainResult:
    started = time.perf_counter()
    device = info.device
    precision = _resolve_precision(config, device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    run_dir = config.out_dir

    # ---- the init run / the resumed checkpoint decide the architecture
    init_state: dict[str, Any] | None = None
    if config.init_from and not config.resume:
        init_state = ckpt.load_checkpoint(ckpt.resolve_checkpoint(config.init_from, "best"))
    resume_path: str | None = None
    if config.resume:
        if not os.path.isdir(run_dir) or not ckpt.list_checkpoints(run_dir):
            raise ConfigError(
                f"--resume: no checkpoint in {os.path.join(run_dir, ckpt.CHECKPOINT_DIR)}; "
                "start without --resume"
            )
        resume_path = ckpt.resolve_checkpoint(run_dir, "last")
    elif os.path.isdir(os.path.join(run_dir, ckpt.CHECKPOINT_DIR)) and ckpt.list_checkpoints(
        run_dir
    ):
        raise ConfigError(
            f"out_dir {run_dir!r} already holds a run; continue it with --resume or choose "
            "another --out"
        )
    resume_state = ckpt.load_checkpoint(resume_path) if resume_path else None

    # ---- data and tokenizer
    mc_source = (
        resume_state["model_config"]
        if resume_state
        else (init_state["model_config"] if init_state else None)
    )
    # The block size the run will use, known before the tokenizer so the split opens once
    # (the model's own block_size, unless --block-size says otherwise).
    shape = mc_source or {**PRESETS.get(config.model, {}), **config.model_overrides}
    probe_block = config.block_size or shape.get("block_size", GPTConfig.block_size)
    train_ds = _open_split(config, config.train_split, probe_block)
    tok = _load_tokenizer(config, train_ds)
    if train_ds.vocab_size > tok.vocab_size:
        raise ConfigError(f"the shards' vocab_size {train_ds.vocab_size} exceeds the tokenizer's")
    if resume_state is not None:
        mconf = GPTConfig(**resume_state["model_config"])
    else:
        mconf = _model_config(
            config, tok.vocab_size, init_state["model_config"] if init_state else None
        )
    block_size = config.block_size or mconf.block_size
    if block_size != probe_block:
        train_ds = _open_split(config, config.train_split, block_size)
    for state, what in ((init_state, "--init-from"), (resume_state, "--resume")):
        if state is not None and state.get("tokenizer_fingerprint") not in (None, tok.fingerprint):
            raise ConfigError(
                f"{what}: that run used tokenizer {state['tokenizer_fingerprint'][:12]}, the "
                f"data here was packed with {tok.fingerprint[:12]}"
            )
    val_ds = _open_split(config, config.valid_split, block_size) if config.eval_every else None

    tokens_per_step = (
        config.micro_batch_size * config.grad_accum_steps * info.world_size * block_size
    )
    max_steps = config.resolved_max_steps(tokens_per_step)
    resolved = {
        **config.to_dict(),
        "max_steps": max_steps,
        "block_size": block_size,
        "decay_steps": config.resolved_decay_steps(max_steps),
        "min_lr": config.resolved_min_lr(),
        "precision": precision,
        "global_batch_size": config.micro_batch_size * config.grad_accum_steps * info.world_size,
    }
    run_record = {
        "train": resolved,
        "model": dataclasses.asdict(mconf),
        "tokenizer_fingerprint": tok.fingerprint,
        "world_size": info.world_size,
    }
    if resume_state is not None:
        old = resume_state["train_config"]
        diff = _diff_configs(old, resolved)
        if diff:
            raise ConfigError(
                "--resume with a changed config (" + "; ".join(diff) + "); use the same "
                "settings as the run being resumed, or start a new run"
            )

    # ---- model, optimizer
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    np.random.seed(config.seed % 2**32)
    model = GPT(mconf)
    if init_state is not None:
        model.load_state_dict(init_state["model"])
    model.to(device)
    if config.strategy == "fsdp" and info.enabled:
        model = ddp.wrap(model, info, "fsdp")
    optimizer = build_optimizer(model, config, device.type)
    if info.enabled and config.strategy == "ddp":
        model = ddp.wrap(model, info, "ddp")
    step = 0
    best_val: float | None = None
    tokens = 0
    sampler = BlockSampler(
        len(train_ds), seed=config.seed, rank=info.rank, world_size=info.world_size
    )
    if resume_state is not None:
        ddp.load_full_state(model, optimizer, resume_state["model"], resume_state["optimizer"])
        step = int(resume_state["step"])
        best_val = resume_state.get("best_val_loss")
        tokens = int(resume_state.get("tokens", 0))
        _restore_sampler(sampler, resume_state["sampler"])
        _set_rng_state(resume_state["rng"])
    elif info.rank:
        torch.manual_seed(config.seed + info.rank)  # dropout differs between ranks
    fwd_model: Any = torch.compile(model) if config.compile else model
    raw_model = ddp.unwrap(model)

    # ---- run directory (rank 0 writes)
    metrics: MetricsLog | None = None
    if info.is_main:
        os.makedirs(os.path.join(run_dir, ckpt.CHECKPOINT_DIR), exist_ok=True)
        atomic_write_json(os.path.join(run_dir, ckpt.CONFIG_FILE), run_record)
        tok_copy = os.path.join(run_dir, ckpt.TOKENIZER_FILE)
        if not os.path.exists(tok_copy):
            tok.save(tok_copy)
        metrics = MetricsLog(
            run_dir,
            loggers=config.loggers,
            config=run_record,
            resume_step=step if resume_state is not None else None,
            wandb_project=config.wandb_project,
        )

    result = TrainResult(run_dir=run_dir, step=step, max_steps=max_steps, tokens=tokens)
    if resume_state is not None and info.is_main:
        from codekiln.train.log import read_metrics

        vals = [r["val_loss"] for r in read_metrics(metrics.path) if "val_loss" in r]  # type: ignore[union-attr]
        result.initial_val_loss = vals[0] if vals else None
    result.best_val_loss = best_val

    def record(rec: dict[str, Any]) -> None:
        rec = {"step": step, "tokens": tokens, **rec}
        result.history.append(rec)
        if metrics is not None:
            metrics.log(rec)

    # ---- validation on fixed blocks, gathered once: (x, y, tokens that count) per forward
    val_batches: list[tuple[torch.Tensor, torch.Tensor, int]] = []
    if val_ds is not None:
        n = min(len(val_ds), config.eval_batches * config.micro_batch_size)
        val_idx = sorted(set(np.linspace(0, len(val_ds) - 1, n).round().astype(int).tolist()))
        mine = val_idx[info.rank :: info.world_size]
        per_rank = -(-len(val_idx) // info.world_size)
        mb = config.micro_batch_size
        for start in range(0, per_rank, mb):
            chunk = mine[start : start + mb]
            # Every rank runs the same number of forwards (FSDP needs it); padding rows have
            # target -1 and count for nothing.
            rows = len(chunk)
            chunk = chunk + [val_idx[0]] * (min(mb, per_rank - start) - rows)
            blocks = torch.from_numpy(np.stack([val_ds.block(i) for i in chunk]))
            x, y = blocks[:, :-1], blocks[:, 1:].clone()
            y[rows:] = -1
            val_batches.append((x.to(device), y.to(device), rows * block_size))

    def evaluate() -> float:
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        count = torch.zeros((), dtype=torch.float64, device=device)
        fwd_model.eval()
        with torch.no_grad():
            for x, y, ntok in val_batches:
                with _autocast(device, precision):
                    _, loss = fwd_model(x, y)
                if ntok:
                    loss_sum += loss.double() * ntok
                    count += ntok
        fwd_model.train()
        ddp.all_reduce_sum(loss_sum, info)
        ddp.all_reduce_sum(count, info)
        return float(loss_sum / count)  # sync

    def save(tag: str) -> str | None:
        model_sd, optim_sd = ddp.full_state(model, optimizer)
        if not info.is_main:
            return None
        state = {
            "step": step,
            "tokens": tokens,
            "model": model_sd,
            "optimizer": optim_sd,
            "model_config": dataclasses.asdict(mconf),
            "train_config": resolved,
            "tokenizer_fingerprint": tok.fingerprint,
            "rng": _rng_state(),
            "sampler": sampler_state,
            "best_val_loss": best_val,
            "val_loss": last_val,
        }
        name = ckpt.BEST if tag == "best" else ckpt.step_name(step)
        path = ckpt.save_checkpoint(os.path.join(run_dir, ckpt.CHECKPOINT_DIR, name), state)
        if tag != "best":
            ckpt.prune_checkpoints(run_dir, config.keep_last)
        return path

    def link_best(path: str) -> None:
        best = os.path.join(run_dir, ckpt.CHECKPOINT_DIR, ckpt.BEST)
        with atomic_path(best) as tmp:
            try:
                os.link(path, tmp)
            except OSError:
                shutil.copyfile(path, tmp)

    # ---- the loop
    sampler_state = sampler.state_dict()
    last_val: float | None = None
    peak = peak_flops(device)
    flops_per_token = raw_model.flops_per_token(block_size)
    loader = BatchLoader(train_ds, sampler, config.micro_batch_size, device)
    bar = None
    if config.progress and info.is_main:
        from tqdm.auto import tqdm

        bar = tqdm(total=max_steps, initial=step, desc="train", unit="step", dynamic_ncols=True)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
    interval_start, interval_tokens = time.perf_counter(), 0
    loss_window: list[torch.Tensor] = []

    try:
        with _StopFlag() as stop:
            if resume_state is None and val_ds is not None:
                last_val = evaluate()  # the untrained model: a baseline, not a "best"
                result.initial_val_loss = last_val
                record({"val_loss": last_val, "val_ppl": math.exp(last_val)})
            while step < max_steps:
                lr = lr_at(step, config, max_steps)
                set_lr(optimizer, lr)
                step_loss = torch.zeros((), device=device)
                for micro in range(config.grad_accum_steps):
                    x, y, sampler_state = next(loader)
                    last = micro == config.grad_accum_steps - 1
                    with ddp.no_sync(model, skip=info.enabled and not last):
                        with _autocast(device, precision):
                            _, loss = fwd_model(x, y)
                        scaled = loss / config.grad_accum_steps
                        (scaler.scale(scaled) if scaler else scaled).backward()
                    step_loss += loss.detach() / config.grad_accum_steps
                if info.enabled:
                    ddp.all_reduce_sum(step_loss, info).div_(info.world_size)
                loss_value = float(step_loss)  # sync: refuse a non-finite loss before updating
                if scaler is not None:
                    scaler.unscale_(optimizer)
                norm = (
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                    if config.grad_clip > 0
                    else None
                )
                finite = math.isfinite(loss_value) and (
                    norm is None or scaler is not None or bool(torch.isfinite(norm))
                )
                if not finite:
                    if config.on_nonfinite == "stop":
                        raise TrainingError(
                            f"non-finite loss ({loss_value}) at step {step + 1}; the run stopped "
                            "without updating the weights. Lower --learning-rate, check the data, "
                            "or pass --on-nonfinite skip; resume from the last checkpoint with --resume"
                        )
                    result.skipped_steps += 1
                    optimizer.zero_grad(set_to_none=True)
                    if scaler is not None:
                        scaler.update()
                elif scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                tokens += tokens_per_step
                interval_tokens += tokens_per_step
                if finite:
                    loss_window.append(step_loss)
                    result.last_train_loss = loss_value

                stop_now = stop.signal is not None
                if info.enabled:  # every rank stops at the same step
                    flag = torch.tensor([1.0 if stop_now else 0.0], device=device)
                    stop_now = bool(ddp.all_reduce_sum(flag, info).item() > 0)  # sync
                final = step == max_steps or stop_now

                if step % config.log_every == 0 or final:
                    elapsed = time.perf_counter() - interval_start
                    tps = interval_tokens / elapsed if elapsed > 0 else None
                    mean_loss = (
                        float(torch.stack(loss_window).mean()) if loss_window else float("nan")
                    )
                    mfu = (
                        estimate_mfu(flops_per_token, tps / info.world_size, peak) if tps else None
                    )
                    record({"train_loss": mean_loss, "lr": lr, "tokens_per_s": tps, "mfu": mfu})
                    if bar is not None:
                        post = {"loss": f"{mean_loss:.3f}", "lr": f"{lr:.2e}"}
                        if tps:
                            post["tok/s"] = f"{tps:,.0f}"
                        if mfu is not None:
                            post["mfu"] = f"{100 * mfu:.1f}%"
                        bar.set_postfix(post, refresh=False)
                    loss_window.clear()
                    interval_start, interval_tokens = time.perf_counter(), 0

                improved = False
                if val_ds is not None and (step % config.eval_every == 0 or step == max_steps):
                    last_val = evaluate()
                    record({"val_loss": last_val, "val_ppl": math.exp(last_val)})
                    if best_val is None or last_val < best_val:
                        best_val, improved = last_val, True
                    interval_start = time.perf_counter()  # eval time is not training speed

                # Every rank takes the same branches: gathering FSDP state is collective.
                path, saved = None, False
                if final or (config.checkpoint_every and step % config.checkpoint_every == 0):
                    path, saved = save("step"), True
                    result.checkpoint = path or result.checkpoint
                if improved:
                    if not saved:
                        save("best")
                    elif path is not None:
                        link_best(path)
                if bar is not None:
                    bar.update(1)
                if stop_now:
                    result.interrupted = True
                    break
    finally:
        loader.close()
        if bar is not None:
            bar.close()
        if metrics is not None:
            metrics.close()

    if best_val is None and info.is_main and result.checkpoint:  # no validation: best = last
        link_best(result.checkpoint)
    result.step = step
    result.tokens = tokens
    result.final_val_loss = last_val
    result.best_val_loss = best_val
    result.seconds = time.perf_counter() - started
    return result
