"""What a ``source`` argument means: paths (files, directories, globs) or texts.

The rule, used by :meth:`codekiln.Tokenizer.train`, :func:`codekiln.tokenizer.stats.compute_stats` and
the CLI:

* a single ``str`` or :class:`os.PathLike` is **one path**: a file, a directory (searched
  recursively for ``*.py``, ``*.txt``, ``*.jsonl``, ``*.jsonl.gz``, ``*.jsonl.zst``) or a glob
  (``*``, ``?``, ``[``; ``**`` crosses directories);
* an iterable whose items are :class:`os.PathLike` (e.g. :class:`pathlib.Path`) is **a list of
  paths**, each expanded as above;
* an iterable whose items are ``str`` is **a list of texts** (one document each), drained
  lazily, so a generator over a huge corpus is fine.

Mixing the two kinds in one iterable is a ``TypeError``: wrap string paths in
:class:`pathlib.Path` to train on them.

Files are read by the Rust core during training; :func:`iter_documents` is the Python reader
with the same rules (used for statistics): ``.jsonl``/``.json`` (optionally ``.gz``/``.zst``)
hold one JSON document per line with its text under ``text_field`` (lines without it, or that
are not valid JSON/UTF-8, are skipped and counted), any other file is one strict UTF-8 document
(a file that does not decode is skipped and counted).
"""

from __future__ import annotations

import glob
import gzip
import io
import itertools
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any
from zlib import error as zlib_error

CORPUS_SUFFIXES = (".py", ".txt", ".jsonl", ".jsonl.gz", ".jsonl.zst")
"""File names a directory is searched for (explicitly named files are read whatever their name)."""

JSON_LINES_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz", ".jsonl.zst", ".json.zst")
"""Files read as one JSON document per line (by name, case-insensitive); others are one
UTF-8 document each."""

_GLOB_CHARS = frozenset("*?[")
_SKIPPED_DIRS = frozenset({"__pycache__", "node_modules"})


@dataclass(frozen=True)
class FileSource:
    """Expanded input files (sorted within each directory or glob, duplicates removed)."""

    paths: list[str]


@dataclass(frozen=True)
class TextSource:
    """Texts to train on; ``texts`` is lazy, ``count`` is known for sized inputs only."""

    texts: Iterator[str]
    count: int | None


def classify(source: object) -> FileSource | TextSource:
    """Decide whether ``source`` is paths or texts (see the module docstring) and expand paths.

    >>> classify(["def f(): pass\\n"]).count
    1
    """
    if isinstance(source, (str, os.PathLike)):
        try:
            return FileSource(expand_paths([source]))
        except FileNotFoundError as e:
            if not isinstance(source, str):
                raise
            hint = "; a single str is read as a path or glob, to train on texts pass a list of str"
            raise FileNotFoundError(e.errno, f"{e.strerror}{hint}", e.filename) from None
    if isinstance(source, (bytes, bytearray)):
        raise TypeError("source must be str texts or paths, not bytes; decode the text first")
    if not isinstance(source, Iterable):
        raise TypeError(
            f"source must be a path, a glob, or an iterable of texts or paths, "
            f"not {type(source).__name__}"
        )
    count = len(source) if hasattr(source, "__len__") else None  # type: ignore[arg-type]
    items = iter(source)
    first = next(items, None)
    if first is None:
        return TextSource(iter(()), 0)
    if isinstance(first, os.PathLike):
        rest = list(items)
        for i, item in enumerate(rest, start=1):
            if not isinstance(item, os.PathLike):
                raise TypeError(
                    f"source item {i} is {type(item).__name__} but item 0 is a path: "
                    "a source is either all paths (os.PathLike) or all texts (str)"
                )
        return FileSource(expand_paths([first, *rest]))
    if isinstance(first, str):
        return TextSource(_checked_texts(itertools.chain([first], items)), count)
    raise TypeError(
        f"source items must be str (texts) or os.PathLike (paths), not {type(first).__name__}"
    )


def _checked_texts(texts: Iterator[object]) -> Iterator[str]:
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            hint = " (to train on files, pass only paths)" if isinstance(text, os.PathLike) else ""
            raise TypeError(
                f"source item {i} is {type(text).__name__}, but item 0 is a text (str): "
                f"a source is either all texts or all paths{hint}"
            )
        yield text


def expand_paths(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Expand files, directories and globs into a list of files.

    Directories are walked recursively (sorted, hidden entries and ``__pycache__`` skipped) for
    :data:`CORPUS_SUFFIXES`; a path that does not exist and has no glob characters raises
    :class:`FileNotFoundError` naming it, as does a glob that matches nothing.
    """
    out: list[str] = []
    seen: set[str] = set()

    def add(path: str) -> None:
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            out.append(path)

    for raw in paths:
        path = os.fspath(raw)
        if not isinstance(path, str):
            raise TypeError(f"paths must be str or os.PathLike[str], not {type(raw).__name__}")
        if os.path.isdir(path):
            for found in _walk(path):
                add(found)
        elif os.path.exists(path):
            add(path)
        elif _GLOB_CHARS.intersection(path):
            matches = sorted(glob.glob(path, recursive=True))
            if not matches:
                raise FileNotFoundError(2, "no files match the glob", path)
            for match in matches:
                if os.path.isdir(match):
                    for found in _walk(match):
                        add(found)
                else:
                    add(match)
        else:
            raise FileNotFoundError(2, "input path not found", path)
    return out


def _walk(root: str) -> Iterator[str]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and d not in _SKIPPED_DIRS
        )
        for name in sorted(filenames):
            if not name.startswith(".") and name.endswith(CORPUS_SUFFIXES):
                yield os.path.join(dirpath, name)


def batched_texts(texts: Iterable[str], max_chars: int) -> Iterator[list[str]]:
    """Group ``texts`` into lists of about ``max_chars`` characters (at least one text each)."""
    batch: list[str] = []
    size = 0
    for text in texts:
        batch.append(text)
        size += len(text)
        if size >= max_chars:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


@dataclass
class ReadReport:
    """What reading files found; the same keys as ``_core.Trainer.add_files`` returns."""

    files: int = 0
    documents: int = 0
    bytes: int = 0
    skipped_files: int = 0
    skipped_documents: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "documents": self.documents,
            "bytes": self.bytes,
            "skipped_files": self.skipped_files,
            "skipped_documents": self.skipped_documents,
            "skipped": list(self.skipped),
        }


def is_json_lines(path: str) -> bool:
    """Whether ``path`` is read as JSON lines (by name, case-insensitive, like the Rust reader)."""
    return path.lower().endswith(JSON_LINES_SUFFIXES)


def iter_documents(
    paths: Iterable[str], text_field: str = "content", report: ReadReport | None = None
) -> Iterator[str]:
    """Yield the documents of ``paths`` (already expanded), counting what is read and skipped.

    The same rules as the Rust reader: ``files`` counts every file opened, including skipped
    ones; a text file that is not UTF-8 is skipped (``skipped_files``); a JSON line that is not
    valid JSON/UTF-8 or lacks a string ``text_field`` is skipped (``skipped_documents``);
    whitespace-only lines are ignored. I/O errors (a missing file, a corrupt ``.gz``) raise
    :class:`OSError` naming the file.
    """
    report = report if report is not None else ReadReport()
    for path in paths:
        report.files += 1
        if is_json_lines(path):
            yield from _json_lines_documents(path, text_field, report)
            continue
        with open(path, "rb") as f:
            data = f.read()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            report.skipped_files += 1
            report.skipped.append((path, f"not valid UTF-8 (byte offset {e.start})"))
            continue
        report.documents += 1
        report.bytes += len(data)
        yield text


def _open_binary(path: str) -> IO[bytes]:
    name = path.lower()
    if name.endswith(".gz"):
        return gzip.open(path, "rb")
    if name.endswith(".zst"):
        try:
            import zstandard
        except ImportError as e:
            raise ImportError(
                f"reading {path} needs the zstandard package: pip install 'codekiln[data]'"
            ) from e
        raw = open(path, "rb")  # noqa: SIM115 -- closed with the reader below
        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw, closefd=True))
    return open(path, "rb")


_ASCII_WHITESPACE = frozenset(b" \t\n\r\x0c")  # Rust's u8::is_ascii_whitespace


def json_lines(path: str) -> Iterator[bytes]:
    """The non-blank lines of a JSON lines file (``.gz``/``.zst`` decompressed), with the Rust
    reader's rules: a leading UTF-8 byte order mark is dropped, and a file holding one JSON
    array is an :class:`OSError` that says so (rather than one invalid record per line)."""
    with _open_binary(path) as f:
        first = True
        for line in f:
            if first:
                line = line.removeprefix(b"\xef\xbb\xbf")
            if _ASCII_WHITESPACE.issuperset(line):
                continue
            if first and line.lstrip().startswith(b"["):
                raise OSError(
                    f"{path}: a JSON array, not JSON lines (one object per line); "
                    "convert it with `jq -c '.[]' FILE > FILE.jsonl`"
                )
            first = False
            yield line


def _json_lines_documents(path: str, text_field: str, report: ReadReport) -> Iterator[str]:
    skipped = 0
    try:
        for line in json_lines(path):
            text = _parse_record(line, text_field)
            if text is None:
                skipped += 1
                continue
            report.documents += 1
            report.bytes += len(text.encode("utf-8"))
            yield text
    except (OSError, EOFError, zlib_error) as e:
        if isinstance(e, OSError) and (e.filename is not None or str(e).startswith(path)):
            raise
        raise OSError(f"{path}: {e}") from e
    finally:
        report.skipped_documents += skipped
        if skipped:
            report.skipped.append(
                (path, f"{skipped} line(s) without a string field {text_field!r} skipped")
            )


def _parse_record(line: bytes, text_field: str) -> str | None:
    try:
        obj = json.loads(line)  # raises ValueError for invalid JSON or UTF-8
    except ValueError:
        return None
    text = obj.get(text_field) if isinstance(obj, dict) else None
    if not isinstance(text, str):
        return None
    try:
        text.encode("utf-8")  # a lone surrogate escape such as "\\ud800" is not text
    except UnicodeEncodeError:
        return None
    return text
