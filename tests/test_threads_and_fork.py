"""Sync code in other threads, and processes forked from one that already used the client."""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

import httpx
import pytest
from support import WRITE_KEY, assert_accounted, client_for, fork_and_report

from htevents_async import Client, ForkedClientError, MessageError, Track
from htevents_async._collector import LocalCollector

pytestmark = pytest.mark.anyio

THREADS = 8
PER_THREAD = 5_000


async def test_threadsafe_enqueue_from_8_threads_delivers_every_event() -> None:
    """8 threads x 5,000 enqueue_threadsafe() calls: every id arrives at the collector."""
    total = THREADS * PER_THREAD
    ids: list[list[str]] = [[] for _ in range(THREADS)]
    async with LocalCollector(max_messages=total) as collector:
        # A thread cannot wait for room, so the queue holds the whole burst: this
        # checks the hand-over, not the overflow policy.
        client = client_for(collector.url, max_queue_size=total, max_batch_size=500)
        async with client:
            start = threading.Barrier(THREADS)

            def produce(n: int) -> None:
                start.wait()
                out = ids[n]
                for i in range(PER_THREAD):
                    out.append(client.enqueue_threadsafe(Track(user_id=f"t{n}", event=f"e{i}")))

            threads = [threading.Thread(target=produce, args=(n,)) for n in range(THREADS)]
            for thread in threads:
                thread.start()
            await asyncio.to_thread(lambda: [thread.join() for thread in threads])
            assert await client.flush(timeout=60.0) == 0
            stats = client.statistics()
        sent = [mid for chunk in ids for mid in chunk]
        assert len(set(sent)) == total
        assert (stats.accepted, stats.delivered, stats.dropped) == (total, total, {})
        await collector.wait_for(total, timeout=30.0)
        assert {m["messageId"] for m in collector.messages()} == set(sent)


async def test_threadsafe_enqueue_raises_message_errors_in_the_calling_thread() -> None:
    """Validation and encoding happen in the caller's thread, so errors raise there."""
    async with LocalCollector() as collector, client_for(collector.url) as client:

        def bad() -> None:
            client.enqueue_threadsafe(Track(user_id="u", event="e", properties={"x": object()}))

        with pytest.raises(MessageError):
            await asyncio.to_thread(bad)
        assert client.statistics().accepted == 0


# -- forks ------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
async def test_forked_child_rebuilds_the_client_and_drops_inherited_events() -> None:
    """A forked child rebuilds the client: own events delivered, inherited ones dropped["fork"]."""
    # The parent's own delivery is unaffected, checked at the end.
    async with LocalCollector() as collector:
        client = client_for(collector.url, flush_interval=3600.0, max_batch_size=100)
        parent_ids = [await client.track(user_id="parent", event="e") for _ in range(5)]

        def child() -> dict[str, Any]:
            async def use_inherited_client() -> dict[str, Any]:
                ids = [await client.track(user_id="child", event="e") for _ in range(3)]
                pending = await client.flush(timeout=10.0)
                stats = client.statistics()
                dropped = await client.aclose(timeout=5.0)
                return {
                    "ids": ids,
                    "pending": pending,
                    "dropped": dict(stats.dropped),
                    "delivered": stats.delivered,
                    "close_dropped": dropped,
                }

            return asyncio.run(use_inherited_client())

        reported = await asyncio.to_thread(fork_and_report, child)
        assert "raised" not in reported, reported
        assert reported["pending"] == 0
        assert reported["dropped"] == {"fork": 5}
        assert reported["delivered"] == 3
        await collector.wait_for(3)
        child_ids = reported["ids"]
        assert {m["messageId"] for m in collector.messages()} == set(child_ids)
        # The parent still owns its events and delivers them itself; ids made on both
        # sides of the fork never collide.
        parent_ids += [await client.track(user_id="parent", event="e") for _ in range(3)]
        assert not set(parent_ids) & set(child_ids)
        assert await client.flush() == 0
        await client.aclose()
        await collector.wait_for(11)
        assert {m["messageId"] for m in collector.messages()} == set(child_ids + parent_ids)
        assert_accounted(client.statistics())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
async def test_client_created_before_fork_but_unused_works_in_the_child() -> None:
    """The gunicorn --preload shape: created at import in the master, first used in a worker."""
    async with LocalCollector() as collector:
        client = client_for(collector.url)

        def child() -> dict[str, Any]:
            async def worker() -> dict[str, Any]:
                ids = [await client.track(user_id="worker", event="e") for _ in range(4)]
                dropped = await client.aclose()
                stats = client.statistics()
                return {"ids": ids, "dropped": dict(stats.dropped), "closed_dropped": dropped}

            return asyncio.run(worker())

        reported = await asyncio.to_thread(fork_and_report, child)
        assert "raised" not in reported, reported
        assert (reported["dropped"], reported["closed_dropped"]) == ({}, 0)
        await collector.wait_for(4)
        assert {m["messageId"] for m in collector.messages()} == set(reported["ids"])
        # The master never used it, so it is still free to bind to the master's loop.
        await client.track(user_id="master", event="e")
        assert await client.aclose() == 0
        await collector.wait_for(5)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
async def test_forked_child_with_injected_http_client_raises() -> None:
    """A client given an http_client before the fork refuses to run in the child."""
    async with LocalCollector() as collector, httpx.AsyncClient() as http:
        client = Client(WRITE_KEY, host=collector.url, http_client=http)
        await client.track(user_id="parent", event="e")

        def child() -> dict[str, Any]:
            async def use() -> dict[str, Any]:
                await client.track(user_id="child", event="e")
                return {}

            return asyncio.run(use())

        reported = await asyncio.to_thread(fork_and_report, child)
        assert reported["raised"] == ForkedClientError.__name__
        assert "http_client" in reported["message"]
        assert await client.aclose() == 0
        await collector.wait_for(1)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
async def test_forked_child_does_not_wait_for_the_parents_hook_calls() -> None:
    """An async hook still running in the parent at fork time does not hold the child's aclose()."""
    hooked = asyncio.Event()

    async def slow_hook(_: object) -> None:
        hooked.set()
        await asyncio.Event().wait()

    async with LocalCollector() as collector:
        client = client_for(collector.url, on_success=slow_hook, hook_timeout=60.0)
        await client.track(user_id="parent", event="e")
        assert await client.flush() == 0
        await hooked.wait()

        def child() -> dict[str, Any]:
            async def use() -> dict[str, Any]:
                await client.track(user_id="child", event="e")
                loop = asyncio.get_running_loop()
                started = loop.time()
                dropped = await client.aclose(timeout=0.3)
                return {"dropped": dropped, "seconds": loop.time() - started}

            return asyncio.run(use())

        reported = await asyncio.to_thread(fork_and_report, child)
        assert "raised" not in reported, reported
        assert reported["dropped"] == 0
        assert reported["seconds"] <= 0.3 + 1.0
        await collector.wait_for(2)
        await client.aclose(timeout=0.1)
