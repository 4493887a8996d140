"""Delivery hooks and per-call callbacks: called with the outcome, never able to stop delivery."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from faultserver import FaultServer, ReceivedRequest, Respond
from support import client_for, eventually

from htevents_async import Batch, DeliveryError, HTTPStatusError

pytestmark = pytest.mark.anyio


async def send_batches(client: Any, batches: int, size: int = 5) -> list[str]:
    """Track ``batches`` batches of ``size`` events, flushing after each; return the ids."""
    ids = []
    for _ in range(batches):
        ids += [await client.track(user_id="u", event="e") for _ in range(size)]
        assert await client.flush() == 0
    return ids


async def test_on_success_receives_each_delivered_batch() -> None:
    """on_success gets a Batch exposing the message ids and the decoded messages."""
    batches: list[Batch] = []
    async with FaultServer() as server, client_for(server.url, on_success=batches.append) as c:
        ids = await send_batches(c, 2)
    assert [mid for batch in batches for mid in batch.message_ids] == ids
    assert [m["messageId"] for m in batches[0].messages] == ids[:5]
    assert all(m["event"] == "e" for batch in batches for m in batch)


async def test_callback_is_called_once_with_the_outcome() -> None:
    """A per-call callback gets (message_id, None) on delivery and the error on failure."""
    outcomes: list[tuple[str, DeliveryError | None]] = []

    def script(request: ReceivedRequest) -> Respond:
        return Respond(400) if request.batch[0]["event"] == "bad" else Respond(200)

    def record(message_id: str, error: DeliveryError | None) -> None:
        outcomes.append((message_id, error))

    async with FaultServer() as server, client_for(server.url) as client:
        server.script = script
        good = await client.track(user_id="u", event="good", callback=record)
        assert await client.flush() == 0
        bad = await client.track(user_id="u", event="bad", callback=record)
        assert await client.flush() == 0
    assert [mid for mid, _ in outcomes] == [good, bad]
    assert outcomes[0][1] is None
    assert isinstance(outcomes[1][1], HTTPStatusError)


async def test_raising_sync_hooks_do_not_stop_delivery(caplog: pytest.LogCaptureFixture) -> None:
    """on_success, on_failure and callbacks that raise are logged; later batches still go out."""
    caplog.set_level(logging.ERROR, logger="htevents_async")

    def boom(*_: object) -> None:
        raise RuntimeError("hook bug")

    def script(request: ReceivedRequest) -> Respond:
        return Respond(400) if request.index == 0 else Respond(200)

    async with (
        FaultServer() as server,
        client_for(server.url, on_success=boom, on_failure=boom) as client,
    ):
        server.script = script
        await client.track(user_id="u", event="e", callback=boom)
        assert await client.flush() == 0
        ids = await send_batches(client, 3)
        stats = client.statistics()
    assert sorted(server.delivered_ids()) == sorted(ids)
    assert (stats.delivered, stats.failed) == (15, 1)
    raised = [r.getMessage() for r in caplog.records if "hook raised" in r.getMessage()]
    assert any("on_failure" in m for m in raised)
    assert any("on_success" in m for m in raised)
    assert any("callback" in m for m in raised)


async def test_raising_async_hook_does_not_stop_delivery(caplog: pytest.LogCaptureFixture) -> None:
    """An async on_success that raises is logged; every batch is still delivered."""
    caplog.set_level(logging.ERROR, logger="htevents_async")
    calls = 0

    async def boom(_: Batch) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("async hook bug")

    async with FaultServer() as server, client_for(server.url, on_success=boom) as client:
        ids = await send_batches(client, 3)
        await eventually(lambda: calls == 3, what="three hook calls")
    assert sorted(server.delivered_ids()) == sorted(ids)
    assert any("on_success hook raised" in r.getMessage() for r in caplog.records)


async def test_hanging_async_hook_is_cancelled_after_hook_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A hook awaiting forever does not stall delivery; it is cancelled and logged on time."""
    caplog.set_level(logging.ERROR, logger="htevents_async")
    loop = asyncio.get_running_loop()
    started: list[float] = []
    cancelled: list[float] = []

    async def hang(_: Batch) -> None:
        started.append(loop.time())
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.append(loop.time())

    async with (
        FaultServer() as server,
        client_for(server.url, on_success=hang, hook_timeout=0.2) as client,
    ):
        # Delivery goes on while the first hook calls hang.
        ids = await send_batches(client, 4)
        assert sorted(server.delivered_ids()) == sorted(ids)
        await eventually(lambda: len(cancelled) == 4, what="the hooks to be cancelled")
    assert all(end - start >= 0.2 - 0.05 for start, end in zip(started, cancelled, strict=True))
    logged = [r for r in caplog.records if "ran past 0.2 s and was cancelled" in r.getMessage()]
    assert len(logged) == 4


async def test_hook_that_ignores_cancellation_does_not_hold_aclose() -> None:
    """aclose() keeps its deadline even when a hook swallows its cancellation."""
    loop = asyncio.get_running_loop()
    release = asyncio.Event()

    async def stubborn(_: Batch) -> None:
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue

    async with FaultServer() as server:
        client = client_for(server.url, on_success=stubborn, hook_timeout=0.1)
        await send_batches(client, 1)
        started = loop.time()
        await client.aclose(timeout=0.3)
        assert loop.time() - started <= 0.3 + 1.0
        release.set()
