"""The per-call fast path and when a call yields to the flusher.

``track`` and ``identify`` calls without an explicit id, timestamp, context or
integrations skip building a message object; everything they send or refuse must
be what the general path sends or refuses. A producer that never suspends gets a
yield per time slice, and one per call once the queue is half full.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import pytest
from faultserver import FaultServer
from hypothesis import given, settings
from hypothesis import strategies as st
from support import client_for, property_values

from htevents_async import Client, Identify, MessageError, Track, context_scope
from htevents_async._collector import LocalCollector
from htevents_async._encoding import Encoder

pytestmark = pytest.mark.anyio

values = property_values()
properties = st.dictionaries(st.text(max_size=8), values, max_size=4)


def outcome(encode: Any) -> tuple[str, str]:
    """The wire text with its generated id and time blanked out, or the error raised."""
    try:
        message_id, text = encode()
    except MessageError as exc:
        return (type(exc).__name__, str(exc))
    stamp = json.loads(text)["timestamp"]
    assert len(message_id) == 36
    assert stamp.endswith("Z")
    return ("sent", text.replace(message_id, "<id>", 1).replace(stamp, "<time>", 1))


@settings(max_examples=300, deadline=None)
@given(user_id=st.text(min_size=1, max_size=8), props=properties)
def test_plain_and_general_encodings_match(user_id: str, props: dict[str, Any]) -> None:
    encoder = Encoder(2000)  # small enough that some examples are too large
    plain = outcome(
        lambda: encoder.encode_plain(
            "track", {"userId": user_id, "event": "e", "properties": props}, "Track"
        )
    )
    general = outcome(lambda: encoder.encode(Track(user_id=user_id, event="e", properties=props)))
    assert plain == general
    plain = outcome(
        lambda: encoder.encode_plain("identify", {"userId": user_id, "traits": props}, "Identify")
    )
    general = outcome(lambda: encoder.encode(Identify(user_id=user_id, traits=props)))
    assert plain == general


async def test_fast_and_general_calls_arrive_alike(
    collector: LocalCollector, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain: list[str] = []
    encode_plain = Encoder.encode_plain

    def spy(self: Encoder, type_name: str, fields: dict[str, Any], owner: str) -> Any:
        plain.append(type_name)
        return encode_plain(self, type_name, fields, owner)

    monkeypatch.setattr(Encoder, "encode_plain", spy)
    when = dt.datetime(2026, 11, 22, 4, 7, 19)
    props = {"total": 29.99, "when": when, "tags": ("a", "b")}
    async with client_for(collector.url) as client:
        await client.track(user_id="u1", event="Order completed", properties=props)
        await client.enqueue(Track(user_id="u1", event="Order completed", properties=props))
        await client.identify(user_id="u1", traits=props)
        await client.enqueue(Identify(user_id="u1", traits=props))
        with context_scope({"ip": "198.51.100.1"}):
            await client.track(user_id="u1", event="Scoped", properties={})
    messages = await collector.wait_for(5)
    for message in messages:
        message.pop("messageId")
        message.pop("timestamp")
        message.pop("sentAt", None)
        message.pop("receivedAt", None)
    fast_track, general_track, fast_identify, general_identify, scoped = messages
    assert fast_track == general_track
    assert fast_identify == general_identify
    assert fast_track["properties"] == {
        "total": 29.99,
        "when": "2026-11-22T04:07:19Z",
        "tags": ["a", "b"],
    }
    assert scoped["context"]["ip"] == "198.51.100.1"
    # The enqueued messages and the call inside a scope took the general path.
    assert plain == ["track", "identify"]


@pytest.mark.parametrize(
    ("call", "error"),
    [
        ({"user_id": "u", "event": "", "properties": {}}, "Track.event must not be empty"),
        ({"user_id": "", "event": "e", "properties": {}}, "Track.user_id must not be empty"),
        ({"user_id": "u", "event": "e", "properties": {"x": {1, 2j}}}, "Track.properties['x']"),
        ({"user_id": "u", "event": "e", "properties": {"x": "y" * 40_000}}, "Track encodes to"),
    ],
)
async def test_refusals_of_plain_looking_calls_name_the_field(
    collector: LocalCollector, call: dict[str, Any], error: str
) -> None:
    """Empty names fail the fast path's guard and are refused by the general path;
    bad values and oversized events are refused by the fast path itself."""
    async with client_for(collector.url) as client:
        with pytest.raises(MessageError, match=error.replace("[", r"\[")):
            await client.track(**call)
        await client.track(user_id="u", event="after", properties={})
        stats = client.statistics()
    assert stats.accepted == 1
    assert [m["event"] for m in await collector.wait_for(1)] == ["after"]


async def test_a_producer_that_never_suspends_still_lets_other_tasks_run(
    collector: LocalCollector,
) -> None:
    """A loop of awaited calls that never waits on anything else: the calls yield
    once per time slice, so a ticker task keeps running during the loop."""
    ticks = 0
    producing = True

    async def ticker() -> None:
        nonlocal ticks
        while producing:
            ticks += 1
            await asyncio.sleep(0)

    async with client_for(collector.url, max_queue_size=100_000) as client:
        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        ticks = 0
        for i in range(30_000):
            await client.track(user_id="u", event="e", properties={"i": i})
        during = ticks
        producing = False
        await task
    # 30,000 calls take far more than a few 10 ms slices on any machine.
    assert during >= 2


async def test_a_long_burst_into_the_default_queue_drops_nothing() -> None:
    """Three times the default queue, from a loop that never suspends: past half
    the queue every call yields, so the flusher keeps up instead of dropping."""
    async with FaultServer() as server, Client("wk", host=server.url) as client:
        for i in range(30_000):
            await client.track(user_id="u", event="e", properties={"i": i})
        await client.flush()
        stats = client.statistics()
    assert dict(stats.dropped) == {}
    assert stats.delivered == 30_000
    assert len(set(server.received_ids())) == 30_000
