"""The sandbox that runs model-written code: canonical HumanEval solutions pass, and hostile
programs (infinite loops, huge allocations, deleting or overwriting files, killing the parent,
fork bombs, output floods, the network) fail or time out without harming the test process."""

from __future__ import annotations

import os
import pathlib
import time

import pytest
from codekiln.evaluate.sandbox import run_many, run_sandboxed


def test_a_correct_program_passes_and_a_wrong_one_fails() -> None:
    assert run_sandboxed("x = [i * i for i in range(10)]\nassert x[3] == 9").status == "passed"
    r = run_sandboxed("def f():\n    return 1\nassert f() == 2, 'wrong'")
    assert (r.status, r.error) == ("failed", "AssertionError: wrong")
    r = run_sandboxed("def f(:\n")
    assert r.status == "failed" and r.error.startswith("SyntaxError")


def test_leaving_early_is_not_passing() -> None:
    for program in ("import sys; sys.exit(0)", "exit()", "raise SystemExit"):
        r = run_sandboxed(program)
        assert r.status == "failed" and "SystemExit" in r.error, program
    r = run_sandboxed("import os; os._exit(0)")
    assert r.status == "failed" and "without a result" in r.error


def test_an_infinite_loop_times_out() -> None:
    start = time.perf_counter()
    r = run_sandboxed("while True:\n    pass", timeout=1.0)
    assert r.status == "timeout"
    assert time.perf_counter() - start < 6
    r = run_sandboxed("import time\ntime.sleep(60)", timeout=1.0)  # wall clock, not CPU
    assert r.status == "timeout"


def test_a_10_gb_allocation_fails_inside_the_child() -> None:
    r = run_sandboxed("x = bytearray(10 * 2**30)\nx[-1] = 1")
    assert r.status == "failed" and "MemoryError" in r.error
    r = run_sandboxed("x = [0] * (2 * 10**9)")
    assert r.status == "failed" and "MemoryError" in r.error
    assert run_sandboxed("assert True").status == "passed"  # the harness carries on


@pytest.mark.parametrize(
    "program",
    [
        "import os; os.remove({p!r})",
        "import os; os.unlink({p!r})",
        "import pathlib; pathlib.Path({p!r}).unlink()",
        "import posix; posix.remove({p!r})",
        "import shutil; shutil.rmtree({d!r})",
        "import os; os.rename({p!r}, {p!r} + '.moved')",
        "import os; os.truncate({p!r}, 0)",
        "open({p!r}, 'w').write('overwritten')",
        "open({p!r}, 'a').write('appended')",
        "import io; io.FileIO({p!r}, 'w').write(b'x')",
        "import os; fd = os.open({p!r}, os.O_WRONLY | os.O_TRUNC); os.write(fd, b'x')",
        "import os; os.chmod({p!r}, 0)",
        "import os; os.symlink({p!r}, 'link'); open('link', 'w').write('x')",
        "import ctypes; ctypes.CDLL(None).unlink({p!r}.encode())",
    ],
)
def test_files_outside_the_sandbox_stay_intact(tmp_path: pathlib.Path, program: str) -> None:
    victim = tmp_path / "keep" / "precious.txt"
    victim.parent.mkdir()
    victim.write_text("precious")
    mode = victim.stat().st_mode
    r = run_sandboxed(program.format(p=str(victim), d=str(victim.parent)))
    assert r.status == "failed" and "PermissionError" in r.error, r
    assert victim.read_text() == "precious"
    assert victim.stat().st_mode == mode
    assert sorted(os.listdir(victim.parent)) == ["precious.txt"]


def test_writing_inside_the_sandbox_works_and_is_removed_afterwards() -> None:
    r = run_sandboxed(
        "import os\nopen('a.txt', 'w').write('x')\nos.mkdir('d')\n"
        "print(os.getcwd())\nassert open('a.txt').read() == 'x'"
    )
    assert r.status == "passed", r
    workdir = r.output.strip()
    assert "codekiln-sandbox-" in workdir and not os.path.exists(workdir)


@pytest.mark.parametrize(
    "program",
    [
        "import os, signal; os.kill(os.getppid(), signal.SIGKILL)",
        "import os, signal; os.killpg(os.getpgid(os.getppid()), signal.SIGKILL)",
        "import os, signal; os.kill(-1, signal.SIGKILL)",
        "import signal, threading; signal.pthread_kill(threading.main_thread().ident, 9)",
    ],
)
def test_killing_the_parent_fails(program: str) -> None:
    r = run_sandboxed(program)
    assert r.status == "failed" and "PermissionError" in r.error, r
    os.kill(os.getpid(), 0)  # still here


@pytest.mark.parametrize(
    "program",
    [
        "import os\nwhile True:\n    os.fork()",
        "import subprocess, sys\nwhile True:\n    subprocess.Popen([sys.executable, '-c', 'pass'])",
        "import os\nos.system('sleep 100 &')",
        "import multiprocessing as mp\nfor _ in range(100):\n    mp.Process(target=print).start()",
        "import os, sys\nos.execv(sys.executable, [sys.executable, '-c', 'pass'])",
        "import os\nos.posix_spawn('/bin/sleep', ['sleep', '100'], {})",
    ],
)
def test_a_fork_bomb_is_contained(program: str) -> None:
    r = run_sandboxed(program, timeout=2.0)
    assert r.status == "failed" and "PermissionError" in r.error, r


def test_a_thread_bomb_is_contained() -> None:
    r = run_sandboxed(
        "import threading, time\nwhile True:\n"
        "    threading.Thread(target=time.sleep, args=(30,), daemon=True).start()",
        timeout=2.0,
    )
    assert r.status in ("failed", "timeout")
    assert r.status == "timeout" or "thread" in r.error or "Memory" in r.error, r


@pytest.mark.parametrize(
    "program",
    [
        "while True:\n    print('x' * 10000)",
        "import sys\nwhile True:\n    sys.stderr.write('y' * 65536)",
        "import os\nwhile True:\n    os.write(1, b'z' * 65536)",
    ],
)
def test_flooding_the_output_does_not_hang(program: str) -> None:
    start = time.perf_counter()
    r = run_sandboxed(program, timeout=2.0)
    assert r.status in ("failed", "timeout")
    assert time.perf_counter() - start < 8
    assert 0 < len(r.output) <= 2000  # only a tail comes back


def test_no_network() -> None:
    r = run_sandboxed("import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=1)")
    assert r.status == "failed" and "PermissionError" in r.error
    r = run_sandboxed("import socket\nsocket.socket()")
    assert r.status == "failed" and "socket" in r.error
    assert run_sandboxed("pass").network in ("namespace", "sockets disabled")


def test_no_stdin_and_an_empty_environment() -> None:
    assert run_sandboxed(
        "assert input.__name__\nimport sys\nassert sys.stdin.read() == ''"
    ).status == ("passed")
    r = run_sandboxed("import os\nassert 'PATH' not in os.environ, sorted(os.environ)")
    assert r.status == "passed", r


def test_limits_cannot_be_raised() -> None:
    r = run_sandboxed("import resource\nresource.setrlimit(resource.RLIMIT_AS, (-1, -1))")
    assert r.status == "failed" and "PermissionError" in r.error


def test_run_many_keeps_the_order_and_reports_each() -> None:
    seen = []
    programs = [f"assert {i} % 3 != 0" for i in range(7)]
    results = run_many(programs, workers=2, on_result=lambda i, r: seen.append(i))
    assert [r.status for r in results] == ["failed" if i % 3 == 0 else "passed" for i in range(7)]
    assert sorted(seen) == list(range(7))
    with pytest.raises(ValueError, match="timeout"):
        run_sandboxed("pass", timeout=0)


def test_no_process_is_left_behind() -> None:
    before = _children()
    run_sandboxed("import time\ntime.sleep(30)", timeout=0.5)
    assert _children() <= before


def _children() -> set[int]:
    me = str(os.getpid())
    out = set()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == me and fields[0] != "Z":
                out.add(int(pid))
    return out
