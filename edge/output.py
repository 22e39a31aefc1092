"""Decision lines out: whole lines or nothing, and a full disk is an error, not a crash.

``edge-ad run`` writes one JSON line per decision for as long as it runs (months). A disk
that fills up, a file-size limit (``ulimit -f``) or an I/O error must neither kill the
detector (alerts go on) nor leave half a line (``{"time":"20``) that breaks every reader of
the file. :class:`LineWriter` writes each line with ``os.write`` on an ``O_APPEND``
descriptor and, when a write fails part-way, truncates the file back to the end of the
last complete line. It keeps trying with the next line, so the output heals by itself
once there is room again, and says so once per change (failing, writable again).
"""
from __future__ import annotations

import logging
import os
import stat

from .errors import OutputError

log = logging.getLogger(__name__)


class LineWriter:
    """Append whole lines to ``path`` (or stdout when ``path`` is None).

    Attributes:
        error: the current failure (None while writes succeed).
        error_is_new: whether the last :meth:`write_line` started a failure episode.
        first_error: the first failure seen, for the final report.
        failed_lines: lines not written.

    Raises:
        OutputError: the file cannot be opened for appending.
    """

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.name = "stdout" if path is None else str(path)
        if path is None:
            self.fd = 1
            self._own = False
        else:
            try:
                self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as e:
                raise OutputError(f"{path}: cannot open --json-out for appending ({e.strerror})") from None
            self._own = True
        try:
            self._regular = stat.S_ISREG(os.fstat(self.fd).st_mode)
        except OSError:
            self._regular = False
        self.error: str | None = None
        self.error_is_new = False
        self.first_error: str | None = None
        self.failed_lines = 0
        self.reader_gone = False   # a pipe whose reader closed it (``| head``): not an error

    def write_line(self, text: str) -> bool:
        """Write ``text`` and a newline, whole or not at all (on a regular file); True if
        written. Never raises for a write error: it is recorded and logged once."""
        data = (text + "\n").encode()
        start = None
        try:
            if self._regular:
                start = os.lseek(self.fd, 0, os.SEEK_END)
            view = memoryview(data)
            while view:
                n = os.write(self.fd, view)
                view = view[n:]
        except BrokenPipeError:
            self.reader_gone = True
            return False
        except OSError as e:
            self._failed(e, start)
            return False
        if self.error is not None:
            log.warning("%s: writable again after %d lost decision line(s)", self.name,
                        self.failed_lines)
            self.error = None
        self.error_is_new = False
        return True

    def _failed(self, e: OSError, start: int | None) -> None:
        if start is not None:
            try:
                os.ftruncate(self.fd, start)   # drop the part of the line that got in
            except OSError:
                pass
        self.failed_lines += 1
        self.error_is_new = self.error is None
        if self.error_is_new:
            self.error = f"{self.name}: cannot write decision lines ({e.strerror or e})"
            if self.first_error is None:
                self.first_error = self.error
            log.error("%s; detection and alerts go on, the last complete line is kept",
                      self.error)

    def close(self) -> None:
        if self._own:
            os.close(self.fd)
            self._own = False
