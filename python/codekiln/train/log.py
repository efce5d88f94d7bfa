"""What a run reports: ``metrics.jsonl``, optional TensorBoard / Weights & Biases, a progress bar.

``metrics.jsonl`` has one JSON object per line, each with ``step`` (optimizer steps done) and
``tokens`` (tokens trained on so far) and whichever of ``train_loss``, ``val_loss``,
``val_ppl``, ``lr``, ``tokens_per_s``, ``mfu`` were measured at that step. On ``--resume``
the lines after the checkpoint's step are dropped, so the file always describes one run.
TensorBoard and W&B are optional (``loggers=["tensorboard", "wandb"]``) and never required:
asking for one that is not installed is a clear error before training starts.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

from codekiln.checkpoint import METRICS_FILE

__all__ = ["MetricsLog", "check_loggers", "read_metrics"]


def check_loggers(loggers: list[str]) -> None:
    """Raise a clear error now (before training) if an asked-for logger is not installed."""
    import importlib.util

    need = {"tensorboard": "tensorboard", "wandb": "wandb"}
    for name in loggers:
        if importlib.util.find_spec(need[name]) is None:
            raise ValueError(
                f"loggers: {name!r} needs the {need[name]} package (pip install {need[name]})"
            )


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` (a torn last line from a crash is ignored)."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and "step" in rec:
                out.append(rec)
    return out


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


class MetricsLog:
    """Appends metric records to ``metrics.jsonl`` and forwards them to the enabled loggers."""

    def __init__(
        self,
        run_dir: str,
        *,
        loggers: list[str],
        config: dict[str, Any],
        resume_step: int | None,
        wandb_project: str = "codekiln",
    ) -> None:
        self.path = os.path.join(run_dir, METRICS_FILE)
        self._tb: Any = None
        self._wandb: Any = None
        if "tensorboard" in loggers:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ValueError(
                    "loggers: 'tensorboard' needs the tensorboard package (pip install tensorboard)"
                ) from None
            self._tb = SummaryWriter(os.path.join(run_dir, "tensorboard"))
        if "wandb" in loggers:
            try:
                import wandb
            except ImportError:
                raise ValueError(
                    "loggers: 'wandb' needs the wandb package (pip install wandb)"
                ) from None
            self._wandb = wandb.init(
                project=wandb_project, config=config, dir=run_dir, resume="allow"
            )
        if resume_step is None:
            open(self.path, "w").close()
        elif os.path.exists(self.path):
            keep = [r for r in read_metrics(self.path) if r["step"] <= resume_step]
            with open(self.path, "w", encoding="utf-8") as f:
                for r in keep:
                    f.write(json.dumps(r) + "\n")
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())

    def log(self, record: dict[str, Any]) -> None:
        record = {k: _clean(v) for k, v in record.items() if v is not None}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        step = record["step"]
        if self._tb is not None:
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)):
                    self._tb.add_scalar(k, v, step)
        if self._wandb is not None:
            self._wandb.log({k: v for k, v in record.items() if k != "step"}, step=step)

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()
