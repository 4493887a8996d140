"""Starting, closing and misuse: clear errors, idempotent close, one loop per client."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from htevents_async import Client as HtClient
from htevents_async import (
    ClientClosedError,
    ClientStateError,
    MessageError,
    Track,
    WrongEventLoopError,
)
from htevents_async._collector import LocalCollector


async def test_enqueue_after_close_raises_runtime_error(collector: LocalCollector) -> None:
    """A closed client refuses new events with a RuntimeError subclass."""
    client = HtClient("wk", host=collector.url)
    await client.aclose()
    with pytest.raises(ClientClosedError) as caught:
        await client.track(user_id="1", event="late")
    assert isinstance(caught.value, RuntimeError)


async def test_reentering_a_closed_client_raises(collector: LocalCollector) -> None:
    """async with on a closed client is refused, not silently reopened."""
    async with HtClient("wk", host=collector.url) as client:
        pass
    with pytest.raises(ClientClosedError):
        async with client:
            pass


async def test_aclose_is_idempotent(collector: LocalCollector) -> None:
    """Closing twice, or concurrently, is safe."""
    client = HtClient("wk", host=collector.url)
    await client.track(user_id="1", event="e")
    results = await asyncio.gather(client.aclose(), client.aclose())
    assert results == [0, 0]
    assert await client.aclose() == 0
    assert collector.stats().messages == 1


def test_second_event_loop_is_refused() -> None:
    """A client bound to one loop raises a clear RuntimeError on another."""
    client = HtClient("wk", host="http://127.0.0.1:9", disable=True)

    async def use() -> None:
        await client.track(user_id="1", event="e")

    asyncio.run(use())
    with pytest.raises(WrongEventLoopError, match="another event loop"):
        asyncio.run(use())


async def test_disable_validates_then_drops_without_network() -> None:
    """disable=True still raises on bad input, sends nothing and counts the drops."""
    async with HtClient("wk", host="http://127.0.0.1:9", disable=True) as client:
        await client.track(user_id="1", event="ok")
        with pytest.raises(MessageError):
            await client.track(user_id="1", event="")
    stats = client.statistics()
    assert stats.dropped == {"disabled": 1}
    assert stats.requests == 0


async def test_injected_http_client_is_used_and_left_open(collector: LocalCollector) -> None:
    """A user's httpx.AsyncClient carries the requests and is not closed for them."""
    async with httpx.AsyncClient() as http:
        async with HtClient("wk", host=collector.url, http_client=http) as client:
            await client.track(user_id="1", event="injected")
        assert not http.is_closed
    assert collector.stats().messages == 1


async def test_enqueue_takes_message_objects(collector: LocalCollector) -> None:
    """enqueue() sends a prepared message and returns its id."""
    async with HtClient("wk", host=collector.url) as client:
        message_id = await client.enqueue(Track(event="prepared", user_id="1", message_id="m-9"))
    assert message_id == "m-9"
    [message] = collector.messages()
    assert message["event"] == "prepared"


async def test_enqueue_refuses_other_objects(collector: LocalCollector) -> None:
    """A dict is not a message: the error says what is expected."""
    async with HtClient("wk", host=collector.url) as client:
        with pytest.raises(TypeError, match="Identify, Track"):
            await client.enqueue({"type": "track"})  # type: ignore[arg-type]


async def test_threadsafe_enqueue_needs_a_started_client() -> None:
    """enqueue_threadsafe before the client is started explains what to do."""
    client = HtClient("wk", host="http://127.0.0.1:9")
    with pytest.raises(ClientStateError, match="async with"):
        client.enqueue_threadsafe(Track(event="e", user_id="1"))


async def test_threadsafe_enqueue_from_worker_thread(collector: LocalCollector) -> None:
    """Sync code in a worker thread records events without touching the loop."""
    async with HtClient("wk", host=collector.url) as client:

        def sync_handler() -> str:
            return client.enqueue_threadsafe(Track(event="from thread", user_id="t"))

        message_id = await asyncio.to_thread(sync_handler)
    [message] = collector.messages()
    assert message["messageId"] == message_id


async def test_repr_hides_the_write_key(collector: LocalCollector) -> None:
    """The write key never shows in a repr."""
    client = HtClient("wk_very_secret", host=collector.url)
    assert "wk_very_secret" not in repr(client)
    await client.aclose()
