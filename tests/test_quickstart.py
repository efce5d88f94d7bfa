"""``codekiln quickstart`` end to end: tokenizer, shards, training, plot, completions."""

from __future__ import annotations

import json
import math
import pathlib

import pytest

pytest.importorskip("torch")

from codekiln.cli import main
from codekiln.quickstart import QuickstartConfig, run_quickstart


def test_quickstart_short_run(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "qs"
    argv = ["quickstart", "--out-dir", str(out), "--vocab-size", "512", "--max-mb", "0.4"]
    argv += ["--train-steps", "40", "--batch-size", "8", "--block-size", "64"]
    argv += ["--humaneval-problems", "2", "--no-progress"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    run = out / "run"
    assert (run / "config.json").exists() and (run / "checkpoints" / "best.pt").exists()
    metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    vals = [m for m in metrics if "val_loss" in m]
    assert vals[0]["step"] == 0 and vals[-1]["step"] == 40
    assert vals[-1]["val_loss"] < vals[0]["val_loss"] - 1.0  # it learned something
    assert "validation perplexity" in text and "before training" in text
    assert (run / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert f"loss plot: {run / 'loss.png'}" in text
    for label in ("greedy", "sample 1", "sample 2"):
        assert f"--- {label} " in text
    assert "def fibonacci(n):" in text
    assert "bits per byte" in text and "HumanEval, first 2 problems" in text
    summary = json.loads((run / "humaneval.jsonl.summary.json").read_text())
    assert 0.0 <= summary["pass@1"] <= 1.0
    assert len((run / "humaneval.jsonl").read_text().splitlines()) == 2 * 2
    # run again: the quickstart's own run directory is replaced, not an error
    assert main(argv) == 0
    assert "validation perplexity" in capsys.readouterr().out
    assert main([*argv[:-1], "--batch-size", "0"]) == 2  # a usage error naming the flag
    assert "argument --batch-size: must be an integer in [1," in capsys.readouterr().err


@pytest.mark.slow
def test_quickstart_default_flags_learn_real_structure(tmp_path: pathlib.Path) -> None:
    """The README's main command with its default training: perplexity must fall to at most
    1/50 of the untrained model's (which starts near the vocabulary size)."""
    lines: list[str] = []
    res = run_quickstart(
        QuickstartConfig(out_dir=str(tmp_path / "qs"), progress=False), log=lines.append
    )
    r = res.train_result
    assert r is not None and r.step == QuickstartConfig().train_steps
    assert r.initial_val_loss == pytest.approx(math.log(8192), abs=0.5)
    assert r.initial_val_ppl / r.final_val_ppl >= 50, (r.initial_val_ppl, r.final_val_ppl)
    greedy = res.completions["def fibonacci(n):"][0]
    assert greedy.strip(), "the greedy completion is empty"
    assert res.bits_per_byte is not None and 0 < res.bits_per_byte < 3
    assert "pass@1" in res.humaneval
