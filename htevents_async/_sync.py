"""``SyncClient``: the same engine for synchronous code (Django, Flask, Celery, scripts)."""

from __future__ import annotations

import datetime as dt
import os
import threading
import weakref
from collections.abc import Mapping
from functools import partial
from types import TracebackType
from typing import Any, Final, final

import httpx

from . import _frontend
from ._batch import Entry
from ._client import Client, _timeout_seconds
from ._config import Config
from ._delete import deletion_deadline
from ._errors import ClientClosedError, ClientStateError, DeliveryError, QueueFullError
from ._hooks import Callback
from ._messages import Id, Message
from ._plugins import Dropped
from ._portal import Runtime
from ._stats import Statistics

__all__ = ["SyncClient"]

_DELETE_MARGIN: Final = 1.0
"""Seconds ``delete()`` waits past the request's own deadline for its answer."""

# SyncClients alive in this process, so a forked child can reset them.
_live: weakref.WeakSet[SyncClient] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for client in list(_live):
        client._reset_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _close_collected(runtime: Runtime) -> None:
    # Collected unclosed: deliver what is pending, unless collection happens on the
    # loop's own thread, which cannot wait on itself; the exit close covers that one.
    if not runtime.on_loop_thread:
        runtime.close(runtime.shutdown_timeout)


@final
class SyncClient:
    """Records events from synchronous code; delivers them from its own event loop.

    ::

        with htevents_async.SyncClient(write_key) as events:
            events.track(user_id="123", event="Order completed",
                         properties={"total": 29.99})

    It takes the options of :class:`Client` and offers the same methods, each
    returning the message id. A call validates and encodes the event in the
    calling thread (bad input raises there, naming the field), then hands it to
    a :class:`Client` running in a daemon thread that the client starts on
    first use, without waiting for that thread.

    * Queue full: the event is dropped and counted, or with ``overflow="wait"``
      the calling thread waits up to ``enqueue_timeout`` while at most
      ``max_queue_size`` events are queued or in flight, then gets
      :class:`QueueFullError`.
    * :meth:`flush` and :meth:`close` are bounded by their timeouts, even when the
      collector is down. A client still open at interpreter exit is closed within
      ``shutdown_timeout``; one collected unclosed is closed as well.
    * After ``os.fork()`` (gunicorn ``--preload``, Celery prefork,
      ``multiprocessing``) the child starts its own thread on first use; events
      inherited from the parent are dropped and counted as ``dropped["fork"]``.

    Hooks and callbacks run on the client's thread: they must not call
    :meth:`flush` or :meth:`close` (that raises :class:`ClientStateError`).
    """

    def __init__(
        self,
        write_key: str,
        *,
        config: Config | None = None,
        http_client: httpx.AsyncClient | None = None,
        **options: Any,
    ) -> None:
        # The client validates the options now, in the caller's thread; it starts later.
        self._client = Client(write_key, config=config, http_client=http_client, **options)
        self._config = self._client.config
        # The client's own encoder: its limits, and whatever it applies before encoding.
        self._encoder = self._client._encoder
        self._runtime: Runtime | None = None
        self._closed = False
        self._lock = threading.Lock()
        self._admission = self._new_admission()
        self._finalizer: weakref.finalize[Any, Any] | None = None
        _live.add(self)

    def _new_admission(self) -> threading.BoundedSemaphore | None:
        # With disable=True nothing is ever queued, so there is nothing to wait for; with
        # a spool, what the queue has no room for waits on disk, not in the caller.
        config = self._config
        if config.overflow != "wait" or config.disable or config.spool is not None:
            return None
        return threading.BoundedSemaphore(self._config.max_queue_size)

    @property
    def config(self) -> Config:
        """The options this client runs with."""
        return self._config

    def __repr__(self) -> str:
        # Never the write key: reprs end up in logs and error reports.
        state = "closed" if self._closed else "opened" if self._runtime else "unopened"
        return f"<htevents_async.SyncClient {self._config.url} {state}>"

    # -- recording events ----------------------------------------------------------

    def identify(
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
        runtime = self._runtime or self._start()
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
        return self._hand_over(runtime, message_id, data, callback)

    def track(
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
        runtime = self._runtime or self._start()
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
        return self._hand_over(runtime, message_id, data, callback)

    def page(
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
        runtime = self._runtime or self._start()
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
        return self._hand_over(runtime, message_id, data, callback)

    def screen(
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
        runtime = self._runtime or self._start()
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
        return self._hand_over(runtime, message_id, data, callback)

    def group(
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
        runtime = self._runtime or self._start()
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
        return self._hand_over(runtime, message_id, data, callback)

    def alias(
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
        runtime = self._runtime or self._start()
        message_id, data = _frontend.alias(
            self._encoder, previous_id, user_id, context, timestamp, integrations, message_id
        )
        return self._hand_over(runtime, message_id, data, callback)

    def odp_event(
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
        idempotence id. See :meth:`Client.odp_event`."""
        runtime = self._runtime or self._start()
        message_id, encoded = _frontend.odp_event(
            self._encoder, action, identifiers, type, data, message_id
        )
        return self._hand_over(runtime, message_id, encoded, callback)

    def enqueue(self, message: Message, *, callback: Callback | None = None) -> str:
        """Record a prepared message (:class:`Track`, :class:`Identify`, …); returns its id.

        ``callback(message_id, error)`` is called once with the outcome, on the
        client's thread: ``error`` is ``None`` when the collector accepted the event.
        """
        _frontend.check_message(message)
        runtime = self._runtime or self._start()
        message_id, data = _frontend.encode_message(self._encoder, message)
        return self._hand_over(runtime, message_id, data, callback)

    def delete(
        self,
        *,
        user_id: Id,
        traits: Mapping[str, Any] | None = None,
        max_retries: int | None = None,
    ) -> str:
        """Suppress the user's later events and delete what was collected; returns the
        regulation id. See :meth:`Client.delete`.

        The arguments and the regulations options are checked in the calling thread
        (:class:`MessageError`, :class:`ConfigError`); the request then runs on the
        client's thread, and the calling thread waits for its answer. Its failures
        raise here as they do from :meth:`Client.delete` (:class:`HTTPStatusError`,
        :class:`RetriesExhaustedError`, also when the request passes its deadline:
        ``max_retry_time``, the longest backoff and four times ``request_timeout``).
        :class:`ClientStateError` means the client's thread did not answer at all by
        then (a blocked event loop); the deletion may or may not have been made.
        """
        request = self._client._deletion(user_id, traits)
        runtime = self._running("delete") or self._start()
        # The request ends itself at its deadline; the margin lets that answer come back
        # through a loop that is busy with batches at the time.
        wait = deletion_deadline(self._config) + _DELETE_MARGIN
        regulate_id = runtime.call(self._client._send_deletion, request, max_retries, timeout=wait)
        if regulate_id is None:
            raise ClientStateError(
                f"delete() had no answer from the client's thread within {wait:g} s; the "
                "request was cancelled and may or may not have reached the endpoint"
            )
        return regulate_id

    # -- the hand-over ---------------------------------------------------------------

    def _hand_over(
        self, runtime: Runtime, message_id: str, data: str | Dropped, callback: Callback | None
    ) -> str:
        if isinstance(data, Dropped):  # a before_send plugin dropped it
            return self._client._drop_filtered_threadsafe(data, callback)
        admission = self._admission
        if admission is not None:
            if not admission.acquire(timeout=self._config.enqueue_timeout):
                raise QueueFullError(
                    f"{self._config.max_queue_size} events stayed queued or in flight for "
                    f"enqueue_timeout ({self._config.enqueue_timeout} s); "
                    "the event was not accepted"
                )
            callback = partial(_release_then_call, admission, callback)
        entry: Entry = (data, None if callback is None else partial(callback, message_id))
        runtime.hand_over(entry)
        return message_id

    def _start(self) -> Runtime:
        with self._lock:
            if self._closed:
                raise ClientClosedError("the client is closed; create a new one")
            runtime = self._runtime
            if runtime is None:
                runtime = self._runtime = Runtime(self._client, self._config.shutdown_timeout)
                self._finalizer = weakref.finalize(self, _close_collected, runtime)
                # The exit close (see _portal.close_all_at_exit) closes all clients at once.
                self._finalizer.atexit = False
            return runtime

    # -- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _running(self, method: str) -> Runtime | None:
        runtime = self._runtime
        if runtime is not None and runtime.on_loop_thread:
            raise ClientStateError(
                f"{method}() cannot run on the client's own thread (from a hook or a "
                "callback): it would wait on itself"
            )
        return runtime

    def flush(self, timeout: float | dt.timedelta | None = None) -> int:
        """Wait until every event recorded before the call has an outcome.

        Returns how many events are still pending when ``timeout`` seconds
        (default ``Config.flush_timeout``) have passed, ``0`` when all are done.
        Never raises for delivery problems.
        """
        seconds = _timeout_seconds("flush", timeout, self._config.flush_timeout)
        runtime = self._running("flush")
        if runtime is None:
            return 0
        pending = runtime.call(self._client.flush, seconds, timeout=seconds)
        return self._client.statistics().pending if pending is None else pending

    def commit(self, timeout: float | dt.timedelta | None = None) -> int:
        """Wait until every event recorded before the call is committed to the spool.

        Returns how many are not yet committed when ``timeout`` seconds (default
        ``Config.flush_timeout``) have passed, ``0`` when all are; without a spool, 0 at
        once (see :meth:`Client.commit`). If the client's thread does not answer in
        time, every event recorded so far is counted as not committed.
        """
        seconds = _timeout_seconds("commit", timeout, self._config.flush_timeout)
        runtime = self._running("commit")
        if runtime is None:
            return 0
        left = runtime.call(self._client.commit, seconds, timeout=seconds)
        return self._client.statistics().accepted if left is None else left

    def close(self, timeout: float | dt.timedelta | None = None) -> int:
        """Stop accepting events, deliver what is pending, and stop the client's thread.

        Waits at most ``timeout`` seconds (default ``Config.shutdown_timeout``).
        Returns the number of events dropped as ``shutdown``. Safe to call more
        than once.
        """
        seconds = _timeout_seconds("close", timeout, self._config.shutdown_timeout)
        self._running("close")
        with self._lock:
            if self._closed:
                return 0
            self._closed = True
            # Read under the lock: a first call in another thread may be starting it.
            runtime, self._runtime = self._runtime, None
        if self._finalizer is not None:
            self._finalizer.detach()
        if runtime is None:
            return 0
        dropped = runtime.close(seconds)
        return self._client.statistics().dropped.get("shutdown", 0) if dropped is None else dropped

    def statistics(self) -> Statistics:
        """A snapshot of the delivery counters (see :class:`Statistics`)."""
        runtime = self._runtime
        if runtime is not None and not runtime.on_loop_thread:
            snapshot = runtime.call(_snapshot, self._client, timeout=0.0)
            if snapshot is not None:
                return snapshot
        return self._client.statistics()

    def _reset_after_fork(self) -> None:
        """Runs in a forked child: forget the parent's thread; start afresh on first use."""
        self._lock = threading.Lock()
        self._admission = self._new_admission()
        runtime, self._runtime = self._runtime, None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if runtime is not None:
            inherited = runtime.forget_after_fork()
            if inherited:
                # Handed over in the parent but never queued: the same fate, and the
                # same count, as the events the client itself inherited.
                counters = self._client._counters
                counters.accepted += inherited
                counters.drop("fork", inherited)


async def _snapshot(client: Client) -> Statistics:
    return client.statistics()


def _release_then_call(
    admission: threading.BoundedSemaphore,
    callback: Callback | None,
    message_id: str,
    error: DeliveryError | None,
) -> Any:
    admission.release()
    return None if callback is None else callback(message_id, error)
