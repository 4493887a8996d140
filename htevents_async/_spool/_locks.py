"""Ownership of spool files: a sidecar lock file per database, held with ``flock``.

The lock is on the sidecar, never on the database: SQLite holds POSIX locks on
the database, and closing any descriptor of a file drops all of a process's
POSIX locks on it. ``flock`` locks belong to the open file description, so the
kernel frees them when the owner dies, even on SIGKILL.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from typing import final

__all__ = ["FileLock", "lock_path", "try_lock"]


def lock_path(db_path: str) -> str:
    """The sidecar lock file of a spool database."""
    return db_path + ".lock"


@final
class FileLock:
    """An exclusive ``flock`` on one sidecar file, held until :meth:`release`."""

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        """Whether this process still holds the lock."""
        return self._fd is not None

    def release(self, *, unlink: bool = False) -> None:
        """Give the lock up; with ``unlink``, remove the sidecar first, while still locked,
        so no one can lock a file that is about to disappear."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if unlink:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        os.close(fd)

    def abandon(self) -> None:
        """In a forked child: close the inherited descriptor without unlocking.

        ``LOCK_UN`` would free the lock for the parent too, since both share the open
        file description; closing only the child's descriptor leaves it held.
        """
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def try_lock(path: str) -> FileLock | None:
    """Lock ``path`` (created if missing) without waiting; ``None`` if someone holds it,
    or if the file was replaced or removed while we waited for it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    # An adopter that finished unlinks the sidecar while holding it: a descriptor
    # opened before that points at a file no longer reachable by its name.
    try:
        same = os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        same = False
    if not same:
        os.close(fd)
        return None
    return FileLock(path, fd)
