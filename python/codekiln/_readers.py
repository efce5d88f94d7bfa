"""The Python readers of corpus files, twins of the Rust readers (same rules, same counts):
JSON lines (``.gz`` / ``.zst``), Parquet, plain UTF-8 files, and records from Python objects.

Used where documents must pass through Python: tokenizer statistics, the ``ast.parse`` filter
of the packer, texts and records handed to the Rust pipelines in batches. What an input *is*
(paths, texts, records; the directory walk) is :mod:`codekiln.corpus`.

>>> row_record({"content": "x = 1", "max_stars_repo_licenses": ["MIT", "BSD"]}, "content")
('x = 1', None, None, 'MIT OR BSD')
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any
from zlib import error as zlib_error

__all__ = [
    "JSON_LINES_SUFFIXES",
    "ReadReport",
    "Record",
    "batched_texts",
    "is_json_lines",
    "iter_documents",
    "iter_file_records",
    "json_lines",
    "parquet_records",
    "row_record",
]

JSON_LINES_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz", ".jsonl.zst", ".json.zst")
"""Files read as one JSON record per line (by name, case-insensitive); others are one UTF-8
document each (``.parquet`` aside)."""

Record = tuple[str, "str | None", "str | None", "str | None"]
"""``(text, repo_name, path, license)``: what the Rust packer takes."""


# The Stack's Parquet columns, tried after the plain names.
_META_COLUMNS = {
    "repo_name": ("repo_name", "max_stars_repo_name", "repository_name"),
    "path": ("path", "max_stars_repo_path", "file_path"),
    "license": ("license", "max_stars_repo_licenses", "licenses"),
}


@dataclass
class ReadReport:
    """What reading found; the same keys as the Rust readers' reports."""

    files: int = 0
    documents: int = 0
    bytes: int = 0
    skipped_files: int = 0
    skipped_documents: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def add_skipped_files(self, skipped: Iterable[tuple[str, str]]) -> None:
        for entry in skipped:
            self.skipped_files += 1
            self.skipped.append(entry)

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


_DAMAGE = (OSError, EOFError, zlib_error)
"""What reading a damaged file raises (unreadable, truncated or corrupt ``.gz``/``.zst``)."""


def damage_reason(error: BaseException, path: str, documents_before: int) -> str:
    """The report's reason for a file skipped (from its damage on) after ``error``; the same
    wording as the Rust readers."""
    text = str(error)
    if isinstance(error, OSError) and error.strerror:
        text = error.strerror
    text = text.removeprefix(f"{path}: ")
    if documents_before == 0:
        return f"cannot be read: {text}"
    return f"read error after {documents_before} document(s), the rest of the file skipped: {text}"


def _raise_damage(error: BaseException, path: str) -> None:
    if isinstance(error, OSError) and (error.filename is not None or str(error).startswith(path)):
        raise error
    raise OSError(f"{path}: {error}") from error


def iter_documents(
    paths: Iterable[str],
    text_field: str = "content",
    report: ReadReport | None = None,
    *,
    strict: bool = False,
) -> Iterator[str]:
    """Yield the documents of the files ``paths`` (already expanded), counting what is read
    and skipped; the Python twin of the Rust readers, with the same rules.

    ``files`` counts every file opened, including skipped ones; a text file that is not UTF-8
    is skipped (``skipped_files``); a JSON line that is not valid JSON/UTF-8 or lacks a string
    ``text_field`` is skipped (``skipped_documents``); whitespace-only lines are ignored. A
    file that cannot be read to its end (unreadable, a truncated or corrupt ``.gz``) keeps the
    documents before the damage and is named in ``skipped`` with the reason; with ``strict``
    it raises :class:`OSError` naming the file instead. A JSON array where JSON lines were
    expected always raises :class:`ValueError`.
    """
    report = report if report is not None else ReadReport()
    for path in paths:
        report.files += 1
        before = report.documents
        try:
            if is_json_lines(path):
                yield from _json_lines_documents(path, text_field, report)
                continue
            with open(path, "rb") as f:
                data = f.read()
        except _DAMAGE as e:
            if strict:
                _raise_damage(e, path)
            report.skipped_files += 1
            report.skipped.append((path, damage_reason(e, path, report.documents - before)))
            continue
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
    array is a :class:`ValueError` that says so (rather than one invalid record per line)."""
    with _open_binary(path) as f:
        first = True
        for line in f:
            if first:
                line = line.removeprefix(b"\xef\xbb\xbf")
            if _ASCII_WHITESPACE.issuperset(line):
                continue
            if first and line.lstrip().startswith(b"["):
                raise ValueError(
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


def _meta(row: Mapping[str, Any], key: str) -> str | None:
    for col in _META_COLUMNS[key]:
        v = row.get(col)
        if isinstance(v, str):
            return v
        if isinstance(v, (list, tuple)) and v and all(isinstance(x, str) for x in v):
            return " OR ".join(v)
    return None


def row_record(row: object, text_field: str) -> Record | None:
    if isinstance(row, str):
        return (row, None, None, None)
    if not isinstance(row, Mapping):
        raise TypeError(f"records must be dicts or str, not {type(row).__name__}")
    text = row.get(text_field)
    if not isinstance(text, str):
        return None
    return (text, _meta(row, "repo_name"), _meta(row, "path"), _meta(row, "license"))


def parquet_records(path: str, text_field: str) -> Iterator[Record | None]:
    try:
        import pyarrow.parquet as pq
    except ImportError as e:
        raise ImportError(f"reading {path} needs pyarrow: pip install 'codekiln[data]'") from e

    pf = pq.ParquetFile(path)
    names = set(pf.schema_arrow.names)
    if text_field not in names:
        raise ValueError(f"{path}: no column {text_field!r} (columns: {sorted(names)})")
    cols = [text_field] + [c for cs in _META_COLUMNS.values() for c in cs if c in names]
    for batch in pf.iter_batches(batch_size=1024, columns=cols):
        for row in batch.to_pylist():
            yield row_record(row, text_field)


def iter_file_records(
    path: str,
    name: str,
    text_field: str = "content",
    *,
    strict: bool = False,
    skipped: list[tuple[str, str]] | None = None,
) -> Iterator[Record | None]:
    """The records of one file through Python (same rules as the Rust reader), for steps that
    run in Python (the ``ast.parse`` filter). ``None`` marks an undecodable line or file. A
    file that cannot be read to its end is appended to ``skipped`` as ``(path, reason)`` after
    the records before the damage (or, with ``strict``, raises :class:`OSError`)."""
    done = 0
    try:
        if is_json_lines(path):
            for raw in json_lines(path):
                try:
                    row = json.loads(raw.decode("utf-8"))
                except ValueError:  # UnicodeDecodeError is a ValueError
                    yield None
                    continue
                rec = row_record(row, text_field) if isinstance(row, dict) else None
                done += rec is not None
                yield rec
            return
        with open(path, "rb") as f:
            data = f.read()
    except _DAMAGE as e:
        if strict:
            _raise_damage(e, path)
        if skipped is not None:
            skipped.append((path, damage_reason(e, path, done)))
        return
    try:
        yield (data.decode("utf-8"), None, name, None)
    except UnicodeDecodeError:
        yield None


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
