"""A bounded on-disk queue of alert events, so nothing is lost while the broker is away.

One JSON file per event, named by a zero-padded sequence number and its kind
(``000000000042.alarm_start.json``), so the directory listing *is* the order. A file is
written to a temporary name, fsynced, renamed into place and the directory fsynced: a
power cut leaves either the whole event or none (a leftover ``.tmp`` is removed at start).
Events are removed only when the broker has acknowledged them (MQTT PUBACK), so the spool
survives a restart of the broker and of edge-ad itself.

One owner at a time: ``spool.lock`` is held with ``flock(LOCK_EX)`` for the life of the
:class:`Spool` (the kernel drops it when the process dies, so a crash never leaves a stale
lock); a second process gets :class:`SpoolLockedError` naming the owner's PID.

``spool.state`` (JSON, written atomically like an event) carries what must survive a
restart: the next sequence number, so ``seq`` never goes back even when the spool is
empty (a consumer may de-duplicate on it), and the open alert states (an alarm or a
``no_signal`` that started and has not ended), so a restart can close them explicitly.

An entry that cannot be read (a directory in its place, EIO, EACCES, not JSON) is moved to
``quarantine/`` and reported, never retried forever and never allowed to stop the sender.

Bounded by count and bytes: when full, the oldest heartbeats go first (a heartbeat is
superseded by the next one); only when no heartbeat is left does the oldest alarm event
go, and every drop is logged.
"""
from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import re
import stat
import threading
from pathlib import Path
from typing import Any

from .atomic import fsync_dir
from .errors import EdgeAdError

log = logging.getLogger(__name__)
_NAME = re.compile(r"^(\d{12})\.([a-z_]+)\.json$")
HEARTBEAT = "heartbeat"
LOCK_FILE = "spool.lock"
STATE_FILE = "spool.state"
QUARANTINE = "quarantine"


class SpoolError(EdgeAdError, OSError):
    """The spool directory cannot be created or written."""


class SpoolLockedError(SpoolError):
    """Another process owns the spool (exit code 2: a configuration error, two instances
    given one spool)."""


def write_file_atomically(path: Path, data: bytes) -> None:
    """``data`` at ``path``, whole or not at all: temporary file, fsync, rename, dir fsync."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise


def _lock_owner(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        text = ""
    return text if text.isdigit() else "unknown"


class Spool:
    """Sequence-numbered event files in ``directory``, owned by this process.

    Args:
        directory: created if missing (mode 0700: events may name the site).
        max_events: most files kept.
        max_bytes: most bytes kept (sum of file sizes).

    Raises:
        SpoolLockedError: another live process holds the spool.
        SpoolError: the directory cannot be created or written.
    """

    def __init__(self, directory: str | os.PathLike, *, max_events: int = 10000,
                 max_bytes: int = 16 * 1024 * 1024) -> None:
        self.dir = Path(directory)
        self.max_events = int(max_events)
        self.max_bytes = int(max_bytes)
        self.dropped = 0
        self.quarantined: list[str] = []
        self._lock = threading.Lock()
        self._lock_fd: int | None = None
        try:
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            raise SpoolError(f"{self.dir}: cannot use as spool directory ({e.strerror}); "
                             "expected a writable directory") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            owner = _lock_owner(fd)
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise SpoolLockedError(
                    f"{self.dir}: spool is in use by another edge-ad (pid {owner}); give each "
                    "instance its own --spool (or --mqtt-client-id)") from None
            raise SpoolError(f"{self.dir / LOCK_FILE}: cannot lock ({e.strerror})") from None
        self._lock_fd = fd
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as e:
            self.close()
            raise SpoolError(f"{self.dir / LOCK_FILE}: cannot record this process as the spool's "
                             f"owner ({e.strerror}); expected a writable spool directory") from None
        try:
            for tmp in self.dir.glob("*.tmp"):
                tmp.unlink()
            names = list(self.dir.iterdir())
        except OSError as e:
            self.close()
            raise SpoolError(f"{self.dir}: cannot clean the spool directory ({e.strerror})") from None
        self._entries: dict[int, tuple[str, int]] = {}  # seq -> (kind, size)
        for p in names:
            m = _NAME.match(p.name)
            if m:
                try:
                    size = p.lstat().st_size
                except OSError:
                    size = 0
                self._entries[int(m.group(1))] = (m.group(2), size)
        self.state = self._read_state()
        self._restore_pending()
        self._next = max(max(self._entries, default=0) + 1, int(self.state.get("next_seq", 1)))
        if self._entries:
            log.info("%s: %d spooled events from before, oldest #%d", self.dir,
                     len(self._entries), min(self._entries))

    # --- ownership ----------------------------------------------------------------------
    def close(self) -> None:
        """Release the lock (the files stay for the next owner)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)   # closing the descriptor drops the flock
            self._lock_fd = None

    def __enter__(self) -> "Spool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- persistent state -----------------------------------------------------------------
    def _read_state(self) -> dict[str, Any]:
        path = self.dir / STATE_FILE
        try:
            state = json.loads(path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            # Losing the open alarm is logged loudly; seq still continues after the files.
            log.error("%s: unreadable (%s); starting without the saved alert state", path, e)
            return {}
        if not isinstance(state, dict) or not isinstance(state.get("next_seq", 1), int):
            log.error("%s: not a spool state object; starting without it", path)
            return {}
        return state

    def _restore_pending(self) -> None:
        """Write the event a crash interrupted: the state file names it (``pending``)
        before its own file is written, so an event whose state change is on disk is never
        missing (an alarm_end cannot vanish while the state says the alarm is closed)."""
        pending = self.state.get("pending")
        if not isinstance(pending, dict):
            return
        try:
            seq, kind, data = int(pending["seq"]), str(pending["kind"]), str(pending["data"])
        except (KeyError, TypeError, ValueError):
            self.state.pop("pending", None)
            return
        if seq in self._entries or not re.fullmatch(r"[a-z_]+", kind):
            return
        path = self._path(seq, kind)
        try:
            write_file_atomically(path, data.encode())
        except OSError as e:
            log.error("%s: cannot restore event #%d interrupted by a crash (%s)", self.dir, seq,
                      e.strerror)
            return
        self._entries[seq] = (kind, len(data))
        log.warning("%s: restored %s #%d, interrupted by a crash while being spooled",
                    self.dir, kind, seq)

    def _write_state_locked(self) -> None:
        self.state["next_seq"] = self._next
        data = json.dumps(self.state, separators=(",", ":"), sort_keys=True).encode()
        write_file_atomically(self.dir / STATE_FILE, data)

    # --- events ---------------------------------------------------------------------------
    def _path(self, seq: int, kind: str) -> Path:
        return self.dir / f"{seq:012d}.{kind}.json"

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def put(self, event: dict[str, Any], *, state: dict[str, Any] | None = None) -> int:
        """Write ``event`` (its ``"type"`` is the kind) durably; return its sequence number,
        which is also stored in the event as ``"seq"``.

        ``state``: keys to set in the persistent state (None removes a key; a callable is
        given the sequence number). The state goes to disk first, carrying the event itself
        as ``pending``; the event's file follows. A crash in between is repaired at the next
        start (:meth:`_restore_pending`), so state and events never disagree.
        """
        kind = str(event.get("type", "event"))
        if not re.fullmatch(r"[a-z_]+", kind):
            raise ValueError(f"event type {kind!r}: expected lower-case letters and _")
        with self._lock:
            before = (self._next, dict(self.state))    # put back if the event cannot be written
            seq = self._next
            self._next += 1
            for k, v in (state or {}).items():
                if v is None:
                    self.state.pop(k, None)
                else:
                    self.state[k] = v(seq) if callable(v) else v
            data = json.dumps({**event, "seq": seq}, separators=(",", ":")).encode()
            path = self._path(seq, kind)
            self.state["pending"] = {"seq": seq, "kind": kind, "data": data.decode()}
            try:
                self._write_state_locked()
                write_file_atomically(path, data)
            except OSError as e:
                # No half change: the event did not happen, in memory and (if the disk takes
                # the state back) on disk. If it does not, the state on disk still carries the
                # event as pending, and the next start writes it: consistent either way.
                self._next, self.state = before
                try:
                    self._write_state_locked()
                except OSError:
                    pass
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
        """The event's JSON bytes, or None if it was dropped, removed meanwhile or could
        not be read (then it is quarantined: see :meth:`quarantine`)."""
        with self._lock:
            entry = self._entries.get(seq)
            if entry is None:
                return None
            path = self._path(seq, entry[0])
        try:
            if not stat.S_ISREG(os.lstat(path).st_mode):
                raise OSError(errno.EISDIR, "not a regular file")
            data = path.read_bytes()
            json.loads(data)
            return data
        except FileNotFoundError:
            with self._lock:
                self._entries.pop(seq, None)
            return None
        except (OSError, ValueError) as e:
            why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            self.quarantine(seq, why)
            return None

    def quarantine(self, seq: int, why: str) -> str:
        """Move an unreadable entry to ``quarantine/`` and forget it; returns its name."""
        with self._lock:
            self._forget_pending_locked(seq)
            entry = self._entries.pop(seq, None)
            name = self._path(seq, entry[0] if entry else "event").name
        src = self.dir / name
        log.error("%s: spooled event %s cannot be read (%s); moved to %s/ and skipped",
                  self.dir, name, why, QUARANTINE)
        try:
            qdir = self.dir / QUARANTINE
            qdir.mkdir(exist_ok=True, mode=0o700)
            os.replace(src, qdir / name)
            fsync_dir(self.dir)
        except OSError as e:
            # Cannot even move it: it stays, but it is forgotten for this run.
            log.error("%s: cannot move %s to %s/ (%s)", self.dir, name, QUARANTINE, e.strerror)
        self.quarantined.append(name)
        return name

    def kind(self, seq: int) -> str | None:
        with self._lock:
            entry = self._entries.get(seq)
            return entry[0] if entry else None

    def remove(self, seq: int) -> None:
        """Forget an acknowledged event."""
        with self._lock:
            self._remove_locked(seq)

    def _forget_pending_locked(self, seq: int) -> None:
        """Once the pending event is acknowledged or dropped, the next start must not
        restore it (that would send it twice)."""
        pending = self.state.get("pending")
        if isinstance(pending, dict) and pending.get("seq") == seq:
            self.state.pop("pending")
            try:
                self._write_state_locked()
            except OSError as e:
                log.error("%s: cannot update %s (%s)", self.dir, STATE_FILE, e.strerror)

    def _remove_locked(self, seq: int) -> None:
        self._forget_pending_locked(seq)
        entry = self._entries.pop(seq, None)
        if entry is not None:
            try:
                self._path(seq, entry[0]).unlink()
            except FileNotFoundError:
                pass
            except OSError as e:
                log.error("%s: cannot remove acknowledged #%d (%s)", self.dir, seq, e.strerror)
