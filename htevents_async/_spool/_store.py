"""The loop side of the spool: the :class:`~htevents_async._seams.Store` the batcher sees.

The in-memory queue is a window in front of the file. Every accepted event is
handed to the writer thread (no I/O on the loop); one the queue has no room for
lives on disk only, and the refill task feeds it back as the queue drains.
Rows are keyed by acceptance sequence; entries in memory are mapped to theirs
by identity (``id()`` of the entry tuple, which lives until its batch settles),
so the entries themselves stay ``(text, callback)`` pairs.

Counting (with :class:`~htevents_async._stats.Counters`): ``spooled`` is the
number of events on disk only, waiting for the refill (in backoff included);
``recovered`` counts events adopted from dead processes' files; ``committed``
counts events made durable; ``dead_lettered`` counts events moved to the
dead-letter table. Each event is in exactly one place.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import json
import os
import random
import secrets
import socket
import sqlite3
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Literal, final

from .._batch import Entry
from .._errors import (
    ConfigError,
    DeliveryError,
    DroppedError,
    HTTPStatusError,
    RetriesExhaustedError,
)
from .._logging import RateLimitedLog, logger
from .._seams import Admit, Disposition
from .._stats import Counters
from ._adopt import SUFFIX, AdoptReport
from ._locks import FileLock, lock_path, try_lock
from ._schema import fingerprint
from ._writer import Writer

__all__ = ["SqliteStore"]

#: Most events read back from disk at once.
PAGE = 2_000
#: Longest wait before a retry of events kept after their retries ran out.
RETRY_CAP = 300.0
#: How often the refill looks again while the queue has no room.
POLL = 0.005
#: Bytes of events handed to the writer and not yet committed past which a producer
#: waits for its next commit: their text stays in memory until then.
LAG_LIMIT = 4 << 20
#: Longest such a wait.
LAG_WAIT = 1.0


def _ids(seqs: Sequence[int]) -> str:
    return json.dumps(list(seqs))


def _read_page(
    limit: int, retried_only: bool
) -> Callable[[sqlite3.Connection], tuple[list[Any], float | None]]:
    # During an outage only events whose backoff ended go out, as probes; the rest of
    # the backlog waits for a success instead of churning through failed attempts.
    floor = "0 < not_before AND " if retried_only else ""

    def op(conn: sqlite3.Connection) -> tuple[list[Any], float | None]:
        rows = conn.execute(
            "SELECT seq, body FROM events INDEXED BY events_waiting "
            f"WHERE lease = 0 AND {floor}not_before <= ? ORDER BY not_before, seq LIMIT ?",
            (time.time(), limit),
        ).fetchall()
        if rows:
            conn.execute(
                "UPDATE events SET lease = 1 WHERE seq IN (SELECT value FROM json_each(?))",
                (_ids([row[0] for row in rows]),),
            )
        ready = conn.execute(
            f"SELECT MIN(not_before) FROM events WHERE lease = 0 AND {floor}1"
        ).fetchone()[0]
        return rows, ready

    return op


def _retry_later(seqs: list[int], base: float) -> Callable[[sqlite3.Connection], float]:
    def op(conn: sqlite3.Connection) -> float:
        ids = _ids(seqs)
        attempts = conn.execute(
            "SELECT MAX(attempts) FROM events WHERE seq IN (SELECT value FROM json_each(?))",
            (ids,),
        ).fetchone()[0]
        # Capped exponential backoff with jitter, per batch, counted across processes.
        delay = min(RETRY_CAP, base * 2 ** min(attempts or 0, 30)) * random.uniform(0.5, 1.0)
        conn.execute(
            "UPDATE events SET lease = 0, attempts = attempts + 1, not_before = ? "
            "WHERE seq IN (SELECT value FROM json_each(?))",
            (time.time() + delay, ids),
        )
        return delay

    return op


def _dead_letter(
    seqs: list[int], status: int | None, reason: str
) -> Callable[[sqlite3.Connection], None]:
    def op(conn: sqlite3.Connection) -> None:
        ids = _ids(seqs)
        conn.execute(
            "INSERT INTO dead_letters (body, created, failed_at, status, reason) "
            "SELECT body, created, ?, ?, ? FROM events "
            "WHERE seq IN (SELECT value FROM json_each(?)) ORDER BY seq",
            (time.time(), status, reason, ids),
        )
        conn.execute("DELETE FROM events WHERE seq IN (SELECT value FROM json_each(?))", (ids,))

    return op


def _wake_all(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE events SET not_before = 0 WHERE lease = 0 AND not_before > 0")


def _own_file(directory: str) -> tuple[str, FileLock]:
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


# Tasks of async callbacks told by the store, kept until done (the loop holds tasks weakly).
_told: set[asyncio.Future[Any]] = set()


def _tell(callback: Callable[[DeliveryError | None], object], error: DeliveryError) -> None:
    """Call a per-event callback with its outcome; one that raises is logged, an async one
    runs as a task of its own."""
    try:
        result = callback(error)
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            _told.add(task)
            task.add_done_callback(_told.discard)
    except Exception:
        logger.exception("htevents_async: a per-event callback raised")


@final
class SqliteStore:
    """A disk spool in ``directory``: one SQLite file per process, written by a thread."""

    def __init__(
        self,
        directory: str,
        *,
        url: str,
        write_key: str,
        protocol: str,
        counters: Counters,
        warnings: RateLimitedLog,
        max_bytes: int,
        synchronous: Literal["normal", "full"],
        commit_interval: float,
        backoff: float,
    ) -> None:
        path, lock = _own_file(directory)
        self._loop = asyncio.get_running_loop()
        self._counters = counters
        self._warnings = warnings
        self._max_bytes = max_bytes
        self._backoff = max(backoff, 0.01)
        self._seq = 0
        self._ids: dict[int, int] = {}
        self._callbacks: dict[int, Callable[[DeliveryError | None], object]] = {}
        self._hwm = 0
        self._used = 0
        self._unreported = 0
        self._broken = False
        self._waiting = False  # some events wait out a backoff
        self._commit_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._pace_waiters: list[asyncio.Future[None]] = []
        self._carry: collections.deque[tuple[int, Entry]] = collections.deque()
        self._backlog = asyncio.Event()
        self._progress = asyncio.Event()
        self._scanned = asyncio.Event()
        self._refill: asyncio.Task[None] | None = None
        self._closed = False
        self.path = path
        self._writer = Writer(
            path,
            lock,
            fingerprint(protocol, url, write_key),
            synchronous=synchronous,
            interval=commit_interval,
            loop=self._loop,
            sink=self,
        )

    # -- the Store seam ----------------------------------------------------------

    def start(self, admit: Admit, room: Callable[[], int]) -> None:
        """Start the refill task."""
        self._refill = self._loop.create_task(self._run_refill(admit, room), name="spool refill")

    def accept(self, entry: Entry, queued: bool) -> bool:
        """Hand the event to the writer; one the queue did not take stays on disk only."""
        if queued:
            if not self._broken:
                seq = self._seq = self._seq + 1
                self._ids[id(entry)] = seq
                self._writer.insert(seq, entry[0], 1)
                self._unreported += len(entry[0]) + 64
            return True
        if self._broken or self._used + self._unreported >= self._max_bytes:
            return False
        seq = self._seq = self._seq + 1
        self._writer.insert(seq, entry[0], 0)
        self._unreported += len(entry[0]) + 64
        if entry[1] is not None:
            self._callbacks[seq] = entry[1]
        self._counters.spooled += 1
        self._backlog.set()
        return True

    @property
    def behind(self) -> bool:
        """Whether the writer lags far behind the events handed to it."""
        return self._unreported >= LAG_LIMIT and not self._broken

    def pace(self) -> Coroutine[Any, Any, None]:
        """A bare yield; or, while the writer lags far behind the events handed to it, a
        wait for its next commit: until then their text is in memory."""
        if self._unreported < LAG_LIMIT or self._broken:
            return asyncio.sleep(0)
        return self._catch_up()

    async def _catch_up(self) -> None:
        future: asyncio.Future[None] = self._loop.create_future()
        self._pace_waiters.append(future)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(future, LAG_WAIT)

    def _release_pace(self) -> None:
        waiters, self._pace_waiters = self._pace_waiters, []
        for future in waiters:
            if not future.done():
                future.set_result(None)

    def settle(self, batch: Sequence[Entry], error: DeliveryError | None) -> Disposition:
        """Delivered: delete the rows. A final status: dead letters. Retries spent: back to
        disk, tried again after a capped backoff."""
        pop = self._ids.pop
        seqs = [seq for seq in (pop(id(entry), None) for entry in batch) if seq is not None]
        if error is None or isinstance(error, HTTPStatusError):
            # The collector answers again: what waits out a backoff goes now.
            self._end_outage()
        if error is None:
            if seqs:
                self._writer.delete(seqs)
            return Disposition.DELIVERED
        if self._broken or len(seqs) < len(batch):
            return Disposition.FAILED
        if isinstance(error, RetriesExhaustedError):
            for entry, seq in zip(batch, seqs, strict=False):
                if entry[1] is not None:
                    self._callbacks[seq] = entry[1]
            self._writer.submit(_retry_later(seqs, self._backoff))
            self._waiting = True
            self._counters.spooled += len(seqs)
            self._backlog.set()
            self._warnings.log(
                30,
                "spool:retry_later",
                "htevents_async: %d events kept in the spool after their retries ran out "
                "(%s); they are tried again later",
                len(seqs),
                error.last_error,
            )
            return Disposition.RETRY_LATER
        status = error.status_code if isinstance(error, HTTPStatusError) else None
        self._writer.submit(_dead_letter(seqs, status, str(error)))
        self._counters.dead_lettered += len(seqs)
        return Disposition.DEAD_LETTERED

    def _end_outage(self) -> None:
        if self._waiting:
            self._waiting = False
            self._writer.submit(_wake_all)
            self._backlog.set()

    def release(self, entries: Sequence[Entry]) -> bool:
        """Leftovers at shutdown stay on disk for the next client."""
        if self._broken:
            return False
        pop = self._ids.pop
        for entry in entries:
            pop(id(entry), None)
        self._counters.spooled += len(entries)
        return True

    async def drain(self, flush: Callable[[float], Awaitable[int]], timeout: float) -> int:
        """Flush, and again as the refill brings events back from disk, until neither the
        queue nor the disk holds any that are ready, or ``timeout`` passes."""
        loop = self._loop
        deadline = loop.time() + timeout
        # What a dead process left counts as waiting too, once the first scan found it.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._scanned.wait(), timeout)
        while True:
            self._progress.clear()
            left = await flush(max(deadline - loop.time(), 0.0))
            backlog = self._counters.spooled
            # Events the refill queued during that flush were not part of its target.
            if (not left and not backlog and not self._progress.is_set()) or self._broken:
                return left + backlog
            if loop.time() >= deadline:
                return left + backlog
            if not backlog:
                continue
            try:
                await asyncio.wait_for(self._progress.wait(), max(deadline - loop.time(), 0.0))
            except asyncio.TimeoutError:
                return left + self._counters.spooled

    async def commit(self, timeout: float) -> int:
        """Wait until every event accepted before the call is committed to the file."""
        target = self._seq
        if self._hwm >= target or self._broken:
            return max(target - self._hwm, 0)
        future: asyncio.Future[None] = self._loop.create_future()
        self._commit_waiters.append((target, future))
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(future), timeout)
        return max(target - self._hwm, 0)

    async def aclose(self, timeout: float) -> None:
        """Stop the refill and let the writer commit the last group and close the file."""
        if self._closed:
            return
        self._closed = True
        if self._refill is not None:
            self._refill.cancel()
            await asyncio.wait({self._refill})
        # Read back but never queued: they stay on disk, counted as spooled already.
        self._carry.clear()
        done = self._writer.stop()
        # The last commit makes the leftovers durable: worth a little past the deadline.
        try:
            await asyncio.wait_for(asyncio.shield(done), max(timeout, 5.0))
        except asyncio.TimeoutError:
            logger.error("htevents_async: the spool file was not closed in time")
        for _, future in self._commit_waiters:
            future.cancel()

    def abandon(self) -> None:
        """In a forked child: never touch the parent's connection; drop its lock fd."""
        self._writer.abandon()

    # -- the writer's reports (on the loop) ----------------------------------------

    def committed(self, hwm: int, inserted: int, used_bytes: int) -> None:
        """A group is durable: release the commit() waiters it satisfies."""
        self._hwm = max(self._hwm, hwm)
        self._counters.committed += inserted
        self._used = used_bytes
        self._unreported = 0
        self._release_pace()
        if self._commit_waiters:
            keep = []
            for target, future in self._commit_waiters:
                if target <= self._hwm:
                    if not future.done():
                        future.set_result(None)
                else:
                    keep.append((target, future))
            self._commit_waiters = keep

    def recovered(self, report: AdoptReport) -> None:
        """Adopted events join the backlog on disk."""
        self._counters.recovered += report.events
        self._counters.spooled += report.events
        if report.events:
            self._backlog.set()

    def scanned(self) -> None:
        """The first scan of the directory is over."""
        self._scanned.set()

    async def wait_scanned(self) -> None:
        """Wait until events left by dead processes are counted in ``recovered``."""
        await self._scanned.wait()

    def broken(self, spilled: list[int], reason: str) -> None:
        """The file failed: memory only from now on; events on disk only were lost."""
        self._broken = True
        self._release_pace()
        if spilled:
            self._counters.spooled -= len(spilled)
            self._counters.drop("spool_error", len(spilled))
            lost = DroppedError("spool_error")
            for seq in spilled:
                callback = self._callbacks.pop(seq, None)
                if callback is not None:
                    # Every callback hears its event's outcome once, this one included.
                    _tell(callback, lost)
        for _, future in self._commit_waiters:
            if not future.done():
                future.set_result(None)
        self._commit_waiters = []

    # -- the refill ---------------------------------------------------------------

    async def _run_refill(self, admit: Admit, room: Callable[[], int]) -> None:
        carry = self._carry
        counters = self._counters
        while True:
            while carry:
                seq, entry = carry[0]
                if not admit(entry):
                    break
                carry.popleft()
                self._ids[id(entry)] = seq
                counters.spooled -= 1
                self._progress.set()
            if carry:
                await asyncio.sleep(POLL)
                continue
            if self._broken:
                return
            if counters.spooled <= 0:
                self._backlog.clear()
                await self._backlog.wait()
                continue
            space = room()
            if space <= 0:
                await asyncio.sleep(POLL)
                continue
            self._backlog.clear()
            try:
                rows, ready = await self._writer.submit(_read_page(min(space, PAGE), self._waiting))
            except Exception:
                await asyncio.sleep(POLL)
                continue
            callbacks = self._callbacks
            for seq, body in rows:
                carry.append((seq, (body, callbacks.pop(seq, None))))
            if rows:
                continue
            # Nothing ready: sleep until the first backoff ends, or new work arrives.
            wait = 1.0 if ready is None else min(max(ready - time.time(), 0.0), 1.0)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._backlog.wait(), wait)
