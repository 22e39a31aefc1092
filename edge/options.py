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
