"""The loop side of the spool: the :class:`~htevents_async._seams.Store` the batcher sees.

The in-memory queue is a window in front of the file. Every accepted event gets
the next sequence and is handed to the writer thread (no I/O on the loop), which
writes each commit group as one row; one the queue has no room for lives on disk
only, and the refill task feeds it back as the queue drains. Entries in memory
are mapped to their sequence by identity (``id()`` of the entry tuple, which
lives until its batch settles), so the entries themselves stay ``(text,
callback)`` pairs. What waits on disk only is known as runs of sequences
(:class:`~htevents_async._spool._runs.Runs`), never per event.

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
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Literal, cast, final

from .._batch import Entry
from .._errors import (
    DeliveryError,
    HTTPStatusError,
    RetriesExhaustedError,
)
from .._logging import RateLimitedLog, logger
from .._seams import Admit, Disposition
from .._stats import Counters
from ._adopt import AdoptReport, own_file
from ._runs import Runs
from ._schema import fingerprint
from ._writer import Writer, dead_letter, merge

__all__ = ["SqliteStore"]

#: Most events read back from disk at once.
PAGE = 2_000
#: Longest wait before a retry of events kept after their retries ran out.
RETRY_CAP = 300.0
#: How often the refill looks again while the queue has no room.
POLL = 0.005
#: Bytes of disk-only events handed to the writer and not yet committed past which a
#: producer waits for its next commit: until then the writer is all that holds their
#: text. (Events in the queue cost nothing more while they wait for the writer.)
LAG_LIMIT = 4 << 20
#: The same for every event handed over, queued or not: a stalled disk must not keep
#: the text of events long delivered.
LAG_TOTAL = 32 << 20
#: Longest such a wait.
LAG_WAIT = 1.0
#: Past this many bytes of disk-only events not yet committed (a stalled disk), an
#: event the queue has no room for meets ``overflow`` instead of waiting in memory.
LAG_HARD = 4 * LAG_LIMIT


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
        path, lock = own_file(directory)
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
        # Bytes of text handed to the writer and not yet committed (or skipped), of all
        # events and of disk-only ones; the latter's (sequence, bytes), in order.
        self._handed = 0
        self._handed_disk = 0
        self._disk_lag: collections.deque[tuple[int, int]] = collections.deque()
        self._broken = False
        # Events accepted into memory after the file broke: they never get a sequence,
        # so commit() counts them apart.
        self._unsaved = 0
        self._runs = Runs()
        # Events handed back at shutdown (see release) whose group was not committed yet.
        self._released: dict[int, Entry] = {}
        # When the current outage began (the first batch kept after its retries ran
        # out since the collector last answered); ``None`` while it answers.
        self._outage_since: float | None = None
        self._commit_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._pace_waiters: list[asyncio.Future[None]] = []
        self._carry: collections.deque[tuple[int, Entry]] = collections.deque()
        self._backlog = asyncio.Event()
        self._progress = asyncio.Event()
        self._scanned = asyncio.Event()
        self._refill: asyncio.Task[None] | None = None
        self._admit: Admit | None = None
        self._drop: Callable[[list[Entry], str], None] | None = None
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

    def start(
        self, admit: Admit, room: Callable[[], int], drop: Callable[[list[Entry], str], None]
    ) -> None:
        """Start the refill task."""
        self._admit = admit
        self._drop = drop
        self._refill = self._loop.create_task(self._run_refill(admit, room), name="spool refill")

    def accept(self, entry: Entry, queued: bool) -> bool:
        """Hand the event to the writer; one the queue did not take stays on disk only."""
        if queued:
            if self._broken:
                self._unsaved += 1
            else:
                seq = self._seq = self._seq + 1
                self._ids[id(entry)] = seq
                self._writer.insert(seq, entry[0])
                self._handed += len(entry[0])
            return True
        handed = self._handed
        if self._broken or self._handed_disk >= LAG_HARD or self._used + handed >= self._max_bytes:
            return False
        seq = self._seq = self._seq + 1
        size = len(entry[0])
        self._writer.insert(seq, entry[0])
        self._handed = handed + size
        self._handed_disk += size
        self._disk_lag.append((seq, size))
        if entry[1] is not None:
            self._callbacks[seq] = entry[1]
        self._runs.append(seq)
        self._counters.spooled += 1
        self._backlog.set()
        return True

    @property
    def behind(self) -> bool:
        """Whether the writer lags far behind the events handed to it."""
        return (self._handed_disk >= LAG_LIMIT or self._handed >= LAG_TOTAL) and not self._broken

    def pace(self) -> Coroutine[Any, Any, None]:
        """A bare yield; or, while the writer lags far behind the events handed to it, a
        wait for its next commit: until then their text is in memory."""
        if not self.behind:
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
        """Delivered: acknowledge the sequences. A final status: dead letters. Retries
        spent: back to disk, tried again after a capped backoff."""
        pop = self._ids.pop
        found = [pop(id(entry), None) for entry in batch]
        # None only for events accepted after the file broke.
        seqs = [s for s in found if s is not None] if None in found else cast(list[int], found)
        if error is None or isinstance(error, HTTPStatusError):
            # The collector answers again: what waits out a backoff goes now.
            self._end_outage()
        if error is None:
            if seqs:
                self._writer.acknowledge(seqs)
            return Disposition.DELIVERED
        if self._broken or len(seqs) < len(batch):
            return Disposition.FAILED
        if isinstance(error, RetriesExhaustedError):
            callbacks = self._callbacks
            for entry, seq in zip(batch, seqs, strict=True):
                if entry[1] is not None:
                    callbacks[seq] = entry[1]
            now = time.time()
            if self._outage_since is None:
                self._outage_since = now
            # Capped backoff with jitter, as long as the outage has lasted so far: it
            # doubles from one probe to the next, shared by every batch.
            delay = min(RETRY_CAP, max(self._backoff, now - self._outage_since))
            not_before = now + delay * random.uniform(0.5, 1.0)
            self._runs.defer(merge(seqs), not_before)
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
        items = [(seq, entry[0]) for entry, seq in zip(batch, seqs, strict=True)]
        self._writer.submit(dead_letter(items, status, str(error)))
        self._counters.dead_lettered += len(seqs)
        return Disposition.DEAD_LETTERED

    def _end_outage(self) -> None:
        if self._outage_since is not None:
            self._outage_since = None
            self._runs.wake()
            self._backlog.set()

    def release(self, entries: Sequence[Entry]) -> bool:
        """Leftovers at shutdown stay on disk for the next client."""
        if self._broken:
            return False
        pop = self._ids.pop
        hwm = self._hwm
        for entry in entries:
            seq = pop(id(entry), None)
            if seq is not None and seq > hwm:
                # Not in the file yet: if its group fails, ``broken`` must count it lost.
                self._released[seq] = entry
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
        """Wait until every event accepted before the call is committed to the file; returns
        how many of them are not. Once the file broke, that includes every event accepted
        since, delivered or not: none of them was ever made durable."""
        target = self._seq
        unsaved = self._unsaved
        if self._hwm >= target or self._broken:
            return max(target - self._hwm, 0) + unsaved
        future: asyncio.Future[None] = self._loop.create_future()
        self._commit_waiters.append((target, future))
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(future), timeout)
        return max(target - self._hwm, 0) + unsaved

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
        # Resolved, not cancelled: a commit() waiting through the close returns its
        # count rather than raising CancelledError in the caller.
        for _, future in self._commit_waiters:
            if not future.done():
                future.set_result(None)
        self._commit_waiters = []

    def abandon(self) -> None:
        """In a forked child: never touch the parent's connection; drop its lock fd."""
        self._writer.abandon()

    # -- the writer's reports (on the loop) ----------------------------------------

    def committed(self, hwm: int, inserted: int, used_bytes: int, text_bytes: int) -> None:
        """A group is durable: release the commit() waiters it satisfies."""
        self._hwm = max(self._hwm, hwm)
        self._counters.committed += inserted
        self._used = used_bytes
        self._handed -= text_bytes
        lag = self._disk_lag
        while lag and lag[0][0] <= hwm:
            self._handed_disk -= lag.popleft()[1]
        self._release_pace()
        if self._released:
            self._released = {seq: e for seq, e in self._released.items() if seq > hwm}
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
        """Adopted events join the backlog on disk, ahead of everything else."""
        self._counters.recovered += report.events
        self._counters.spooled += report.events
        self._runs.add(report.spans)
        if report.events:
            self._backlog.set()

    def scanned(self) -> None:
        """The first scan of the directory is over."""
        self._scanned.set()

    async def wait_scanned(self) -> None:
        """Wait until events left by dead processes are counted in ``recovered``."""
        await self._scanned.wait()

    def broken(self, first: int, texts: list[str], reason: str) -> None:
        """The file failed: memory only from now on. Events that were only to be on disk
        and never reached it go to the queue if it has room (never once the client is
        closing), else meet overflow as
        ``spool_error``; those already in the file stay there for the next client."""
        self._broken = True
        self._release_pace()
        if texts:
            last = first + len(texts) - 1
            lost = self._runs.take(first, last)
            self._counters.spooled -= len(lost)
            entries = [(texts[seq - first], self._callbacks.pop(seq, None)) for seq in lost]
            # Events left in memory at shutdown and counted as staying in the file, which
            # they never reached: lost in the same way.
            released = self._released
            gone = [released.pop(seq) for seq in range(first, last + 1) if seq in released]
            self._counters.spooled -= len(gone)
            # After close no flusher reads the queue: admitting them would strand them.
            admit = None if self._closed else self._admit
            refused = [entry for entry in entries if admit is None or not admit(entry)]
            # Handed back by a batcher that is closing: its queue is read no more.
            refused += gone
            if refused and self._drop is not None:
                self._drop(refused, "spool_error")
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
            # During an outage only events whose backoff ended go out, as probes; the
            # rest of the backlog waits for a success instead of churning through
            # failed attempts.
            spans = self._runs.pick(min(space, PAGE), time.time(), self._outage_since is None)
            if not spans:
                # Nothing ready: sleep until the first backoff ends, or new work arrives.
                ready = self._runs.next_ready()
                wait = 1.0 if ready is None else min(max(ready - time.time(), 0.0), 1.0)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._backlog.wait(), wait)
                continue
            try:
                rows, missing = await self._writer.read(spans)
            except Exception:
                # Not read: the events are still waiting where they were, except those
                # ``broken`` took back because their group never reached the file.
                self._runs.read_failed()
                await asyncio.sleep(POLL)
                continue
            self._runs.read_done()
            if missing:
                counters.spooled -= missing
                counters.drop("spool_error", missing)
                logger.error(
                    "htevents_async: %d spooled events were not found in %s", missing, self.path
                )
            callbacks = self._callbacks
            for seq, body in rows:
                carry.append((seq, (body, callbacks.pop(seq, None))))
