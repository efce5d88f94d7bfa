"""Cleaning helpers that are useful on their own: the Rust filters, exact-dedup keys,
near-duplicate search and redaction, plus the (Python-only) ``ast.parse`` syntax filter.

>>> redact("contact: jane@example.com")[0]
'contact: <EMAIL>'
>>> check_document("x = 1\\n")  # too small for the default 1 KB lower bound
'too_small'
"""

from __future__ import annotations

import ast
import re
import warnings
from collections.abc import Sequence

from codekiln import _core
from codekiln._threads import resolve_threads
from codekiln.data.config import FilterConfig, PythonSyntax

__all__ = [
    "check_document",
    "dedup_key",
    "find_near_duplicates",
    "python_syntax_ok",
    "redact",
    "redaction_spans",
    "split_of",
]

# SyntaxError messages (and offending lines) that only Python 2 code produces.
_PY2_MESSAGES = (
    "Missing parentheses in call to",
    "multiple exception types must be parenthesized",
    "leading zeros in decimal integer literals",
)
_PY2_LINE = re.compile(r"^\s*(print\s+[^\s(=]|exec\s+[\"'\w]|raise\s+\w+\s*,)|<>|`")


def python_syntax_ok(text: str, mode: PythonSyntax = "py3") -> bool:
    """Whether ``text`` parses with :func:`ast.parse` (``mode="py3"``), or fails only on
    Python 2 syntax (``mode="py2-or-py3"``: print statements, ``exec "..."``, ``except X, e``,
    ``raise E, msg``, ``<>``, backticks, ``0777`` literals; a heuristic on the error).

    >>> python_syntax_ok("print 'hi'\\n", "py3"), python_syntax_ok("print 'hi'\\n", "py2-or-py3")
    (False, True)
    >>> python_syntax_ok("def f(:\\n", "py2-or-py3")
    False
    """
    if mode == "off":
        return True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarning for invalid escapes etc.
            ast.parse(text)
        return True
    except SyntaxError as e:
        if mode != "py2-or-py3":
            return False
        msg = e.msg or ""
        if any(m in msg for m in _PY2_MESSAGES):
            return True
        return bool(e.text and _PY2_LINE.search(e.text))
    except (ValueError, RecursionError, MemoryError):  # null bytes, absurd nesting
        return False


def check_document(
    text: str, license: str | None = None, filters: FilterConfig | None = None
) -> str | None:
    """The name of the first filter that rejects ``text`` (``"too_small"``,
    ``"max_line_length"``, ``"auto_generated"``, ...), or ``None`` when it is kept."""
    f = filters or FilterConfig()
    reason = _core.check_document(text, license, f.to_core())
    if reason is None and not python_syntax_ok(text, f.python_syntax):
        return "python_syntax"
    return reason


def dedup_key(text: str) -> str:
    """The exact-dedup key: SHA-256 (first 16 bytes, hex) of ``text`` with its whitespace
    removed except indentation: each non-blank line contributes a newline, its leading
    spaces and tabs, and its other characters without whitespace. Spacing inside lines,
    trailing spaces, CRLF and blank lines do not matter; indentation (a different Python
    program) does.

    >>> dedup_key("a = 1\\n\\n") == dedup_key("a=1")
    True
    >>> dedup_key("if a:\\n    b\\n") == dedup_key("if a:\\nb\\n")
    False
    """
    return _core.dedup_key(text)


def split_of(
    valid_fraction: float,
    *,
    repo_name: str | None = None,
    path: str | None = None,
    text: str = "",
) -> str:
    """``"train"`` or ``"valid"``: the split the packer puts such a record in."""
    return _core.split_of(valid_fraction, repo_name, path, text)


def redact(text: str) -> tuple[str, dict[str, int]]:
    """Replace secrets and PII with placeholders; returns the text and counts by kind.

    Only the secret itself is replaced, never the quotes or code around it; the rules are in
    ``docs/data.md`` (Redaction).

    >>> redact("api_key: str = 'f8Kq2mZp9vLw3nRt7yBc4dFg'  # ops@example.com")[0]
    "api_key: str = '<KEY>'  # <EMAIL>"
    """
    return _core.redact(text)


def redaction_spans(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, kind)`` of each finding, as UTF-8 byte offsets."""
    return _core.redaction_spans(text)


def find_near_duplicates(
    texts: Sequence[str],
    *,
    threshold: float = 0.85,
    num_perm: int = 128,
    ngram: int = 5,
    num_threads: int | None = None,
) -> list[tuple[int, int, float]]:
    """Near-duplicates among ``texts``, in order: ``(duplicate, kept, estimated_jaccard)``
    for each text whose MinHash-estimated Jaccard similarity (word ``ngram`` shingles) with an
    earlier kept text reaches ``threshold``. ``num_threads``: ``None`` (default) is the CPUs
    this process may use (the result does not depend on it).

    >>> a = "".join(f"x_{i} = f({i})\\n" for i in range(100))
    >>> dups = find_near_duplicates([a, a.replace("x_5 ", "y_5 "), "something else entirely"])
    >>> [(dup, kept) for dup, kept, _ in dups]
    [(1, 0)]
    """
    texts = list(texts)
    threads = resolve_threads(num_threads, work_items=len(texts))
    return _core.find_near_duplicates(texts, threshold, num_perm, ngram, threads)
