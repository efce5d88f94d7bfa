"""Range-checked numeric types for the command line.

Every numeric flag of every ``codekiln`` command uses :class:`Int` or :class:`Float` as its
argparse ``type`` (a test walks the parsers to keep it so): a value outside the flag's range is
a usage error that names the flag (``argument --shard-tokens: must be an integer in [1,
2**63-1], got 10000...``) instead of an overflow traceback from deep inside the Rust core or
torch.

>>> Int(1)("8")
8
>>> Int(1)("0")
Traceback (most recent call last):
...
argparse.ArgumentTypeError: must be an integer in [1, 2**63-1], got 0
"""

from __future__ import annotations

import argparse
import math

__all__ = ["INT_MAX", "Float", "Int"]

INT_MAX = 2**63 - 1
"""The largest integer any flag takes (the Rust core stores counts and sizes in 64 bits)."""


def _bound_text(lo: int | float | None, hi: int | float | None) -> str:
    def show(v: int | float) -> str:
        if v == -INT_MAX - 1:
            return "-2**63"
        return "2**63-1" if v == INT_MAX else f"{v:g}" if isinstance(v, float) else str(v)

    if lo is not None and hi is not None:
        return f"in [{show(lo)}, {show(hi)}]"
    if lo is not None:
        return f">= {show(lo)}"
    if hi is not None:
        return f"<= {show(hi)}"
    return ""


class Int:
    """argparse type: an integer in ``[lo, hi]`` (64-bit: ``lo`` defaults to ``-2**63``,
    ``hi`` to :data:`INT_MAX`)."""

    def __init__(self, lo: int | None = None, hi: int | None = INT_MAX) -> None:
        self.lo = max(lo, -INT_MAX - 1) if lo is not None else -INT_MAX - 1
        self.hi = min(hi, INT_MAX) if hi is not None else INT_MAX
        self.__name__ = "int"  # argparse names the type in "invalid int value" messages

    def __call__(self, text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not self.lo <= value <= self.hi:
            shown = text if len(text) <= 30 else f"{text[:12]}...({len(text)} digits)"
            raise argparse.ArgumentTypeError(
                f"must be an integer {_bound_text(self.lo, self.hi)}, got {shown}"
            )
        return value

    def __repr__(self) -> str:
        return f"Int({self.lo}, {self.hi})"


class Float:
    """argparse type: a finite float in ``[lo, hi]``; ``lo_open``/``hi_open`` exclude the
    bound itself (e.g. a learning rate in ``(0, inf)``)."""

    def __init__(
        self,
        lo: float | None = None,
        hi: float | None = None,
        *,
        lo_open: bool = False,
        hi_open: bool = False,
    ) -> None:
        self.lo, self.hi, self.lo_open, self.hi_open = lo, hi, lo_open, hi_open
        self.__name__ = "float"

    def __call__(self, text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        bad = not math.isfinite(value)
        if self.lo is not None:
            bad |= value <= self.lo if self.lo_open else value < self.lo
        if self.hi is not None:
            bad |= value >= self.hi if self.hi_open else value > self.hi
        if bad:
            lo = "(" if self.lo_open else "["
            hi = ")" if self.hi_open else "]"
            low = "-inf" if self.lo is None else f"{self.lo:g}"
            high = "inf" if self.hi is None else f"{self.hi:g}"
            raise argparse.ArgumentTypeError(
                f"must be a finite number in {lo}{low}, {high}{hi}, got {text}"
            )
        return value

    def __repr__(self) -> str:
        return f"Float({self.lo}, {self.hi})"
