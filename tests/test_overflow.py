"""A full queue: dropped events are counted and reported, waiting enqueues are bounded."""

from __future__ import annotations

import asyncio
import logging

import pytest
from faultserver import FaultServer, Hang
from support import assert_accounted, client_for, eventually

from htevents_async import Batch, DeliveryError, DroppedError, QueueFullError
from htevents_async._collector import LocalCollector

pytestmark = pytest.mark.anyio


async def test_drop_policy_counts_warns_once_and_calls_on_drop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Past max_queue_size new events are dropped: counted, one warning, on_drop per event."""
    caplog.set_level(logging.WARNING, logger="htevents_async")
    dropped: list[tuple[Batch, str]] = []
    outcomes: dict[str, DeliveryError | None] = {}

    def record(message_id: str, error: DeliveryError | None) -> None:
        outcomes[message_id] = error

    async with (
        FaultServer(Hang()) as server,
        client_for(
            server.url,
            request_timeout=0.5,
            max_queue_size=10,
            max_batch_size=10,
            max_concurrent_requests=1,
            on_drop=lambda batch, reason: dropped.append((batch, reason)),
        ) as client,
    ):
        # One batch hangs on the server and the next, full, waits in the flusher for
        # its request slot: the queue behind them can only fill up.
        first = [await client.track(user_id="u", event="e", callback=record)]
        await server.wait_for_requests(1)
        first += [await client.track(user_id="u", event="e", callback=record) for _ in range(10)]
        await eventually(lambda: client.statistics().queued == 0, what="the next batch")
        queued = [await client.track(user_id="u", event="e", callback=record) for _ in range(10)]
        over = [await client.track(user_id="u", event="e", callback=record) for _ in range(15)]
        stats = client.statistics()
        assert stats.dropped == {"queue_full": 15}
        assert (stats.accepted, stats.queued) == (len(first) + 25, 10)
        assert await client.flush() == 0
    # The hung request timed out and was retried: everything accepted arrived.
    assert sorted(set(server.delivered_ids())) == sorted(first + queued)
    assert [reason for _, reason in dropped] == ["queue_full"] * 15
    assert [mid for batch, _ in dropped for mid in batch.message_ids] == over
    assert all(isinstance(outcomes[mid], DroppedError) for mid in over)
    assert all(outcomes[mid] is None for mid in first + queued)
    warnings = [r for r in caplog.records if "(queue_full)" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert_accounted(client.statistics())


async def test_wait_policy_raises_queue_full_after_enqueue_timeout() -> None:
    """With overflow="wait" a full queue makes the call wait enqueue_timeout, then raise."""
    async with FaultServer(then=Hang()) as server:
        client = client_for(
            server.url,
            request_timeout=60.0,
            max_queue_size=3,
            max_batch_size=3,
            max_concurrent_requests=1,
            overflow="wait",
            enqueue_timeout=0.2,
        )
        await client.track(user_id="u", event="in flight")
        await server.wait_for_requests(1)
        for _ in range(3):
            await client.track(user_id="u", event="waiting for a slot")
        await eventually(lambda: client.statistics().queued == 0, what="the flusher")
        for _ in range(3):
            await client.track(user_id="u", event="queued")
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(QueueFullError, match="enqueue_timeout"):
            await client.track(user_id="u", event="refused")
        assert 0.2 - 0.05 <= loop.time() - started <= 0.2 + 1.0
        stats = client.statistics()
        assert stats.accepted == 1 + 3 + 3
        assert "queue_full" not in stats.dropped
        await client.aclose(timeout=0)
        assert_accounted(client.statistics())


async def test_wait_policy_loses_nothing_in_a_100k_burst() -> None:
    """100,000 events through a 1,000-event queue with overflow="wait" all arrive."""
    count = 100_000
    async with LocalCollector(max_messages=count) as collector:
        # 500-event batches keep the collector's per-request cost from dominating the
        # run; the queue is still a hundredth of the burst.
        async with client_for(
            collector.url, max_queue_size=1_000, max_batch_size=500, overflow="wait", gzip=True
        ) as client:
            ids = [await client.track(user_id="u", event="burst") for _ in range(count)]
            assert await client.flush(timeout=60.0) == 0
            stats = client.statistics()
        assert (stats.accepted, stats.delivered, stats.dropped) == (count, count, {})
        await collector.wait_for(count, timeout=30.0)
        received = [message["messageId"] for message in collector.messages()]
        assert len(received) == count
        assert set(received) == set(ids)
