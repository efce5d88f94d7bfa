"""Where documents come from: files, directories and globs (read by the Rust core), Parquet
files (The Stack layout), Hugging Face ``datasets`` and in-memory iterables (read in Python and
fed to the Rust pipeline in batches).

Everything streams: files are read line by line, Parquet in record batches, datasets row by
row, so memory does not grow with the corpus.
"""

from __future__ import annotations

import fnmatch
import glob
import itertools
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from codekiln._sources import is_json_lines, json_lines

__all__ = [
    "FileInput",
    "Record",
    "RecordInput",
    "iter_file_records",
    "resolve_inputs",
]

Record = tuple[str, "str | None", "str | None", "str | None"]
"""``(text, repo_name, path, license)``: what the Rust pipeline takes."""

_GLOB_CHARS = frozenset("*?[")
# The Stack's Parquet columns, tried after the plain names.
_META_COLUMNS = {
    "repo_name": ("repo_name", "max_stars_repo_name", "repository_name"),
    "path": ("path", "max_stars_repo_path", "file_path"),
    "license": ("license", "max_stars_repo_licenses", "licenses"),
}


@dataclass(frozen=True)
class FileInput:
    """A file the Rust reader handles; ``name`` is recorded as the path of plain-text files."""

    path: str
    name: str

    def describe(self) -> dict[str, Any]:
        st = os.stat(self.path)
        return {
            "kind": "file",
            "path": self.name,
            "bytes": st.st_size,
            "mtime_ns": st.st_mtime_ns,
        }


@dataclass(frozen=True)
class RecordInput:
    """Records produced in Python: a Parquet file, a ``datasets`` object or an iterable."""

    kind: str
    source: Any
    text_field: str
    identity: str | None
    """A stable description of the content (for resuming), or ``None`` when unknown."""

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "identity": self.identity}

    def records(self) -> Iterator[Record | None]:
        """The records in order; ``None`` for a row without a string ``text_field``."""
        if self.kind == "parquet":
            yield from _parquet_records(self.source, self.text_field)
        else:
            yield from _object_records(self.source, self.text_field)


def _matches(rel: str, patterns: Iterable[str]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(rel, p) or fnmatch.fnmatchcase(name, p) for p in patterns)


def _walk(root: str, include: tuple[str, ...], exclude: tuple[str, ...]) -> list[str]:
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__pycache__")
        for fn in filenames:
            full = os.path.join(dirpath, fn)
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            if _matches(rel, include) and not _matches(rel, exclude):
                found.append(rel)
    return sorted(found)


def _is_dataset(obj: object) -> bool:
    return type(obj).__module__.split(".")[0] == "datasets"


def resolve_inputs(
    inputs: object,
    *,
    include: tuple[str, ...] = ("*.py",),
    exclude: tuple[str, ...] = (),
    text_field: str = "content",
) -> list[FileInput | RecordInput]:
    """Expand ``inputs`` into an ordered list of sources.

    ``inputs`` is one item or a list of items; an item is a path (``str`` or
    :class:`os.PathLike`): a directory (searched recursively with ``include`` / ``exclude``),
    a file (``.parquet`` read with pyarrow, JSON lines or one document otherwise) or a glob;
    a Hugging Face ``Dataset`` / ``IterableDataset``; or any other iterable of records (dicts
    with ``text_field`` and optional ``repo_name``, ``path``, ``license``, or plain strings).

    ``inputs`` itself may also be the records: a generator or iterator whose first element is
    a dict is one source of records (whose first element is a path or string: a sequence of
    items), and consecutive dicts in a list are one source of records.

    >>> [s.name for s in resolve_inputs([])]
    []
    >>> [s.kind for s in resolve_inputs(iter([{"content": "x = 1"}]))]
    ['iterable']
    """
    if isinstance(inputs, (str, os.PathLike)) or _is_dataset(inputs):
        items: Iterable[Any] = [inputs]
    elif isinstance(inputs, Mapping):
        raise TypeError("inputs is one record (a dict): pass a list or iterable of records")
    elif isinstance(inputs, Iterator):
        # A generator: peek at its first element to tell records from items.
        first = next(inputs, None)
        if first is None:
            return []
        rest = itertools.chain([first], inputs)
        items = [rest] if isinstance(first, Mapping) else _group_records(rest)
    elif isinstance(inputs, Iterable):
        items = _group_records(inputs)
    else:
        raise TypeError(f"inputs must be paths, datasets or iterables, not {type(inputs).__name__}")
    out: list[FileInput | RecordInput] = []
    for item in items:
        if isinstance(item, (str, os.PathLike)):
            out.extend(_resolve_path(os.fspath(item), include, exclude, text_field))
        elif _is_dataset(item):
            fp = getattr(item, "_fingerprint", None)
            ident = f"datasets:{type(item).__name__}:{fp}" if fp else None
            out.append(RecordInput("dataset", item, text_field, ident))
        elif isinstance(item, (bytes, bytearray)):
            raise TypeError("inputs must be paths or records, not bytes")
        elif isinstance(item, Iterable):
            out.append(RecordInput("iterable", item, text_field, None))
        else:
            raise TypeError(f"cannot read documents from {type(item).__name__}: {item!r}")
    return out


def _group_records(items: Iterable[Any]) -> list[Any]:
    """``items`` with every run of consecutive dicts (records) replaced by one list of them."""
    out: list[Any] = []
    run: list[Any] | None = None
    for item in items:
        if isinstance(item, Mapping):
            if run is None:
                run = []
                out.append(run)
            run.append(item)
        else:
            run = None
            out.append(item)
    return out


def _resolve_path(
    p: str, include: tuple[str, ...], exclude: tuple[str, ...], text_field: str
) -> list[FileInput | RecordInput]:
    def file_input(path: str, name: str) -> FileInput | RecordInput:
        if path.lower().endswith(".parquet"):
            st = os.stat(path)
            ident = f"parquet:{name}:{st.st_size}:{st.st_mtime_ns}"
            return RecordInput("parquet", path, text_field, ident)
        return FileInput(path, name)

    if os.path.isdir(p):
        found = _walk(p, include, exclude)
        if not found:
            raise FileNotFoundError(
                f"{p}: the directory has no file matching include={list(include)} "
                f"(exclude={list(exclude)}); for JSON lines pass the files or a glob, "
                f"e.g. '{os.path.join(p, '*.jsonl.gz')}', or --include '*.jsonl.gz'"
            )
        return [file_input(os.path.join(p, rel), rel) for rel in found]
    if os.path.isfile(p):
        return [file_input(p, os.path.basename(p))]
    if _GLOB_CHARS & set(p):
        matches = sorted(m for m in glob.glob(p, recursive=True) if os.path.isfile(m))
        if not matches:
            raise FileNotFoundError(f"{p}: the glob matches no files")
        return [file_input(m, m) for m in matches]
    raise FileNotFoundError(f"{p}: no such file or directory")


def _meta(row: dict[str, Any], key: str) -> str | None:
    for col in _META_COLUMNS[key]:
        v = row.get(col)
        if isinstance(v, str):
            return v
        if isinstance(v, (list, tuple)) and v and all(isinstance(x, str) for x in v):
            return " OR ".join(v)
    return None


def _row_record(row: object, text_field: str) -> Record | None:
    if isinstance(row, str):
        return (row, None, None, None)
    if not isinstance(row, dict):
        raise TypeError(f"records must be dicts or str, not {type(row).__name__}")
    text = row.get(text_field)
    if not isinstance(text, str):
        return None
    return (text, _meta(row, "repo_name"), _meta(row, "path"), _meta(row, "license"))


def _object_records(obj: Iterable[Any], text_field: str) -> Iterator[Record | None]:
    for row in obj:
        yield _row_record(row, text_field)


def _parquet_records(path: str, text_field: str) -> Iterator[Record | None]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    names = set(pf.schema_arrow.names)
    if text_field not in names:
        raise ValueError(f"{path}: no column {text_field!r} (columns: {sorted(names)})")
    cols = [text_field] + [c for cs in _META_COLUMNS.values() for c in cs if c in names]
    for batch in pf.iter_batches(batch_size=1024, columns=cols):
        for row in batch.to_pylist():
            yield _row_record(row, text_field)


def iter_file_records(path: str, name: str, text_field: str = "content") -> Iterator[Record | None]:
    """The Python reader, with the same rules as the Rust one; used when records must pass
    through Python (the ``ast.parse`` filter). ``None`` marks an undecodable line or file."""
    if is_json_lines(path):
        for raw in json_lines(path):
            try:
                row = json.loads(raw.decode("utf-8"))
            except ValueError:  # UnicodeDecodeError is a ValueError
                yield None
                continue
            yield _row_record(row, text_field) if isinstance(row, dict) else None
        return
    with open(path, "rb") as f:
        data = f.read()
    try:
        yield (data.decode("utf-8"), None, name, None)
    except UnicodeDecodeError:
        yield None
