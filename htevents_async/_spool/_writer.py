"""The writer thread: the only user of a spool file's connection, committing in groups.

Concurrency invariants:

* The loop appends to three deques (appends and pops are atomic): each accepted
  event's text to ``_texts``, after which it sets ``_last_seq``; delivered
  sequences to ``_acks``; operations to ``_ops``. The thread takes the
  operations and acknowledgements first, then reads ``_last_seq`` and pops
  exactly the texts up to it: whatever it took names only sequences up to that
  ``hwm``. No lock is shared, so the loop never waits on the thread, let alone
  on disk I/O. It sets ``_wake`` only while the thread is idle (``_idle``);
  the thread clears it and sets ``_idle`` before it looks for work, so a
  wake-up is never lost.
* Sequences are consecutive: the texts taken are those of sequences
  ``_written + 1`` to ``hwm``, and become one group.
* One group is one transaction, applied in this order: the new group,
  acknowledgements, then operations in the order they were submitted. Every
  acknowledgement or operation names events accepted before it, so it never
  precedes their group. A group acknowledged whole before it was written never
  reaches the disk.
* ``hwm`` (the last sequence accepted when the group was swapped out) is
  durable once the group commits, deliveries cancelled on the way included.
* Results go back to the loop with ``call_soon_threadsafe`` only.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, Protocol, TypeVar

from .._logging import logger
from ._adopt import AdoptReport, adopt_all, remove
from ._locks import FileLock
from ._schema import connect, initialise, pack, unpack

__all__ = ["Op", "Writer", "WriterSink", "acknowledge", "dead_letter", "merge"]

T = TypeVar("T")

#: Work done in the writer's transaction; its result goes back to the loop.
Op = Callable[[sqlite3.Connection], Any]

#: Seconds between scans for files of processes that died while we run.
ADOPT_INTERVAL = 10.0
#: Commits between sweeps of acknowledgement ranges whose groups are all gone.
_SWEEP_EVERY = 64

_GROUP_OF = (
    "SELECT first, last, lengths, body FROM groups JOIN bodies USING (first) "
    "WHERE first = (SELECT MAX(first) FROM groups WHERE first <= ?)"
)


def merge(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted, disjoint, maximal ranges of distinct sequences."""
    ranges: list[tuple[int, int]] = []
    lo = hi = None
    for seq in sorted(seqs):
        if hi is not None and seq == hi + 1:
            hi = seq
            continue
        if lo is not None and hi is not None:
            ranges.append((lo, hi))
        lo = hi = seq
    if lo is not None and hi is not None:
        ranges.append((lo, hi))
    return ranges


def _ranges_of(batches: Sequence[list[int]]) -> list[tuple[int, int]]:
    if len(batches) == 1:
        seqs = batches[0]
        low, high = min(seqs), max(seqs)
        # Sequences are distinct: as many as the span holds means the span, in any order.
        if high - low + 1 == len(seqs):
            return [(low, high)]
        return merge(seqs)
    return merge(seq for seqs in batches for seq in seqs)


def _covered(ranges: Sequence[tuple[int, int]], lo: int, hi: int) -> int:
    return sum(max(0, min(hi, b) - max(lo, a) + 1) for a, b in ranges)


def _outside(ranges: Sequence[tuple[int, int]], lo: int, hi: int) -> list[tuple[int, int]]:
    kept = []
    for a, b in ranges:
        if a < lo:
            kept.append((a, min(b, lo - 1)))
        if b > hi:
            kept.append((max(a, hi + 1), b))
    return kept


def acknowledge(conn: sqlite3.Connection, ranges: Sequence[tuple[int, int]]) -> None:
    """Record ``ranges`` as done (triggers count the groups down and delete the finished
    ones)."""
    if ranges:
        conn.executemany("INSERT INTO acks (lo, hi) VALUES (?, ?)", ranges)


def dead_letter(
    items: list[tuple[int, str]], status: int | None, reason: str
) -> Callable[[sqlite3.Connection], None]:
    """The operation that moves delivered-to-nowhere events to ``dead_letters``."""

    def op(conn: sqlite3.Connection) -> None:
        failed = time.time()
        conn.executemany(
            "INSERT INTO dead_letters (body, created, failed_at, status, reason) VALUES (?, "
            "COALESCE((SELECT created FROM groups WHERE first <= ? ORDER BY first DESC LIMIT 1),"
            " ?), ?, ?, ?)",
            [(text, seq, failed, failed, status, reason) for seq, text in items],
        )
        acknowledge(conn, merge(seq for seq, _ in items))

    return op


class WriterSink(Protocol):
    """The loop side of a writer; every method is called on the loop."""

    def committed(self, hwm: int, inserted: int, used_bytes: int, text_bytes: int) -> None:
        """A group was committed: every sequence up to ``hwm`` is durable; ``text_bytes``
        of handed-over text are no longer pending."""

    def recovered(self, report: AdoptReport) -> None:
        """Events and dead letters of dead processes were adopted into our file."""

    def broken(self, first: int, texts: list[str], reason: str) -> None:
        """The file cannot be written; ``texts`` (sequences from ``first``) were never
        written to it."""

    def scanned(self) -> None:
        """The first scan for dead processes' files is over (what it found was reported)."""


def _take(items: collections.deque[T], count: int) -> list[T]:
    popleft = items.popleft
    return [popleft() for _ in range(count)]


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
        self._wake = threading.Event()
        self._idle = False
        self._texts: collections.deque[str] = collections.deque()
        self._acks: collections.deque[list[int]] = collections.deque()
        self._ops: collections.deque[tuple[Op, asyncio.Future[Any]]] = collections.deque()
        self._last_seq = 0
        self._written = 0
        # Adopted events are numbered below every sequence this file ever used.
        self._floor = 1
        # Files adoption must not look at again (another client's, or copied already).
        self._skip: set[str] = set()
        self._commits = 0
        # The last group read back: the refill reads a group's events in order.
        self._cached: tuple[int, int, list[str]] | None = None
        self._stop: asyncio.Future[None] | None = None
        self._conn: sqlite3.Connection | None = None
        self._page_size = 4096
        self._broken = False
        # What the thread took for the group it is applying, failed if it crashes.
        self._taken: tuple[int, list[str], list[tuple[Op, asyncio.Future[Any]]]] | None = None
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="htevents_async spool", daemon=True)
        self._thread.start()

    # -- the loop side -------------------------------------------------------

    def insert(self, seq: int, text: str) -> None:
        """Queue the event of sequence ``seq`` (the next one) for the next group."""
        self._texts.append(text)
        self._last_seq = seq
        if self._idle:
            self._rouse()

    def acknowledge(self, seqs: list[int]) -> None:
        """Forget delivered events (a group done before it is written is never written)."""
        self._acks.append(seqs)
        if self._idle:
            self._rouse()

    def submit(self, op: Op) -> asyncio.Future[Any]:
        """Run ``op`` in the next group's transaction; the future gets its result."""
        future: asyncio.Future[Any] = self._loop.create_future()
        self._ops.append((op, future))
        if self._idle:
            self._rouse()
        return future

    def _rouse(self) -> None:
        self._idle = False
        self._wake.set()

    def read(self, spans: list[tuple[int, int]]) -> asyncio.Future[Any]:
        """The ``(seq, text)`` of every event in ``spans`` (waiting events, in order), and
        how many of them were not found."""
        return self.submit(lambda conn: self._read(conn, spans))

    def stop(self) -> asyncio.Future[None]:
        """Commit what is pending, close the file (removing it if nothing is left in it),
        release the lock and end the thread."""
        if self._stop is None:
            self._stop = self._loop.create_future()
        self._rouse()
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
            self._fail(f"cannot open {self.path}: {exc}")
            return
        self._conn = conn

    def _run(self) -> None:
        try:
            self._open()
            self._adopt()
        except Exception as exc:
            self._crash(exc)
        self._post(self._sink.scanned)
        # After an unexpected error the file is given up and serving goes on without
        # it: every future is still resolved, and stop() still ends the thread.
        while True:
            try:
                self._serve()
                return
            except Exception as exc:
                if not self._crash(exc):
                    return

    def _crash(self, exc: Exception) -> bool:
        """Give the file up after an unexpected error, failing what was taken with it;
        whether the thread should carry on."""
        logger.error("htevents_async: the spool writer failed", exc_info=exc)
        taken, self._taken = self._taken, None
        first, texts, ops = taken if taken is not None else (0, [], [])
        self._fail(f"the spool writer failed: {exc!r}", first, texts)
        for _, future in ops:
            self._post(_deliver, future, None, exc)
        stop = self._stop
        if self._closing and stop is not None:
            # Failed while closing: closing again could fail the same way.
            with contextlib.suppress(Exception):
                self._lock_file.release()
            self._post(_deliver, stop, None, None)
            return False
        return True

    def _serve(self) -> None:
        next_scan = time.monotonic() + ADOPT_INTERVAL
        while True:
            # Cleared and idle before looking, so work added after the look wakes us.
            self._wake.clear()
            self._idle = True
            if not self._pending():
                self._wake.wait(max(next_scan - time.monotonic(), 0.0))
            self._idle = False
            if time.monotonic() >= next_scan:
                self._adopt()
                next_scan = time.monotonic() + ADOPT_INTERVAL
            if not self._pending():
                continue
            if self._interval and self._stop is None:
                # Let a group gather: one commit (and fsync) for all of it.
                time.sleep(self._interval)
            # In this order: what is taken names no sequence past hwm (see above).
            stop = self._stop
            ops = _take(self._ops, len(self._ops))
            acks = _take(self._acks, len(self._acks))
            hwm = self._last_seq
            texts = _take(self._texts, hwm - self._written)
            self._taken = (self._written + 1, texts, ops)
            self._apply(texts, acks, ops, hwm)
            self._taken = None
            if stop is not None:
                self._closing = True
                self._close(stop)
                return

    def _pending(self) -> bool:
        return bool(
            self._last_seq != self._written or self._acks or self._ops or self._stop is not None
        )

    def _adopt(self) -> None:
        if self._conn is None:
            return
        try:
            report = adopt_all(self._conn, self.path, self._prints, self._floor, self._skip)
        except Exception:
            logger.exception("htevents_async: scanning the spool directory failed")
            return
        self._floor = report.floor
        if report.events or report.dead_letters or report.aside:
            self._post(self._sink.recovered, report)

    def _apply(
        self,
        texts: list[str],
        acks: list[list[int]],
        ops: list[tuple[Op, asyncio.Future[Any]]],
        hwm: int,
    ) -> None:
        first = self._written + 1
        self._written = hwm
        conn = self._conn
        if conn is None:
            if texts:
                self._post(self._sink.broken, first, texts, "the spool file is not writable")
            unwritable = RuntimeError("the spool file is not writable")
            for _, future in ops:
                self._post(_deliver, future, None, unwritable)
            return
        ranges = _ranges_of(acks) if acks else []
        text_bytes = sum(map(len, texts))
        results: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        inserted = 0
        try:
            conn.execute("BEGIN IMMEDIATE")
            if texts:
                covered = _covered(ranges, first, hwm)
                if covered < len(texts):
                    lengths, body = pack(texts)
                    # Every event counts as live: the acknowledgements inserted next count
                    # the covered ones down through the ``acked`` trigger.
                    conn.execute(
                        "INSERT INTO new_groups VALUES (?, ?, ?, ?, ?, ?)",
                        (first, hwm, len(texts), time.time(), lengths, body),
                    )
                    inserted = len(texts)
                else:
                    # Delivered whole before it was written: it never reaches the disk.
                    ranges = _outside(ranges, first, hwm)
            acknowledge(conn, ranges)
            for op, future in ops:
                try:
                    results.append((future, op(conn), None))
                except sqlite3.Error:
                    raise
                except Exception as exc:
                    results.append((future, None, exc))
            if ranges or ops:
                self._commits += 1
                if self._commits % _SWEEP_EVERY == 0:
                    self._sweep(conn)
            conn.execute("COMMIT")
            pages, free = conn.execute(
                "SELECT * FROM pragma_page_count(), pragma_freelist_count()"
            ).fetchone()
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            self._fail(f"writing {self.path} failed: {exc}", first, texts)
            for _, future in ops:
                self._post(_deliver, future, None, exc)
            return
        self._post(
            self._sink.committed, hwm, inserted, (pages - free) * self._page_size, text_bytes
        )
        for future, result, error in results:
            self._post(_deliver, future, result, error)

    def _sweep(self, conn: sqlite3.Connection) -> None:
        """Drop the acknowledgement ranges no group needs any more (those below every group
        go as groups finish; these are the ones between groups delivered out of order)."""
        conn.execute(
            "DELETE FROM acks WHERE NOT EXISTS (SELECT 1 FROM groups WHERE first = "
            "(SELECT MAX(first) FROM groups WHERE first <= acks.hi) AND last >= acks.lo)"
        )

    def _read(
        self, conn: sqlite3.Connection, spans: list[tuple[int, int]]
    ) -> tuple[list[tuple[int, str]], int]:
        found: list[tuple[int, str]] = []
        missing = 0
        for lo, hi in spans:
            seq = lo
            while seq <= hi:
                cached = self._cached
                if cached is None or not cached[0] <= seq <= cached[1]:
                    row = conn.execute(_GROUP_OF, (seq,)).fetchone()
                    if row is None or row[1] < seq:
                        # Not on disk: never expected, reported rather than fatal.
                        following = conn.execute(
                            "SELECT MIN(first) FROM groups WHERE first > ?", (seq,)
                        ).fetchone()[0]
                        upto = hi if following is None else min(hi, following - 1)
                        missing += upto - seq + 1
                        seq = upto + 1
                        continue
                    cached = self._cached = (row[0], row[1], unpack(row[2], row[3]))
                first, last, texts = cached
                top = min(hi, last)
                chosen = texts[seq - first : top - first + 1]
                found.extend(zip(range(seq, top + 1), chosen, strict=True))
                if top == last:
                    self._cached = None  # read to its end: not kept in memory
                seq = top + 1
        return found, missing

    def _fail(self, reason: str, first: int = 0, texts: list[str] | None = None) -> None:
        if not self._broken:
            logger.error("htevents_async: spool disabled, events kept in memory only: %s", reason)
        self._broken = True
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._post(self._sink.broken, first, texts or [], reason)

    def _close(self, done: asyncio.Future[None]) -> None:
        conn = self._conn
        empty = False
        if conn is not None:
            try:
                left = conn.execute(
                    "SELECT (SELECT COUNT(*) FROM groups) + (SELECT COUNT(*) FROM dead_letters)"
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
