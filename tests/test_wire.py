"""What goes over the socket: headers, body and the six message types, exactly."""

from __future__ import annotations

import base64
import datetime as dt
import re
from typing import Any

import httpx
import pytest
from faultserver import FaultServer

import htevents_async
from htevents_async import Client, MessageTooLargeError, MessageTypeError
from htevents_async._collector import LocalCollector

WHEN = dt.datetime(2026, 11, 22, 4, 7, 19, 110000)
STAMP = "2026-11-22T04:07:19.110Z"
LIBRARY = {"name": "htevents-async", "version": htevents_async.__version__}


async def send_one(collector: LocalCollector, method: str, **fields: Any) -> dict[str, Any]:
    async with Client("wk_secret", host=collector.url, flush_interval=0) as client:
        await getattr(client, method)(message_id="m-1", timestamp=WHEN, **fields)
    [message] = await collector.wait_for(1)
    return message


@pytest.mark.parametrize(
    ("method", "fields", "expected"),
    [
        (
            "identify",
            {"user_id": "u1", "traits": {"plan": "pro"}},
            {"type": "identify", "userId": "u1", "traits": {"plan": "pro"}},
        ),
        (
            "track",
            {"user_id": "123", "event": "Order completed", "properties": {"total": 29.99}},
            {
                "type": "track",
                "userId": "123",
                "event": "Order completed",
                "properties": {"total": 29.99},
            },
        ),
        (
            "page",
            {"anonymous_id": "a1", "name": "Home", "category": "Docs", "properties": {"x": 1}},
            {
                "type": "page",
                "anonymousId": "a1",
                "name": "Home",
                "category": "Docs",
                "properties": {"x": 1},
            },
        ),
        (
            "screen",
            {"user_id": 7, "name": "Settings"},
            {"type": "screen", "userId": "7", "name": "Settings"},
        ),
        (
            "group",
            {"user_id": "u1", "group_id": 0, "traits": {"seats": 3}},
            {"type": "group", "userId": "u1", "groupId": "0", "traits": {"seats": 3}},
        ),
        (
            "alias",
            {"previous_id": "anon-9", "user_id": "u1"},
            {"type": "alias", "previousId": "anon-9", "userId": "u1"},
        ),
    ],
)
async def test_each_type_arrives_exactly_as_specified(
    collector: LocalCollector, method: str, fields: dict[str, Any], expected: dict[str, Any]
) -> None:
    """Each of the six types has exactly its spec fields, None fields omitted."""
    message = await send_one(collector, method, **fields)
    message.pop("receivedAt", None)
    assert message == {
        **expected,
        "messageId": "m-1",
        "timestamp": STAMP,
        "context": {"library": LIBRARY},
        "integrations": {},
    }


async def test_headers_and_envelope(collector: LocalCollector) -> None:
    """Basic auth and body writeKey, JSON content type, User-Agent, gzip, sentAt."""
    await send_one(collector, "track", user_id="1", event="e")
    [request] = collector.requests
    headers = request.headers
    assert headers["content-type"] == "application/json"
    assert headers["authorization"] == "Basic " + base64.b64encode(b"wk_secret:").decode()
    assert headers["user-agent"] == f"htevents-async/{htevents_async.__version__}"
    assert headers["content-encoding"] == "gzip"
    assert request.gzip
    assert request.body is not None
    assert set(request.body) == {"batch", "sentAt", "writeKey"}
    assert request.body["writeKey"] == "wk_secret"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", request.body["sentAt"])


async def test_gzip_off_sends_plain_json(collector: LocalCollector) -> None:
    """gzip=False sends an uncompressed body without Content-Encoding."""
    async with Client("wk", host=collector.url, gzip=False, flush_interval=0) as client:
        await client.track(user_id="1", event="plain")
    await collector.wait_for(1)
    [request] = collector.requests
    assert not request.gzip
    assert "content-encoding" not in request.headers
    assert request.body is not None
    assert request.body["batch"][0]["event"] == "plain"


async def test_default_timestamp_and_message_id(collector: LocalCollector) -> None:
    """Without them, a UTC millisecond timestamp and a UUID4 id are set; the id is returned."""
    async with Client("wk", host=collector.url, flush_interval=0) as client:
        returned = await client.track(user_id="1", event="e")
    [message] = await collector.wait_for(1)
    assert message["messageId"] == returned
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", message["timestamp"])


async def test_bad_input_raises_while_other_events_still_arrive(collector: LocalCollector) -> None:
    """Oversized and unserialisable events raise at the call site; the rest are delivered."""
    async with Client("wk", host=collector.url, flush_interval=0) as client:
        await client.track(user_id="1", event="before")
        with pytest.raises(MessageTooLargeError):
            await client.track(user_id="1", event="big", properties={"x": "y" * 40_000})
        with pytest.raises(MessageTypeError, match=r"Track\.properties\['when'\]"):
            await client.track(user_id="1", event="odd", properties={"when": object()})
        await client.track(user_id="1", event="after")
    messages = await collector.wait_for(2)
    assert [m["event"] for m in messages] == ["before", "after"]
    assert client.statistics().accepted == 2


async def test_values_arrive_in_documented_form(collector: LocalCollector) -> None:
    """Datetime, Decimal, UUID and NaN survive the socket in their JSON forms."""
    import decimal
    import uuid

    async with Client("wk", host=collector.url, flush_interval=0) as client:
        await client.track(
            user_id="1",
            event="values",
            properties={
                "at": dt.datetime(2026, 1, 1, 12),
                "price": decimal.Decimal("9.5"),
                "ref": uuid.UUID(int=2),
                "ratio": float("nan"),
            },
        )
    [message] = await collector.wait_for(1)
    assert message["properties"] == {
        "at": "2026-01-01T12:00:00Z",
        "price": 9.5,
        "ref": "00000000-0000-0000-0000-000000000002",
        "ratio": None,
    }


async def test_an_injected_client_adds_its_own_headers_params_and_cookies() -> None:
    """Requests of a client the application passes in go through its build_request():
    its default headers, query parameters and cookies are sent along with ours."""
    async with (
        FaultServer() as server,
        httpx.AsyncClient(
            headers={"X-Gateway": "edge-1"}, params={"region": "eu"}, cookies={"lb": "7"}
        ) as http,
    ):
        async with Client("wk", host=server.url, http_client=http, flush_interval=0) as client:
            await client.track(user_id="1", event="e", properties={})
        [request] = server.requests
    assert request.headers["x-gateway"] == "edge-1"
    assert request.headers["cookie"] == "lb=7"
    assert request.path == "/v1/batch?region=eu"
    assert request.headers["user-agent"] == f"htevents-async/{htevents_async.__version__}"
    assert request.headers["authorization"].startswith("Basic ")
