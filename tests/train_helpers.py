"""A small packed corpus and small training settings for the training tests."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time
from typing import Any

from codekiln.data import PackConfig, pack
from codekiln.quickstart import stdlib_files
from codekiln.tokenizer import Tokenizer

#: A model small enough for many steps per second on one CPU core.
SMALL_MODEL = {"n_layer": 2, "n_head": 2, "n_embd": 64}


def make_packed(directory: pathlib.Path, files: int = 80, vocab_size: int = 512) -> pathlib.Path:
    """Pack ``files`` standard-library modules (tokenizer of ``vocab_size``) into ``directory``."""
    paths = stdlib_files()[:files]
    tok = Tokenizer.train(paths, vocab_size=vocab_size, progress=False, num_threads=1)
    records = [{"content": p.read_text(encoding="utf-8"), "path": p.name} for p in paths]
    pack(records, tok, directory, PackConfig(valid_fraction=0.2), overwrite=True, progress=False)
    return directory


def small_config(data: pathlib.Path, out: pathlib.Path, **kw: Any) -> dict[str, Any]:
    values: dict[str, Any] = dict(
        data_dir=str(data),
        out_dir=str(out),
        model="tiny",
        model_overrides=dict(SMALL_MODEL),
        block_size=32,
        micro_batch_size=4,
        max_steps=12,
        warmup_steps=2,
        eval_every=4,
        eval_batches=2,
        checkpoint_every=4,
        log_every=1,
        progress=False,
        learning_rate=3e-3,
    )
    values.update(kw)
    return values


def cli_args(values: dict[str, Any]) -> list[str]:
    """``codekiln train`` flags for a :func:`small_config` dict."""
    args = []
    for k, v in values.items():
        flag = {"data_dir": "--data", "out_dir": "--out"}.get(k, "--" + k.replace("_", "-"))
        if k == "model_overrides":
            for mk, mv in v.items():
                args += ["--model-override", f"{mk}={json.dumps(mv)}"]
        elif isinstance(v, bool):
            args.append(flag if v else "--no-" + flag[2:])
        elif v is None:
            continue
        else:
            args += [flag, str(v)]
    return args


def _metric(run_dir: pathlib.Path, key: str) -> dict[int, float]:
    out = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if key in rec:
            out[rec["step"]] = rec[key]
    return out


def train_losses(run_dir: pathlib.Path) -> dict[int, float]:
    return _metric(run_dir, "train_loss")


def val_losses(run_dir: pathlib.Path) -> dict[int, float]:
    return _metric(run_dir, "val_loss")


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["OMP_NUM_THREADS"] = "1"
    e["PYTHONUNBUFFERED"] = "1"
    return e


def start_train(values: dict[str, Any]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "codekiln", "train", *cli_args(values)],
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def run_cli(values: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """``python -m codekiln train`` with ``values`` as flags, one torch thread (as
    :func:`start_train`: bit-identical float sums need the same thread count)."""
    return subprocess.run(
        [sys.executable, "-m", "codekiln", "train", *cli_args(values)],
        env=env(),
        capture_output=True,
        text=True,
        timeout=600,
    )


def wait_for_step(proc: subprocess.Popen[bytes], run_dir: pathlib.Path, step: int) -> None:
    """Wait until ``metrics.jsonl`` records a training step >= ``step``."""
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"training ended early: {proc.stderr.read().decode()}")  # type: ignore[union-attr]
        path = run_dir / "metrics.jsonl"
        if path.exists() and any(s >= step for s in train_losses(run_dir)):
            return
        time.sleep(0.05)
    raise AssertionError("training did not reach the step in time")


def interrupt(proc: subprocess.Popen[bytes], sig: int = signal.SIGINT) -> tuple[int, str]:
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err.decode()
