"""Follow a bundle that is replaced while ``edge-ad run`` uses it (issue 11).

A nightly job (``edge-ad fleet``, rsync, a package) replaces ``BUNDLE`` on the board.
:class:`BundleFollower` notices it cheaply between decisions: one ``stat`` of the folder
and one of its manifest (inode, mtime, size), so an atomic folder swap, an in-place
rewrite and an rsync all show. SIGHUP forces a full check even when the stamps did not
move. A changed bundle is verified fully (every file's sha256, the feature spec the
running front end computes) and its model loaded before anything switches; a bundle that
fails is reported once per change and the old model keeps deciding.

The model version is the sha256 of ``manifest.json``: the manifest lists every file's
sha256, so two bundles with the same version hold the same bytes.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any, Callable

from .errors import EdgeAdError

log = logging.getLogger(__name__)


def bundle_version(path: str | os.PathLike) -> str:
    """sha256 of the bundle's manifest.json."""
    return hashlib.sha256((Path(path) / "manifest.json").read_bytes()).hexdigest()


def load(path: str | os.PathLike, *, backend: str | None, precision: str, threads: int,
         expected_spec: Any = None) -> Any:
    """Verify the bundle at ``path`` and load its detector (as ``edge-ad run`` starts): an
    :class:`edge.detector.BundleDetector`."""
    from .detector import open_detector

    return open_detector(path, backend=backend, precision=precision, threads=threads,
                         expected_spec=expected_spec)


class BundleFollower:
    """Watches ``path`` for a replaced bundle; :meth:`poll` returns a verified one."""

    def __init__(self, path: str | os.PathLike, current: Any, *, backend: str | None,
                 precision: str, threads: int,
                 on_error: Callable[[str], None] = lambda message: None) -> None:
        self.path = Path(path)
        self.current = current
        self.backend, self.precision, self.threads = backend, precision, threads
        self.on_error = on_error
        self._stamp = self._read_stamp()
        self._reported: Any = None

    def _read_stamp(self) -> tuple[int, ...] | None:
        try:
            d = os.stat(self.path)
            m = os.stat(self.path / "manifest.json")
        except OSError:
            return None
        return (d.st_ino, d.st_mtime_ns, m.st_ino, m.st_mtime_ns, m.st_size)

    def poll(self, *, force: bool = False) -> Any:
        """A newly verified bundle at the path, or None (unchanged, or refused and reported)."""
        stamp = self._read_stamp()
        if stamp == self._stamp and not force:
            return None
        self._stamp = stamp
        if stamp is None:
            self._report(stamp, f"{self.path}: no bundle there any more (no manifest.json); "
                         f"keeping model {self.current.version[:16]}")
            return None
        if force:
            self._reported = None          # asked for: report again what is still wrong
        try:
            if bundle_version(self.path) == self.current.version:
                if force:                  # the same version: verify its files all the same
                    from .bundle import load_bundle
                    load_bundle(self.path, expected_spec=self.current.bundle.spec)
                return None
            new = load(self.path, backend=self.backend, precision=self.precision,
                       threads=self.threads, expected_spec=self.current.bundle.spec)
        except (EdgeAdError, OSError) as e:
            self._report(stamp, f"bundle at {self.path} refused, keeping model "
                         f"{self.current.version[:16]} (loaded before): {e}")
            if isinstance(e, EdgeAdError) and "replaced again" in str(e):
                self._stamp = None     # look again at the next poll
            return None
        return new

    def accept(self, new: Any) -> None:
        self.current = new
        self._reported = None

    def _report(self, stamp: Any, message: str) -> None:
        if self._reported == stamp:
            return
        self._reported = stamp
        log.error("%s", message)
        self.on_error(message)
