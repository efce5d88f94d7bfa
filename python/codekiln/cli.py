"""The ``codekiln`` command line: the root parser, the list of command groups, error mapping.

Each command group is one ``add_*_command(s)(sub)`` function, next to the code it drives
(``codekiln/tokenizer/cli.py``, ``codekiln/data/cli.py``, ``codekiln/quickstart.py``), that
registers its subparsers and sets ``func`` (``args -> exit code``) on each;
:data:`_COMMAND_GROUPS` lists them. To add a group, write such a function next to its code and append it
there.

Errors the user can fix (bad arguments, missing or unreadable inputs, an empty corpus) are one
``codekiln: error: ...`` line on stderr and exit status 1; argparse usage errors exit with 2.
Heavy imports happen inside the handlers so that ``codekiln --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from codekiln import __version__
from codekiln.data.cli import add_data_commands
from codekiln.evaluate.cli import add_eval_commands
from codekiln.generate_cli import add_complete_command
from codekiln.hf import add_hf_commands
from codekiln.quickstart import add_quickstart_command
from codekiln.tokenizer.cli import add_tokenizer_commands
from codekiln.train.cli import add_train_commands

__all__ = ["build_parser", "main"]

Handler = Callable[[argparse.Namespace], int]


# ------------------------------------------------------------------------------ main

_COMMAND_GROUPS: tuple[Callable[[Any], None], ...] = (
    add_tokenizer_commands,
    add_data_commands,
    add_train_commands,
    add_complete_command,
    add_eval_commands,
    add_hf_commands,
    add_quickstart_command,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codekiln", description="Train GPT models on source code from scratch."
    )
    parser.add_argument("--version", action="version", version=f"codekiln {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _COMMAND_GROUPS:
        add(sub)
    return parser


def _describe(e: BaseException) -> str:
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        text = f"{e.strerror}: {e.filename}"
    else:
        text = str(e) or type(e).__name__
    return " ".join(text.split())  # one line


def _show_warning(message: Any, category: Any, *_: Any, **__: Any) -> None:
    print(f"codekiln: warning: {_describe(Warning(str(message)))}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (``codekiln`` passes it to :func:`sys.exit`)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, usage errors
        return e.code if isinstance(e.code, int) else 0
    handler: Handler = args.func
    with warnings.catch_warnings():
        # codekiln's own warnings (e.g. fewer merges learned) are reports for the user: always
        # printed, whatever the process-wide filters say; others follow those filters.
        warnings.filterwarnings("always", category=UserWarning, module=r"codekiln(\.|$)")
        warnings.showwarning = _show_warning
        try:
            return handler(args)
        except KeyboardInterrupt:
            print("codekiln: interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:  # e.g. `codekiln tokenizer encode ... | head`
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 1
        except (OSError, ValueError, ImportError) as e:
            print(f"codekiln: error: {_describe(e)}", file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main())
