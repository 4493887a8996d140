"""The sending path: what the counters say, and the defects a review of it found."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import decimal
import json
import logging
import socket
import time
from collections.abc import AsyncIterator

import pytest
from faultserver import FaultServer, Hang, Respond
from support import FAST, WRITE_KEY, assert_accounted, eventually

from htevents_async import Client, ConfigError, DeliveryError, HTTPStatusError
from htevents_async._collector import LocalCollector
from htevents_async._encoding import use_orjson


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


# Long enough that a loaded machine answers the status line within it (a shorter one
# made the first attempt time out there and retry), short enough to wait out the body.
STALL_TIMEOUT = 1.5


@contextlib.asynccontextmanager
async def stalling_server(
    status: int, *, stall: bool = True, bodies: list[bytes] | None = None
) -> AsyncIterator[tuple[str, list[int]]]:
    """Answers every request with ``status``; with ``stall`` the response promises a body
    that never comes. Request bodies are appended to ``bodies`` as they arrived."""
    requests: list[int] = []
    answer = b"Content-Length: 100\r\n\r\n{" if stall else b"Content-Length: 2\r\n\r\n{}"

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                body = await reader.readexactly(length)
                if bodies is not None:
                    bodies.append(body)
                requests.append(status)
                writer.write(f"HTTP/1.1 {status} X\r\n".encode() + answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}", requests


@pytest.mark.parametrize("status", [200, 204])
async def test_a_2xx_whose_body_stalls_is_delivered_once(status: int) -> None:
    """The status line is the answer: a body that never arrives does not make a 2xx a
    failure, and the batch is not sent again."""
    async with stalling_server(status) as (url, requests):
        client = Client(WRITE_KEY, host=url, request_timeout=STALL_TIMEOUT, **FAST)
        async with client:
            await client.track(user_id="1", event="e")
            assert await client.flush(timeout=10) == 0
            stats = client.statistics()
    assert (stats.delivered, stats.failed, stats.attempts, stats.retries) == (1, 0, 1, 0)
    assert requests == [status]


async def test_a_final_status_whose_body_stalls_is_not_retried() -> None:
    """A 400 with a stalled body is still a final answer: one attempt, a final failure."""
    failures: list[DeliveryError] = []
    async with stalling_server(400) as (url, requests):
        client = Client(
            WRITE_KEY,
            host=url,
            request_timeout=STALL_TIMEOUT,
            on_failure=lambda batch, error: failures.append(error),
            **FAST,
        )
        async with client:
            await client.track(user_id="1", event="e")
            assert await client.flush(timeout=10) == 0
            stats = client.statistics()
    assert (stats.failed, stats.attempts, stats.retries) == (1, 1, 0)
    assert requests == [400]
    [error] = failures
    assert isinstance(error, HTTPStatusError)
    assert error.status_code == 400
    assert error.url == f"{url}/v1/batch"


async def test_flush_during_aclose_waits_for_the_close_and_reports_what_is_left() -> None:
    """flush() while aclose() delivers does not claim 0 pending: it waits for the close."""
    async with FaultServer(Respond(200, delay=0.3)) as server:
        client = Client(WRITE_KEY, host=server.url, **FAST)
        async with client:
            for i in range(5):
                await client.track(user_id=str(i), event="e")
            closing = asyncio.create_task(client.aclose(timeout=10))
            await asyncio.sleep(0)
            assert client.statistics().pending == 5
            assert await client.flush(timeout=10) == 0
            assert closing.done()
            assert client.statistics().delivered == 5


async def test_flush_during_an_aclose_that_cannot_finish_reports_pending() -> None:
    """Against a collector that never answers, flush() during aclose() returns the events
    still pending at its own deadline, not 0."""
    async with FaultServer(then=Hang()) as server:
        client = Client(WRITE_KEY, host=server.url, request_timeout=30, **FAST)
        await client.track(user_id="1", event="e")
        await server.wait_for_requests(1)
        closing = asyncio.create_task(client.aclose(timeout=5))
        await asyncio.sleep(0)
        assert await client.flush(timeout=0.1) == 1
        assert await closing == 1


async def test_a_call_cancelled_while_it_yields_recorded_nothing(
    collector: LocalCollector,
) -> None:
    """Calls yield only before they record: a call cancelled in its yield raises and its
    event is not accepted; every call that returned was."""
    async with Client(
        WRITE_KEY, host=collector.url, max_queue_size=100, max_batch_size=10
    ) as client:
        returned: list[str] = []

        async def producer() -> None:
            while True:
                returned.append(await client.track(user_id="1", event="e"))

        task = asyncio.create_task(producer())
        # At the high-water mark every call yields first: the producer is cancelled in one.
        await eventually(lambda: len(returned) > 200, what="calls")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await client.flush(timeout=10) == 0
        stats = client.statistics()
    # The cancelled call recorded nothing: every accepted event belongs to a call that
    # returned its id (dropped ones too: a drop still returns).
    assert stats.accepted == len(returned)
    delivered = {m["messageId"] for m in await collector.wait_for(stats.delivered)}
    assert delivered <= set(returned)
    assert len(delivered) == stats.delivered
    assert_accounted(stats)


def test_an_unparsable_host_is_a_config_error_naming_host() -> None:
    """``http://[::1`` fails in Config, naming ``host``, instead of at every send."""
    with pytest.raises(ConfigError, match=r"Config\.host must be a valid URL"):
        Client(WRITE_KEY, host="http://[::1")


def test_a_host_that_already_ends_in_the_path_is_refused_with_a_hint() -> None:
    """A host ending in /v1/batch would post to /v1/batch/v1/batch: refused, with the fix."""
    with pytest.raises(ConfigError, match=r"pass host='http://127\.0\.0\.1:8787'"):
        Client(WRITE_KEY, host="http://127.0.0.1:8787/v1/batch")
    assert Client(WRITE_KEY, host="https://proxy.example/events").config.url == (
        "https://proxy.example/events/v1/batch"
    )


def test_more_than_the_collectors_events_per_request_is_refused() -> None:
    """Segment drops batches over 2,500 events while answering 200: never configurable."""
    with pytest.raises(ConfigError, match="max_batch_size must be at most 2,500"):
        Client(WRITE_KEY, max_batch_size=2_501, max_queue_size=100_000)


class _NoOffset(dt.tzinfo):
    """A tzinfo that knows no offset: naive by Python's own definition."""

    def utcoffset(self, value: dt.datetime | None) -> None:
        return None

    def dst(self, value: dt.datetime | None) -> None:
        return None

    def tzname(self, value: dt.datetime | None) -> None:
        return None


@pytest.mark.parametrize("orjson", [True, False])
async def test_wire_values_ids_decimals_and_naive_datetimes(
    collector: LocalCollector, monkeypatch: pytest.MonkeyPatch, orjson: bool
) -> None:
    """Int ids go as strings; Decimals keep every digit; a datetime whose tzinfo has no
    offset is UTC, whatever the machine's time zone."""
    monkeypatch.setenv("TZ", "EST5EDT")
    time.tzset()
    previous = use_orjson(orjson)
    try:
        midnight = dt.datetime(2026, 1, 2, tzinfo=_NoOffset())
        async with Client(WRITE_KEY, host=collector.url, gzip=False) as client:
            await client.track(
                user_id=0,
                event="e",
                properties={"price": decimal.Decimal("12345678901234567890.5"), "at": midnight},
                timestamp=midnight,
            )
            await client.group(group_id=42, anonymous_id=7)
            await client.alias(previous_id=1, user_id=2)
        raw = collector.requests[-1].body
        bodies: list[bytes] = []
        price = decimal.Decimal("12345678901234567890.5")
        async with (
            stalling_server(200, stall=False, bodies=bodies) as (url, _),
            Client(WRITE_KEY, host=url, gzip=False) as client,
        ):
            await client.track(user_id="1", event="e", properties={"p": price})
            await client.identify(user_id="1", traits={"q": decimal.Decimal("-0.10")})
    finally:
        use_orjson(previous)
        monkeypatch.delenv("TZ")
        time.tzset()
    assert raw is not None
    track, group, alias = raw["batch"]
    assert track["userId"] == "0"
    assert track["timestamp"] == "2026-01-02T00:00:00.000Z"
    assert track["properties"]["at"] == "2026-01-02T00:00:00Z"
    assert (group["groupId"], group["anonymousId"]) == ("42", "7")
    assert (alias["previousId"], alias["userId"]) == ("1", "2")
    # The exact digits, as JSON numbers, in the bytes on the wire.
    [body] = bodies
    assert b'"properties":{"p":12345678901234567890.5}' in body
    assert b'"traits":{"q":-0.10}' in body
    assert json.loads(body)["batch"][1]["traits"]["q"] == -0.1


async def test_an_outage_is_logged_while_it_happens_and_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A WARNING at the first failed attempt names the URL and the error; another when the
    collector answers again. Neither carries the write key."""
    caplog.set_level(logging.WARNING, logger="htevents_async")
    async with FaultServer(start_down=True) as server:
        async with Client(WRITE_KEY, host=server.url, **FAST) as client:
            await client.track(user_id="1", event="e")
            await eventually(lambda: client.statistics().attempts >= 2, what="failed attempts")
            [record] = [r for r in caplog.records if "unreachable" in r.getMessage()]
            down = record.getMessage()
            assert f"collector at {server.url}/v1/batch unreachable (ConnectError" in down
            # The same facts as structured fields, for JSON log handlers.
            assert record.htevents_event == "unreachable"
            assert record.htevents_url == f"{server.url}/v1/batch"
            assert record.htevents_error.startswith("ConnectError")
            assert record.htevents_pending == 1
            await server.up()
            assert await client.flush(timeout=10) == 0
        [back] = [r.getMessage() for r in caplog.records if "answering again" in r.getMessage()]
    assert "after" in back
    assert all(WRITE_KEY not in r.getMessage() for r in caplog.records)


async def test_disable_closes_without_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """Events dropped by disable=True were asked for: the close line is DEBUG, not WARNING."""
    caplog.set_level(logging.DEBUG, logger="htevents_async")
    async with Client(WRITE_KEY, disable=True) as client:
        await client.track(user_id="1", event="e")
    assert client.statistics().dropped == {"disabled": 1}
    closing = [r for r in caplog.records if "closed;" in r.getMessage()]
    assert [r.levelno for r in closing] == [logging.DEBUG]
