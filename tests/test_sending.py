"""The sending path: what the counters say, and the defects a review of it found."""

from __future__ import annotations

import socket

from support import FAST, WRITE_KEY, eventually

from htevents_async import Client
from htevents_async._collector import LocalCollector


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_refused_connections_are_attempts_not_requests() -> None:
    """A refused connection counts as an attempt and a failure, never as a request or bytes."""
    client = Client(WRITE_KEY, host=f"http://127.0.0.1:{_closed_port()}", **FAST)
    async with client:
        await client.track(user_id="1", event="e")
        await eventually(lambda: client.statistics().attempts >= 3, what="refused attempts")
        stats = client.statistics()
        assert stats.requests == 0
        assert stats.bytes_sent == 0
        assert stats.consecutive_failures >= 3
        assert stats.last_error is not None
        assert stats.last_error.startswith("ConnectError")
        await client.aclose(timeout=0)


async def test_a_delivered_batch_resets_consecutive_failures(collector: LocalCollector) -> None:
    """Requests that reach the collector are counted with their bytes; success clears failures."""
    async with Client(WRITE_KEY, host=collector.url, **FAST) as client:
        await client.track(user_id="1", event="e")
        assert await client.flush() == 0
        stats = client.statistics()
    assert stats.requests == stats.attempts == 1
    assert stats.bytes_sent > 0
    assert stats.consecutive_failures == 0
    assert stats.last_error is None
