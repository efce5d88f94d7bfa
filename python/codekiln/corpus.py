"""What an input is: the one rule behind every ``source`` / ``inputs`` argument and ``--input``.

Used by :meth:`codekiln.Tokenizer.train`, :func:`codekiln.tokenizer.stats.compute_stats`,
:func:`codekiln.data.pack` and the quickstart, so that the same input gives the same documents
to each of them. The rule:

* a single ``str`` or :class:`os.PathLike` is **one path**: a file, a directory (walked, see
  below) or a glob (``*``, ``?``, ``[``; ``**`` crosses directories);
* an iterable of :class:`os.PathLike` (e.g. :class:`pathlib.Path`) is **paths**, each as above;
* an iterable of ``str`` is **texts**, one document each, drained lazily (a generator over a
  huge corpus is fine);
* dicts are **records**: the text under ``text_field`` plus optional ``repo_name``, ``path``
  and ``license``; a Hugging Face ``Dataset`` / ``IterableDataset`` and any nested iterable
  (a list or generator inside the top-level list) are sources of records (or texts).

A top-level iterable may mix paths, datasets and nested iterables, and texts with records, but
not texts with the others: in ``[Path("a"), "b.py"]`` the ``str`` would be a text, so that is a
``TypeError`` that says to wrap paths in :class:`pathlib.Path`. A run of texts whose first item
names an existing file (``pack(["a.py"])``, which older versions read as a path) is a
``ValueError`` that says the same.

**Directories** are walked recursively by :func:`walk`, in sorted order of the relative path:
hidden files and directories, ``__pycache__`` and ``node_modules`` are skipped, a file is taken
when its relative path or name matches one of ``include`` (default :data:`DEFAULT_INCLUDE`) and
none of ``exclude`` (which also prunes the directories it matches), symbolic links to
directories are not followed, and files that are not regular (FIFOs, sockets, devices, broken
links) are skipped and reported, never opened. Files named explicitly or matched by a glob are
read whatever their name. A file named twice (or reached twice) is read once.

**Files**: ``.jsonl`` / ``.json`` (optionally ``.gz`` / ``.zst``) hold one JSON record per
line; ``.parquet`` is read with pyarrow (The Stack's column names understood); any other file
is one strict UTF-8 document. Undecodable files and records are skipped and counted.
"""

from __future__ import annotations

import argparse
import fnmatch
import glob
import itertools
import os
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from codekiln._readers import ReadReport, Record, parquet_records, row_record

__all__ = [
    "DEFAULT_INCLUDE",
    "SKIPPED_DIRS",
    "Corpus",
    "FileInput",
    "RecordInput",
    "add_include_exclude",
    "include_exclude",
    "resolve",
    "walk",
]

DEFAULT_INCLUDE: tuple[str, ...] = ("*.py", "*.jsonl", "*.jsonl.gz", "*.jsonl.zst", "*.parquet")
"""Files taken from directories by default: Python source and corpus dumps (JSON lines,
Parquet). Override with ``include=`` / ``--include``."""

SKIPPED_DIRS = frozenset({"__pycache__", "node_modules"})
"""Directory names never walked (besides hidden ones)."""

_GLOB_CHARS = frozenset("*?[")


# ------------------------------------------------------------------------------ inputs


@dataclass(frozen=True)
class FileInput:
    """A file the Rust readers handle; ``name`` is recorded as the path of plain-text files
    (the path relative to the walked directory, the basename of a named file, the match of a
    glob)."""

    path: str
    name: str

    def describe(self) -> dict[str, Any]:
        st = os.stat(self.path)
        return {"kind": "file", "path": self.name, "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


@dataclass(frozen=True)
class RecordInput:
    """Documents produced in Python: texts or records from an iterable (``kind="iterable"``),
    a ``datasets`` object (``"dataset"``) or a Parquet file (``"parquet"``)."""

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
            yield from parquet_records(self.source, self.text_field)
        else:
            for row in self.source:
                yield row_record(row, self.text_field)

    def texts(self, report: ReadReport) -> Iterator[str]:
        """The document texts, counting rows without a usable text in
        ``report.skipped_documents`` (the callers count documents and bytes themselves)."""
        if self.kind == "parquet":
            report.files += 1
            for rec in self.records():
                if rec is None:
                    report.skipped_documents += 1
                else:
                    yield rec[0]
            return
        text_field = self.text_field
        for row in self.source:
            if isinstance(row, str):  # the common case first: ~1 µs per text counts at 1M
                yield row
                continue
            rec = row_record(row, text_field)
            if rec is None:
                report.skipped_documents += 1
            else:
                yield rec[0]


@dataclass
class Corpus:
    """``source`` resolved by :func:`resolve`: the inputs in order, and the files met while
    expanding paths that are not read (not regular files), as ``(path, reason)``."""

    inputs: list[FileInput | RecordInput]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def runs(self) -> Iterator[list[FileInput] | RecordInput]:
        """The inputs with consecutive files grouped into lists (for the multi-file readers)."""
        files: list[FileInput] = []
        for item in self.inputs:
            if isinstance(item, FileInput):
                files.append(item)
                continue
            if files:
                yield files
                files = []
            yield item
        if files:
            yield files


def _is_dataset(obj: object) -> bool:
    return type(obj).__module__.split(".")[0] == "datasets"


def _is_text_or_record(item: object) -> bool:
    return isinstance(item, (str, Mapping))


def resolve(
    source: object,
    *,
    include: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    text_field: str = "content",
) -> Corpus:
    """Apply the rule (see the module docstring) to ``source`` and expand its paths.

    Raises ``FileNotFoundError`` naming a path that does not exist, a glob that matches no
    file or a directory without a file matching ``include``; ``TypeError`` for what is not an
    input; ``ValueError`` for texts that look like paths.

    >>> [type(i).__name__ for i in resolve(["def f(): pass\\n"]).inputs]
    ['RecordInput']
    >>> resolve([]).inputs
    []
    """
    inc = _patterns("include", DEFAULT_INCLUDE if include is None else include)
    exc = _patterns("exclude", exclude)
    if isinstance(source, (str, os.PathLike)):
        try:
            return _resolve_items([source], inc, exc, text_field)
        except FileNotFoundError as e:
            if not isinstance(source, str) or e.strerror is None:
                raise
            hint = "; a single str is read as a path or glob, for texts pass a list of str"
            raise FileNotFoundError(e.errno, f"{e.strerror}{hint}", e.filename) from None
    if _is_dataset(source):
        return _resolve_items([source], inc, exc, text_field)
    if isinstance(source, Mapping):
        raise TypeError("the input is one record (a dict): pass a list or iterable of records")
    if isinstance(source, (bytes, bytearray)):
        raise TypeError("inputs must be paths, texts or records, not bytes; decode the text first")
    if isinstance(source, Iterator):
        first = next(source, None)
        if first is None:
            return Corpus([])
        if _is_text_or_record(first):
            _check_not_a_path(first, 0)
            rest = itertools.chain([first], source)
            return Corpus([RecordInput("iterable", _checked_rows(rest), text_field, None)])
        source = [first, *source]  # paths, datasets or nested iterables: a short list
    if not isinstance(source, Iterable):
        raise TypeError(
            f"inputs must be a path, a glob, or an iterable of paths, texts or records, "
            f"not {type(source).__name__}"
        )
    return _resolve_items(_group_rows(source), inc, exc, text_field)


def _patterns(name: str, patterns: Iterable[str]) -> tuple[str, ...]:
    if isinstance(patterns, str):
        raise TypeError(f"{name} must be a list of glob patterns, not one str: [{patterns!r}]")
    out = tuple(patterns)
    for p in out:
        if not isinstance(p, str) or not p:
            raise ValueError(f"{name} patterns must be non-empty str, got {p!r}")
    return out


def _check_not_a_path(item: object, index: int) -> None:
    """A text that names an existing file or matches a glob is almost surely a path meant to be
    read (the old meaning of a list of str for ``pack``): say how to pass it."""
    if not isinstance(item, str) or len(item) > 4096 or "\n" in item or not item.strip():
        return
    looks_like_path = os.path.exists(item) or (
        bool(_GLOB_CHARS.intersection(item)) and bool(glob.glob(item, recursive=True))
    )
    if looks_like_path:
        raise ValueError(
            f"input item {index} {item!r} is a str, which is a text (a document), but it names "
            f"existing files: to read files pass pathlib.Path objects (or one str path or glob "
            f"on its own)"
        )


def _checked_rows(rows: Iterator[object]) -> Iterator[object]:
    for i, row in enumerate(rows):
        if isinstance(row, os.PathLike):
            raise TypeError(
                f"input item {i} is a path but item 0 is a text or record: a stream is either "
                f"paths or documents; pass the paths separately"
            )
        yield row


def _group_rows(items: Iterable[Any]) -> list[Any]:
    """``items`` with each run of consecutive texts / records replaced by one iterable over
    them (the whole input when it is all texts/records); texts beside paths are an error."""
    seq = items if isinstance(items, (list, tuple)) else list(items)
    if not seq:
        return []
    if all(isinstance(item, str) for item in seq):  # fast path: texts only
        _check_not_a_path(seq[0], 0)
        return [_Rows(seq)]
    bounds: list[tuple[int, int]] = []
    start = None
    other = None
    for i, item in enumerate(seq):
        if _is_text_or_record(item):
            if start is None:
                start = i
            continue
        if other is None:
            other = i
        if start is not None:
            bounds.append((start, i))
            start = None
    if start is not None:
        bounds.append((start, len(seq)))
    if bounds and other is not None:
        texts = [i for a, b in bounds for i in range(a, b) if isinstance(seq[i], str)]
        if texts:
            raise TypeError(
                f"input item {texts[0]} is a str, which is a text (a document), but item "
                f"{other} is {type(seq[other]).__name__}: to read files pass pathlib.Path "
                f"objects, not str"
            )
    if bounds == [(0, len(seq))]:
        _check_not_a_path(seq[0], 0)
        return [_Rows(seq)]  # no copy of a big list of texts
    out: list[Any] = []
    i = 0
    for a, b in bounds:
        out.extend(seq[i:a])
        out.append(_Rows(seq[a:b]))
        i = b
    out.extend(seq[i:])
    return out


@dataclass(frozen=True)
class _Rows:
    """A run of texts / records taken from the top-level input (not a nested source)."""

    items: Iterable[Any]


def _resolve_items(
    items: Iterable[Any], include: tuple[str, ...], exclude: tuple[str, ...], text_field: str
) -> Corpus:
    corpus = Corpus([])
    seen: set[str] = set()
    for item in items:
        if isinstance(item, _Rows):
            corpus.inputs.append(RecordInput("iterable", item.items, text_field, None))
        elif isinstance(item, (str, os.PathLike)):
            path = os.fspath(item)
            if not isinstance(path, str):
                raise TypeError(f"paths must be str or os.PathLike[str], not {type(item).__name__}")
            _expand(path, include, exclude, text_field, corpus, seen)
        elif _is_dataset(item):
            fp = getattr(item, "_fingerprint", None)
            ident = f"datasets:{type(item).__name__}:{fp}" if fp else None
            corpus.inputs.append(RecordInput("dataset", item, text_field, ident))
        elif isinstance(item, (bytes, bytearray)):
            raise TypeError("inputs must be paths, texts or records, not bytes")
        elif isinstance(item, Iterable):
            corpus.inputs.append(RecordInput("iterable", item, text_field, None))
        else:
            raise TypeError(f"cannot read documents from {type(item).__name__}: {item!r}")
    return corpus


# ------------------------------------------------------------------------------ paths


def _matches(rel: str, patterns: Iterable[str]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(rel, p) or fnmatch.fnmatchcase(name, p) for p in patterns)


def _not_regular(mode: int | None) -> str:
    if mode is None:
        kind = "a broken symbolic link"
    elif stat.S_ISFIFO(mode):
        kind = "a FIFO"
    elif stat.S_ISSOCK(mode):
        kind = "a socket"
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        kind = "a device"
    else:
        kind = "not a regular file"
    return f"skipped: {kind}, not a regular file"


def walk(
    root: str | os.PathLike[str],
    include: Iterable[str] = DEFAULT_INCLUDE,
    exclude: Iterable[str] = (),
) -> tuple[list[str], list[tuple[str, str]]]:
    """The files of the directory ``root`` that the rule reads, as paths relative to ``root``
    (``/``-separated, sorted), and the matching entries skipped because they are not regular
    files, as ``(path, reason)``. Never opens a file.

    Hidden entries, :data:`SKIPPED_DIRS` and directories matching ``exclude`` are not walked;
    a file is taken when its relative path or name matches ``include`` and not ``exclude``.
    """
    found, skipped = _walk(os.fspath(root), tuple(include), tuple(exclude))
    return [rel for rel, _ in found], skipped


def _key(path: str, link: bool) -> str:
    """What makes two paths the same file for "read once": the absolute path, or for a
    symbolic link the path it resolves to. (Not the inode: overlay file systems, as in
    containers, do not keep directory inode numbers unique.)"""
    return os.path.realpath(path) if link else os.path.abspath(path)


def _walk(
    root: str, include: tuple[str, ...], exclude: tuple[str, ...]
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    found: list[tuple[str, str]] = []
    skipped: list[tuple[str, str]] = []
    stack = [(root, "")]
    while stack:
        directory, prefix = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = list(it)
        except OSError as e:
            if not prefix:
                raise
            skipped.append((directory, f"skipped: cannot list the directory ({e.strerror})"))
            continue
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            rel = prefix + name
            try:
                if entry.is_dir(follow_symlinks=False):
                    if name not in SKIPPED_DIRS and not _matches(rel, exclude):
                        stack.append((entry.path, rel + "/"))
                    continue
                if not _matches(rel, include) or _matches(rel, exclude):
                    continue
                if entry.is_symlink():
                    try:
                        st = entry.stat()
                    except OSError:
                        skipped.append((entry.path, _not_regular(None)))
                        continue
                    if stat.S_ISDIR(st.st_mode):
                        continue  # links to directories are not followed (no cycles)
                    if not stat.S_ISREG(st.st_mode):
                        skipped.append((entry.path, _not_regular(st.st_mode)))
                        continue
                    found.append((rel, _key(entry.path, link=True)))
                elif entry.is_file(follow_symlinks=False):
                    found.append((rel, _key(entry.path, link=False)))
                else:
                    mode = entry.stat(follow_symlinks=False).st_mode
                    skipped.append((entry.path, _not_regular(mode)))
            except OSError as e:  # vanished while walking
                skipped.append((entry.path, f"skipped: {e.strerror}"))
    found.sort()
    return found, skipped


def _expand(
    path: str,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    text_field: str,
    corpus: Corpus,
    seen: set[str],
) -> None:
    def add(full: str, name: str, key: str) -> None:
        if key in seen:
            return
        seen.add(key)
        if full.lower().endswith(".parquet"):
            st = os.stat(full)
            ident = f"parquet:{name}:{st.st_size}:{st.st_mtime_ns}"
            corpus.inputs.append(RecordInput("parquet", full, text_field, ident))
        else:
            corpus.inputs.append(FileInput(full, name))

    def skip(full: str, reason: str) -> None:
        key = _key(full, link=False)
        if key not in seen:
            seen.add(key)
            corpus.skipped.append((full, reason))

    def add_dir(directory: str, required: bool) -> None:
        found, skipped = _walk(directory, include, exclude)
        for full, reason in skipped:
            skip(full, reason)
        if required and not found:
            raise FileNotFoundError(
                2,
                f"the directory has no file matching include={list(include)} "
                f"(exclude={list(exclude)}); pass the files or a glob, or set include "
                "(--include), e.g. --include '*.py' '*.jsonl.gz'",
                directory,
            )
        for rel, key in found:
            add(os.path.join(directory, rel), rel, key)

    def add_file(full: str, name: str) -> None:
        try:
            st = os.stat(full)
        except FileNotFoundError:
            skip(full, _not_regular(None))
            return
        if stat.S_ISDIR(st.st_mode):
            add_dir(full, required=False)
        elif not stat.S_ISREG(st.st_mode):
            skip(full, _not_regular(st.st_mode))
        else:
            add(full, name, _key(full, link=os.path.islink(full)))

    if os.path.isdir(path):
        add_dir(path, required=True)
    elif os.path.lexists(path):
        add_file(path, os.path.basename(path))
    elif _GLOB_CHARS.intersection(path):
        matches = sorted(glob.glob(path, recursive=True))
        if not matches:
            raise FileNotFoundError(2, "no files match the glob", path)
        for match in matches:
            add_file(match, match)
    else:
        raise FileNotFoundError(2, "input path not found", path)


# ------------------------------------------------------------------------------ command line


def add_include_exclude(parser: argparse.ArgumentParser) -> None:
    """``--include`` / ``--exclude`` for every command that takes ``--input`` (one wording,
    one default: the API's)."""
    parser.add_argument(
        "--include",
        nargs="+",
        default=None,
        metavar="GLOB",
        help=f"files taken from directories (default: {' '.join(DEFAULT_INCLUDE)})",
    )
    parser.add_argument(
        "--exclude",
        nargs="+",
        default=[],
        metavar="GLOB",
        help="files, and directories not walked, left out of directories",
    )


def include_exclude(args: argparse.Namespace) -> dict[str, tuple[str, ...]]:
    """The ``include`` / ``exclude`` keyword arguments for the flags given (none: defaults)."""
    out = {"exclude": tuple(args.exclude)}
    if args.include is not None:
        out["include"] = tuple(args.include)
    return out
