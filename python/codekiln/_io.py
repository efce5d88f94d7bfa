"""Atomic file writes: the one helper behind tokenizer files, MANIFESTs and checkpoints.

A write goes to a uniquely named temporary file in the destination's directory, is flushed
and fsynced, renamed over the destination (``os.replace``, atomic on POSIX and Windows), and
the directory is fsynced so that the rename itself survives a power cut. A failure at any
point (an exception, Ctrl-C, a full disk) removes the temporary file and leaves the previous
file untouched; a ``kill -9`` can leave a ``.NAME.*.tmp`` file behind but never a half-written
``NAME``.

A destination that is a symbolic link is written through: the link's target is replaced and
the link stays a link. A destination that exists but is not a regular file (a directory, a
device node, a FIFO, a socket) is refused with :class:`IsADirectoryError` /
:class:`NotARegularFileError` before anything is written.

>>> import os, tempfile
>>> d = tempfile.mkdtemp()
>>> atomic_write(os.path.join(d, "a.txt"), b"hello")
>>> open(os.path.join(d, "a.txt"), "rb").read()
b'hello'
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
from collections.abc import Iterator
from typing import Any

__all__ = [
    "NotARegularFileError",
    "atomic_path",
    "atomic_write",
    "atomic_write_json",
    "fsync_dir",
    "is_temp_file",
]


class NotARegularFileError(OSError):
    """The destination of a write exists and is a device node, FIFO or socket."""


def _resolve(path: str | os.PathLike[str]) -> str:
    path = os.fspath(path)
    # Write through symlinks (a link to a shared file stays a link).
    final = os.path.realpath(path) if os.path.islink(path) else path
    try:
        st = os.stat(final)
    except FileNotFoundError:
        return final
    except OSError:  # e.g. a link loop: let the write itself report it
        return final
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(f"{path}: is a directory; give a file path to write")
    if not stat.S_ISREG(st.st_mode):
        raise NotARegularFileError(
            f"{path}: exists and is not a regular file (a device, FIFO or socket); "
            "refusing to replace it"
        )
    return final


def _temp_name(path: str) -> str:
    directory = os.path.dirname(os.path.abspath(path))
    return os.path.join(
        directory, f".{os.path.basename(path)}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    )


def is_temp_file(name: str, final: str) -> bool:
    """Whether the directory entry ``name`` is a temporary file of a write to ``final`` (a
    base name) that never finished (left by a ``kill -9``); safe to delete when no writer runs.

    >>> is_temp_file(os.path.basename(_temp_name("MANIFEST.json")), "MANIFEST.json")
    True
    """
    return name.startswith(f".{final}.") and name.endswith(".tmp")


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """fsync a directory so that renames in it are durable (a no-op where not possible)."""
    try:
        fd = os.open(os.fspath(directory) or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[str]:
    """Yield a temporary path to write; on success it is fsynced and renamed over ``path``.

    For writers that want a file name (``torch.save``, ``numpy.save``)::

        with atomic_path("ckpt.pt") as tmp:
            torch.save(state, tmp)
    """
    final = _resolve(path)
    tmp = _temp_name(final)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(os.path.dirname(os.path.abspath(final)))


def atomic_write(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see the module docstring)."""
    with atomic_path(path) as tmp:
        # os.open with mode 0o666 lets the umask decide the permissions, like a plain open().
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as f:
            f.write(data)


def atomic_write_json(
    path: str | os.PathLike[str], obj: Any, *, indent: int | None = 1, ensure_ascii: bool = True
) -> None:
    """``obj`` as JSON (UTF-8, trailing newline), written atomically."""
    text = json.dumps(obj, indent=indent, ensure_ascii=ensure_ascii) + "\n"
    atomic_write(path, text.encode("utf-8"))
