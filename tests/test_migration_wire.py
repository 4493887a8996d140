"""What the peer SDKs do on the wire, as the migration guides state it.

Each peer's thread client (and posthog's ``AsyncClient``) talks to a scriptable
server on 127.0.0.1 (``faultserver.FaultServer``) or the local collector: which
answers it retries, how it treats ``Retry-After``, what a full queue does, what
a raising ``on_error`` does, and whether ``proxies`` is used. Versions: the bench
session's pins (see ``test_migration_examples.py``).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from faultserver import FaultServer, Hang, Respond
from migration_support import DEAD_PROXY, KEY
from servers import environment

from htevents_async._collector import LocalCollector

segment = pytest.importorskip("segment.analytics")
htevents = pytest.importorskip("hightouch.htevents")
rudder = pytest.importorskip("rudderstack.analytics")
posthog = pytest.importorskip("posthog")

pytestmark = [
    pytest.mark.anyio,
    # events-sdk-python stamps times with datetime.utcnow(), deprecated from Python 3.12.
    pytest.mark.filterwarnings("ignore:datetime.datetime.utcnow:DeprecationWarning"),
]


# -- what a client does on the wire (servers on 127.0.0.1) ------------------------------

THREAD_PEERS = ["segment", "hightouch", "rudderstack", "posthog"]


def _make(
    peer: str,
    url: str,
    *,
    retries: int,
    on_error: Callable[[Exception, list[Any]], None] | None = None,
    batch: int = 100,
    queue: int = 10_000,
    timeout: float = 15,
    **options: Any,
) -> Any:
    """A peer's thread client with the same settings under each peer's own option names."""
    if peer == "posthog":
        return posthog.Client(
            f"phc_{uuid.uuid4().hex}",
            host=url,
            max_retries=retries,
            on_error=on_error,
            flush_at=batch,
            flush_interval=0.05,
            max_queue_size=queue,
            timeout=timeout,
            **options,
        )
    client = {"segment": segment.Client, "hightouch": htevents.Client, "rudderstack": rudder.Client}
    return client[peer](
        KEY,
        host=url,
        max_retries=retries,
        on_error=on_error,
        upload_size=batch,
        upload_interval=0.05,
        max_queue_size=queue,
        timeout=timeout,
        **options,
    )


def _track(peer: str, client: Any, count: int = 1) -> list[bool]:
    """Record ``count`` events; whether each call reported it accepted."""
    if peer == "posthog":
        return [
            client.capture("Order completed", distinct_id="u1") is not None for _ in range(count)
        ]
    return [bool(client.track("u1", "Order completed")[0]) for _ in range(count)]


STATUS_OUTCOMES = [
    # (peer, status, requests with max_retries=1, reported to on_error)
    ("segment", 202, 1, False),
    ("segment", 300, 1, True),
    ("segment", 400, 1, True),
    ("segment", 408, 2, True),
    ("segment", 410, 2, True),
    ("segment", 413, 1, True),
    ("segment", 460, 2, True),
    ("segment", 500, 2, True),
    ("segment", 501, 1, True),
    ("segment", 505, 1, True),
    ("hightouch", 202, 2, True),
    ("hightouch", 408, 1, True),
    ("hightouch", 413, 1, True),
    ("hightouch", 501, 2, True),
    ("hightouch", 505, 2, True),
    ("rudderstack", 202, 2, True),
    ("rudderstack", 408, 1, True),
    ("rudderstack", 413, 1, True),
    ("rudderstack", 501, 2, True),
    ("rudderstack", 505, 2, True),
    ("posthog", 202, 2, True),
    ("posthog", 408, 2, True),
    ("posthog", 413, 1, True),
    ("posthog", 501, 2, True),
    ("posthog", 505, 2, True),
]


@pytest.mark.parametrize(("peer", "status", "requests_made", "reported"), STATUS_OUTCOMES)
async def test_which_answers_each_peer_retries(
    peer: str, status: int, requests_made: int, reported: bool
) -> None:
    """Only 200 is success for three of them (a 202 is retried, then failed); 501 is retried
    by all but Segment; 413 is final everywhere."""
    errors: list[Exception] = []
    # Every answer is the status under test, the retry's too.
    async with FaultServer(then=Respond(status)) as server:
        client = _make(peer, server.url, retries=1, on_error=lambda e, batch: errors.append(e))
        try:
            assert await asyncio.to_thread(_track, peer, client) == [True]
            await asyncio.to_thread(client.flush)
        finally:
            await asyncio.to_thread(client.shutdown)
    assert len(server.requests) == requests_made
    assert bool(errors) == reported


RETRY_AFTER = [
    # (peer, Retry-After the first answer carries, the least gap it waits before the retry)
    ("segment", "1", 1.0),  # honoured (capped at 300 s)
    ("posthog", "2", 2.0),  # honoured as a minimum (capped at 30 s)
    ("hightouch", "3600", 0.0),  # ignored: the retry comes on its own backoff
    ("rudderstack", "3600", 0.0),  # ignored
]


@pytest.mark.parametrize(("peer", "retry_after", "least_gap"), RETRY_AFTER)
async def test_how_each_peer_treats_retry_after(
    peer: str, retry_after: str, least_gap: float
) -> None:
    """A 429 with ``Retry-After``, then 200: who waits for it, and who retries regardless."""
    async with FaultServer(Respond(429, retry_after=retry_after), then=Respond(200)) as server:
        client = _make(peer, server.url, retries=1)
        try:
            await asyncio.to_thread(_track, peer, client)
            await asyncio.wait_for(asyncio.to_thread(client.flush), 60)
        finally:
            await asyncio.to_thread(client.shutdown)
    first, second = server.requests
    assert (first.status, second.status) == (429, 200)
    # A lower bound only: the peer must have slept at least this long.
    assert second.at - first.at >= least_gap - 0.05


@pytest.mark.parametrize("peer", ["segment", "hightouch", "rudderstack"])
def test_a_full_queue_drops_the_new_event_with_only_a_log_line(
    peer: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Queue full: no exception, ``(False, msg)`` and a WARNING; nothing else is told."""
    client = _make(peer, DEAD_PROXY, retries=0, queue=1)
    client.join()  # stops the consumer: what is queued now stays queued
    with caplog.at_level(logging.WARNING):
        assert _track(peer, client, 2) == [True, False]
    assert "queue is full" in caplog.text


async def test_posthog_drops_the_new_event_when_its_queue_is_full(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """posthog's ``capture`` returns None and logs a WARNING when the queue is full."""
    async with FaultServer(then=Hang()) as server:
        # One event waits in a request that never gets an answer (until the 2 s timeout),
        # one in the one-slot queue, and the third finds the queue full.
        client = _make("posthog", server.url, retries=0, batch=1, queue=1, timeout=2)
        try:
            with caplog.at_level(logging.WARNING, logger="posthog"):
                accepted = await asyncio.to_thread(_track, "posthog", client, 3)
        finally:
            await asyncio.to_thread(client.shutdown)
    assert accepted[0] is True
    assert False in accepted
    assert "queue is full" in caplog.text


async def test_posthog_async_capture_drops_when_its_queue_is_full(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``AsyncClient.capture`` returns None and logs a WARNING when the queue is full."""
    async with (
        FaultServer() as server,
        posthog.AsyncClient(f"phc_{uuid.uuid4().hex}", host=server.url, max_queue_size=1) as client,
    ):
        with caplog.at_level(logging.WARNING, logger="posthog"):
            results = [client.capture("e", distinct_id="u1") for _ in range(3)]
    assert results[0] is not None
    assert results[1:] == [None, None]
    assert "queue is full" in caplog.text


@pytest.mark.parametrize(
    ("peer", "survives"),
    [("segment", False), ("rudderstack", False), ("hightouch", True), ("posthog", True)],
)
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
async def test_an_on_error_callback_that_raises(peer: str, survives: bool) -> None:
    """In segment and rudder a raising ``on_error`` ends the consumer thread for good."""
    called = threading.Event()

    def on_error(error: Exception, batch: list[Any]) -> None:
        called.set()
        raise RuntimeError("a bug in the callback")

    async with FaultServer(Respond(400), then=Respond(200)) as server:
        client = _make(peer, server.url, retries=0, on_error=on_error, batch=1)
        await asyncio.to_thread(_track, peer, client)
        assert await asyncio.to_thread(called.wait, 30)
        if survives:
            await asyncio.to_thread(_track, peer, client)
            await asyncio.to_thread(client.flush)
            await asyncio.to_thread(client.shutdown)
            assert [r.status for r in server.requests] == [400, 200]
        else:
            (consumer,) = client.consumers
            await asyncio.to_thread(consumer.join, 30)
            assert not consumer.is_alive()
            # The next event is accepted, and stays queued: nothing will send it, and
            # flush() would wait for it forever.
            assert await asyncio.to_thread(_track, peer, client) == [True]
            assert client.queue.qsize() == 1
            assert [r.status for r in server.requests] == [400]


async def test_hightouch_ignores_its_proxies_option(collector: LocalCollector) -> None:
    """events-sdk-python accepts ``proxies`` but never passes them to requests."""
    client = htevents.Client(KEY, host=collector.url, proxies={"http": DEAD_PROXY})
    await asyncio.to_thread(_track, "hightouch", client)
    await asyncio.to_thread(client.shutdown)
    assert len(collector.messages()) == 1


async def test_segment_uses_its_proxies_option(collector: LocalCollector) -> None:
    """segment-analytics-python sends through ``proxies`` (here a dead one: nothing arrives)."""
    errors: list[Exception] = []
    client = _make(
        "segment",
        collector.url,
        retries=0,
        on_error=lambda e, batch: errors.append(e),
        proxies={"http": DEAD_PROXY},
    )
    await asyncio.to_thread(_track, "segment", client)
    await asyncio.to_thread(client.shutdown)
    assert isinstance(errors[0], requests.exceptions.ProxyError)
    assert collector.messages() == []


async def test_posthog_counts_a_quota_limited_200_as_delivered() -> None:
    """A 200 whose body says the events quota is exceeded is a success to posthog."""
    errors: list[Exception] = []
    body = b'{"status": 1, "quota_limited": ["events"]}'
    async with FaultServer(then=Respond(200, body=body)) as server:
        client = _make("posthog", server.url, retries=1, on_error=lambda e, b: errors.append(e))
        try:
            await asyncio.to_thread(_track, "posthog", client)
            await asyncio.to_thread(client.flush)
        finally:
            await asyncio.to_thread(client.shutdown)
    assert len(server.requests) == 1
    assert errors == []


_ENDS_WITHOUT_FLUSH = """
import sys
import {module} as sdk

client = sdk.Client("{key}", host=sys.argv[1], upload_size=100, upload_interval=0.5)
for _ in range(300):
    client.track("u1", "Order completed")
# The script ends without flush() or shutdown(): only the exit hook runs.
"""


@pytest.mark.parametrize(
    "module", ["segment.analytics", "hightouch.htevents", "rudderstack.analytics"]
)
async def test_at_exit_only_the_batch_being_sent_is_delivered(module: str, tmp_path: Path) -> None:
    """The exit hook stops the consumer after its current batch; the rest of the queue is lost."""
    script = tmp_path / "ends_without_flush.py"
    script.write_text(_ENDS_WITHOUT_FLUSH.format(module=module, key=KEY))
    # Each upload takes a second, so the process ends while the first is on the wire.
    async with FaultServer(then=Respond(200, delay=1.0)) as server:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            server.url,
            cwd=tmp_path,
            env=environment({}),
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    received = len(server.received_ids())
    assert 0 < received < 300
    assert [r.status for r in server.requests] == [200] * len(server.requests)
