"""``codekiln plot RUN_DIR...``: loss and perplexity curves of one or more runs, as a PNG.

Six panels: training loss, validation loss and validation perplexity, against optimizer steps
(top row) and tokens seen (bottom row); each run is one colour, labelled by its directory, so
runs with different batch sizes compare on the tokens axis. Perplexity uses a log scale.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from codekiln.checkpoint import METRICS_FILE, CheckpointError
from codekiln.train.log import read_metrics

__all__ = ["plot_runs"]

_PANELS = (
    ("train_loss", "training loss"),
    ("val_loss", "validation loss"),
    ("val_ppl", "validation perplexity"),
)


def plot_runs(run_dirs: Sequence[str], out: str | None = None) -> str:
    """Write the plot of ``run_dirs`` to ``out`` (default: ``RUN/loss.png`` for one run,
    ``runs.png`` for several) and return its path."""
    try:
        import matplotlib
    except ImportError:
        raise ValueError("plotting needs matplotlib (pip install matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = []
    for d in run_dirs:
        path = os.path.join(d, METRICS_FILE)
        if not os.path.exists(path):
            raise CheckpointError(f"{d}: no {METRICS_FILE} (not a training run directory?)")
        records = read_metrics(path)
        if not records:
            raise CheckpointError(f"{path}: no metrics recorded yet")
        runs.append((os.path.basename(os.path.normpath(d)) or d, records))
    if out is None:
        out = os.path.join(run_dirs[0], "loss.png") if len(run_dirs) == 1 else "runs.png"

    fig, axes = plt.subplots(2, 3, figsize=(15, 8), squeeze=False)
    for row, xkey in enumerate(("step", "tokens")):
        for col, (key, title) in enumerate(_PANELS):
            ax = axes[row][col]
            for label, records in runs:
                pts = [
                    (r.get(xkey, 0), r[key])
                    for r in records
                    if isinstance(r.get(key), (int, float))
                ]
                if pts:
                    xs, ys = zip(*pts)
                    ax.plot(
                        xs, ys, marker="o" if len(pts) < 30 else None, markersize=3, label=label
                    )
            ax.set_title(title)
            ax.set_xlabel("optimizer steps" if xkey == "step" else "tokens")
            if key == "val_ppl":
                ax.set_yscale("log")
            ax.grid(True, alpha=0.3)
            if ax.lines:
                ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
