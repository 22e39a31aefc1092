"""Native libraries' console chatter, routed into the log.

TensorFlow, its converter and LiteRT print from C++ straight to file descriptor 2
(``fully_quantize: 0, ...``, ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.``,
absl's ``WARNING: All log messages before absl::InitializeLog() ...``), whatever the log
level, so a quiet run or a log file fills with them. :func:`native_stderr_to_log` points
descriptor 2 at a temporary file for the duration of such a call and hands each line to a
Python logger instead (DEBUG by default, so ``-vv`` shows them): nothing is lost and a
normal run stays clean.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from typing import Iterator


@contextlib.contextmanager
def native_stderr_to_log(log: logging.Logger, *, level: int = logging.DEBUG) -> Iterator[None]:
    """Capture what native code writes to descriptor 2 inside the block; log it line by line.

    Python's own stderr writes during the block are captured as well; lines our handler
    wrote (they start with ``edge-ad``) are passed back to stderr unchanged.
    """
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):   # pytest's capture, an IDE: no descriptor
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), fd)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            for line in tmp.read().decode("utf-8", "replace").splitlines():
                if line.startswith("edge-ad"):
                    print(line, file=sys.stderr)
                elif line.strip():
                    log.log(level, "%s", line)
