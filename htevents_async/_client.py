"""The client facade: the public methods, and the lifecycle around the batcher."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import enum
import logging
import os
import time
import warnings
import weakref
from collections.abc import Callable, Coroutine, Mapping
from contextlib import AbstractContextManager
from functools import partial
from types import TracebackType
from typing import Any, final

import anyio
import attrs
import httpx

from . import _frontend
from ._batch import Batch, Entry
from ._batcher import Batcher, drop_entries
from ._config import Config
from ._delete import Delete, check_deletion_config, request_deletion
from ._errors import (
    ClientClosedError,
    ClientStateError,
    ConfigError,
    DroppedError,
    ForkedClientError,
    QueueFullError,
    WrongEventLoopError,
)
from ._hooks import Callback, HookRunner
from ._logging import RateLimitedLog, logger
from ._messages import Id, Message
from ._plugins import Dropped, Pipeline
from ._protocols import check_limits, resolve
from ._retry import is_retryable_status
from ._seams import MessageEncoder, Store
from ._stats import Counters, Statistics
from ._store import MemoryStore
from ._transport import Attempt, Transport, default_http_client

__all__ = ["Client"]

_OPTION_NAMES = frozenset(field.name for field in attrs.fields(Config))


# Seconds closing the connections may take once the close deadline has passed.
_CLOSE_GRACE = 0.25
# Drop reasons that are the user's own choice, not a failure to deliver.
_CHOSEN_DROPS = frozenset({"disabled", "filtered"})
# Longest a producer that never suspends keeps the loop before an enqueue yields.
# Other tasks wait at most this long (a tenth of asyncio's slow-callback warning);
# the flusher's turn per slice then costs such a loop under 5 % of its time.
YIELD_SLICE = 0.01


def _timeout_seconds(method: str, timeout: float | dt.timedelta | None, default: float) -> float:
    if timeout is None:
        return default
    seconds = timeout.total_seconds() if isinstance(timeout, dt.timedelta) else timeout
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds >= 0:
        # NaN fails the comparison too.
        raise ValueError(f"{method}() timeout must be a number of seconds >= 0, got {timeout!r}")
    return float(seconds)


def _bind(callback: Callback | None, message_id: str) -> Any:
    return None if callback is None else partial(callback, message_id)


class _State(enum.Enum):
    UNOPENED = "unopened"
    OPENED = "opened"
    CLOSED = "closed"


# Clients alive in this process, so a forked child can reset them (see _after_fork).
_live_clients: weakref.WeakSet[Client] = weakref.WeakSet()
# Objects bound to the parent's event loop, kept so the child never garbage-collects
# (and warns about) tasks that only ever ran in the parent.
_inherited: list[object] = []


def _after_fork_in_child() -> None:
    for client in list(_live_clients):
        client._reset_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


@final
class Client:
    """Records events and delivers them in batches from a background task.

    ::

        async with htevents_async.Client(write_key) as events:
            await events.track(user_id="123", event="Order completed",
                               properties={"total": 29.99})

    Options are the fields of :class:`Config`, as keywords or as ``config=``
    (keywords then override it). ``http_client`` injects an ``httpx.AsyncClient``
    for the requests; the client then neither configures nor closes it.

    Every enqueue method validates and encodes the event at the call site,
    raising :class:`MessageError` for bad input, and returns the message id.
    Delivery problems never raise: they show in :meth:`statistics`, in the
    ``htevents_async`` logger and in the ``on_failure``/``on_drop`` hooks.

    The client binds to the event loop it is first used on. After ``os.fork()``
    the child gets a fresh client on first use: events inherited from the
    parent are dropped and counted as ``dropped["fork"]``.
    """

    def __init__(
        self,
        write_key: str,
        *,
        config: Config | None = None,
        http_client: httpx.AsyncClient | None = None,
        **options: Any,
    ) -> None:
        if not isinstance(write_key, str) or not write_key:
            raise ConfigError("write_key must be a non-empty str")
        unknown = set(options) - _OPTION_NAMES
        if unknown:
            raise TypeError(
                f"unknown Client option(s): {', '.join(sorted(unknown))}; "
                f"see htevents_async.Config for the options"
            )
        if config is None:
            config = Config(**options)
        elif options:
            config = attrs.evolve(config, **options)
        if http_client is not None and not isinstance(http_client, httpx.AsyncClient):
            raise ConfigError(f"http_client must be an httpx.AsyncClient, got {http_client!r}")
        self._protocol = protocol = resolve(config.protocol)
        check_limits(config, protocol, write_key)
        self._config = config
        self._batch_size = config.max_batch_size
        self._high_water = max(config.max_queue_size // 2, config.max_batch_size)
        self._probe_pending = False
        self._probe_since = 0.0
        # Set by a call that wants the producer to let the flusher run; the next call
        # yields before it records its own event.
        self._yield_due = False
        self._write_key = write_key
        # Chosen once: the protocol's encoder, plain fast path included; with before_send
        # plugins every call, the plain ones included, goes through them.
        self._encoder: MessageEncoder = (
            Pipeline(config.before_send, config.max_message_bytes)
            if config.before_send and not config.disable
            else protocol.encoder(config.max_message_bytes)
        )
        self._counters = Counters()
        # For integrations (metrics): called on the loop with every request attempt, and
        # the context the flusher task starts in, so its requests can be told apart.
        self._attempt_observers: list[Callable[[Attempt], None]] = []
        # Also for metrics: called on the loop with (events, seconds from the oldest
        # one's acceptance to the 2xx) for every delivered batch.
        self._delivery_observers: list[Callable[[int, float], None]] = []
        self._flusher_scope: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext
        self._warnings = RateLimitedLog()
        self._hooks = HookRunner(config.hook_timeout)
        self._state = _State.UNOPENED
        self._loop: asyncio.AbstractEventLoop | None = None
        self._batcher: Batcher | None = None
        self._store: Store = MemoryStore()
        self._http = http_client
        self._owns_http = http_client is None
        self._forked_with_injected_http = False
        self._close_task: asyncio.Task[int] | None = None
        self._closing_batcher: Batcher | None = None
        _live_clients.add(self)

    @property
    def config(self) -> Config:
        """The options this client runs with."""
        return self._config

    def __repr__(self) -> str:
        # Never the write key: reprs end up in logs and error reports.
        return (
            f"<htevents_async.Client {self._config.url} {self._state.value}, "
            f"{self._pending()} pending>"
        )

    # -- recording events ------------------------------------------------------

    async def identify(
        self,
        *,
        user_id: Id | None = None,
        anonymous_id: Id | None = None,
        traits: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        timestamp: dt.datetime | None = None,
        integrations: Mapping[str, Any] | None = None,
        message_id: str | None = None,
        callback: Callback | None = None,
    ) -> str:
        """Record who the user is and what is known of them; returns the message id."""
        if self._yield_due:
            await self._take_turn()
        message_id, data = _frontend.identify(
            self._encoder,
            user_id,
            anonymous_id,
            traits,
            context,
            timestamp,
            integrations,
            message_id,
        )
        follow_up = self._accept(message_id, data, callback)
        if follow_up is not None:
            await follow_up
        return message_id

    async def track(
        self,
        *,
        event: str,
        user_id: Id | None = None,
        anonymous_id: Id | None = None,
        properties: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        timestamp: dt.datetime | None = None,
        integrations: Mapping[str, Any] | None = None,
        message_id: str | None = None,
        callback: Callback | None = None,
    ) -> str:
        """Record an action the user performed; returns the message id."""
        if self._yield_due:
            await self._take_turn()
        message_id, data = _frontend.track(
            self._encoder,
            event,
            user_id,
            anonymous_id,
            properties,
            context,
            timestamp,
            integrations,
            message_id,
        )
        follow_up = self._accept(message_id, data, callback)
        if follow_up is not None:
            await follow_up
        return message_id

    async def page(
        self,
        *,
        user_id: Id | None = None,
        anonymous_id: Id | None = None,
        name: str | None = None,
        category: str | None = None,
        properties: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        timestamp: dt.datetime | None = None,
        integrations: Mapping[str, Any] | None = None,
        message_id: str | None = None,
        callback: Callback | None = None,
    ) -> str:
        """Record a web page view; returns the message id."""
        if self._yield_due:
            await self._take_turn()
        message_id, data = _frontend.page(
            self._encoder,
            user_id,
            anonymous_id,
            name,
            category,
            properties,
            context,
            timestamp,
            integrations,
            message_id,
        )
        follow_up = self._accept(message_id, data, callback)
        if follow_up is not None:
            await follow_up
        return message_id

    async def screen(
        self,
        *,
        user_id: Id | None = None,
        anonymous_id: Id | None = None,
        name: str | None = None,
        category: str | None = None,
        properties: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        timestamp: dt.datetime | None = None,
        integrations: Mapping[str, Any] | None = None,
        message_id: str | None = None,
        callback: Callback | None = None,
    ) -> str:
        """Record a mobile or desktop screen view; returns the message id."""
        if self._yield_due:
            await self._take_turn()
        message_id, data = _frontend.screen(
            self._encoder,
            user_id,
            anonymous_id,
            name,
            category,
            properties,
            context,
            timestamp,
            integrations,
            message_id,
        )
        follow_up = self._accept(message_id, data, callback)
        if follow_up is not None:
            await follow_up
        return message_id

    async def group(
        self,
        *,
        group_id: Id,
        user_id: Id | None = None,
        anonymous_id: Id | None = None,
        traits: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        timestamp: dt.datetime | None = None,
        integrations: Mapping[str, Any] | None = None,
        message_id: str | None = None,
        callback: Callback | None = None,
    ) -> str:
        """Record that the user belongs to a group (company, team, account); returns the id."""
        if self._yield_due:
            await self._take_turn()
        message_id, data = _frontend.group(
            self._encoder,
            group_id,
            user_id,
            anonymous_id,
            traits,
            context,
            timestamp,
            integrations,
            message_id,
        )
        follow_up = self._accept(message_id, data, callback)
        if follow_up is not None:
            await follow_up
        return message_id

    async def alias(
        self,
        *,
        previous_id: Id,
        user_id: Id,
        context: Mapping[str, Any] | None = None,
        timestamp: dt.datetime | None = None,
        integrations: Mapping[str, Any] | None = None,
        message_id: str | None = None,
        callback: Callback | None = None,
    ) -> str:
        """Record that ``previous_id`` and ``user_id`` are the same person; returns the id."""
        if self._yield_due:
            await self._take_turn()
        message_id, data = _frontend.alias(
            self._encoder, previous_id, user_id, context, timestamp, integrations, message_id
        )
        follow_up = self._accept(message_id, data, callback)
        if follow_up is not None:
            await follow_up
        return message_id

    async def odp_event(
        self,
        *,
        action: str,
        identifiers: Mapping[str, str],
        type: str = "fullstack",
        data: Mapping[str, Any] | None = None,
        message_id: str | None = None,
        callback: Callback | None = None,
    ) -> str:
        """Record an Optimizely Data Platform event (``protocol="odp"`` only); returns its
        idempotence id. ``identifiers`` needs at least one pair; ``data`` values are str,
        number, bool or None (sent as ``""``)."""
        if self._yield_due:
            await self._take_turn()
        message_id, encoded = _frontend.odp_event(
            self._encoder, action, identifiers, type, data, message_id
        )
        follow_up = self._accept(message_id, encoded, callback)
        if follow_up is not None:
            await follow_up
        return message_id

    async def enqueue(self, message: Message, *, callback: Callback | None = None) -> str:
        """Record a prepared message (:class:`Track`, :class:`Identify`, …); returns its id.

        ``callback(message_id, error)`` is called once with the outcome: ``error``
        is ``None`` when the collector accepted the event.
        """
        _frontend.check_message(message)
        if self._yield_due:
            await self._take_turn()
        message_id, data = _frontend.encode_message(self._encoder, message)
        follow_up = self._accept(message_id, data, callback)
        if follow_up is not None:
            await follow_up
        return message_id

    async def delete(
        self,
        *,
        user_id: Id,
        traits: Mapping[str, Any] | None = None,
        max_retries: int | None = None,
    ) -> str:
        """Suppress the user's later events and delete what was collected; returns the
        regulation id.

        Unlike event calls this is one API request, sent at once to
        ``Config.regulations_url`` with ``Config.regulations_token`` (see
        :class:`Delete` for the request). Without them it raises
        :class:`ConfigError`. It retries as batches do (``max_retries`` overrides the
        count), then raises :class:`HTTPStatusError` or :class:`RetriesExhaustedError`:
        a deletion that did not happen must not pass unnoticed. The whole request,
        retries included, has a deadline of ``max_retry_time`` plus the longest backoff
        plus four times ``request_timeout``; past it the request is cancelled and
        :class:`RetriesExhaustedError` says so. With ``disable=True`` nothing is sent
        and the id is ``""``.
        """
        request = self._deletion(user_id, traits)
        self._start()
        return await self._send_deletion(request, max_retries)

    def _deletion(self, user_id: Id, traits: Mapping[str, Any] | None) -> Delete:
        """The checked request of a ``delete()`` call: what the caller's thread validates."""
        request = Delete(user_id=user_id, traits=traits)
        if self._protocol.name != "segment":
            raise ConfigError(
                f"delete() sends a Segment regulation; this client speaks "
                f"{self._protocol.name!r}, which has no deletion request here"
            )
        check_deletion_config(self._config)
        return request

    async def _send_deletion(self, request: Delete, max_retries: int | None) -> str:
        """Send a checked request on the client's loop (``SyncClient.delete`` comes here too)."""
        if self._config.disable:
            return ""
        if self._http is None:
            self._http = default_http_client(
                self._config.request_timeout, self._config.max_concurrent_requests
            )
        return await request_deletion(self._http, self._config, request, max_retries=max_retries)

    def enqueue_threadsafe(self, message: Message, *, callback: Callback | None = None) -> str:
        """Record a message from any thread, without waiting on the event loop.

        For sync code such as FastAPI ``def`` endpoints, which run in a thread
        pool: the message is validated and encoded in the calling thread (errors
        raise there), then handed to the loop. If the queue is full when it
        arrives it is dropped and counted, whatever ``overflow`` says, since a
        thread cannot wait on the loop. The client must have been started on
        its loop (``async with``, or any awaited call) first.
        """
        loop = self._loop
        if loop is None or self._state is not _State.OPENED:
            if self._state is _State.CLOSED:
                raise ClientClosedError("the client is closed; create a new one")
            raise ClientStateError(
                "the client has not started: enter `async with client` (or await any of "
                "its methods) on its event loop before enqueue_threadsafe()"
            )
        _frontend.check_message(message)
        message_id, data = _frontend.encode_message(self._encoder, message)
        handed: tuple[Any, ...]
        if isinstance(data, Dropped):
            handed = (self._drop_filtered, data, callback)
        else:
            handed = (self._accept_handed_over, (data, _bind(callback, message_id)))
        try:
            loop.call_soon_threadsafe(*handed)
        except RuntimeError:
            raise ClientClosedError("the client's event loop is closed") from None
        return message_id

    # -- the enqueue path ----------------------------------------------------------

    def _accept(
        self, message_id: str, data: str | Dropped, callback: Callback | None
    ) -> Coroutine[Any, Any, None] | None:
        """Queue an encoded event; returns what the caller must await, if anything: the
        wait for room (``overflow="wait"``)."""
        batcher = self._batcher
        if batcher is None or asyncio.get_running_loop() is not self._loop:
            batcher = self._start()
        if isinstance(data, Dropped):  # a before_send plugin dropped it
            self._drop_filtered(data, callback)
            return None
        entry: Entry = (data, None if callback is None else partial(callback, message_id))
        if batcher is None:  # disabled: validated and encoded, then dropped by design
            self._drop_disabled(entry)
            return None
        queued = batcher.offer(entry)
        if queued:
            self._counters.accepted += 1
            if queued >= self._high_water or self._store.behind:
                # Filling up: every call yields, so the flusher drains as fast as
                # the producer adds, instead of the queue overflowing (a spool whose
                # disk writer lags behind holds the producer until it catches up).
                self._yield_due = True
            elif not queued % self._batch_size:
                self._check_time_slice()
            return None
        if self._config.overflow == "wait":
            return self._wait_for_room(entry)
        self._counters.accepted += 1
        batcher.drop([entry], "queue_full")
        # Yield here too: a producer that only ever drops would otherwise never let
        # the flusher run, and the queue would stay full while the collector idles.
        self._yield_due = True
        return None

    async def _take_turn(self) -> None:
        """The yield a previous call asked for, taken before this call records anything.

        Yielding before, never after, recording keeps one rule for cancellation: a
        call that raises ``CancelledError`` recorded nothing, and one that returns
        recorded its event.
        """
        self._yield_due = False
        # A bare yield; with a spool, a short wait while its disk writer catches up.
        await self._store.pace()

    def _check_time_slice(self) -> None:
        """At each full batch: ask the next call to yield to the flusher when the
        producer has kept the loop to itself too long.

        A producer that awaits us in a tight loop never suspends otherwise: the
        flusher could not run until it ends, and a long burst would fill the
        queue and drop while the collector idles. Yielding at every batch costs
        such a loop its sending work in the middle of its calls; yielding only
        past a time slice leaves that work for the loop's idle time, as it is
        for a producer that does suspend.
        """
        if not self._probe_pending:
            # The probe runs as soon as the loop gets control: if it is still
            # pending a slice later, nothing else has run for that long.
            self._probe_pending = True
            self._probe_since = time.monotonic()
            self._loop.call_soon(self._probe)  # type: ignore[union-attr]
        elif time.monotonic() - self._probe_since >= YIELD_SLICE:
            self._yield_due = True

    def _probe(self) -> None:
        self._probe_pending = False

    async def _wait_for_room(self, entry: Entry) -> None:
        batcher = self._batcher
        if batcher is None:  # closed while the caller was on its way here
            raise ClientClosedError("the client is closed; create a new one")
        if not await batcher.put(entry, self._config.enqueue_timeout):
            config = self._config
            spool = (
                ", and the spool refused it (spool_max_bytes, or a stalled or failed file)"
                if config.spool is not None
                else ""
            )
            raise QueueFullError(
                f"the queue ({config.max_queue_size} events) stayed full for enqueue_timeout "
                f"({config.enqueue_timeout} s){spool}; the event was not accepted"
            )
        self._counters.accepted += 1

    def _drop_filtered(self, dropped: Dropped, callback: Callback | None) -> str:
        """Runs on the loop: account for an event a ``before_send`` plugin dropped."""
        self._counters.accepted += 1
        self._counters.drop(dropped.reason)
        on_drop = self._config.on_drop
        if on_drop is not None:
            batch = Batch([(dropped.hook_text(), None)])
            self._hooks.call("on_drop", on_drop, batch, dropped.reason)
        if callback is not None:
            error = DroppedError(dropped.reason)
            self._hooks.call("callback", callback, dropped.message_id, error)
        return dropped.message_id

    def _drop_filtered_threadsafe(self, dropped: Dropped, callback: Callback | None) -> str:
        """:meth:`_drop_filtered` from another thread (``SyncClient``): done on the loop."""
        loop = self._loop
        if loop is None:
            raise ClientStateError("the client has not started")
        try:
            loop.call_soon_threadsafe(self._drop_filtered, dropped, callback)
        except RuntimeError:
            raise ClientClosedError("the client's event loop is closed") from None
        return dropped.message_id

    def _drop_disabled(self, entry: Entry) -> None:
        """Account for an event ``disable=True`` drops by design: counted, and its callback
        told (every callback hears its event's outcome once); no warning, no ``on_drop``."""
        self._counters.accepted += 1
        self._counters.drop("disabled")
        if entry[1] is not None:
            self._hooks.call("callback", entry[1], DroppedError("disabled"))

    def _accept_handed_over(self, entry: Entry) -> None:
        """Runs on the loop: queue an entry encoded in another thread."""
        batcher = self._batcher or self._closing_batcher
        if self._config.disable:
            self._drop_disabled(entry)
            return
        self._counters.accepted += 1
        if batcher is None or batcher.drained:
            drop_entries(
                [entry],
                "shutdown",
                self._counters,
                self._hooks,
                self._warnings,
                self._config.on_drop,
                self._protocol.message_id_of,
            )
        elif not batcher.offer(entry):
            batcher.drop([entry], "queue_full")

    def _start(self) -> Batcher | None:
        """Check the client may be used here and now, starting it on first use."""
        if self._state is _State.CLOSED:
            raise ClientClosedError("the client is closed; create a new one")
        if self._forked_with_injected_http:
            raise ForkedClientError(
                "this client was given an http_client before os.fork(); create the client "
                "(and its http_client) in the child process instead"
            )
        loop = asyncio.get_running_loop()
        if self._loop is not None and loop is not self._loop:
            raise WrongEventLoopError(
                "this client is bound to another event loop; create one client per loop"
            )
        self._loop = loop
        self._state = _State.OPENED
        if self._config.disable:
            return None
        if self._batcher is None:
            if self._http is None:
                self._http = default_http_client(
                    self._config.request_timeout, self._config.max_concurrent_requests
                )
            transport = Transport(
                self._http,
                self._config,
                self._write_key,
                protocol=self._protocol,
                on_attempt=self._count_attempt,
                own_client=self._owns_http,
            )
            self._store = self._open_store()
            with self._flusher_scope():
                self._batcher = Batcher(
                    self._config,
                    transport,
                    self._counters,
                    self._hooks,
                    self._warnings,
                    self._store,
                    self._observe_delivery,
                )
        return self._batcher

    def _observe_delivery(self, count: int, seconds: float) -> None:
        for observe in self._delivery_observers:
            try:
                observe(count, seconds)
            except Exception:
                logger.exception("htevents_async: a delivery observer raised")

    def _open_store(self) -> Store:
        config = self._config
        if config.spool is None:
            return MemoryStore()
        from ._spool import SqliteStore

        return SqliteStore(
            config.spool,
            url=config.url,
            write_key=self._write_key,
            protocol=self._protocol.name,
            counters=self._counters,
            warnings=self._warnings,
            max_bytes=config.spool_max_bytes,
            synchronous=config.spool_synchronous,
            commit_interval=config.spool_commit_interval,
            backoff=config.backoff_max,
        )

    def _count_attempt(self, attempt: Attempt) -> None:
        counters = self._counters
        counters.attempts += 1
        if attempt.sent:
            counters.requests += 1
            counters.bytes_sent += attempt.body_bytes
        if attempt.retry:
            counters.retries += 1
        if attempt.status is not None and (
            attempt.error is None or not is_retryable_status(attempt.status)
        ):
            # The collector answered for itself: reachable, whatever it thought of the batch.
            if counters.consecutive_failures:
                self._warnings.log(
                    logging.WARNING,
                    "recovered",
                    "htevents_async: collector at %s answering again after %d failed attempts",
                    self._config.url,
                    counters.consecutive_failures,
                    extra={
                        "htevents_event": "recovered",
                        "htevents_url": self._config.url,
                        "htevents_count": counters.consecutive_failures,
                    },
                )
            counters.consecutive_failures = 0
        else:
            if not counters.consecutive_failures:
                # An outage shows while it happens, not only when batches give up.
                self._warnings.log(
                    logging.WARNING,
                    "unreachable",
                    "htevents_async: collector at %s unreachable (%s); retrying, %d events pending",
                    self._config.url,
                    attempt.error,
                    self._pending(),
                    extra={
                        "htevents_event": "unreachable",
                        "htevents_url": self._config.url,
                        "htevents_error": attempt.error,
                        "htevents_status": attempt.status,
                        "htevents_pending": self._pending(),
                    },
                )
            counters.consecutive_failures += 1
        if attempt.error is not None:
            counters.last_error = attempt.error
        for observe in self._attempt_observers:
            observe(attempt)

    # -- lifecycle -----------------------------------------------------------------

    async def __aenter__(self) -> Client:
        self._start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def flush(self, timeout: float | dt.timedelta | None = None) -> int:
        """Wait until every event recorded before the call has an outcome.

        Returns how many events are still pending when ``timeout`` seconds
        (default ``Config.flush_timeout``) have passed, ``0`` when all are done.
        While :meth:`aclose` runs, waits for the close instead. Never raises for
        delivery problems.
        """
        seconds = _timeout_seconds("flush", timeout, self._config.flush_timeout)
        batcher = self._batcher
        closing = self._close_task
        if batcher is None and (closing is None or closing.done()):
            return 0
        if asyncio.get_running_loop() is not self._loop:
            raise WrongEventLoopError("flush() must run on the loop the client is bound to")
        if closing is not None:
            # aclose() is delivering what is pending: waiting for it is the flush.
            await asyncio.wait({closing}, timeout=seconds)
            return self._pending()
        assert batcher is not None  # for the type checker: checked above with closing
        return await self._store.drain(batcher.flush, seconds)

    async def commit(self, timeout: float | dt.timedelta | None = None) -> int:
        """Wait until every event recorded before the call is committed to the spool.

        Returns how many of them are not yet committed when ``timeout`` seconds
        (default ``Config.flush_timeout``) have passed, ``0`` when all are. Once
        the spool file has failed, it returns at once, counting the events kept
        in memory since then. A committed event is delivered even if the process
        dies right after (see ``Config.spool``). Without a spool nothing is ever durable and this
        returns 0 at once: use :meth:`flush` to wait for delivery instead.
        """
        seconds = _timeout_seconds("commit", timeout, self._config.flush_timeout)
        if self._batcher is not None and asyncio.get_running_loop() is not self._loop:
            raise WrongEventLoopError("commit() must run on the loop the client is bound to")
        return await self._store.commit(seconds)

    async def aclose(self, timeout: float | dt.timedelta | None = None) -> int:
        """Stop accepting events, deliver what is pending, and release the connections.

        Waits at most ``timeout`` seconds (default ``Config.shutdown_timeout``),
        interrupting requests and backoff sleeps at the deadline. Returns the
        number of events dropped as ``shutdown``. Safe to call more than once.
        """
        if self._close_task is not None:
            return await asyncio.shield(self._close_task)
        if self._state is _State.CLOSED:
            return 0
        if self._loop is not None and asyncio.get_running_loop() is not self._loop:
            raise WrongEventLoopError("aclose() must run on the loop the client is bound to")
        limit = _timeout_seconds("aclose", timeout, self._config.shutdown_timeout)
        self._state = _State.CLOSED
        # New calls now fail, but events other threads encoded before the close are
        # still handed to the closing batcher, so its flush can deliver them.
        self._closing_batcher, self._batcher = self._batcher, None
        self._close_task = asyncio.get_running_loop().create_task(
            self._close(self._closing_batcher, limit)
        )
        return await asyncio.shield(self._close_task)

    async def _close(self, batcher: Batcher | None, timeout: float) -> int:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        store = self._store
        dropped = 0
        if batcher is not None:
            # With a spool, what waits on disk is delivered too while time remains; what
            # is left then stays there for the next client.
            await store.drain(batcher.flush, timeout)
            dropped = await batcher.close(max(deadline - loop.time(), 0.0))
        await store.aclose(max(deadline - loop.time(), 0.0))
        if self._owns_http and self._http is not None:
            # Closing sockets is quick; the bound only guards against a stuck peer.
            with anyio.move_on_after(max(deadline - loop.time(), _CLOSE_GRACE)):
                await self._http.aclose()
        stats = self.statistics()
        if stats.failed or stats.dropped:
            # One line that adds up every loss, however many the rate limit held back.
            # Drops the user asked for (disable=True, a plugin filtering events out)
            # are not losses: no warning for those alone.
            losses = stats.failed or any(r not in _CHOSEN_DROPS for r in stats.dropped)
            logger.log(
                logging.WARNING if losses else logging.DEBUG,
                "htevents_async: closed; %d delivered, %d failed, dropped %s",
                stats.delivered,
                stats.failed,
                stats.dropped,
                extra={
                    "htevents_event": "closed",
                    "htevents_delivered": stats.delivered,
                    "htevents_failed": stats.failed,
                    "htevents_dropped": dict(stats.dropped),
                },
            )
        return dropped

    def statistics(self) -> Statistics:
        """A snapshot of the delivery counters (see :class:`Statistics`)."""
        batcher = self._batcher or self._closing_batcher
        return self._counters.snapshot(0 if batcher is None else batcher.queue.qsize())

    def _pending(self) -> int:
        batcher = self._batcher or self._closing_batcher
        return 0 if batcher is None else batcher.pending

    def _reset_after_fork(self) -> None:
        """Runs in a forked child: forget the parent's loop, tasks and connections."""
        if self._batcher is not None:
            inherited = self._batcher.pending
            _inherited.append(self._batcher)
            self._batcher = None
            self._counters.in_flight = 0
            if inherited:
                self._counters.drop("fork", inherited)
            # The parent's spool file stays the parent's: never touch its connection.
            self._store.abandon()
            _inherited.append(self._store)
            self._store = MemoryStore()
            if self._counters.spooled:
                self._counters.drop("fork", self._counters.spooled)
                self._counters.spooled = 0
        if self._http is not None:
            if self._owns_http:
                _inherited.append(self._http)
                self._http = None
            else:
                self._forked_with_injected_http = True
        # Hook calls still running in the parent are tasks of a loop that never runs
        # here: aclose() in the child must not wait for them.
        _inherited.append(self._hooks)
        self._hooks = HookRunner(self._config.hook_timeout)
        self._loop = None
        self._probe_pending = False  # its callback was the parent loop's
        self._close_task = None
        if self._state is _State.OPENED:
            self._state = _State.UNOPENED

    def __del__(self) -> None:
        # __init__ may have raised before every attribute was set.
        pending = self._pending() if hasattr(self, "_closing_batcher") else 0
        if pending and self._state is not _State.CLOSED:
            warnings.warn(
                f"htevents_async.Client was garbage-collected with {pending} events not "
                "delivered; use `async with` or `await client.aclose()`",
                ResourceWarning,
                stacklevel=1,
                source=self,
            )
