"""The event loop a :class:`SyncClient` owns: one anyio blocking portal per process.

Concurrency invariants:

* The portal carries lifecycle calls only (start, flush, close, statistics).
  Events never go through it: a calling thread appends its encoded entry to
  ``_pending`` (a ``deque``, whose appends and pops are atomic) and schedules
  one ``_drain`` with ``call_soon_threadsafe`` only when none is scheduled, so a
  burst of calls costs the loop one wake-up, not one per event.
* While producers keep the deque busy, ``_drain`` polls it every
  :data:`DRAIN_INTERVAL` with ``_scheduled`` left set. When a poll finds it
  empty, it clears the flag and looks once more: a producer that still saw the
  flag set appended before the clear, so that second look takes its entry; one
  that sees it cleared schedules a drain of its own.
* Every lifecycle call drains first, on the loop: an entry a thread handed over
  before calling ``flush()`` is queued before the flush reads its target,
  whatever order the two ``call_soon_threadsafe`` calls landed in.
* After ``os.fork()`` the child never touches the parent's portal: its thread
  does not exist there, and stopping it would wait forever. The runtime is
  parked in ``_inherited`` so that not even garbage collection tries.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from anyio.from_thread import BlockingPortal, start_blocking_portal

from ._batch import Entry
from ._client import Client
from ._errors import ClientClosedError

__all__ = ["Runtime"]

T = TypeVar("T")

# Seconds a lifecycle call may wait for the loop beyond its own timeout: the time
# the loop needs to pick the call up and hand the answer back.
LOOP_GRACE = 0.5

# Seconds between polls of the hand-over deque while producers keep it busy: short
# against flush_interval, long enough that the loop wakes once per many events.
DRAIN_INTERVAL = 0.002
#: Entries one drain queues at most before the loop runs its other work (about 2 ms).
DRAIN_TURN = 1_000

# Runtimes started in this process and not yet closed, for the exit close.
_running: weakref.WeakSet[Runtime] = weakref.WeakSet()
# Runtimes inherited through fork(): kept, never stopped, never collected.
_inherited: list[object] = []


class _ExitSafeExecutor(concurrent.futures.ThreadPoolExecutor):
    """The loop's default executor (name resolution), still usable at interpreter exit.

    From the moment the interpreter starts shutting down, executors refuse new
    work ("cannot schedule new futures after interpreter shutdown") and Python
    3.12+ refuses new threads, yet the exit close may have to open a connection.
    The work then runs inline on the loop: slower, but delivered.
    """

    def submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        try:
            return super().submit(fn, *args, **kwargs)
        except RuntimeError:
            future: concurrent.futures.Future[T] = concurrent.futures.Future()
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:
                future.set_exception(exc)
            return future


class Runtime:
    """One portal thread hosting one started :class:`Client`, for the process that made it."""

    def __init__(self, client: Client, shutdown_timeout: float) -> None:
        self.client = client
        self.pid = os.getpid()
        self.shutdown_timeout = shutdown_timeout
        self._pending: deque[Entry] = deque()
        self._scheduled = False
        self._closed = False
        self._manager = start_blocking_portal(name="htevents_async")
        self._portal: BlockingPortal = self._manager.__enter__()
        try:
            self._loop, self._thread_id = self._portal.call(self._open)
        except BaseException:
            self._manager.__exit__(None, None, None)
            raise
        _running.add(self)

    async def _open(self) -> tuple[asyncio.AbstractEventLoop, int]:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(_ExitSafeExecutor(thread_name_prefix="htevents_async"))
        await self.client.__aenter__()
        return loop, threading.get_ident()

    # -- events --------------------------------------------------------------------

    def hand_over(self, entry: Entry) -> None:
        """Queue ``entry`` on the loop without waiting for it (any thread but the loop's)."""
        self._pending.append(entry)
        if not self._scheduled:
            self._scheduled = True
            try:
                self._loop.call_soon_threadsafe(self._drain)
            except RuntimeError:
                # The loop has stopped: the client was closed while this call ran.
                self._pending.clear()
                raise ClientClosedError("the client is closed; create a new one") from None

    def _drain(self) -> None:
        if self._take_pending(DRAIN_TURN):
            # Producers are busy: poll for their next entries instead of letting each
            # one wake the loop (a pipe write and a GIL hand-off per event).
            self._loop.call_later(DRAIN_INTERVAL, self._drain)
            return
        self._scheduled = False
        # An entry appended while the flag was still set relied on this drain.
        if self._pending:
            self._scheduled = True
            self._loop.call_later(DRAIN_INTERVAL, self._drain)

    def _take_pending(self, limit: int | None = None) -> int:
        """Queue the entries handed over so far, at most ``limit`` of them; returns how many.

        Only what is there when the call starts is taken: producers that keep handing
        over cannot keep the loop in here, away from the flusher and the timers.
        """
        pending = self._pending
        count = len(pending) if limit is None else min(limit, len(pending))
        pop, accept = pending.popleft, self.client._accept_handed_over
        for _ in range(count):
            accept(pop())
        return count

    # -- lifecycle -----------------------------------------------------------------

    @property
    def on_loop_thread(self) -> bool:
        """Whether the caller runs on the portal's own thread (hooks and callbacks do)."""
        return threading.get_ident() == self._thread_id

    def call(
        self,
        function: Callable[..., Coroutine[Any, Any, T]],
        *args: Any,
        timeout: float,
    ) -> T | None:
        """Run ``function(*args)`` on the loop after a drain; ``None`` if the loop did not
        answer within ``timeout`` (plus :data:`LOOP_GRACE`)."""

        async def drained() -> T:
            self._take_pending()
            return await function(*args)

        future = self._portal.start_task_soon(drained)
        try:
            return future.result(timeout + LOOP_GRACE)
        except concurrent.futures.TimeoutError:
            future.cancel()
            return None

    def close(self, timeout: float) -> int | None:
        """Close the client within ``timeout`` seconds, then stop the loop and its thread.

        Returns what :meth:`Client.aclose` returns, ``None`` if the loop did not answer.
        """
        if self._closed:
            return 0
        self._closed = True
        _running.discard(self)
        dropped = self.call(self._close_client, timeout, timeout=timeout)
        if dropped is None:
            # A loop that does not answer cannot be stopped either; its thread is a
            # daemon, so it never holds up the interpreter's exit.
            _inherited.append(self._manager)
            return None
        self._manager.__exit__(None, None, None)
        return dropped

    async def _drained_close(self, timeout: float) -> int:
        self._take_pending()
        return await self._close_client(timeout)

    async def _close_client(self, timeout: float) -> int:
        dropped = await self.client.aclose(timeout)
        # Entries handed over while the close ran are counted as shutdown drops.
        self._take_pending()
        return dropped

    def forget_after_fork(self) -> int:
        """In a forked child: drop the runtime without touching the parent's thread.

        Returns the number of entries handed over in the parent but never queued.
        """
        self._closed = True
        _running.discard(self)
        _inherited.append(self)
        inherited = len(self._pending)
        self._pending.clear()
        return inherited


def close_all_at_exit() -> None:
    """Close every running runtime, all at once, within their ``shutdown_timeout``.

    Runs from ``atexit``: never starts a thread (Python 3.12+ refuses), and the
    closes run concurrently, one loop each, so they share one deadline.
    """
    runtimes = [r for r in list(_running) if r.pid == os.getpid() and not r._closed]
    if not runtimes:
        return
    started = time.monotonic()
    closes: list[tuple[Runtime, concurrent.futures.Future[int]]] = []
    for runtime in runtimes:
        runtime._closed = True
        _running.discard(runtime)
        with contextlib.suppress(RuntimeError):
            closes.append(
                (
                    runtime,
                    runtime._portal.start_task_soon(
                        runtime._drained_close, runtime.shutdown_timeout
                    ),
                )
            )
    for runtime, future in closes:
        remaining = started + runtime.shutdown_timeout + LOOP_GRACE - time.monotonic()
        try:
            future.result(max(remaining, 0.0))
        except Exception:
            # Whatever happened, exit goes on; the daemon thread dies with the process.
            _inherited.append(runtime._manager)
            continue
        with contextlib.suppress(Exception):
            runtime._manager.__exit__(None, None, None)


atexit.register(close_all_at_exit)
