"""A bounded on-disk queue of alert events, so nothing is lost while the broker is away.

One JSON file per event, named by a zero-padded sequence number and its kind
(``000000000042.alarm_start.json``), so the directory listing *is* the order. A file is
written to a temporary name, fsynced and renamed into place: a power cut leaves either the
whole event or none (a leftover ``.tmp`` is removed at start). Events are removed only
when the broker has acknowledged them (MQTT PUBACK), so the spool survives a restart of
the broker and of edge-ad itself.

Bounded by count and bytes: when full, the oldest heartbeats go first (a heartbeat is
superseded by the next one); only when no heartbeat is left does the oldest alarm event
go, and every drop is logged.
"""
from __future__ import annotations

import json
import logging
import os
import re
import threading
from pathlib import Path
from typing import Any

from .errors import EdgeAdError

log = logging.getLogger(__name__)
_NAME = re.compile(r"^(\d{12})\.([a-z_]+)\.json$")
HEARTBEAT = "heartbeat"


class SpoolError(EdgeAdError, OSError):
    """The spool directory cannot be created or written."""


class Spool:
    """Sequence-numbered event files in ``directory``.

    Args:
        directory: created if missing (mode 0700: events may name the site).
        max_events: most files kept.
        max_bytes: most bytes kept (sum of file sizes).
    """

    def __init__(self, directory: str | os.PathLike, *, max_events: int = 10000,
                 max_bytes: int = 16 * 1024 * 1024) -> None:
        self.dir = Path(directory)
        self.max_events = int(max_events)
        self.max_bytes = int(max_bytes)
        self.dropped = 0
        self._lock = threading.Lock()
        try:
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            for tmp in self.dir.glob("*.tmp"):
                tmp.unlink()
        except OSError as e:
            raise SpoolError(f"{self.dir}: cannot use as spool directory ({e.strerror}); "
                             "expected a writable directory") from None
        self._entries: dict[int, tuple[str, int]] = {}  # seq -> (kind, size)
        for p in self.dir.iterdir():
            m = _NAME.match(p.name)
            if m:
                self._entries[int(m.group(1))] = (m.group(2), p.stat().st_size)
        self._next = max(self._entries, default=0) + 1
        if self._entries:
            log.info("%s: %d spooled events from before, oldest #%d", self.dir,
                     len(self._entries), min(self._entries))

    def _path(self, seq: int, kind: str) -> Path:
        return self.dir / f"{seq:012d}.{kind}.json"

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def put(self, event: dict[str, Any]) -> int:
        """Write ``event`` (its ``"type"`` is the kind) durably; return its sequence number,
        which is also stored in the event as ``"seq"``."""
        kind = str(event.get("type", "event"))
        if not re.fullmatch(r"[a-z_]+", kind):
            raise ValueError(f"event type {kind!r}: expected lower-case letters and _")
        with self._lock:
            seq = self._next
            self._next += 1
            data = json.dumps({**event, "seq": seq}, separators=(",", ":")).encode()
            path = self._path(seq, kind)
            tmp = path.with_name(path.name + ".tmp")
            try:
                with open(tmp, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            except OSError as e:
                raise SpoolError(f"{path}: cannot write spooled event ({e.strerror})") from None
            self._entries[seq] = (kind, len(data))
            self._enforce_bounds()
            return seq

    def _enforce_bounds(self) -> None:
        def over() -> bool:
            return (len(self._entries) > self.max_events
                    or sum(size for _, size in self._entries.values()) > self.max_bytes)

        while over() and len(self._entries) > 1:
            beats = [s for s, (k, _) in self._entries.items() if k == HEARTBEAT]
            victim = min(beats) if beats else min(self._entries)
            kind = self._entries[victim][0]
            self._remove_locked(victim)
            self.dropped += 1
            if kind == HEARTBEAT:
                log.warning("%s: spool full, dropped heartbeat #%d", self.dir, victim)
            else:
                log.error("%s: spool full of alarm events, dropped %s #%d", self.dir, kind, victim)

    def pending(self) -> list[int]:
        """Sequence numbers still to be acknowledged, oldest first."""
        with self._lock:
            return sorted(self._entries)

    def read(self, seq: int) -> bytes | None:
        """The event's JSON bytes, or None if it was dropped or removed meanwhile."""
        with self._lock:
            entry = self._entries.get(seq)
            if entry is None:
                return None
            path = self._path(seq, entry[0])
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    def kind(self, seq: int) -> str | None:
        with self._lock:
            entry = self._entries.get(seq)
            return entry[0] if entry else None

    def remove(self, seq: int) -> None:
        """Forget an acknowledged event."""
        with self._lock:
            self._remove_locked(seq)

    def _remove_locked(self, seq: int) -> None:
        entry = self._entries.pop(seq, None)
        if entry is not None:
            try:
                self._path(seq, entry[0]).unlink()
            except FileNotFoundError:
                pass
