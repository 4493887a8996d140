"""The queue and the flusher task: batches close by count, bytes, age or flush request.

Concurrency invariants (everything here runs on the client's event loop):

* Every accepted event is counted in exactly one place at any time: in the
  queue, in ``Counters.in_flight`` (from the moment the flusher takes it out of
  the queue until its batch has an outcome), or in a final counter. Nothing
  leaves ``in_flight`` without an outcome, a hook call and a callback.
* ``_put_count`` counts events put in the queue, ``_handed_off`` those whose
  batch has a delivery task (or was dropped). Both only grow and the queue is
  FIFO, so ``flush()`` waits until ``_handed_off`` reaches the ``_put_count``
  it saw, then waits for the delivery tasks that exist at that moment.
* The flusher never awaits anything unbounded while it holds a batch other than
  a free outstanding-batch permit; delivery tasks release their permit, and
  their request slot, whatever happens.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from ._batch import Batch, Entry, message_id_of
from ._config import Config
from ._errors import ClientClosedError, DeliveryError, DroppedError, ShutdownError
from ._hooks import HookRunner
from ._logging import RateLimitedLog, logger
from ._seams import Disposition, Store
from ._stats import Counters
from ._store import MemoryStore
from ._timeouts import deadline
from ._transport import Outcome, RequestSlots, Transport

__all__ = ["Batcher"]


#: Batches that may be out of the queue (sending or waiting to retry) per request
#: slot; past that the flusher stops taking events and overflow applies again.
OUTSTANDING_PER_SLOT = 4


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Batcher:
    """Owns the bounded queue, the flusher task and the delivery tasks of one client."""

    def __init__(
        self,
        config: Config,
        transport: Transport,
        counters: Counters,
        hooks: HookRunner,
        warnings: RateLimitedLog,
        store: Store | None = None,
        on_delivered: Callable[[int, float], None] | None = None,
    ) -> None:
        self._config = config
        # Told (events, seconds since the oldest was accepted) for every delivered batch.
        self._on_delivered = on_delivered
        # Acceptance times of some events, by put sequence: the first put into an empty
        # queue and every 64th, enough to date a batch's oldest event within a fraction
        # of a millisecond under load without a clock read per event.
        self._stamps: collections.deque[tuple[int, float]] = collections.deque()
        # Where events are kept besides the queue; the batcher only calls it where events
        # are accepted, settled and left over, and lets it feed the queue.
        self._store: Store = MemoryStore() if store is None else store
        self._transport = transport
        self._counters = counters
        self._hooks = hooks
        self._warnings = warnings
        self._loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[Entry] = asyncio.Queue(config.max_queue_size)
        # Requests on the wire, and batches out of the queue but not finished
        # (sending or waiting to retry): a batch backing off frees its request slot,
        # and the wider bound keeps memory finite while the collector is down.
        self._slots = RequestSlots(config.max_concurrent_requests, self._slot_freed)
        self._outstanding = asyncio.Semaphore(config.max_concurrent_requests * OUTSTANDING_PER_SLOT)
        # Delivery tasks and the number of events each carries.
        self._tasks: dict[asyncio.Task[None], int] = {}
        self._put_count = 0
        self._handed_off = 0
        self._flush_target = 0
        self._flush_waiters: list[tuple[int, asyncio.Future[None]]] = []
        # Set while the flusher waits for a partly filled batch to fill or age.
        self._waiter: asyncio.Future[None] | None = None
        # The batch the flusher is forming, and an event taken out of the queue
        # that did not fit in it: both must be accounted for if it is cancelled.
        self._forming: list[Entry] = []
        self._carry: Entry | None = None
        self._closing = False
        # Queued events (with the batch in hand) that wake a flusher waiting to fill:
        # max_batch_size, or the hard cap while every request slot is busy.
        self._wake_at = config.max_batch_size
        self._waiting_for_slot = False
        # How far a batch grows while it waits for a slot: the collector's cap, and
        # never more than the queue holds, so memory stays near max_queue_size.
        self._grow_to = min(transport.max_events, config.max_queue_size)
        # Set once close() has emptied the queue for good.
        self._drained = False
        self._envelope = transport.envelope_bytes
        self._runner = self._loop.create_task(self._run(), name="htevents_async flusher")
        self._store.start(self._feed, self._room, self.drop)

    # -- producers ---------------------------------------------------------

    def offer(self, entry: Entry) -> int:
        """Queue ``entry`` if there is room, never waiting; returns the number of events
        now queued, or 0 if there was no room."""
        if not self._admit(entry):
            # The store may keep it (a spool, on disk); report the queue as full so
            # the producer yields to the flusher.
            return self.queue.maxsize if self._store.accept(entry, False) else 0
        self._store.accept(entry, True)
        return self.queue.qsize()

    def _feed(self, entry: Entry) -> bool:
        """How the store puts events back in the queue: as :meth:`_admit`, refused once
        close() has emptied the queue for good, since nothing would take them out. The
        store then keeps them on disk, or reports them dropped. (Producers never get
        here after close: the client refuses them first.)"""
        return not self._drained and self._admit(entry)

    def _admit(self, entry: Entry) -> bool:
        """Put ``entry`` in the queue if there is room."""
        queue = self.queue
        try:
            queue.put_nowait(entry)
        except asyncio.QueueFull:
            return False
        self._put_count += 1
        if not self._put_count & 63 or queue.qsize() == 1:
            self._stamps.append((self._put_count, self._loop.time()))
        # The flusher may already hold part of the batch: count it, or a batch
        # that is full would still wait for flush_interval.
        if self._waiter is not None and len(self._forming) + queue.qsize() >= self._wake_at:
            self._wake()
        return True

    def _room(self) -> int:
        if self._drained:
            return 0
        return self.queue.maxsize - self.queue.qsize()

    async def put(self, entry: Entry, timeout: float) -> bool:
        """Queue ``entry``, waiting up to ``timeout`` seconds for room.

        Raises :class:`ClientClosedError` if the batcher closes while it waits.
        """
        if self.offer(entry):
            return True
        try:
            # Bounded in this task (no wait_for task): the put and the check below
            # run with nothing in between, so close() cannot drain the event unseen.
            async with deadline(timeout):
                await self.queue.put(entry)
        except TimeoutError:
            return False
        if self._drained:
            # The room came from close() emptying the queue; no flusher will ever
            # take this event, so it is refused, never counted. Taking one entry back
            # out wakes the next waiting producer, which refuses its own in turn.
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            raise ClientClosedError("the client closed while the event waited for room")
        self._put_count += 1
        self._stamps.append((self._put_count, self._loop.time()))
        self._store.accept(entry, True)
        return True

    def _slot_freed(self) -> None:
        if self._waiting_for_slot:
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            _resolve(waiter)

    # -- the flusher ---------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                await self._form_and_dispatch()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # A bug must not stop delivery for the life of the process; the
                # batch in hand is reported, not lost.
                logger.exception("htevents_async: flusher error; it keeps running")
                if self._forming:
                    self._finish(self._forming, DeliveryError(f"internal error: {exc!r}"))
                    self._handed_off += len(self._forming)
                    self._forming = []
                    self._release_flush_waiters()

    async def _form_and_dispatch(self) -> None:
        config = self._config
        queue = self.queue
        counters = self._counters
        max_size = config.max_batch_size
        max_bytes = config.max_batch_bytes
        limit = max_size
        if self._carry is not None:
            first, self._carry = self._carry, None
        else:
            first = await queue.get()
            counters.in_flight += 1
        batch = self._forming = [first]
        size = self._envelope + len(first[0])
        deadline = self._loop.time() + config.flush_interval
        get, append = queue.get_nowait, batch.append
        while True:
            # No await in this loop: the counter is settled before anything else
            # can look at it.
            taken = 0
            while len(batch) < limit:
                try:
                    entry = get()
                except asyncio.QueueEmpty:
                    break
                taken += 1
                size += len(entry[0]) + 1
                if size > max_bytes:
                    self._carry = entry
                    break
                append(entry)
            counters.in_flight += taken
            if self._carry is not None or len(batch) >= self._grow_to:
                break
            flushing = self._flush_target > self._handed_off or self._closing
            timer = None
            if flushing or len(batch) >= max_size or self._loop.time() >= deadline:
                if limit < self._grow_to:
                    # Due: it leaves with everything already queued, up to the caps. A
                    # backlog (or a flush of one) goes out in few full requests, and no
                    # event waits longer for it.
                    limit = self._grow_to
                    continue
                if flushing or self._slots.free:
                    break
                # Due, but every request slot is busy: sent now, the batch would only
                # wait for one. It keeps filling up to the caps until a slot frees.
                self._wake_at = self._grow_to
                self._waiting_for_slot = True
                waiter = self._waiter = self._loop.create_future()
            else:
                # Sleep until the batch ages out, unless producers fill it or a
                # flush asks for it first: no wake-up per event under a trickle.
                waiter = self._waiter = self._loop.create_future()
                timer = self._loop.call_later(deadline - self._loop.time(), _resolve, waiter)
            try:
                await waiter
            finally:
                if timer is not None:
                    timer.cancel()
                self._waiter = None
                self._waiting_for_slot = False
        self._wake_at = max_size
        await self._outstanding.acquire()
        try:
            # The first attempt goes out on this slot; waiting for it here keeps the
            # queue, not a pile of tasks, as the place where a backlog waits.
            await self._slots.acquire()
        except BaseException:
            self._outstanding.release()
            raise
        self._forming = []
        # Entries are ASCII text, so the batch is encoded to bytes once, here.
        joined = ",".join([entry[0] for entry in batch]).encode()
        task = self._loop.create_task(self._deliver(batch, joined, self._accepted_at()))
        self._tasks[task] = len(batch)
        task.add_done_callback(self._forget_task)
        self._handed_off += len(batch)
        self._release_flush_waiters()

    def _accepted_at(self) -> float:
        """When the oldest event of the batch being dispatched was accepted, or earlier by
        at most the time 64 events took: the latest stamp at or before its sequence.

        Batches leave in sequence order, so stamps before that one are done with.
        """
        first = self._handed_off + 1
        stamps = self._stamps
        while len(stamps) > 1 and stamps[1][0] <= first:
            stamps.popleft()
        if stamps and stamps[0][0] <= first:
            return stamps[0][1]
        return self._loop.time()

    def _forget_task(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)

    async def _deliver(self, batch: list[Entry], joined: bytes, accepted_at: float) -> None:
        try:
            outcome = await self._transport.deliver(joined, self._slots, holding=True)
        except asyncio.CancelledError:
            # Cancelled only by close() at its deadline: reported like the queued
            # leftovers, so on_drop and dropped["shutdown"] see every shutdown loss.
            self._counters.in_flight -= len(batch)
            self._leave(batch)
            raise
        except Exception as exc:
            logger.exception("htevents_async: delivery error")
            outcome = Outcome(DeliveryError(f"internal error: {exc!r}"), 0)
        finally:
            self._outstanding.release()
        self._finish(batch, outcome.error, accepted_at)

    def _finish(
        self, batch: list[Entry], error: DeliveryError | None, accepted_at: float | None = None
    ) -> None:
        """Count the batch's outcome and tell the hooks and callbacks."""
        counters = self._counters
        count = len(batch)
        counters.in_flight -= count
        disposition = self._store.settle(batch, error)
        if disposition is Disposition.RETRY_LATER:
            return  # not an outcome yet: the store feeds the events back later
        config = self._config
        wrapped = Batch(batch, self._transport.message_id_of)
        if error is None:
            counters.delivered += count
            counters.batches_delivered += 1
            if self._on_delivered is not None and accepted_at is not None:
                self._on_delivered(count, self._loop.time() - accepted_at)
            if config.on_success is not None:
                self._hooks.call("on_success", config.on_success, wrapped)
        else:
            if disposition is Disposition.FAILED:
                counters.failed += count  # else counted as dead letters by the store
            counters.batches_failed += 1
            self._warnings.log(
                logging.ERROR,
                f"failed:{type(error).__name__}",
                "htevents_async: %d events not delivered: %s",
                count,
                error,
                extra={
                    "htevents_event": "batch_failed",
                    "htevents_count": count,
                    "htevents_error": type(error).__name__,
                    "htevents_status": getattr(error, "status_code", None),
                },
            )
            if config.on_failure is not None:
                self._hooks.call("on_failure", config.on_failure, wrapped, error)
        for entry in batch:
            if entry[1] is not None:
                self._hooks.call("callback", entry[1], error)

    # -- flush and close -------------------------------------------------------

    def _release_flush_waiters(self) -> None:
        if not self._flush_waiters:
            return
        keep = []
        for target, future in self._flush_waiters:
            if target <= self._handed_off:
                _resolve(future)
            elif not future.done():
                keep.append((target, future))
        self._flush_waiters = keep

    @property
    def drained(self) -> bool:
        """Whether close() has emptied the queue for good."""
        return self._drained

    @property
    def pending(self) -> int:
        """Events without an outcome: queued or in flight."""
        return self.queue.qsize() + self._counters.in_flight

    async def flush(self, timeout: float) -> int:
        """Wait until every event queued before the call has an outcome; return how many
        of those still had none when ``timeout`` seconds passed (0 when all are done).

        Events queued after the call are neither waited for nor counted, so busy
        traffic cannot make a successful flush look incomplete.
        """
        loop = self._loop
        deadline = loop.time() + timeout
        # Thread-safe enqueues already handed to the loop land before the target is read.
        await asyncio.sleep(0)
        target = self._put_count
        if self._handed_off < target:
            future: asyncio.Future[None] = loop.create_future()
            self._flush_waiters.append((target, future))
            self._flush_target = max(self._flush_target, target)
            self._wake()
            await asyncio.wait({future}, timeout=max(deadline - loop.time(), 0))
            if not future.done():
                future.cancel()
                # Every delivery task so far carries events from before the target.
                return target - self._handed_off + sum(self._tasks.values())
        tasks = dict(self._tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=max(deadline - loop.time(), 0))
        return sum(count for task, count in tasks.items() if not task.done())

    async def close(self, timeout: float) -> int:
        """Flush within ``timeout``, then drop what is left as ``shutdown``; return that count."""
        loop = self._loop
        deadline = loop.time() + timeout
        self._closing = True
        self._wake()
        await self.flush(timeout)
        dropped_before = self._counters.dropped.get("shutdown", 0)
        # The flusher stops first: a delivery task it created on its last turn must
        # have run its first step before it is cancelled, or it never reaches the
        # handler that reports its batch. Its first step was scheduled before the
        # flusher's cancellation was, so it has run once the flusher is done.
        self._runner.cancel()
        await asyncio.wait({self._runner})
        tasks = set(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        self._drained = True
        leftovers = list(self._forming)
        self._forming = []
        if self._carry is not None:
            leftovers.append(self._carry)
            self._carry = None
        self._counters.in_flight -= len(leftovers)
        while True:
            try:
                leftovers.append(self.queue.get_nowait())
            except asyncio.QueueEmpty:
                break
        if leftovers:
            self._leave(leftovers)
        for _, future in self._flush_waiters:
            future.cancel()
        await self._hooks.drain(max(deadline - loop.time(), 0.0))
        return self._counters.dropped.get("shutdown", 0) - dropped_before

    def _leave(self, entries: list[Entry]) -> None:
        """Events still pending at shutdown: kept by the store, or dropped as ``shutdown``."""
        if not self._store.release(entries):
            self.drop(entries, "shutdown")

    def drop(self, entries: list[Entry], reason: str) -> None:
        """Count events dropped before delivery, warn (rate limited), call ``on_drop``."""
        drop_entries(
            entries,
            reason,
            self._counters,
            self._hooks,
            self._warnings,
            self._config.on_drop,
            self._transport.message_id_of,
        )


def drop_entries(
    entries: list[Entry],
    reason: str,
    counters: Counters,
    hooks: HookRunner,
    warnings: RateLimitedLog,
    on_drop: Callable[..., Any] | None,
    id_of: Callable[[str], str] = message_id_of,
) -> None:
    """Count, log and report events dropped for ``reason`` (also used before a batcher exists)."""
    counters.drop(reason, len(entries))
    warnings.log(
        logging.WARNING,
        f"drop:{reason}",
        "htevents_async: dropped %d events (%s); %d dropped for this reason so far",
        len(entries),
        reason,
        counters.dropped[reason],
        extra={
            "htevents_event": "dropped",
            "htevents_count": len(entries),
            "htevents_reason": reason,
            "htevents_total": counters.dropped[reason],
        },
    )
    if on_drop is not None:
        hooks.call("on_drop", on_drop, Batch(entries, id_of), reason)
    error = ShutdownError() if reason == "shutdown" else DroppedError(reason)
    for entry in entries:
        if entry[1] is not None:
            hooks.call("callback", entry[1], error)
