"""One way to replace an output folder atomically: RUN, bundle, calibration.

:func:`replace_folder` builds the new folder under a temporary name beside the target
(``.NAME.<pid>.<random>.tmp``, same file system), fsyncs every file in it and the folder,
then swaps it into place with one ``renameat2(RENAME_EXCHANGE)`` where Linux and the file
system offer it (the target is never missing, not even for an instant), else with two
renames (the old folder parked as ``.NAME.<pid>.<random>.old`` for the moment between
them), and fsyncs the parent. The old folder is removed last.

Whatever a kill or a power cut interrupts, the target is the old folder or the new one,
complete; what is left is a temporary whose writer is dead, removed by
:func:`clean_stale` at the next start of any writer of that target.
:func:`scratch_dir` gives the same clean-up to work folders in ``/tmp``.

Test hook: ``EDGE_AD_ATOMIC_KILL_AT`` = ``filled`` (the new folder is complete, not yet
swapped in) or ``swapped`` (swapped in, old one not yet removed) makes the writer kill
itself with SIGKILL at that point, so tests can check every kill point.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Callable, Iterator

KILL_AT_ENV = "EDGE_AD_ATOMIC_KILL_AT"
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def fsync_dir(path: str | os.PathLike) -> None:
    """Make renames and new entries inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every regular file under ``root`` and every folder, deepest first."""
    for dirpath, _, filenames in os.walk(root, topdown=False):
        for name in filenames:
            p = os.path.join(dirpath, name)
            if os.path.isfile(p) and not os.path.islink(p):
                fd = os.open(p, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        fsync_dir(dirpath)


def exchange(a: Path, b: Path) -> bool:
    """Atomically swap two directory entries; False where the OS or file system cannot.

    Python has no binding for ``renameat2(RENAME_EXCHANGE)`` (Linux 3.15+, glibc 2.28+),
    the one call that replaces a non-empty directory with no moment where neither exists.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True   # someone else's live process
    return True


def _writer_pid(name: str, prefix: str) -> int | None:
    """The pid in ``<prefix><pid>.<rest>`` or the legacy ``<prefix>partial-<pid>-<rest>``."""
    rest = name[len(prefix):]
    if rest.startswith("partial-"):
        rest = rest[len("partial-"):].replace("-", ".", 1)
    head = rest.split(".", 1)[0]
    return int(head) if head.isdigit() else None


def clean_stale(target: str | os.PathLike) -> list[Path]:
    """Remove temporaries of ``target`` (``.NAME.<pid>.*.tmp`` / ``.old``, and the older
    ``.NAME.partial-<pid>-*``) whose writer is no longer running; returns what went."""
    target = Path(target).absolute()
    prefix = f".{target.name}."
    removed = []
    for p in target.parent.glob(prefix + "*"):
        if not (p.name.endswith((".tmp", ".old")) or p.name.startswith(prefix + "partial-")):
            continue
        pid = _writer_pid(p.name, prefix)
        if pid is None or pid == os.getpid() or _pid_alive(pid):
            continue
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    return removed


def _kill_point(stage: str) -> None:
    if os.environ.get(KILL_AT_ENV) == stage:
        os.kill(os.getpid(), signal.SIGKILL)


def replace_folder(target: str | os.PathLike, fill: Callable[[Path], None], *,
                   mode: int = 0o755) -> Path:
    """Call ``fill(tmp)`` on a fresh folder beside ``target``, then swap it into place.

    Args:
        target: the folder to create or replace (checked by the caller: this replaces it).
        fill: writes the new contents into the folder it is given.
        mode: permissions of the new folder (``mkdtemp`` makes 0700).

    Returns:
        ``target`` as an absolute path. If ``fill`` raises, or the process dies, ``target``
        is as it was.
    """
    target = Path(target).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp",
                                dir=target.parent))
    try:
        fill(tmp)
        os.chmod(tmp, mode)
        fsync_tree(tmp)
        _kill_point("filled")
        if target.exists() or target.is_symlink():
            if exchange(tmp, target):
                old = tmp          # after the swap the temporary name holds the old folder
            else:
                old = tmp.with_name(tmp.name[:-len(".tmp")] + ".old")
                os.rename(target, old)
                try:
                    os.rename(tmp, target)
                except BaseException:
                    os.rename(old, target)   # put the old one back
                    raise
            fsync_dir(target.parent)
            _kill_point("swapped")
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, target)
            fsync_dir(target.parent)
    except BaseException:
        # Before the swap this is the unfinished new folder, after it the old one.
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A work folder ``<tmp>/<prefix>-<pid>-<random>``, removed on exit; those of writers
    that died (a killed export) are removed on entry."""
    base = Path(tempfile.gettempdir())
    for p in base.glob(f"{prefix}-*"):
        head = p.name[len(prefix) + 1:].split("-", 1)[0]
        if p.is_dir() and not p.is_symlink() and head.isdigit() \
                and int(head) != os.getpid() and not _pid_alive(int(head)):
            shutil.rmtree(p, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix=f"{prefix}-{os.getpid()}-") as tmp:
        yield Path(tmp)
