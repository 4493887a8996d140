"""Edge cases of batching, closing and threads, each once a bug."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from htevents_async import Client, Track
from htevents_async._collector import LocalCollector
from htevents_async._retry import parse_retry_after


async def wait_until(condition: object) -> None:
    """Yield to the loop until ``condition()`` holds (bounded by the test timeout)."""
    # The statistics have no event to wait on; one loop turn per check.
    while not condition():  # type: ignore[operator]  # noqa: ASYNC110
        await asyncio.sleep(0)


async def test_batch_full_with_events_already_in_hand_is_sent_at_once(
    collector: LocalCollector,
) -> None:
    """A batch filled while the flusher holds its first event does not wait for the interval."""
    async with Client("wk", host=collector.url, max_batch_size=2, flush_interval=3600) as client:
        await client.track(user_id="1", event="first")
        await wait_until(lambda: client.statistics().in_flight == 1)
        await client.track(user_id="1", event="second")
        await collector.wait_for(2, timeout=30)


async def test_threadsafe_events_handed_over_before_close_are_delivered(
    collector: LocalCollector,
) -> None:
    """Events another thread encoded before aclose() are flushed, not dropped."""
    client = Client("wk", host=collector.url)
    async with client:
        pass_through = [Track(event="late", user_id=str(i)) for i in range(5)]

        def from_thread() -> None:
            for message in pass_through:
                client.enqueue_threadsafe(message)

        await asyncio.to_thread(from_thread)
    await collector.wait_for(5)
    assert client.statistics().dropped == {}


async def test_threadsafe_enqueue_checks_the_message_type(collector: LocalCollector) -> None:
    """A non-message is a clear TypeError in the calling thread, not an AttributeError."""
    async with Client("wk", host=collector.url) as client:
        with pytest.raises(TypeError, match="Identify, Track"):
            client.enqueue_threadsafe("track")  # type: ignore[arg-type]


@pytest.mark.parametrize("timeout", [-1, float("nan"), "5"])
async def test_flush_timeout_is_validated(collector: LocalCollector, timeout: object) -> None:
    """flush() refuses a negative, NaN or non-numeric timeout."""
    async with Client("wk", host=collector.url) as client:
        with pytest.raises(ValueError, match=r"flush\(\) timeout"):
            await client.flush(timeout)  # type: ignore[arg-type]


async def test_flush_and_aclose_take_timedelta(collector: LocalCollector) -> None:
    """Timeouts accept a timedelta, like the options do."""
    client = Client("wk", host=collector.url)
    await client.track(user_id="1", event="e")
    assert await client.flush(dt.timedelta(seconds=10)) == 0
    assert await client.aclose(dt.timedelta(seconds=10)) == 0


def test_retry_after_date_in_unknown_zone_is_utc() -> None:
    """An HTTP-date with -0000 is read as UTC, not local time."""
    now = dt.datetime(2026, 11, 22, 12, 0, 0, tzinfo=dt.timezone.utc).timestamp()
    assert parse_retry_after("Sun, 22 Nov 2026 12:00:30 -0000", now=now) == 30.0


async def test_aclose_is_bounded_by_a_hook_that_ignores_cancellation(
    collector: LocalCollector,
) -> None:
    """A hook that swallows its cancellation cannot stretch aclose() past its deadline."""
    release = asyncio.Event()

    async def stubborn(batch: object) -> None:
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue

    client = Client("wk", host=collector.url, on_success=stubborn, hook_timeout=60)
    loop = asyncio.get_running_loop()
    await client.track(user_id="1", event="e")
    await client.flush()
    started = loop.time()
    await client.aclose(timeout=0.2)
    elapsed = loop.time() - started
    release.set()
    await asyncio.sleep(0)
    assert elapsed < 5.0  # generous: the bound is the timeout plus a 0.1 s grace


async def test_a_producer_that_only_drops_still_lets_delivery_run(
    collector: LocalCollector,
) -> None:
    """Once the queue is full, dropping calls still yield, so the queue keeps draining."""
    async with Client(
        "wk", host=collector.url, max_queue_size=100, max_batch_size=10, flush_interval=0.01
    ) as client:
        for i in range(3000):
            await client.track(user_id=str(i), event="burst")
        stats = client.statistics()
    assert stats.accepted - stats.dropped.get("queue_full", 0) > 2 * 100
