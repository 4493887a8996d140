"""Batches close by count, by bytes, by age, or on a flush request."""

from __future__ import annotations

import asyncio
import json

from htevents_async import Client
from htevents_async._collector import LocalCollector


def batch_sizes(collector: LocalCollector) -> list[int]:
    return [len(r.body["batch"]) for r in collector.requests if r.body is not None]


async def test_batches_close_at_max_batch_size(collector: LocalCollector) -> None:
    """Full batches go out without waiting for the interval."""
    async with Client("wk", host=collector.url, max_batch_size=10, flush_interval=3600) as client:
        for i in range(35):
            await client.track(user_id=i, event="counted")
            await asyncio.sleep(0)  # a producer that suspends, as request handlers do
        await collector.wait_for(30)
        assert batch_sizes(collector) == [10, 10, 10]
        assert await client.flush() == 0
    assert batch_sizes(collector) == [10, 10, 10, 5]


async def test_a_backlog_leaves_in_batches_as_full_as_the_caps(
    collector: LocalCollector,
) -> None:
    """Events already queued when a batch is due leave with it, up to 2,500 per request:
    a backlog goes out in few requests, and a flush of one too."""
    async with Client("wk", host=collector.url, max_batch_size=10, flush_interval=3600) as client:
        for i in range(6_000):
            await client.track(user_id=i, event="backlog")
        assert await client.flush() == 0
    sizes = batch_sizes(collector)
    assert sum(sizes) == 6_000
    assert max(sizes) <= 2_500
    assert len(sizes) < 6_000 // 10 // 4


async def test_batches_close_before_max_batch_bytes(collector: LocalCollector) -> None:
    """No request body exceeds max_batch_bytes; every event still arrives."""
    limit = 8 * 1024
    async with Client(
        "wk",
        host=collector.url,
        gzip=False,
        max_batch_bytes=limit,
        max_message_bytes=4 * 1024,
        flush_interval=3600,
    ) as client:
        for i in range(40):
            await client.track(user_id=i, event="sized", properties={"pad": "x" * 900})
    await collector.wait_for(40)
    assert all(r.body_size <= limit for r in collector.requests)
    assert len(collector.requests) >= 5
    assert sum(batch_sizes(collector)) == 40


async def test_batch_closes_when_oldest_event_ages(collector: LocalCollector) -> None:
    """A partial batch is sent once its oldest event is flush_interval old."""
    async with Client("wk", host=collector.url, flush_interval=0.05) as client:
        for i in range(3):
            await client.track(user_id=i, event="aged")
        await collector.wait_for(3)
        assert batch_sizes(collector) == [3]


async def test_flush_returns_after_everything_earlier_has_an_outcome(
    collector: LocalCollector,
) -> None:
    """When flush() returns 0, every earlier event is already at the collector."""
    async with Client("wk", host=collector.url, flush_interval=3600) as client:
        for i in range(250):
            await client.track(user_id=i, event="flushed")
        assert await client.flush(timeout=30) == 0
        assert collector.stats().messages == 250
        stats = client.statistics()
        assert (stats.delivered, stats.pending) == (250, 0)


async def test_flush_with_nothing_pending_returns_zero(collector: LocalCollector) -> None:
    """flush() on an idle or unstarted client returns at once."""
    client = Client("wk", host=collector.url)
    assert await client.flush() == 0
    async with client:
        assert await client.flush() == 0


async def test_leaving_async_with_delivers_5000_events(collector: LocalCollector) -> None:
    """Everything accepted inside the block is delivered on exit, with default options."""
    async with Client("wk", host=collector.url) as client:
        ids = [await client.track(user_id=i, event="exit") for i in range(5000)]
    assert collector.stats().messages == 5000
    assert {m["messageId"] for m in collector.messages()} == set(ids)
    stats = client.statistics()
    assert (stats.accepted, stats.delivered, stats.pending, stats.dropped) == (5000, 5000, 0, {})


async def test_statistics_count_requests_and_bytes(collector: LocalCollector) -> None:
    """Statistics agree with what the collector saw."""
    async with Client("wk", host=collector.url, max_batch_size=50) as client:
        for i in range(120):
            await client.track(user_id=i, event="stats")
            await asyncio.sleep(0)  # a producer that suspends: batches of 50, 50, 20
    stats = client.statistics()
    seen = collector.stats()
    assert stats.requests == seen.requests == 3
    assert stats.batches_delivered == 3
    assert stats.bytes_sent == seen.bytes_received
    assert stats.retries == stats.failed == 0


async def test_batch_body_is_valid_json_joined_from_encoded_events(
    collector: LocalCollector,
) -> None:
    """The joined body parses and keeps call order within a batch."""
    async with Client("wk", host=collector.url, gzip=False, flush_interval=3600) as client:
        for i in range(20):
            await client.track(user_id=i, event="ordered")
    [request] = collector.requests
    assert request.body is not None
    assert [m["userId"] for m in request.body["batch"]] == [str(i) for i in range(20)]
    assert json.loads(json.dumps(request.body)) == request.body
