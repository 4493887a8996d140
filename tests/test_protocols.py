"""Each wire protocol end to end: the exact request for every call, through the local
collector over a real socket, and retries and final answers per protocol."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import httpx
import pytest
from faultserver import FaultServer, Respond

import htevents_async
from htevents_async import (
    Batch,
    Client,
    ConfigError,
    DeliveryError,
    HTTPStatusError,
    MessageError,
    MessageTypeError,
    OdpEvent,
    PostHogProtocol,
)
from htevents_async._collector import LocalCollector
from htevents_async._version import __version__

pytestmark = pytest.mark.anyio

KEY = "test-key-123456"
FAST = {"flush_interval": 0.01, "backoff_initial": 0.0, "backoff_max": 0.0, "gzip": False}
LIB = {"$lib": "htevents-async", "$lib_version": __version__}


def _client(url: str, protocol: Any, **options: Any) -> Client:
    return Client(KEY, host=url, protocol=protocol, **{**FAST, **options})


async def _every_posthog_call(client: Client) -> list[str]:
    return [
        await client.track(user_id="u1", event="Order completed", properties={"total": 9.5}),
        await client.identify(user_id="u1", traits={"plan": "pro"}),
        await client.alias(previous_id="anon-7", user_id="u1"),
        await client.group(user_id="u1", group_id="acme", traits={"seats": 3}),
        await client.page(
            anonymous_id="a1", name="Home", properties={"url": "https://example.com/"}
        ),
        await client.screen(user_id="u1", name="Settings", properties={"dark": True}),
    ]


async def test_posthog_request_for_every_call(collector: LocalCollector) -> None:
    """Each call maps onto its PostHog event, in one /batch/ body with the key in it."""
    async with _client(collector.url, "posthog", max_batch_size=6) as client:
        ids = await _every_posthog_call(client)
    await collector.wait_for(6)
    (record,) = collector.requests
    assert record.status == 200
    assert "authorization" not in record.headers
    assert record.headers["content-type"] == "application/json"
    body = record.body
    assert set(body) == {"api_key", "batch", "sent_at"}
    assert body["api_key"] == KEY
    events = body["batch"]
    assert [event["uuid"] for event in events] == ids
    for event in events:
        assert event.pop("timestamp").endswith("Z")
        del event["uuid"]
    assert events == [
        {
            "event": "Order completed",
            "distinct_id": "u1",
            "properties": {"total": 9.5, **LIB},
        },
        {"event": "$identify", "distinct_id": "u1", "$set": {"plan": "pro"}, "properties": LIB},
        {
            "event": "$create_alias",
            "distinct_id": "anon-7",
            "properties": {"distinct_id": "anon-7", "alias": "u1", **LIB},
        },
        {
            "event": "$groupidentify",
            "distinct_id": "u1",
            "properties": {
                "$group_type": "company",
                "$group_key": "acme",
                "$group_set": {"seats": 3},
                **LIB,
            },
        },
        {
            "event": "$pageview",
            "distinct_id": "a1",
            "properties": {
                "url": "https://example.com/",
                **LIB,
                "$current_url": "https://example.com/",
                "$title": "Home",
            },
        },
        {
            "event": "$screen",
            "distinct_id": "u1",
            "properties": {"dark": True, **LIB, "$screen_name": "Settings"},
        },
    ]
    stored = collector.messages()
    assert [m["protocol"] for m in stored] == ["posthog"] * 6
    assert [m["type"] for m in stored] == ["track", "identify", "alias", "group", "page", "screen"]


async def test_posthog_groups_and_backfill_option(collector: LocalCollector) -> None:
    """``$groups`` rides in the properties; historical_migration marks the body."""
    protocol = PostHogProtocol(group_type="team", historical_migration=True)
    async with _client(collector.url, protocol) as client:
        await client.track(user_id="u1", event="e", properties={"$groups": {"team": "t1"}})
        await client.group(user_id="u1", group_id="t1")
    await collector.wait_for(2)
    body = collector.requests[0].body
    assert body["historical_migration"] is True
    assert body["batch"][0]["properties"]["$groups"] == {"team": "t1"}


async def test_odp_request_for_every_call(collector: LocalCollector) -> None:
    """ODP gets a bare array at /v3/events with x-api-key, and answers 202."""
    delivered: list[Batch] = []
    async with _client(
        collector.url, "odp", max_batch_size=5, on_success=delivered.append
    ) as client:
        ids = [
            await client.track(user_id="u1", event="purchased", properties={"price": 50.0}),
            await client.identify(user_id="u1", anonymous_id="v1", traits={"x": None}),
            await client.page(user_id="u1", name="Home", properties={"path": "/"}),
            await client.screen(anonymous_id="v1", name="Cart"),
            await client.odp_event(
                action="added", identifiers={"email": "a@example.com"}, data={"n": 1}
            ),
        ]
    await collector.wait_for(5)
    (record,) = collector.requests
    assert record.status == 202
    assert record.headers["x-api-key"] == KEY
    assert "authorization" not in record.headers
    defaults = {
        "data_source_type": "sdk",
        "data_source": "htevents-async",
        "data_source_version": __version__,
    }
    assert record.body == [
        {
            "data": {"idempotence_id": ids[0], **defaults, "price": 50.0},
            "type": "fullstack",
            "action": "purchased",
            "identifiers": {"fs_user_id": "u1"},
        },
        {
            "data": {"idempotence_id": ids[1], **defaults, "x": ""},
            "type": "fullstack",
            "action": "identified",
            "identifiers": {"fs_user_id": "u1", "vuid": "v1"},
        },
        {
            "data": {"idempotence_id": ids[2], **defaults, "path": "/", "name": "Home"},
            "type": "fullstack",
            "action": "pageview",
            "identifiers": {"fs_user_id": "u1"},
        },
        {
            "data": {"idempotence_id": ids[3], **defaults, "name": "Cart"},
            "type": "fullstack",
            "action": "screenview",
            "identifiers": {"vuid": "v1"},
        },
        {
            "data": {"idempotence_id": ids[4], **defaults, "n": 1},
            "type": "fullstack",
            "action": "added",
            "identifiers": {"email": "a@example.com"},
        },
    ]
    assert [batch.message_ids for batch in delivered] == [ids]
    assert [m["messageId"] for m in collector.messages()] == ids
    assert {m["protocol"] for m in collector.messages()} == {"odp"}


async def test_segment_request_unchanged(collector: LocalCollector) -> None:
    """The default protocol still sends Basic auth and the Segment envelope."""
    async with _client(collector.url, "segment") as client:
        message_id = await client.track(user_id="u1", event="e")
    await collector.wait_for(1)
    record = collector.requests[0]
    token = base64.b64encode(f"{KEY}:".encode()).decode()
    assert record.headers["authorization"] == f"Basic {token}"
    assert set(record.body) == {"batch", "sentAt", "writeKey"}
    assert record.body["batch"][0]["messageId"] == message_id


async def test_odp_refuses_what_it_cannot_carry(collector: LocalCollector) -> None:
    """group and alias, calls without ids, nested data and missing identifiers raise."""
    async with _client(collector.url, "odp") as client:
        with pytest.raises(MessageError, match=r"Group cannot be sent with protocol='odp'"):
            await client.group(user_id="u1", group_id="g")
        with pytest.raises(MessageError, match=r"Alias cannot be sent with protocol='odp'"):
            await client.alias(previous_id="a", user_id="u1")
        with pytest.raises(MessageError, match="needs a user_id or an anonymous_id"):
            await client.enqueue(htevents_async.Track(event="e"))
        with pytest.raises(MessageTypeError, match=r"Track.properties\['cart'\]"):
            await client.track(user_id="u1", event="e", properties={"cart": {"n": 1}})
        with pytest.raises(MessageError, match=r"OdpEvent\.identifiers"):
            await client.odp_event(action="a", identifiers={})
        with pytest.raises(MessageTypeError, match=r"OdpEvent.data\['items'\]"):
            await client.odp_event(action="a", identifiers={"k": "v"}, data={"items": [1]})
        with pytest.raises(MessageError, match=r"OdpEvent\.action"):
            await client.odp_event(action="", identifiers={"k": "v"})
        assert client.statistics().accepted == 0


async def test_odp_defaults_can_be_overridden(collector: LocalCollector) -> None:
    """The caller's data wins over the defaults; its idempotence_id becomes the id."""
    async with _client(collector.url, "odp") as client:
        message_id = await client.odp_event(
            action="a",
            type="custom",
            identifiers={"k": "v"},
            data={"idempotence_id": "mine-1", "data_source": "shop", "gone": None},
        )
    assert message_id == "mine-1"
    await collector.wait_for(1)
    (event,) = collector.requests[0].body
    assert event["type"] == "custom"
    assert event["data"]["idempotence_id"] == "mine-1"
    assert event["data"]["data_source"] == "shop"
    assert event["data"]["data_source_type"] == "sdk"
    assert event["data"]["gone"] == ""


async def test_native_calls_need_their_protocol(collector: LocalCollector) -> None:
    """odp_event on another protocol raises at the call site."""
    for protocol in ("segment", "posthog"):
        async with _client(collector.url, protocol) as client:
            with pytest.raises(
                MessageError, match=f"OdpEvent cannot be sent with protocol='{protocol}'"
            ):
                await client.odp_event(action="a", identifiers={"k": "v"})


@pytest.mark.parametrize(
    ("protocol", "success"), [("segment", 200), ("posthog", 200), ("odp", 202)]
)
async def test_retries_then_delivers(protocol: str, success: int) -> None:
    """A 503 is retried with the same events; the protocol's success ends it."""
    async with FaultServer(Respond(503), Respond(429), then=Respond(success)) as server:
        async with _client(server.url, protocol) as client:
            await client.track(user_id="u1", event="e")
        await server.wait_for_requests(3)
    bodies = [request.body for request in server.requests]
    assert bodies[0] is not None
    assert len({json.dumps(_events(protocol, body)) for body in bodies}) == 1
    assert client.statistics().delivered == 1
    assert client.statistics().retries == 2


def _events(protocol: str, body: Any) -> Any:
    return body if protocol == "odp" else body["batch"]


@pytest.mark.parametrize("protocol", ["segment", "posthog", "odp"])
async def test_final_status_fails_the_batch(protocol: str) -> None:
    """A 400 is final for every protocol: one request, on_failure called."""
    failures: list[DeliveryError] = []
    async with (
        FaultServer(then=Respond(400, body=b'{"error":"bad"}')) as server,
        _client(
            server.url, protocol, on_failure=lambda batch, error: failures.append(error)
        ) as client,
    ):
        await client.track(user_id="u1", event="e")
    assert len(server.requests) == 1
    assert client.statistics().failed == 1
    assert isinstance(failures[0], HTTPStatusError)


async def test_posthog_quota_limited_200_is_final() -> None:
    """PostHog's 200 naming the events quota drops the batch: failed, not delivered."""
    failures: list[DeliveryError] = []
    quota = Respond(200, body=b'{"status": 1, "quota_limited": ["events"]}')
    async with (
        FaultServer(then=quota) as server,
        _client(
            server.url, "posthog", on_failure=lambda batch, error: failures.append(error)
        ) as client,
    ):
        await client.track(user_id="u1", event="e")
    assert len(server.requests) == 1
    stats = client.statistics()
    assert (stats.delivered, stats.failed) == (0, 1)
    assert "over its events quota" in str(failures[0])


async def test_posthog_quota_of_other_products_is_delivery() -> None:
    """A 200 limiting only recordings still delivered the events."""
    answer = Respond(200, body=b'{"status": 1, "quotaLimited": ["recordings"]}')
    async with FaultServer(then=answer) as server, _client(server.url, "posthog") as client:
        await client.track(user_id="u1", event="e")
    assert client.statistics().delivered == 1


@pytest.mark.parametrize(
    ("protocol", "option", "value"),
    [
        ("segment", "max_batch_bytes", 600_000),
        ("odp", "max_batch_size", 501),
        ("odp", "max_message_bytes", 40_000),
    ],
)
def test_config_cannot_raise_a_protocol_cap(protocol: str, option: str, value: int) -> None:
    """Options may lower a protocol's limits, never raise them."""
    with pytest.raises(ConfigError, match=rf"Config\.{option} must be at most"):
        Client(KEY, protocol=protocol, max_queue_size=10_000, **{option: value})


def test_config_may_lower_and_posthog_allows_more() -> None:
    """PostHog's caps are larger; lowering any cap is fine."""
    client = Client(
        KEY, protocol="posthog", max_message_bytes=900 * 1024, max_batch_bytes=5 * 1024 * 1024
    )
    assert client.config.path == "/batch/"
    assert Client(KEY, protocol="odp", max_batch_size=10).config.path == "/v3/events"


def test_unknown_protocol_is_a_config_error() -> None:
    """A misspelt protocol names the option."""
    with pytest.raises(ConfigError, match=r"Config\.protocol"):
        Client(KEY, protocol="postHog")


async def test_testing_capture_decodes_each_protocol() -> None:
    """testing.capture() reads bodies through the client's protocol."""
    from htevents_async.testing import capture

    async with capture(protocol="posthog") as (client, captured):
        await client.track(user_id="u1", event="e")
    assert [m["event"] for m in captured] == ["e"]
    async with capture(protocol="odp") as (client, captured):
        await client.odp_event(action="a", identifiers={"k": "v"})
    assert [m["action"] for m in captured] == ["a"]
    assert isinstance(OdpEvent(action="a", identifiers={"k": "v"}), htevents_async.Message)


@pytest.mark.parametrize(
    ("path", "headers", "body", "status", "error"),
    [
        ("/batch/", {}, {"api_key": "wrong", "batch": []}, 401, "invalid API key"),
        ("/batch/", {}, {"batch": []}, 401, "missing API key"),
        ("/batch/", {}, {"api_key": KEY, "batch": [{"event": "e"}]}, 400, "distinct_id"),
        ("/v3/events", {"x-api-key": "wrong"}, [], 401, "invalid API key"),
        ("/v3/events", {"x-api-key": KEY}, {"not": "a list"}, 400, "JSON array"),
        (
            "/v3/events",
            {"x-api-key": KEY},
            [{"type": "t", "action": "a", "identifiers": {}}],
            400,
            "identifiers",
        ),
        (
            "/v3/events",
            {"x-api-key": KEY},
            [{"type": "t", "action": "a", "identifiers": {"k": "v"}, "data": {"n": {}}}],
            400,
            "data values",
        ),
    ],
)
async def test_collector_refuses_bad_protocol_requests(
    path: str, headers: dict[str, str], body: Any, status: int, error: str
) -> None:
    """The PostHog and ODP endpoints check the key and the body shape, and say why."""
    async with LocalCollector(write_key=KEY) as collector, httpx.AsyncClient() as http:
        response = await http.post(collector.url + path, json=body, headers=headers)
        assert response.status_code == status
        assert error in response.json()["error"]
        (record,) = collector.requests
        assert (record.status, record.body) == (status, body)
        assert collector.messages() == []


class _Ingest:
    """A protocol of the caller's own: the Segment body at another path, stricter caps."""

    name = "ingest"
    default_path = "/ingest"
    limits = htevents_async.Limits(message_bytes=1_000, batch_bytes=10_000, batch_events=3)

    def __init__(self) -> None:
        self._segment = htevents_async.SegmentProtocol()

    def encoder(self, max_message_bytes: int) -> Any:
        return self._segment.encoder(max_message_bytes)

    def request(self, write_key: str, url: str) -> htevents_async.RequestSpec:
        return self._segment.request(write_key, url)

    def classify(self, status: int, headers: Any, body: bytes) -> htevents_async.Verdict:
        return htevents_async.Verdict("final" if status == 299 else "delivered")

    def message_id_of(self, text: str) -> str:
        return self._segment.message_id_of(text)

    def decode_body(self, body: bytes) -> list[dict[str, Any]]:
        return self._segment.decode_body(body)


async def test_a_wire_protocol_object_is_used_as_given() -> None:
    """Path, caps and classification come from a WireProtocol passed in."""
    with pytest.raises(ConfigError, match="max_batch_size must be at most 3"):
        Client(KEY, protocol=_Ingest())
    async with (
        FaultServer(then=Respond(299)) as server,
        _client(
            server.url, _Ingest(), max_batch_size=3, max_batch_bytes=10_000, max_message_bytes=900
        ) as client,
    ):
        await client.track(user_id="u1", event="e")
    assert [request.path for request in server.requests] == ["/ingest"]
    assert client.statistics().failed == 1


async def test_sync_client_speaks_the_protocol(collector: LocalCollector) -> None:
    """SyncClient shares the protocol's encoder: ODP events from a plain thread."""

    def run() -> None:
        options = {**FAST, "host": collector.url, "protocol": "odp"}
        with htevents_async.SyncClient(KEY, **options) as events:
            events.odp_event(action="a", identifiers={"k": "v"})
            events.track(user_id="u1", event="e")

    await asyncio.to_thread(run)
    await collector.wait_for(2)
    assert [(m["protocol"], m["event"]) for m in collector.messages()] == [
        ("odp", "a"),
        ("odp", "e"),
    ]


@pytest.mark.parametrize("protocol", ["posthog", "odp"])
def test_before_send_needs_the_segment_protocol(protocol: str) -> None:
    """Plugins edit Segment-shaped events: another protocol refuses them at construction."""
    with pytest.raises(ConfigError, match="before_send is supported with protocol='segment'"):
        Client(KEY, protocol=protocol, before_send=lambda event: event)
