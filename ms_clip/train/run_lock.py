"""One run per output directory: an exclusive ``flock`` on ``<output_dir>/.ms_clip.lock``.

Two runs writing one ``output_dir`` delete each other's checkpoints and overwrite each other's
metrics. A run that writes there (training, evaluation) holds this lock; a second run fails at once
with ``OutputDirBusyError`` naming the holder (PID, host, start time, command).

Why ``flock`` and not a PID file alone: the kernel releases the lock when its process dies, however
it dies (SIGKILL, OOM killer, power loss of a local disk), so a stale lock is never mistaken for a live
one and needs no PID liveness guess (PIDs are reused, and a PID on another host cannot be checked).
The PID and host in the file only serve the messages. A lock left by a killed run is taken over, and
the take-over is logged.

The lock is re-entrant within a process (the CLI takes it before loading the model, ``train()`` takes
it again), and the file is removed on release. Under ``msrun`` only rank 0 writes outputs, so only
rank 0 locks. On file systems without ``flock`` support (some network mounts) locking is skipped with a
warning rather than refusing to run.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import sys
import threading
import time
from typing import Dict, Iterator, Optional

from ms_clip.errors import MsClipError

logger = logging.getLogger(__name__)

__all__ = ["LOCK_NAME", "OutputDirBusyError", "lock_output_dir"]

LOCK_NAME = ".ms_clip.lock"

# Locks this process holds: real path of the directory -> [file descriptor, depth of nesting].
_held: Dict[str, list] = {}
_guard = threading.Lock()


class OutputDirBusyError(MsClipError, RuntimeError):
    """Another live run holds the output directory's lock."""


def _describe(info: str) -> str:
    try:
        data = json.loads(info)
        return (f"PID {data.get('pid')} on {data.get('host')}, started {data.get('started')}: "
                f"{data.get('command')}")
    except (ValueError, AttributeError):
        return "an unknown process (unreadable lock file)"


def _read(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, 65536).decode("utf-8", "replace")


def _open_locked(path: str) -> Optional[int]:
    """Open and lock ``path``; None when the file system cannot lock. Retries if the file was replaced
    (a releasing run unlinks it: a lock on the unlinked inode would guard nothing)."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                info = _read(fd)
                os.close(fd)
                directory = os.path.dirname(path)
                raise OutputDirBusyError(
                    f"output_dir {directory} is in use by another run ({_describe(info)}); wait for it to end or "
                    f"choose another output_dir (the lock is {path})") from None
            os.close(fd)
            if err.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                logger.warning("cannot lock %s (%s): two runs on this output_dir would not be detected", path,
                               err.strerror)
                return None
            raise
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


@contextlib.contextmanager
def lock_output_dir(directory: str) -> Iterator[None]:
    """Hold ``directory``'s run lock for the block (creating the directory); OutputDirBusyError if a live
    run holds it."""
    os.makedirs(directory, exist_ok=True)
    key = os.path.realpath(directory)
    path = os.path.join(key, LOCK_NAME)
    with _guard:
        if key in _held:
            _held[key][1] += 1
            fd = None
        else:
            fd = _open_locked(path)
            if fd is not None:
                previous = _read(fd).strip()
                if previous:
                    # The kernel released the lock of a process that died without removing its file.
                    logger.info("taking over the stale lock of a run that ended without releasing it (%s)",
                                _describe(previous))
                info = {"pid": os.getpid(), "host": socket.gethostname(),
                        "started": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(sys.argv)}
                os.ftruncate(fd, 0)
                os.lseek(fd, 0, os.SEEK_SET)
                os.write(fd, json.dumps(info).encode("utf-8"))
            _held[key] = [fd, 1]
    try:
        yield
    finally:
        with _guard:
            _held[key][1] -= 1
            if _held[key][1] == 0:
                fd = _held.pop(key)[0]
                if fd is not None:
                    # Unlink while still holding the lock, so a waiter that opened this inode re-checks.
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(path)
                    os.close(fd)
