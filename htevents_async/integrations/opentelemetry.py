"""OpenTelemetry metrics for a client: what it accepted, delivered, failed and dropped.

Needs the ``otel`` extra (``pip install 'htevents-async[otel]'``), which adds only
``opentelemetry-api``; the SDK and its exporters are the application's choice. One
call turns the metrics on, with the meter provider of the application's setup (the
global one by default)::

    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        ConsoleMetricExporter,
        PeriodicExportingMetricReader,
    )

    import htevents_async
    from htevents_async.integrations.opentelemetry import instrument

    provider = MeterProvider([PeriodicExportingMetricReader(ConsoleMetricExporter())])
    events = htevents_async.Client(write_key)
    instrument(events, meter_provider=provider)

The instruments, under the meter ``htevents_async`` (counters are observable):

* ``htevents.client.events.accepted``, ``.delivered``, ``.failed``: counters, ``{event}``;
* ``htevents.client.events.dropped``: counter, ``{event}``, by ``htevents.drop.reason``;
* ``htevents.client.events.queued``, ``.in_flight``: up-down counters, ``{event}``;
* ``htevents.client.attempts``, ``htevents.client.retries``: counters, ``{attempt}``;
* ``htevents.client.requests``: counter, ``{request}`` (requests that reached the collector);
* ``htevents.client.request.bytes``: counter, ``By`` (bodies after compression);
* ``htevents.client.request.duration``: histogram, ``s``, with
  ``http.response.status_code`` and, for failures, ``error.type``;
* ``htevents.client.request.body.size``: histogram, ``By``, same attributes;
* ``htevents.client.delivery.duration``: histogram, ``s``: from accepting a delivered
  batch's oldest event to the collector's 2xx for it, once per batch (an event refilled
  from a spool counts from when it came back into memory);
* with a spool: ``htevents.client.events.dead_lettered``, ``.recovered``,
  ``.committed`` (counters) and ``.spooled`` (up-down counter), ``{event}``.

Every figure also carries ``server.address`` (the collector's host) and
``htevents.client.name`` (the ``name`` given to :func:`instrument`, ``"default"``
if none); clients with the same two values are added together.

The counters are observable: the metric reader's thread reads the client's
plain integer counters (as :meth:`Client.statistics` does) when it collects, so
the event path pays nothing and nothing touches the event loop. The request
histograms are recorded on the loop once per request attempt, the delivery one once
per delivered batch.

The client's own uploads are kept out of the application's traces: when
OpenTelemetry's HTTP instrumentation (``opentelemetry-instrumentation-httpx``) is
installed, the delivery task runs with HTTP instrumentation suppressed. Call
:func:`instrument` before the client's first use for that to apply.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any, final
from urllib.parse import urlsplit

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from .._client import Client
from .._retry import is_success
from .._stats import Statistics
from .._sync import SyncClient
from .._transport import Attempt
from .._version import __version__

__all__ = ["instrument"]

_Attributes = tuple[tuple[str, str], ...]


def _suppressing_scope() -> Callable[[], AbstractContextManager[object]]:
    """OpenTelemetry's own switch for HTTP instrumentation, if any is installed."""
    try:
        from opentelemetry.instrumentation.utils import (  # type: ignore[import-not-found, unused-ignore]
            suppress_http_instrumentation,
        )
    except ImportError:  # no instrumentation package: nothing could trace our requests
        return nullcontext
    scope: Callable[[], AbstractContextManager[object]] = suppress_http_instrumentation
    return scope


@final
class _Instruments:
    """One set of instruments per meter provider, reading every client instrumented on it."""

    def __init__(self, provider: MeterProvider) -> None:
        self._clients: weakref.WeakKeyDictionary[Client, _Attributes] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        meter = provider.get_meter("htevents_async", __version__)

        def counter(name: str, unit: str, description: str, read: _Read) -> None:
            meter.create_observable_counter(
                name, [self._callback(read)], unit=unit, description=description
            )

        def up_down(name: str, unit: str, description: str, read: _Read) -> None:
            meter.create_observable_up_down_counter(
                name, [self._callback(read)], unit=unit, description=description
            )

        counter(
            "htevents.client.events.accepted",
            "{event}",
            "Events that passed validation and encoding.",
            lambda s: [((), s.accepted)],
        )
        counter(
            "htevents.client.events.delivered",
            "{event}",
            "Events in batches the collector answered with a 2xx.",
            lambda s: [((), s.delivered)],
        )
        counter(
            "htevents.client.events.failed",
            "{event}",
            "Events in batches given up on (final error or retry budget spent).",
            lambda s: [((), s.failed)],
        )
        counter(
            "htevents.client.events.dropped",
            "{event}",
            "Events dropped before delivery, by reason.",
            lambda s: [
                ((("htevents.drop.reason", reason),), count) for reason, count in s.dropped.items()
            ],
        )
        counter(
            "htevents.client.events.dead_lettered",
            "{event}",
            "Events a final status moved to the spool's dead letters (with a spool).",
            lambda s: [((), s.dead_lettered)],
        )
        counter(
            "htevents.client.events.recovered",
            "{event}",
            "Events adopted from a spool left by an earlier or dead process.",
            lambda s: [((), s.recovered)],
        )
        counter(
            "htevents.client.events.committed",
            "{event}",
            "Events committed to the spool file.",
            lambda s: [((), s.committed)],
        )
        up_down(
            "htevents.client.events.spooled",
            "{event}",
            "Events waiting on disk only (with a spool).",
            lambda s: [((), s.spooled)],
        )
        up_down(
            "htevents.client.events.queued",
            "{event}",
            "Events waiting in the queue.",
            lambda s: [((), s.queued)],
        )
        up_down(
            "htevents.client.events.in_flight",
            "{event}",
            "Events in batches being formed, sent or retried.",
            lambda s: [((), s.in_flight)],
        )
        counter(
            "htevents.client.attempts",
            "{attempt}",
            "Attempts to send a batch, retries included.",
            lambda s: [((), s.attempts)],
        )
        counter(
            "htevents.client.retries",
            "{attempt}",
            "Attempts that retried an earlier attempt.",
            lambda s: [((), s.retries)],
        )
        counter(
            "htevents.client.requests",
            "{request}",
            "HTTP requests that reached the collector.",
            lambda s: [((), s.requests)],
        )
        counter(
            "htevents.client.request.bytes",
            "By",
            "Request body bytes written to the collector, after compression.",
            lambda s: [((), s.bytes_sent)],
        )
        self.duration = meter.create_histogram(
            "htevents.client.request.duration",
            unit="s",
            description="Time from sending a batch request to its answer or failure.",
        )
        self.delivery = meter.create_histogram(
            "htevents.client.delivery.duration",
            unit="s",
            description=(
                "Time from accepting a delivered batch's oldest event to the collector's "
                "2xx for it, recorded once per batch."
            ),
        )
        self.body_size = meter.create_histogram(
            "htevents.client.request.body.size",
            unit="By",
            description="Size of each batch request body, after compression.",
        )

    def add(self, client: Client, attributes: _Attributes) -> None:
        with self._lock:
            self._clients[client] = attributes

    def _callback(self, read: _Read) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterator[Observation]:
            # On the reader's thread: statistics() reads plain counters, never the loop.
            with self._lock:
                clients = list(self._clients.items())
            totals: dict[_Attributes, int] = {}
            for client, base in clients:
                for extra, value in read(client.statistics()):
                    key = base + extra
                    totals[key] = totals.get(key, 0) + value
            for key, value in totals.items():
                yield Observation(value, dict(key))

        return observe


_Read = Callable[[Statistics], Iterable[tuple[_Attributes, int]]]

_registries: weakref.WeakKeyDictionary[Any, _Instruments] = weakref.WeakKeyDictionary()
_registries_lock = threading.Lock()


def _instruments_for(provider: MeterProvider) -> _Instruments:
    with _registries_lock:
        instruments = _registries.get(provider)
        if instruments is None:
            instruments = _registries[provider] = _Instruments(provider)
        return instruments


def instrument(
    client: Client | SyncClient,
    *,
    meter_provider: MeterProvider | None = None,
    name: str = "default",
) -> None:
    """Report ``client``'s figures (a :class:`Client` or a :class:`SyncClient`) as
    OpenTelemetry metrics (see the module docs).

    ``meter_provider`` defaults to the global one (``metrics.get_meter_provider()``).
    ``name`` tells several clients apart in the ``htevents.client.name`` attribute.
    Calling it again for the same client and provider changes nothing but the name.
    """
    if isinstance(client, SyncClient):
        client = client._client  # the engine behind it
    if not isinstance(client, Client):
        raise TypeError(
            f"instrument() needs an htevents_async.Client or SyncClient, got {client!r}"
        )
    provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
    instruments = _instruments_for(provider)
    host = urlsplit(client.config.url).hostname or ""
    base: _Attributes = (("server.address", host), ("htevents.client.name", name))
    already = client in instruments._clients
    instruments.add(client, base)
    if already:
        return
    common = dict(base)

    def record(attempt: Attempt) -> None:
        attributes: dict[str, Any] = dict(common)
        if attempt.status is not None:
            attributes["http.response.status_code"] = attempt.status
        if attempt.status is None or not is_success(attempt.status):
            error = attempt.error or ""
            attributes["error.type"] = (
                str(attempt.status) if attempt.status is not None else error.split(":", 1)[0]
            )
        instruments.duration.record(attempt.duration, attributes)
        instruments.body_size.record(attempt.body_bytes, attributes)

    client._attempt_observers.append(record)
    client._delivery_observers.append(
        lambda count, seconds: instruments.delivery.record(seconds, common)
    )
    client._flusher_scope = _suppressing_scope()
