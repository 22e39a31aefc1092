"""Argument types shared by the commands (argparse ``type=`` callables).

Each refuses a value at parse time with argparse's usual one line and exit code 2, naming
the option and what was expected.
"""
from __future__ import annotations

import argparse
import os


def cores_present() -> int:
    """CPUs this process may run on (its affinity mask, else the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def threads_arg(text: str) -> int:
    """``--threads``: 1 to the cores present. More only slows a runtime down, and far more
    crashes LiteRT (a segfault at 100000) and hangs onnxruntime, so it is refused."""
    cores = cores_present()
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number of threads") from None
    if not 1 <= n <= cores:
        raise argparse.ArgumentTypeError(f"{n}: expected 1 to {cores} (the cores present)")
    return n


def _number(text: str, kind: type) -> float:
    try:
        value = kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"{text!r}: expected {what}") from None
    if kind is float and value != value:        # NaN compares false with every bound
        raise argparse.ArgumentTypeError(f"{text}: expected a number, not NaN")
    return value


def whole_at_least(minimum: int):
    """``type=`` for a whole number >= ``minimum`` (counts: epochs, jobs, workers, ...)."""
    def parse(text: str) -> int:
        n = int(_number(text, int))
        if n < minimum:
            raise argparse.ArgumentTypeError(f"{n}: out of range, expected a whole number >= {minimum}")
        return n
    parse.__name__ = f"whole number >= {minimum}"
    return parse


def positive_number(text: str) -> float:
    """``type=`` for a finite number > 0 (a learning rate, seconds)."""
    v = _number(text, float)
    if not 0 < v < float("inf"):
        raise argparse.ArgumentTypeError(f"{text}: out of range, expected a number > 0")
    return v


def rate(text: str) -> float:
    """``type=`` for a rate strictly between 0 and 1 (``--p``)."""
    v = _number(text, float)
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"{text}: out of range, expected a rate between 0 and 1, exclusive")
    return v


def unit_interval(text: str) -> float:
    """``type=`` for a value in [0, 1] (a correlation, a fraction)."""
    v = _number(text, float)
    if not 0 <= v <= 1:
        raise argparse.ArgumentTypeError(f"{text}: out of range, expected a value in [0, 1]")
    return v
