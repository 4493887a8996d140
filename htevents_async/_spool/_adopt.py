"""Taking over the files of dead processes, and moving unreadable files aside.

Runs in the writer thread, on the writer's own connection. A file is adopted
only by winning its sidecar lock without waiting: a live owner holds it, and
the kernel frees it when the owner dies. The adopted events (a file
of the previous format is regrouped first) and dead letters are copied into our
own file in one transaction, then the old file is
unlinked while still locked. A crash between the two leaves both copies, and
the events go out twice with the same ``messageId`` (delivery is at least once).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import sqlite3
import time
from collections.abc import Iterator

import attrs

from .._errors import ConfigError
from .._logging import logger
from ._locks import FileLock, lock_path, try_lock
from ._schema import FutureFormatError, check_version, upgrade, waiting_spans

__all__ = ["ASIDE", "AdoptReport", "adopt_all", "move_aside", "own_file", "spool_files"]

#: Sub-directory where unreadable and foreign-version files are moved.
ASIDE = "aside"
SUFFIX = ".db"
_COMPANIONS = ("", "-wal", "-shm", "-journal")


@attrs.define
class AdoptReport:
    """What one scan of the directory did."""

    floor: int
    """The lowest sequence now in use in our file: the next adoption goes below it."""
    events: int = 0
    dead_letters: int = 0
    spans: list[tuple[int, int]] = attrs.Factory(list)
    """The adopted events' sequence ranges in our file, in order."""
    files: list[str] = attrs.Factory(list)
    aside: list[str] = attrs.Factory(list)


# Locks of files copied but neither emptied nor removed: held for the life of the
# process, so that no other live process copies their events a second time.
_KEPT_LOCKS: list[FileLock] = []


class _Unreadable(Exception):
    """The source file itself is damaged or no spool file: it is moved aside."""


class _NotCopied(Exception):
    """Writing the copy into our own file failed (full, I/O error, busy): the source file
    is intact and stays where it is for the next scan."""


def own_file(directory: str) -> tuple[str, FileLock]:
    """Create and lock a fresh file name of ours; ``ConfigError`` if the directory will not do."""
    try:
        os.makedirs(directory, exist_ok=True)
        for _ in range(10):
            name = f"spool-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}{SUFFIX}"
            path = os.path.join(directory, name)
            lock = try_lock(lock_path(path))
            if lock is not None:
                return path, lock
    except OSError as exc:
        raise ConfigError(f"Config.spool: cannot write to {directory!r}: {exc}") from exc
    raise ConfigError(f"Config.spool: could not create a file of our own in {directory!r}")


def spool_files(directory: str) -> list[str]:
    """The spool databases in ``directory``, oldest name first."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(os.path.join(directory, name) for name in names if name.endswith(SUFFIX))


def move_aside(path: str, reason: str) -> str:
    """Move a spool file and its companions into ``aside/``, logging why; returns the new path."""
    directory = os.path.join(os.path.dirname(path), ASIDE)
    os.makedirs(directory, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = os.path.join(directory, f"{os.path.basename(path)}.{stamp}")
    for suffix in _COMPANIONS:
        with contextlib.suppress(FileNotFoundError):
            os.replace(path + suffix, target + suffix)
    logger.error("htevents_async: spool file %s moved to %s: %s", path, target, reason)
    return target


def remove(path: str) -> None:
    """Delete a spool database and its WAL companions (not its lock file)."""
    for suffix in _COMPANIONS:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path + suffix)


@contextlib.contextmanager
def _attached(own: sqlite3.Connection, path: str) -> Iterator[None]:
    own.execute("ATTACH DATABASE ? AS src", (f"file:{path}?mode=rw",))
    try:
        yield
    finally:
        with contextlib.suppress(sqlite3.Error):
            own.execute("DETACH DATABASE src")


def _copy(
    own: sqlite3.Connection, path: str, prints: dict[str, str], floor: int
) -> tuple[list[tuple[int, int]], int, int, bool] | None:
    """Copy ``path``'s events and dead letters into ``own``, numbered below ``floor``;
    returns the adopted events' ranges, the new floor, the dead letters copied and
    whether the source was emptied after, or ``None`` if the file is not ours to adopt."""
    with _attached(own, path):
        version = check_version_of(own, path)
        tables = {row[0] for row in own.execute("SELECT name FROM src.sqlite_master")}
        if version == 0 and "meta" not in tables:
            # Created, never initialised: its owner died in its first moments.
            return [], floor, 0, True
        if "meta" not in tables:
            # An SQLite file, but not a spool's: damaged, or not ours to read.
            raise _Unreadable("no spool tables")
        stored = read_fingerprint_of(own)
        if stored != prints:
            logger.warning(
                "htevents_async: spool file %s is for another protocol, collector or write "
                "key (%s at %s); left for a client configured for it",
                path,
                stored.get("protocol", "?"),
                stored.get("url", "?"),
            )
            return None
        # Everything that reads the source is checked before our transaction begins, so
        # that an error inside it is ours (our file full, say), never the source's.
        problem = own.execute("PRAGMA src.quick_check(1)").fetchone()[0]
        if problem != "ok":
            raise _Unreadable(f"integrity check failed: {problem}")
        try:
            own.execute("BEGIN IMMEDIATE")
            # A file of the previous format is regrouped first (we hold its lock).
            upgrade(own, "src")
            low, high = own.execute("SELECT MIN(first), MAX(last) FROM src.groups").fetchone()
            spans: list[tuple[int, int]] = []
            if low is not None:
                # Adopted events go below every sequence in use, in their old order, so
                # the refill sends them first.
                in_use = own.execute(
                    "SELECT MIN(COALESCE((SELECT MIN(first) FROM main.groups), :floor),"
                    " COALESCE((SELECT MIN(lo) FROM main.acks), :floor), :floor)",
                    {"floor": floor},
                ).fetchone()[0]
                shift = in_use - 1 - high
                floor = low + shift
                # Acks first: their trigger then finds no group of theirs to count down
                # (the live counts copied already account for them).
                own.execute(
                    "INSERT INTO main.acks (lo, hi) "
                    "SELECT MAX(lo, :low) + :shift, MIN(hi, :high) + :shift "
                    "FROM src.acks WHERE hi >= :low AND lo <= :high",
                    {"shift": shift, "low": low, "high": high},
                )
                own.execute(
                    "INSERT INTO main.groups (first, last, live, created) "
                    "SELECT first + :shift, last + :shift, live, created FROM src.groups",
                    {"shift": shift},
                )
                own.execute(
                    "INSERT INTO main.bodies (first, lengths, body) "
                    "SELECT first + :shift, lengths, body FROM src.bodies",
                    {"shift": shift},
                )
                spans = [(lo + shift, hi + shift) for lo, hi in waiting_spans(own, "src")]
            dead = own.execute(
                "INSERT INTO main.dead_letters (body, created, failed_at, status, reason) "
                "SELECT body, created, failed_at, status, reason FROM src.dead_letters "
                "ORDER BY id"
            ).rowcount
            own.execute("COMMIT")
        except BaseException as exc:
            # SQLite may have rolled back on its own already (SQLITE_FULL does).
            with contextlib.suppress(sqlite3.Error):
                own.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise _NotCopied(str(exc)) from exc
            raise
        return spans, floor, int(dead), _empty(own)


def _empty(own: sqlite3.Connection) -> bool:
    """Empty the attached source once its copy is committed, so that if it cannot be
    removed, no other process copies its events again; False if that failed too.

    A separate transaction: a crash between the two commits leaves the source full,
    and the next adopter sends its events twice (at least once), never zero times."""
    try:
        own.execute("BEGIN IMMEDIATE")
        for table in ("acks", "groups", "bodies", "dead_letters"):
            own.execute(f"DELETE FROM src.{table}")
        own.execute("COMMIT")
    except sqlite3.Error:
        with contextlib.suppress(sqlite3.Error):
            own.execute("ROLLBACK")
        return False
    return True


def check_version_of(own: sqlite3.Connection, path: str) -> int:
    """The attached file's format version; raises ``FutureFormatError`` for a newer one."""
    version: int = own.execute("PRAGMA src.user_version").fetchone()[0]
    check_version(version, path)
    return version


def read_fingerprint_of(own: sqlite3.Connection) -> dict[str, str]:
    """The attached file's fingerprint."""
    rows = own.execute("SELECT key, value FROM src.meta").fetchall()
    return {str(key): str(value) for key, value in rows}


def adopt_all(
    own: sqlite3.Connection,
    own_path: str,
    prints: dict[str, str],
    floor: int,
    skip: set[str] | None = None,
) -> AdoptReport:
    """Adopt every file in our directory that no live process holds; our file's
    sequences in use start at ``floor``.

    ``skip`` (kept by the caller from one scan to the next) holds the files never to
    look at again: those for another client, and those copied already but not removed.
    A file that fails is logged and left; the scan goes on with the others."""
    report = AdoptReport(floor)
    if skip is None:
        skip = set()
    for path in spool_files(os.path.dirname(own_path)):
        if path == own_path or path in skip:
            continue
        try:
            _adopt_one(own, path, prints, report, skip)
        except Exception:
            # The file stays where it is; the next scan tries it again.
            logger.exception("htevents_async: adopting spool file %s failed", path)
    if report.events or report.dead_letters:
        logger.info(
            "htevents_async: adopted %d events and %d dead letters from %d spool files",
            report.events,
            report.dead_letters,
            len(report.files),
        )
    return report


def _adopt_one(
    own: sqlite3.Connection,
    path: str,
    prints: dict[str, str],
    report: AdoptReport,
    skip: set[str],
) -> None:
    lock = try_lock(lock_path(path))
    if lock is None:
        return
    try:
        if not os.path.exists(path):
            # Its adopter removed it, or its owner died before creating it.
            lock.release(unlink=True)
            return
        try:
            copied = _copy(own, path, prints, report.floor)
        except _NotCopied as exc:
            logger.warning(
                "htevents_async: spool file %s not adopted yet, tried again later: %s",
                path,
                exc,
            )
            return
        except (sqlite3.OperationalError, MemoryError, OSError) as exc:
            # Ours or the moment's (descriptors, memory, a busy or full disk), not
            # damage in the file: left where it is for the next scan.
            logger.warning(
                "htevents_async: spool file %s not adopted yet, tried again later: %s",
                path,
                exc,
            )
            return
        except (sqlite3.DatabaseError, _Unreadable) as exc:
            # SQLite's own verdict of damage (not a database, malformed) or ours.
            report.aside.append(move_aside(path, f"unreadable ({exc})"))
            lock.release(unlink=True)
            return
        except FutureFormatError as exc:
            report.aside.append(move_aside(path, str(exc)))
            lock.release(unlink=True)
            return
        if copied is None:
            # Another client's: said once, then left alone.
            skip.add(path)
            return
        # Committed into our file: the report says so whatever happens to the old one.
        spans, report.floor, dead, emptied = copied
        report.spans = spans + report.spans
        report.events += sum(hi - lo + 1 for lo, hi in spans)
        report.dead_letters += dead
        report.files.append(path)
        # Copied once only: if it cannot be removed, this process never copies it again,
        # and no other does either: it was emptied, or its lock is kept until we exit.
        skip.add(path)
        try:
            remove(path)
        except OSError:
            if not emptied:
                _KEPT_LOCKS.append(lock)
            raise
        skip.discard(path)
        lock.release(unlink=True)
    finally:
        if lock not in _KEPT_LOCKS:
            lock.release()
