"""The writer thread: the only user of a spool file's connection, committing in groups.

Concurrency invariants:

* The loop only appends to the pending inserts, deletes and operations, under
  ``_lock``; the thread swaps them out whole under the same lock. Nothing else
  is shared, so the loop never waits on disk I/O, only on that short lock.
* One group is one transaction, applied in this order: inserts, deletes, then
  operations in the order they were submitted. Every delete or operation names
  events accepted before it, so it never precedes their insert. A delete of an
  event still pending cancels the insert instead: a batch delivered before its
  group was written never reaches the disk.
* ``hwm`` (the last sequence accepted when the group was swapped out) is
  durable once the group commits, deliveries cancelled on the way included.
* Results go back to the loop with ``call_soon_threadsafe`` only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, Literal, Protocol

from .._logging import logger
from ._adopt import AdoptReport, adopt_all, remove
from ._locks import FileLock
from ._schema import connect, initialise

__all__ = ["Op", "Writer", "WriterSink"]

#: Work done in the writer's transaction; its result goes back to the loop.
Op = Callable[[sqlite3.Connection], Any]

#: Seconds between scans for files of processes that died while we run.
ADOPT_INTERVAL = 10.0

# ``created`` is the column's default, the commit time: the rows go to executemany()
# as the loop queued them. (One INSERT … SELECT FROM json_each() per group would
# retake the GIL less often, but measured a third more peak memory.)
_INSERT = "INSERT INTO events (seq, body, lease) VALUES (?, ?, ?)"


class WriterSink(Protocol):
    """The loop side of a writer; every method is called on the loop."""

    def committed(self, hwm: int, inserted: int, used_bytes: int) -> None:
        """A group was committed: every sequence up to ``hwm`` is durable."""

    def recovered(self, report: AdoptReport) -> None:
        """Events and dead letters of dead processes were adopted into our file."""

    def broken(self, spilled: list[int], reason: str) -> None:
        """The file cannot be written; ``spilled`` events (disk only) were lost with it."""

    def scanned(self) -> None:
        """The first scan for dead processes' files is over (what it found was reported)."""


def _deliver(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


class Writer:
    """Owns one spool file's connection on a daemon thread."""

    def __init__(
        self,
        path: str,
        lock: FileLock,
        prints: dict[str, str],
        *,
        synchronous: Literal["normal", "full"],
        interval: float,
        loop: asyncio.AbstractEventLoop,
        sink: WriterSink,
    ) -> None:
        self.path = path
        self._lock_file = lock
        self._prints = prints
        self._synchronous = synchronous
        self._interval = interval
        self._loop = loop
        self._sink = sink
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._inserts: dict[int, tuple[int, str, int]] = {}
        self._deletes: list[int] = []
        self._ops: list[tuple[Op, asyncio.Future[Any]]] = []
        self._last_seq = 0
        self._stop: asyncio.Future[None] | None = None
        self._conn: sqlite3.Connection | None = None
        self._broken = False
        self._thread = threading.Thread(target=self._run, name="htevents_async spool", daemon=True)
        self._thread.start()

    # -- the loop side -------------------------------------------------------

    def insert(self, seq: int, text: str, lease: int) -> None:
        """Queue an accepted event for the next group (``lease`` 1: also in memory)."""
        with self._lock:
            inserts = self._inserts
            if not inserts:
                self._wake.set()
            inserts[seq] = (seq, text, lease)
            self._last_seq = seq

    def delete(self, seqs: list[int]) -> None:
        """Forget delivered events: cancel their pending inserts, or delete their rows."""
        with self._lock:
            pop = self._inserts.pop
            deletes = self._deletes
            for seq in seqs:
                if pop(seq, None) is None:
                    deletes.append(seq)
            self._wake.set()

    def submit(self, op: Op) -> asyncio.Future[Any]:
        """Run ``op`` in the next group's transaction; the future gets its result."""
        future: asyncio.Future[Any] = self._loop.create_future()
        with self._lock:
            self._ops.append((op, future))
            self._wake.set()
        return future

    def stop(self) -> asyncio.Future[None]:
        """Commit what is pending, close the file (removing it if nothing is left in it),
        release the lock and end the thread."""
        with self._lock:
            if self._stop is None:
                self._stop = self._loop.create_future()
            self._wake.set()
            return self._stop

    def abandon(self) -> None:
        """In a forked child: the thread does not exist here, and the connection must
        never be used or closed; only the lock's descriptor is let go."""
        self._lock_file.abandon()

    # -- the thread ------------------------------------------------------------

    def _post(self, func: Callable[..., object], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            self._loop.call_soon_threadsafe(func, *args)

    def _open(self) -> None:
        try:
            conn = connect(self.path, create=True)
            initialise(conn, self.path, self._prints, self._synchronous)
            self._page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
        except Exception as exc:
            self._fail(f"cannot open {self.path}: {exc}", [])
            return
        self._conn = conn

    def _run(self) -> None:
        self._open()
        self._adopt()
        self._post(self._sink.scanned)
        next_scan = time.monotonic() + ADOPT_INTERVAL
        while True:
            self._wake.wait(max(next_scan - time.monotonic(), 0.0))
            if time.monotonic() >= next_scan:
                self._adopt()
                next_scan = time.monotonic() + ADOPT_INTERVAL
            if not self._wake.is_set():
                continue
            if self._interval and self._stop is None:
                # Let a group gather: one commit (and fsync) for all of it.
                time.sleep(self._interval)
            with self._lock:
                inserts, self._inserts = self._inserts, {}
                deletes, self._deletes = self._deletes, []
                ops, self._ops = self._ops, []
                hwm = self._last_seq
                stop = self._stop
                self._wake.clear()
            self._apply(inserts, deletes, ops, hwm)
            if stop is not None:
                self._close(stop)
                return

    def _adopt(self) -> None:
        if self._conn is None:
            return
        try:
            report = adopt_all(self._conn, self.path, self._prints)
        except Exception:
            logger.exception("htevents_async: scanning the spool directory failed")
            return
        if report.events or report.dead_letters or report.aside:
            self._post(self._sink.recovered, report)

    def _apply(
        self,
        inserts: dict[int, tuple[int, str, int]],
        deletes: list[int],
        ops: list[tuple[Op, asyncio.Future[Any]]],
        hwm: int,
    ) -> None:
        conn = self._conn
        if conn is None:
            spilled = [seq for seq, _, lease in inserts.values() if lease == 0]
            if spilled:
                self._post(self._sink.broken, spilled, "the spool file is not writable")
            unwritable = RuntimeError("the spool file is not writable")
            for _, future in ops:
                self._post(_deliver, future, None, unwritable)
            return
        results: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            if inserts:
                conn.executemany(_INSERT, inserts.values())
            if deletes:
                conn.execute(
                    "DELETE FROM events WHERE seq IN (SELECT value FROM json_each(?))",
                    (json.dumps(deletes),),
                )
            for op, future in ops:
                try:
                    results.append((future, op(conn), None))
                except sqlite3.Error:
                    raise
                except Exception as exc:
                    results.append((future, None, exc))
            conn.execute("COMMIT")
            pages, free = (
                conn.execute("PRAGMA page_count").fetchone()[0],
                conn.execute("PRAGMA freelist_count").fetchone()[0],
            )
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            spilled = [seq for seq, _, lease in inserts.values() if lease == 0]
            self._fail(f"writing {self.path} failed: {exc}", spilled)
            for _, future in ops:
                self._post(_deliver, future, None, exc)
            return
        self._post(self._sink.committed, hwm, len(inserts), (pages - free) * self._page_size)
        for future, result, error in results:
            self._post(_deliver, future, result, error)

    def _fail(self, reason: str, spilled: list[int]) -> None:
        if not self._broken:
            logger.error("htevents_async: spool disabled, events kept in memory only: %s", reason)
        self._broken = True
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._post(self._sink.broken, spilled, reason)

    def _close(self, done: asyncio.Future[None]) -> None:
        conn = self._conn
        empty = False
        if conn is not None:
            try:
                left = conn.execute(
                    "SELECT (SELECT COUNT(*) FROM events) + (SELECT COUNT(*) FROM dead_letters)"
                ).fetchone()[0]
                empty = left == 0
                conn.close()
            except sqlite3.Error:
                logger.exception("htevents_async: closing the spool file failed")
        if empty:
            remove(self.path)
        # A file left with events is unlocked for adoption by the next client.
        self._lock_file.release(unlink=empty)
        self._post(_deliver, done, None, None)
