"""Redaction: recall and code changes on a labeled set, against detect-secrets; throughput on the
real corpus; time on pathological inputs.

    python benchmarks/bench_redact.py labeled [--split tune|holdout|all] [--show]
    python benchmarks/bench_redact.py throughput --corpus ../shared/corpus [--files 1] [--runs 3]
        [--against OTHER_PYTHONPATH]
    python benchmarks/bench_redact.py linear [--mb 2]
    python benchmarks/bench_redact.py sample --corpus ../shared/corpus [--per-kind 25] [--seed 0]
    python benchmarks/bench_redact.py parses --corpus ../shared/corpus [--files 5]

``labeled``: the cases in ``benchmarks/redact_set/`` (format in ``tune.txt``). A positive is
*removed* when every byte of every marked secret lies inside a redaction (``redaction_spans``),
*detected* when every secret overlaps a finding. A negative is *changed* by any finding. The
anchor, detect-secrets (its default plugins, each case scanned as a ``.py`` file), reports a
line and a value per finding: its *removed* replaces every occurrence of each reported value on
its line, its *detected* needs a finding on a line of each secret. ``parses`` counts the cases
that ``ast.parse`` accepted before and rejected after our redaction (must be 0).

``throughput``: every document of the first ``--files`` train shards is redacted with
``codekiln.data.redact`` (one thread), timed in a fresh subprocess per run; with ``--against``
the same runs interleave with another build's package (e.g. the previous commit's), and the
ratio of medians is reported.

``linear``: one call to ``redact`` on each pathological input at 1/4 and full size; a ratio
near 4 is linear time.

``sample``: prints random real-corpus redactions with context, for checking precision by hand.

``parses``: counts the real-corpus files with findings that ``ast.parse`` accepts before
redaction and rejects after (must be 0), and the private-key redactions that hold code
characters (``()[],`` outside ``Proc-Type:``-style header lines: code between two marker
strings).
"""

from __future__ import annotations

import argparse
import ast
import gzip
import json
import os
import pathlib
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

HERE = pathlib.Path(__file__).resolve().parent
SET_DIR = HERE / "redact_set"
OPEN, CLOSE = "⟦", "⟧"


@dataclass
class Case:
    split: str
    positive: bool
    cls: str
    name: str
    text: str
    secrets: list[tuple[int, int]] = field(default_factory=list)  # byte spans


def parse_cases(path: pathlib.Path, split: str) -> list[Case]:
    """Cases of one set file; ``⟦...⟧`` marks a secret (removed from the text)."""
    cases: list[Case] = []
    header = None
    body: list[str] = []

    def flush() -> None:
        if header is None:
            return
        kind, cls, name = header
        raw = "".join(body).rstrip("\n") + "\n"
        text, secrets = "", []
        while OPEN in raw:
            before, rest = raw.split(OPEN, 1)
            secret, raw = rest.split(CLOSE, 1)
            text += before
            start = len(text.encode())
            text += secret
            secrets.append((start, len(text.encode())))
        text += raw
        if (kind == "pos") != bool(secrets):
            raise ValueError(f"{path}: case {name}: positives need marked secrets, negatives none")
        cases.append(Case(split, kind == "pos", cls, name, text, secrets))

    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        if line.startswith("### "):
            flush()
            kind, cls, name = line[4:].split()
            header, body = (kind, cls, name), []
        elif header is not None:
            body.append(line)
    flush()
    return cases


def load_cases(split: str) -> list[Case]:
    splits = ["tune", "holdout"] if split == "all" else [split]
    return [c for s in splits for c in parse_cases(SET_DIR / f"{s}.txt", s)]


def covered(secret: tuple[int, int], spans: list[tuple[int, int]]) -> bool:
    s, e = secret
    need = s
    for a, b in sorted(spans):
        if a <= need < b:
            need = b
        if need >= e:
            return True
    return need >= e


def overlaps(secret: tuple[int, int], spans: list[tuple[int, int]]) -> bool:
    return any(a < secret[1] and secret[0] < b for a, b in spans)


def ours(case: Case) -> tuple[list[tuple[int, int]], str]:
    from codekiln.data import redact, redaction_spans

    return [(s, e) for s, e, _ in redaction_spans(case.text)], redact(case.text)[0]


def detect_secrets_spans(case: Case, tmp: pathlib.Path) -> tuple[list, list]:
    """(value spans, line spans) of detect-secrets' findings, in bytes of the case's text."""
    from detect_secrets import SecretsCollection
    from detect_secrets.settings import default_settings

    p = tmp / "case.py"
    p.write_text(case.text, encoding="utf-8")
    with default_settings():
        sc = SecretsCollection()
        sc.scan_file(str(p))
    data = case.text.encode()
    starts = [0] + [i + 1 for i, b in enumerate(data) if b == 10]
    values, lines = [], []
    for secrets in sc.data.values():
        for s in secrets:
            ls = starts[s.line_number - 1]
            le = starts[s.line_number] if s.line_number < len(starts) else len(data)
            lines.append((ls, le))
            v = (s.secret_value or "").encode()
            i = data.find(v, ls, le) if v else -1
            while i != -1:
                values.append((i, i + len(v)))
                i = data.find(v, i + 1, le)
    return values, lines


def parses(text: str) -> bool:
    try:
        ast.parse(text)
    except SyntaxError:
        return False
    return True


def labeled(args: argparse.Namespace) -> dict:
    cases = load_cases(args.split)
    rows: dict[tuple[str, bool, str], dict[str, int]] = {}
    broken = []
    with tempfile.TemporaryDirectory() as d:
        for c in cases:
            spans, out = ours(c)
            ds_values, ds_lines = detect_secrets_spans(c, pathlib.Path(d))
            r = rows.setdefault((c.split, c.positive, c.cls), {})
            r["n"] = r.get("n", 0) + 1
            if c.positive:
                res = {
                    "ours_removed": all(covered(s, spans) for s in c.secrets),
                    "ours_detected": all(overlaps(s, spans) for s in c.secrets),
                    "ds_removed": all(covered(s, ds_values) for s in c.secrets),
                    "ds_detected": all(overlaps(s, ds_lines) for s in c.secrets),
                }
            else:
                res = {"ours_changed": out != c.text, "ds_changed": bool(ds_lines)}
            for k, v in res.items():
                r[k] = r.get(k, 0) + int(v)
            if parses(c.text) and not parses(out):
                broken.append(c.name)
            if args.show and (
                (c.positive and not res["ours_removed"]) or (not c.positive and res["ours_changed"])
            ):
                print(f"--- {c.split} {'pos' if c.positive else 'neg'} {c.cls} {c.name}")
                print(out)
    report = {"rows": {" ".join([s, "pos" if p else "neg", k]): v for (s, p, k), v in rows.items()}}
    report["broken_parse"] = broken
    print_labeled(rows, broken)
    return report


def print_labeled(rows: dict, broken: list[str]) -> None:
    for split in ("tune", "holdout"):
        pos = {k[2]: v for k, v in rows.items() if k[0] == split and k[1]}
        neg = {k[2]: v for k, v in rows.items() if k[0] == split and not k[1]}
        if not pos and not neg:
            continue
        print(f"\n{split}: positives (removed = every secret byte redacted)")
        print(
            "| class | n | codekiln removed | codekiln detected | detect-secrets removed | detect-secrets detected |"
        )
        print("|---|---|---|---|---|---|")
        tot: dict[str, int] = {}
        for cls, v in sorted(pos.items()):
            for k, x in v.items():
                tot[k] = tot.get(k, 0) + x
            print(
                f"| {cls} | {v['n']} | {v['ours_removed']} | {v['ours_detected']} | {v['ds_removed']} | {v['ds_detected']} |"
            )
        n = tot["n"]
        print(
            f"| **all** | {n} | {tot['ours_removed']} ({tot['ours_removed'] / n:.0%}) | "
            f"{tot['ours_detected']} ({tot['ours_detected'] / n:.0%}) | "
            f"{tot['ds_removed']} ({tot['ds_removed'] / n:.0%}) | {tot['ds_detected']} ({tot['ds_detected'] / n:.0%}) |"
        )
        print(f"\n{split}: negatives (changed = any redaction)")
        print("| class | n | codekiln changed | detect-secrets flagged |")
        print("|---|---|---|---|")
        tot = {}
        for cls, v in sorted(neg.items()):
            for k, x in v.items():
                tot[k] = tot.get(k, 0) + x
            print(f"| {cls} | {v['n']} | {v['ours_changed']} | {v['ds_changed']} |")
        n = tot["n"]
        print(
            f"| **all** | {n} | {tot['ours_changed']} ({tot['ours_changed'] / n:.1%}) | "
            f"{tot['ds_changed']} ({tot['ds_changed'] / n:.1%}) |"
        )
    print(f"\nparsed before, not after redaction: {len(broken)} {broken}")


def corpus_texts(corpus: pathlib.Path, files: int) -> list[str]:
    texts = []
    for p in sorted(corpus.glob("train-*.jsonl.gz"))[:files]:
        with gzip.open(p, "rt", encoding="utf-8") as f:
            texts.extend(json.loads(line)["content"] for line in f)
    return texts


def time_once(args: argparse.Namespace) -> None:
    """One timed pass in this process (run by ``throughput`` in a subprocess)."""
    from codekiln.data import redact

    texts = corpus_texts(pathlib.Path(args.corpus), args.files)
    mb = sum(len(t.encode()) for t in texts) / 1e6
    t = time.perf_counter()
    n = 0
    for text in texts:
        n += sum(redact(text)[1].values())
    print(json.dumps({"seconds": time.perf_counter() - t, "mb": mb, "findings": n}))


def throughput(args: argparse.Namespace) -> dict:
    builds = {"this": os.environ.get("PYTHONPATH", "")}
    if args.against:
        builds["against"] = args.against
    runs: dict[str, list[dict]] = {k: [] for k in builds}
    for _ in range(args.runs):
        for name, path in builds.items():
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "_time",
                    "--corpus",
                    args.corpus,
                    "--files",
                    str(args.files),
                ],
                env={**os.environ, "PYTHONPATH": path},
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            runs[name].append(json.loads(out))
    report = {}
    for name, rs in runs.items():
        secs = statistics.median(r["seconds"] for r in rs)
        report[name] = {
            "mb": rs[0]["mb"],
            "seconds": secs,
            "mb_per_s": rs[0]["mb"] / secs,
            "findings": rs[0]["findings"],
        }
        print(
            f"{name}: {rs[0]['mb']:.1f} MB, median {secs:.3f} s, {rs[0]['mb'] / secs:.1f} MB/s, {rs[0]['findings']} findings"
        )
    if args.against:
        print(
            f"this / against throughput: {report['this']['mb_per_s'] / report['against']['mb_per_s']:.3f}"
        )
    return report


def pathological(mb: float) -> dict[str, str]:
    n = int(mb * 1e6)
    code = "x = f(a, b) + 1.5  # comment token secret key password "
    return {
        "2 MB of code on one line": (code * (n // len(code) + 1))[:n],
        "one word repeating 'secret'": ("secret" * (n // 6 + 1))[:n],
        "'token = ' then one long word": "token = '" + "a1" * (n // 2),
        "PEM BEGIN markers, no END": ("-----BEGIN RSA PRIVATE KEY-----\\nMIIEow" * (n // 38 + 1))[
            :n
        ],
        "dotted quads on one line": ("81.2.69.160 " * (n // 12 + 1))[:n],
        "'@' runs on one line": ("a.b@c.d" * (n // 7 + 1))[:n],
        "'://' on one line": ("s://u:p" * (n // 7 + 1))[:n],
        "'password=' repeated": ("password=" * (n // 9 + 1))[:n],
    }


def linear(args: argparse.Namespace) -> dict:
    from codekiln.data import redact

    report = {}
    print("| input | seconds (1/4) | seconds (full) | full / quarter |")
    print("|---|---|---|---|")
    small, full = pathological(args.mb / 4), pathological(args.mb)
    for name in full:
        ts = []
        for text in (small[name], full[name]):
            best = float("inf")
            for _ in range(args.runs):
                t = time.perf_counter()
                redact(text)
                best = min(best, time.perf_counter() - t)
            ts.append(best)
        report[name] = ts
        print(f"| {name} | {ts[0]:.4f} | {ts[1]:.4f} | {ts[1] / max(ts[0], 1e-9):.1f}x |")
    return report


def sample(args: argparse.Namespace) -> None:
    from codekiln.data import redaction_spans

    texts = corpus_texts(pathlib.Path(args.corpus), args.files)
    by_kind: dict[str, list[str]] = {}
    for text in texts:
        data = text.encode()
        for s, e, kind in redaction_spans(text):
            ls = data.rfind(b"\n", 0, s) + 1
            le = data.find(b"\n", e)
            le = len(data) if le == -1 else le
            ctx = data[max(ls, s - 100) : min(le, e + 60)].decode(errors="replace")
            by_kind.setdefault(kind, []).append(
                f"{ctx!r}  [{data[s:e].decode(errors='replace')!r}]"
            )
    rng = random.Random(args.seed)
    for kind, items in sorted(by_kind.items()):
        print(f"\n## {kind}: {len(items)} findings")
        for item in rng.sample(items, min(args.per_kind, len(items))):
            print("  " + item)


def parses_after(args: argparse.Namespace) -> None:
    import re

    from codekiln.data import redact, redaction_spans

    checked = broken = keys = code_in_key = 0
    header = re.compile(rb"(?m)^[A-Za-z-]+: .*$")
    for text in corpus_texts(pathlib.Path(args.corpus), args.files):
        out, counts = redact(text)
        if sum(counts.values()) and parses(text):
            checked += 1
            broken += not parses(out)
        if counts["private_key"]:
            data = text.encode()
            for s, e, kind in redaction_spans(text):
                if kind == "private_key":
                    keys += 1
                    code_in_key += any(c in header.sub(b"", data[s:e]) for c in b"()[],")
    print(f"{checked} files with findings parsed before redaction; {broken} do not parse after")
    print(
        f"{keys} private-key redactions; {code_in_key} hold code characters ()[], outside headers"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("labeled")
    p.add_argument("--split", choices=["tune", "holdout", "all"], default="all")
    p.add_argument("--show", action="store_true", help="print the misses and the changed negatives")
    for name in ("throughput", "_time", "sample", "parses"):
        p = sub.add_parser(name)
        p.add_argument("--corpus", default=str(HERE.parent.parent / "shared" / "corpus"))
        p.add_argument("--files", type=int, default=1)
        p.add_argument("--runs", type=int, default=3)
        p.add_argument("--against", default=None)
        p.add_argument("--per-kind", type=int, default=25)
        p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("linear")
    p.add_argument("--mb", type=float, default=2.0)
    p.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    {
        "labeled": labeled,
        "throughput": throughput,
        "_time": time_once,
        "linear": linear,
        "sample": sample,
        "parses": parses_after,
    }[args.cmd](args)


if __name__ == "__main__":
    main()
