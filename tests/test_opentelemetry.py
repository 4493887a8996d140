"""OpenTelemetry metrics, read with the SDK's in-memory reader on a thread of its own."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from faultserver import FaultServer, Respond
from support import FAST, WRITE_KEY, client_for

from htevents_async import Client, Track
from htevents_async._collector import LocalCollector

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from htevents_async.integrations.opentelemetry import instrument

pytestmark = pytest.mark.anyio


class Metrics:
    """A meter provider with an in-memory reader, and the figures it collected."""

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(metric_readers=[self.reader])

    async def collect(self) -> dict[str, list[Any]]:
        """Collect on another thread, as a periodic reader would: name -> data points."""
        data = await asyncio.to_thread(self.reader.get_metrics_data)
        found: dict[str, list[Any]] = {}
        assert data is not None
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    found[metric.name] = list(metric.data.data_points)
        return found

    async def value(self, name: str, **attributes: Any) -> int:
        """The sum of a counter's points whose attributes include ``attributes``."""
        return total(await self.collect(), name, **attributes)


def total(found: dict[str, list[Any]], name: str, **attributes: Any) -> int:
    """The sum of the points of ``name`` in one collection whose attributes include these."""
    points = found.get(name, [])
    return sum(p.value for p in points if attributes.items() <= dict(p.attributes).items())


async def test_a_thousand_events_delivered(collector: LocalCollector) -> None:
    """Accepted and delivered read 1,000; requests, bytes and both histograms add up."""
    metrics = Metrics()
    client = Client(WRITE_KEY, host=collector.url, **FAST)
    instrument(client, meter_provider=metrics.provider, name="shop")
    started = time.monotonic()
    async with client:
        for i in range(1000):
            await client.track(user_id=str(i), event="e")
        assert await client.flush() == 0
        stats = client.statistics()
    elapsed = time.monotonic() - started
    assert await metrics.value("htevents.client.events.accepted") == 1000
    assert (
        await metrics.value("htevents.client.events.delivered", **{"htevents.client.name": "shop"})
        == 1000
    )
    assert await metrics.value("htevents.client.requests") == stats.requests
    assert await metrics.value("htevents.client.request.bytes") == stats.bytes_sent
    found = await metrics.collect()
    [duration] = found["htevents.client.request.duration"]
    assert duration.count == stats.attempts
    assert duration.attributes["http.response.status_code"] == 200
    assert duration.attributes["server.address"] == "127.0.0.1"
    [size] = found["htevents.client.request.body.size"]
    assert size.sum == stats.bytes_sent
    # Accepted to 2xx, once per delivered batch: positive, and no longer than the test.
    [delivery] = found["htevents.client.delivery.duration"]
    assert delivery.count == stats.batches_delivered
    assert 0 < delivery.min <= delivery.max < elapsed


async def test_a_500_then_a_success() -> None:
    """One retry: the 500 shows in the duration histogram with its error.type."""
    metrics = Metrics()
    async with FaultServer(Respond(500)) as server:
        client = client_for(server.url)
        instrument(client, meter_provider=metrics.provider)
        async with client:
            await client.track(user_id="u", event="e")
            assert await client.flush() == 0
    assert await metrics.value("htevents.client.events.delivered") == 1
    assert await metrics.value("htevents.client.retries") == 1
    assert await metrics.value("htevents.client.attempts") == 2
    points = (await metrics.collect())["htevents.client.request.duration"]
    by_status = {p.attributes["http.response.status_code"]: p for p in points}
    assert by_status[500].attributes["error.type"] == "500"
    assert "error.type" not in by_status[200].attributes
    assert by_status[500].count == by_status[200].count == 1


async def test_a_queue_full_drop(collector: LocalCollector) -> None:
    """Events the full queue turned away are counted under their reason."""
    metrics = Metrics()
    client = Client(WRITE_KEY, host=collector.url, max_queue_size=2, max_batch_size=2, **FAST)
    instrument(client, meter_provider=metrics.provider)
    async with client:
        # Handed over in one go: the loop runs all ten hand-offs before the flusher.
        for _ in range(10):
            client.enqueue_threadsafe(Track(user_id="u", event="e"))
        await client.flush()
        dropped = client.statistics().dropped.get("queue_full", 0)
    assert dropped > 0
    got = await metrics.value(
        "htevents.client.events.dropped", **{"htevents.drop.reason": "queue_full"}
    )
    assert got == dropped
    assert await metrics.value("htevents.client.events.accepted") == 10


async def test_a_plugin_drop(collector: LocalCollector) -> None:
    """An event a before_send plugin refused counts as dropped, reason filtered."""
    metrics = Metrics()
    client = Client(WRITE_KEY, host=collector.url, before_send=lambda e: None, **FAST)
    instrument(client, meter_provider=metrics.provider)
    async with client:
        await client.track(user_id="u", event="e")
    assert (
        await metrics.value(
            "htevents.client.events.dropped", **{"htevents.drop.reason": "filtered"}
        )
        == 1
    )
    assert await metrics.value("htevents.client.events.delivered") == 0


async def test_queued_and_in_flight_are_up_down_counters(collector: LocalCollector) -> None:
    """Before the flusher runs, queued reads the waiting events; after, zero."""
    metrics = Metrics()
    client = Client(WRITE_KEY, host=collector.url, **{**FAST, "flush_interval": 60})
    instrument(client, meter_provider=metrics.provider)
    async with client:
        for _ in range(3):
            await client.track(user_id="u", event="e")
        # One collection: the flusher may move events from queued to in flight meanwhile.
        found = await metrics.collect()
        pending = total(found, "htevents.client.events.queued") + total(
            found, "htevents.client.events.in_flight"
        )
        assert pending == 3
        assert await client.flush() == 0
        assert await metrics.value("htevents.client.events.queued") == 0


async def test_two_clients_are_told_apart_by_name(collector: LocalCollector) -> None:
    """Clients on one provider each report under their own name."""
    metrics = Metrics()
    first = Client(WRITE_KEY, host=collector.url, **FAST)
    second = Client(WRITE_KEY, host=collector.url, **FAST)
    instrument(first, meter_provider=metrics.provider, name="a")
    instrument(second, meter_provider=metrics.provider, name="b")
    async with first, second:
        await first.track(user_id="u", event="e")
        for _ in range(2):
            await second.track(user_id="u", event="e")
    accepted = "htevents.client.events.accepted"
    assert await metrics.value(accepted, **{"htevents.client.name": "a"}) == 1
    assert await metrics.value(accepted, **{"htevents.client.name": "b"}) == 2


async def test_a_sync_client(collector: LocalCollector) -> None:
    """A SyncClient reports through the client behind it."""
    from htevents_async import SyncClient

    metrics = Metrics()

    def record() -> None:
        with SyncClient(WRITE_KEY, host=collector.url, **FAST) as events:
            instrument(events, meter_provider=metrics.provider)
            for _ in range(5):
                events.track(user_id="u", event="e")
            assert events.flush() == 0

    await asyncio.to_thread(record)
    assert await metrics.value("htevents.client.events.delivered") == 5


def test_instrument_needs_a_client() -> None:
    """Anything else is a TypeError."""
    with pytest.raises(TypeError, match=r"needs an htevents_async\.Client or SyncClient"):
        instrument(object())  # type: ignore[arg-type]


async def test_uploads_stay_out_of_the_applications_traces(collector: LocalCollector) -> None:
    """With httpx instrumented, our batch requests make no spans; the app's requests still do."""
    pytest.importorskip("opentelemetry.instrumentation.httpx")
    import httpx
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    instrumentor = HTTPXClientInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        for instrumented in (False, True):
            spans.clear()
            client = Client(WRITE_KEY, host=collector.url, **FAST)
            if instrumented:
                instrument(client, meter_provider=Metrics().provider)
            async with client, httpx.AsyncClient() as app_http:
                await client.track(user_id="u", event="e")
                assert await client.flush() == 0
                await app_http.get(f"{collector.url}/stats")
            urls = [
                str(span.attributes.get("url.full", span.attributes.get("http.url")))
                for span in spans.get_finished_spans()
            ]
            uploads = [url for url in urls if url.endswith("/v1/batch")]
            assert any(url.endswith("/stats") for url in urls), urls
            assert bool(uploads) is not instrumented, urls
    finally:
        instrumentor.uninstrument()
