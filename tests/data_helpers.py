"""Small synthetic corpora for the data-pipeline tests (no network, no shared corpus)."""

from __future__ import annotations

import gzip
import json
import pathlib
import random

from codekiln.data.pack import MANIFEST


def make_docs(n: int, seed: int = 0, repos: int = 11) -> list[dict[str, str]]:
    """``n`` distinct Python-ish files of 1-4 KB, each naming its repo in its first line."""
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        repo = f"repo-{i % repos}"
        lines = [f"# {repo} module {i}\n", "import os\n\n"]
        for j in range(rng.randint(25, 90)):
            k = rng.randint(0, 10_000)
            lines.append(f"def func_{i}_{j}(value, scale={k % 9}):\n    return value * {k} + {j}\n")
        if i % 10 == 3:
            lines.append("CAFE = 'café ünïcödé ✓'\n")
        docs.append(
            {
                "repo_name": repo,
                "path": f"{repo}/mod_{i}.py",
                "license": "MIT",
                "content": "".join(lines),
            }
        )
    return docs


def write_jsonl_gz(path: pathlib.Path, docs: list[dict[str, str]]) -> pathlib.Path:
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps(d) + "\n")
    return path


def shard_bytes(directory: pathlib.Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.glob("*.bin"))}


def manifest(directory: pathlib.Path) -> dict:
    return json.loads((directory / MANIFEST).read_text())
