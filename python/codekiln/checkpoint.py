"""The run directory: one format shared by training, generation, evaluation and export.

A run directory (``codekiln train --out DIR``) holds::

    config.json          the resolved TrainConfig, the model's GPTConfig, the tokenizer fingerprint
    tokenizer.json       the tokenizer the model was trained with (a copy)
    metrics.jsonl        one JSON object per line: {"step": ..., "train_loss": ..., ...}
    checkpoints/
        step-00001000.pt the last ``keep_last`` step checkpoints
        best.pt          the checkpoint with the lowest validation loss so far

Every checkpoint is a ``torch.save`` dict (loaded with ``weights_only=True``: no pickled code)
holding the model weights, the optimizer state, the step, both configs, the tokenizer
fingerprint, every RNG state and the data sampler's position -- enough to continue the run
bit for bit. Writes are atomic (:mod:`codekiln._io`): a crash or ``kill -9`` while writing
leaves the previous checkpoint in place and loadable.

Code that only *uses* a trained model goes through :func:`load_model`; it never imports
:mod:`codekiln.train`.
"""

from __future__ import annotations

import json
import os
import re
from typing import TYPE_CHECKING, Any

from codekiln._io import atomic_path

if TYPE_CHECKING:
    from codekiln.model import GPT
    from codekiln.tokenizer import Tokenizer

__all__ = [
    "CHECKPOINT_DIR",
    "FORMAT",
    "VERSION",
    "CheckpointError",
    "list_checkpoints",
    "load_checkpoint",
    "load_model",
    "load_run_config",
    "prune_checkpoints",
    "resolve_checkpoint",
    "save_checkpoint",
]

FORMAT = "codekiln-checkpoint"
VERSION = 1
CHECKPOINT_DIR = "checkpoints"
BEST = "best.pt"
CONFIG_FILE = "config.json"
TOKENIZER_FILE = "tokenizer.json"
METRICS_FILE = "metrics.jsonl"
_STEP_RE = re.compile(r"^step-(\d+)\.pt$")


class CheckpointError(ValueError):
    """A run directory or checkpoint file is missing, corrupt or of another format."""


def step_name(step: int) -> str:
    return f"step-{step:08d}.pt"


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> str:
    """Write ``state`` (a dict of tensors and plain values) to ``path`` atomically."""
    import torch

    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "version": VERSION, **state}, tmp)
    return path


def list_checkpoints(run_dir: str | os.PathLike[str]) -> list[tuple[int, str]]:
    """``(step, path)`` of the step checkpoints in ``run_dir``, oldest first."""
    directory = os.path.join(os.fspath(run_dir), CHECKPOINT_DIR)
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        m = _STEP_RE.match(name)
        if m:
            found.append((int(m.group(1)), os.path.join(directory, name)))
    return sorted(found)


def prune_checkpoints(run_dir: str | os.PathLike[str], keep_last: int) -> list[str]:
    """Delete all but the newest ``keep_last`` step checkpoints; returns the deleted paths."""
    found = list_checkpoints(run_dir)
    doomed = [p for _, p in found[: max(0, len(found) - keep_last)]]
    for p in doomed:
        os.remove(p)
    return doomed


def resolve_checkpoint(run_dir: str | os.PathLike[str], which: str = "last") -> str:
    """The checkpoint file for ``which``: ``"last"`` (newest step), ``"best"`` (lowest
    validation loss; the last one when no validation ran) or a path to a ``.pt`` file."""
    run_dir = os.fspath(run_dir)
    if which not in ("last", "best"):
        if os.path.isfile(which):
            return which
        candidate = os.path.join(run_dir, CHECKPOINT_DIR, which)
        if os.path.isfile(candidate):
            return candidate
        raise CheckpointError(
            f"checkpoint {which!r}: no such file (nor in {run_dir}/{CHECKPOINT_DIR})"
        )
    if not os.path.isdir(run_dir):
        raise CheckpointError(f"{run_dir}: no such run directory")
    if which == "best":
        best = os.path.join(run_dir, CHECKPOINT_DIR, BEST)
        if os.path.isfile(best):
            return best
    found = list_checkpoints(run_dir)
    if not found:
        raise CheckpointError(
            f"{run_dir}: no checkpoint in {os.path.join(run_dir, CHECKPOINT_DIR)} (has the run "
            "written one yet? checkpoints come every --checkpoint-every steps and at the end)"
        )
    return found[-1][1]


def load_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu") -> dict[str, Any]:
    """The dict saved by :func:`save_checkpoint`; :class:`CheckpointError` if it is corrupt,
    truncated or not a codekiln checkpoint."""
    import pickle
    import zipfile

    import torch

    path = os.fspath(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"{path}: not a readable checkpoint (corrupt or truncated: {first}); resume from an "
            "older one in the same directory or delete this file"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a codekiln checkpoint")
    if state.get("version", 0) > VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {state['version']} is newer than this codekiln "
            f"understands ({VERSION}); upgrade codekiln"
        )
    return state


def load_run_config(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``config.json`` of a run directory."""
    path = os.path.join(os.fspath(run_dir), CONFIG_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise CheckpointError(f"{run_dir}: not a run directory (no {CONFIG_FILE})") from None
    except ValueError as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None


def load_model(
    run_dir: str | os.PathLike[str],
    checkpoint: str = "best",
    device: str = "cpu",
) -> tuple[GPT, Tokenizer]:
    """The trained model (in eval mode, on ``device``) and its tokenizer from a run directory.

    ``checkpoint`` is ``"best"``, ``"last"`` or a path. The tokenizer is the run's copy; its
    fingerprint must match the one the checkpoint was trained with.
    """
    from codekiln.model import GPT, GPTConfig
    from codekiln.tokenizer import Tokenizer

    run_dir = os.fspath(run_dir)
    path = resolve_checkpoint(run_dir, checkpoint)
    state = load_checkpoint(path)
    tok_path = os.path.join(run_dir, TOKENIZER_FILE)
    try:
        tok = Tokenizer.load(tok_path)
    except FileNotFoundError:
        raise CheckpointError(f"{run_dir}: no {TOKENIZER_FILE} beside the checkpoints") from None
    want = state.get("tokenizer_fingerprint")
    if want and tok.fingerprint != want:
        raise CheckpointError(
            f"{tok_path}: fingerprint {tok.fingerprint[:12]} is not the one {path} was trained "
            f"with ({want[:12]})"
        )
    model = GPT(GPTConfig(**state["model_config"]))
    model.load_state_dict(state["model"])
    model.to(device)
    model.eval()
    return model, tok
