"""Bounded waits: flush() and aclose() keep their deadlines whatever the collector does."""

from __future__ import annotations

import asyncio
import gc
import logging

import anyio
import pytest
from faultserver import FaultServer, Hang, Respond
from support import WRITE_KEY, assert_accounted, client_for, eventually

from htevents_async import (
    Batch,
    Client,
    ClientClosedError,
    DeliveryError,
    ShutdownError,
)

pytestmark = pytest.mark.anyio

# Deadlines are checked on the loop clock with room for a slow, busy CI machine.
MARGIN = 1.0


async def test_flush_returns_at_its_deadline_while_the_server_never_answers() -> None:
    """flush(timeout) returns the pending count once the timeout passes, without waiting more."""
    async with FaultServer(then=Hang()) as server:
        client = client_for(server.url, request_timeout=60.0)
        ids = [await client.track(user_id="u", event="e") for _ in range(7)]
        await server.wait_for_requests(1)
        loop = asyncio.get_running_loop()
        started = loop.time()
        pending = await client.flush(timeout=0.3)
        elapsed = loop.time() - started
        assert pending == len(ids)
        assert 0.3 - 0.05 <= elapsed <= 0.3 + MARGIN
        await client.aclose(timeout=0.1)


async def test_aclose_returns_at_its_deadline_while_the_server_never_answers() -> None:
    """aclose(timeout) interrupts a hung request at the deadline and reports it as shutdown."""
    async with FaultServer(then=Hang()) as server:
        client = client_for(server.url, request_timeout=60.0)
        for _ in range(7):
            await client.track(user_id="u", event="e")
        await server.wait_for_requests(1)
        loop = asyncio.get_running_loop()
        started = loop.time()
        dropped = await client.aclose(timeout=0.3)
        assert loop.time() - started <= 0.3 + MARGIN
        assert dropped == 7
        stats = client.statistics()
        assert stats.dropped == {"shutdown": 7}
        assert stats.pending == 0
        assert_accounted(stats)


async def test_aclose_deadline_logs_what_was_dropped(caplog: pytest.LogCaptureFixture) -> None:
    """Events still pending at the close deadline are named in a warning."""
    caplog.set_level(logging.WARNING, logger="htevents_async")
    async with FaultServer(then=Hang()) as server:
        client = client_for(server.url, request_timeout=60.0)
        for _ in range(3):
            await client.track(user_id="u", event="e")
        await server.wait_for_requests(1)
        await client.aclose(timeout=0.1)
    assert any("dropped {'shutdown': 3}" in r.getMessage() for r in caplog.records)


async def test_aclose_interrupts_a_long_retry_after_sleep() -> None:
    """A Retry-After of an hour does not hold aclose() past its deadline."""
    async with FaultServer(then=Respond(503, retry_after="3600")) as server:
        client = client_for(server.url, retry_after_max=3600.0, max_retry_time=7200.0)
        await client.track(user_id="u", event="e")
        await server.wait_for_requests(1)
        await eventually(lambda: client.statistics().requests == 1, what="the 503 to be seen")
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await client.aclose(timeout=0.2) == 1
        assert loop.time() - started <= 0.2 + MARGIN
        assert client.statistics().dropped == {"shutdown": 1}


async def test_flush_returns_at_its_deadline_during_a_backoff_sleep() -> None:
    """flush(timeout) does not wait out a long backoff; the event is still pending after it."""
    async with FaultServer(then=Respond(500)) as server:
        client = client_for(
            server.url, backoff_initial=3600.0, backoff_max=3600.0, max_retry_time=7200.0
        )
        await client.track(user_id="u", event="e")
        await server.wait_for_requests(1)
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await client.flush(timeout=0.2) == 1
        assert loop.time() - started <= 0.2 + MARGIN
        assert await client.aclose(timeout=0.1) == 1


async def test_shutdown_drops_reach_callbacks_and_hooks() -> None:
    """Queued and in-flight events cut off by the deadline get ShutdownError, never silence."""
    outcomes: dict[str, DeliveryError | None] = {}
    failed: list[Batch] = []
    dropped: list[tuple[Batch, str]] = []
    async with FaultServer(then=Hang()) as server:
        client = client_for(
            server.url,
            request_timeout=60.0,
            max_batch_size=2,
            max_concurrent_requests=1,
            on_failure=lambda batch, _: failed.append(batch),
            on_drop=lambda batch, reason: dropped.append((batch, reason)),
        )

        def record(message_id: str, error: DeliveryError | None) -> None:
            outcomes[message_id] = error

        ids = [await client.track(user_id="u", event="e", callback=record) for _ in range(6)]
        await server.wait_for_requests(1)
        assert await client.aclose(timeout=0.1) == 6
    assert set(outcomes) == set(ids)
    assert all(isinstance(error, ShutdownError) for error in outcomes.values())
    # The hung batch had an attempt (on_failure); the rest never left the client (on_drop).
    reported = [mid for b in failed for mid in b.message_ids]
    reported += [mid for b, reason in dropped if reason == "shutdown" for mid in b.message_ids]
    assert sorted(reported) == sorted(ids)


async def test_aclose_with_zero_timeout_accounts_for_every_event() -> None:
    """aclose(timeout=0) cuts everything off but loses no event from the statistics."""
    async with FaultServer(then=Hang()) as server:
        client = client_for(server.url, request_timeout=60.0, max_batch_size=5)
        for _ in range(23):
            await client.track(user_id="u", event="e")
        dropped = await client.aclose(timeout=0)
        stats = client.statistics()
        assert stats.pending == 0
        assert_accounted(stats)
        assert dropped == stats.dropped.get("shutdown", 0) == 23 - stats.delivered - stats.failed


async def test_aclose_with_zero_timeout_right_after_a_batch_is_dispatched() -> None:
    """A delivery task cancelled before it first runs still reports its events."""
    outcomes: list[DeliveryError | None] = []
    async with FaultServer(then=Hang()) as server:
        client = client_for(server.url, request_timeout=60.0, max_batch_size=5)
        await client.track(user_id="u", event="first")
        await client.flush(timeout=0)
        for _ in range(5):
            # A full batch: the flusher dispatches it on its next turn, then close cancels it.
            await client.track(user_id="u", event="e", callback=lambda _, e: outcomes.append(e))
        dropped = await client.aclose(timeout=0)
        stats = client.statistics()
        assert (stats.pending, stats.accepted) == (0, 6)
        assert_accounted(stats)
        assert dropped == 6
        assert len(outcomes) == 5
    del server


async def test_enqueue_waiting_for_room_when_the_client_closes_is_refused() -> None:
    """An enqueue still waiting for room when aclose() empties the queue raises, is not lost."""
    async with FaultServer(then=Hang()) as server:
        client = client_for(
            server.url,
            request_timeout=60.0,
            max_queue_size=2,
            max_batch_size=1,
            max_concurrent_requests=1,
            overflow="wait",
            enqueue_timeout=30.0,
        )
        await client.track(user_id="u", event="in flight")
        await server.wait_for_requests(1)
        # The next batch fills to the queue's size while it waits for the slot.
        for _ in range(2):
            await client.track(user_id="u", event="waiting for a slot")
        await eventually(lambda: client.statistics().queued == 0, what="the flusher")
        for _ in range(2):
            await client.track(user_id="u", event="queued")
        waiting = [asyncio.create_task(client.track(user_id="u", event="w")) for _ in range(3)]
        await anyio.wait_all_tasks_blocked()
        assert client.statistics().queued == 2
        loop = asyncio.get_running_loop()
        started = loop.time()
        accepted = 1 + 2 + 2
        assert await client.aclose(timeout=0.1) == accepted
        for task in waiting:
            with pytest.raises(ClientClosedError):
                await task
        # Refused promptly, not after enqueue_timeout.
        assert loop.time() - started <= 0.1 + MARGIN
        stats = client.statistics()
        assert (stats.accepted, stats.pending) == (accepted, 0)
        assert stats.dropped == {"shutdown": accepted}
        assert_accounted(stats)


async def test_flush_and_aclose_return_zero_when_everything_is_delivered() -> None:
    """With a healthy collector nothing is left over, and close is quick and idempotent."""
    async with FaultServer() as server:
        client = client_for(server.url)
        for _ in range(10):
            await client.track(user_id="u", event="e")
        assert await client.flush() == 0
        assert await client.aclose() == 0
        assert await client.aclose() == 0
        assert len(server.delivered_ids()) == 10


def test_unclosed_client_with_pending_events_warns_when_collected() -> None:
    """A client garbage-collected with pending events emits a ResourceWarning naming them."""

    async def forget_to_close() -> None:
        client = Client(WRITE_KEY, host="http://127.0.0.1:9", flush_interval=3600.0)
        for _ in range(3):
            await client.track(user_id="u", event="e")

    def run_then_collect() -> None:
        # The loop's shutdown cancels the flusher; collecting then finds the client.
        asyncio.run(forget_to_close())
        gc.collect()

    with pytest.warns(ResourceWarning, match="3 events not delivered"):
        run_then_collect()


def test_unclosed_client_without_pending_events_does_not_warn() -> None:
    """Nothing to lose, nothing to warn about."""

    async def use_and_flush() -> None:
        client = Client(WRITE_KEY, host="http://127.0.0.1:9", disable=True)
        await client.track(user_id="u", event="e")

    asyncio.run(use_and_flush())
    gc.collect()
