"""The child side of :mod:`codekiln.evaluate.sandbox` (run as a script, never imported).

``python -I _sandbox_child.py PROGRAM_FILE RESULT_FD MEMORY_BYTES CPU_SECONDS FSIZE_BYTES``

Order matters: read the program, leave the network, set the limits, install the audit hook,
then run the program. Everything the hook forbids is allowed before it (reading the program,
``ctypes`` for ``unshare``). The result is one JSON object written to ``RESULT_FD``:
``{"status": "passed"}`` or ``{"status": "failed", "error": "..."}``; no result means the
process was killed (the parent decides between timeout and a crash).
"""

import contextlib
import json
import os
import resource
import sys

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000

# Audit events refused once the program runs (see the sandbox docstring for the reasons).
_FORBIDDEN = frozenset(
    {
        "os.remove",
        "os.rmdir",
        "os.rename",
        "os.truncate",
        "os.chmod",
        "os.chown",
        "os.chflags",
        "os.link",
        "os.symlink",
        "os.utime",
        "shutil.rmtree",
        "shutil.move",
        "shutil.chown",
        "os.kill",
        "os.killpg",
        "signal.pthread_kill",
        "os.fork",
        "os.forkpty",
        "os.exec",
        "os.posix_spawn",
        "os.spawn",
        "os.system",
        "os.startfile",
        "os.setuid",
        "subprocess.Popen",
        "pty.spawn",
        "resource.setrlimit",
        "resource.prlimit",
        "sys.addaudithook",
        "webbrowser.open",
    }
)
_FORBIDDEN_PREFIXES = ("socket.", "ctypes.", "_posixsubprocess.", "mmap.", "winreg.")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _leave_network() -> str:
    """Move into a new, empty network namespace when the OS lets us."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        for flags in (CLONE_NEWNET, CLONE_NEWUSER | CLONE_NEWNET):
            if libc.unshare(flags) == 0:
                return "namespace"
    except (OSError, AttributeError):
        pass
    return "sockets disabled"


def _limit(kind: int, value: int) -> None:
    _soft, hard = resource.getrlimit(kind)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(kind, (value, value))


def _install_hook(root: str) -> None:
    root = os.path.realpath(root) + os.sep

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = args
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & _WRITE_FLAGS
            )
            if writing and isinstance(path, (str, bytes)):
                real = os.path.realpath(os.fsdecode(path))
                if not (real + os.sep).startswith(root):
                    raise PermissionError(f"sandbox: writing outside the sandbox ({real})")
            return
        if event in _FORBIDDEN or event.startswith(_FORBIDDEN_PREFIXES):
            raise PermissionError(f"sandbox: {event} is disabled")

    sys.addaudithook(hook)


def main() -> None:
    program_file, fd, memory, cpu, fsize = sys.argv[1:6]
    result_fd = int(fd)
    with open(program_file, encoding="utf-8") as f:
        source = f.read()
    network = _leave_network()
    os.environ.clear()
    os.environ.update({"HOME": os.getcwd(), "TMPDIR": os.getcwd(), "LANG": "C.UTF-8"})
    _limit(resource.RLIMIT_AS, int(memory))
    _limit(resource.RLIMIT_DATA, int(memory))
    _limit(resource.RLIMIT_CPU, int(cpu))
    _limit(resource.RLIMIT_FSIZE, int(fsize))
    _limit(resource.RLIMIT_CORE, 0)
    _limit(resource.RLIMIT_NOFILE, 256)
    if os.geteuid() != 0:  # root ignores RLIMIT_NPROC; the audit hook covers fork there
        _limit(resource.RLIMIT_NPROC, 0)
    sys.dont_write_bytecode = True
    _install_hook(os.getcwd())
    try:
        code = compile(source, "<program>", "exec")
        exec(code, {"__name__": "__main__", "__builtins__": __builtins__})
    except BaseException as e:  # SystemExit too: leaving early is not passing
        text = f"{type(e).__name__}: {e}"[:2000]
        report = {"status": "failed", "error": text, "network": network}
    else:
        report = {"status": "passed", "error": None, "network": network}
    with contextlib.suppress(BaseException):
        sys.stdout.flush()
    os.write(result_fd, json.dumps(report).encode("utf-8"))
    os._exit(0)


if __name__ == "__main__":
    main()
