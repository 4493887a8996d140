"""before_send plugins: what they see, send and drop, through the local collector."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
from typing import Any

import pytest
from support import FAST, WRITE_KEY, assert_accounted, eventually

from htevents_async import (
    Batch,
    Client,
    ConfigError,
    DeliveryError,
    DroppedError,
    MessageError,
    MessageTooLargeError,
    MessageTypeError,
    Track,
    plugins,
)
from htevents_async._collector import LocalCollector
from htevents_async._encoding import Encoder

pytestmark = pytest.mark.anyio


def plugin_client(collector: LocalCollector, before_send: Any, **options: Any) -> Client:
    return Client(WRITE_KEY, host=collector.url, before_send=before_send, **{**FAST, **options})


async def test_a_plugin_changes_what_the_collector_receives(collector: LocalCollector) -> None:
    """The plugin's dict is what is sent: a new property and a renamed event arrive."""

    def enrich(event: dict[str, Any]) -> dict[str, Any]:
        event["properties"]["plan"] = "pro"
        event["event"] = event["event"].upper()
        return event

    async with plugin_client(collector, enrich) as client:
        message_id = await client.track(user_id="u1", event="signup", properties={"a": 1})
        assert await client.flush() == 0
    [received] = collector.messages()
    assert received["messageId"] == message_id
    assert received["event"] == "SIGNUP"
    assert received["properties"] == {"a": 1, "plan": "pro"}


async def test_the_plugin_sees_the_wire_form(collector: LocalCollector) -> None:
    """Wire keys, string ids, a timestamp string and the library context."""
    seen: list[dict[str, Any]] = []

    def look(event: dict[str, Any]) -> dict[str, Any]:
        seen.append(dict(event))
        return event

    async with plugin_client(collector, look) as client:
        await client.identify(user_id=42, traits={"name": "Ada"})
        await client.track(user_id="u", event="e", properties={})
    identify, track = seen
    assert identify["type"] == "identify"
    assert identify["userId"] == "42"
    assert identify["traits"] == {"name": "Ada"}
    assert isinstance(identify["timestamp"], str)
    assert identify["context"]["library"]["name"] == "htevents-async"
    assert identify["integrations"] == {}
    assert track["type"] == "track"
    assert track["event"] == "e"


async def test_plugins_never_change_the_callers_dicts(collector: LocalCollector) -> None:
    """Nested dicts and lists a plugin mutates in place are copies, not the caller's."""
    properties: dict[str, Any] = {"cart": {"items": [{"sku": "a"}]}, "tags": ("x", ["y"])}
    context: dict[str, Any] = {"app": {"name": "shop"}}
    snapshot = repr((properties, context))

    def vandal(event: dict[str, Any]) -> dict[str, Any]:
        event["properties"]["cart"]["items"][0]["sku"] = "changed"
        event["properties"]["cart"]["items"].append("more")
        event["properties"]["tags"][1].append("z")
        event["properties"]["new"] = True
        event["context"]["app"]["name"] = "changed"
        return event

    async with plugin_client(collector, vandal) as client:
        await client.track(user_id="u", event="e", properties=properties, context=context)
        await client.track(user_id="u", event="plain", properties=properties)
        assert await client.flush() == 0
    assert repr((properties, context)) == snapshot
    first = collector.messages()[0]
    assert first["properties"]["cart"]["items"] == [{"sku": "changed"}, "more"]
    assert first["context"]["app"]["name"] == "changed"


async def test_identity_plugin_sends_the_same_text_as_no_plugin() -> None:
    """With a plugin that changes nothing, the encoded event is the one the encoder writes."""
    from htevents_async._plugins import Pipeline

    stamp = dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=dt.timezone.utc)
    message = Track(
        event="e",
        user_id=7,
        properties={"d": dt.date(2026, 1, 1), "n": float("nan"), "x": [1, {"y": 2}]},
        context={"ip": "1.2.3.4"},
        integrations={"All": False},
        timestamp=stamp,
        message_id="fixed-id",
    )
    expected = Encoder(32 * 1024).encode(message)
    assert Pipeline((lambda event: event,), 32 * 1024).encode(message) == expected


async def test_a_plugin_that_returns_none_drops_the_event(collector: LocalCollector) -> None:
    """Counted as dropped["filtered"], passed to on_drop, the callback gets DroppedError."""
    dropped: list[tuple[Batch, str]] = []
    outcomes: list[tuple[str, DeliveryError | None]] = []

    def on_drop(batch: Batch, reason: str) -> None:
        dropped.append((batch, reason))

    def record(message_id: str, error: DeliveryError | None) -> None:
        outcomes.append((message_id, error))

    def only_paid(event: dict[str, Any]) -> dict[str, Any] | None:
        return event if event["properties"].get("paid") else None

    async with plugin_client(collector, only_paid, on_drop=on_drop) as client:
        kept = await client.track(user_id="u", event="e", properties={"paid": True})
        gone = await client.track(
            user_id="u", event="e", properties={"paid": False}, callback=record
        )
        assert await client.flush() == 0
        await eventually(lambda: bool(outcomes), what="the callback")
        stats = client.statistics()
    assert [m["messageId"] for m in collector.messages()] == [kept]
    assert stats.dropped == {"filtered": 1}
    assert_accounted(stats)
    [(batch, reason)] = dropped
    assert reason == "filtered"
    assert batch.message_ids == [gone]
    assert batch.messages[0]["properties"] == {"paid": False}
    [(message_id, error)] = outcomes
    assert message_id == gone
    assert isinstance(error, DroppedError)
    assert error.reason == "filtered"


async def test_a_raising_plugin_drops_the_event_and_logs_its_name(
    collector: LocalCollector, caplog: pytest.LogCaptureFixture
) -> None:
    """Fail closed: dropped as plugin_error, logged once with the plugin's name, rate limited."""
    caplog.set_level(logging.ERROR, logger="htevents_async")

    def broken(event: dict[str, Any]) -> dict[str, Any]:
        raise KeyError("oops")

    async with plugin_client(collector, [broken]) as client:
        for _ in range(5):
            await client.track(user_id="u", event="e", properties={})
        assert await client.flush() == 0
        stats = client.statistics()
    assert stats.dropped == {"plugin_error": 5}
    assert stats.delivered == 0
    assert_accounted(stats)
    records = [r for r in caplog.records if "before_send plugin" in r.getMessage()]
    assert len(records) == 1  # the other four were held back by the rate limit
    assert "broken" in records[0].getMessage()
    assert records[0].exc_info is not None
    assert records[0].plugin.endswith("broken")  # type: ignore[attr-defined]


async def test_a_plugin_returning_a_non_dict_is_a_plugin_error(collector: LocalCollector) -> None:
    """A result that is neither a dict nor None drops the event as plugin_error."""
    async with plugin_client(collector, lambda event: "oops") as client:
        await client.track(user_id="u", event="e")
        stats = client.statistics()
    assert stats.dropped == {"plugin_error": 1}


async def test_plugins_run_in_order(collector: LocalCollector) -> None:
    """Each plugin gets what the one before returned; a drop stops the chain."""
    calls: list[str] = []

    def first(event: dict[str, Any]) -> dict[str, Any]:
        calls.append("first")
        return {**event, "event": "renamed"}

    def second(event: dict[str, Any]) -> dict[str, Any] | None:
        calls.append(f"second:{event['event']}")
        return None

    def third(event: dict[str, Any]) -> dict[str, Any]:
        calls.append("third")
        return event

    async with plugin_client(collector, (first, second, third)) as client:
        await client.track(user_id="u", event="e")
    assert calls == ["first", "second:renamed"]


async def test_value_rules_and_size_limit_apply_to_the_result(collector: LocalCollector) -> None:
    """What a plugin returns is checked at the call site like the caller's own arguments."""

    def bad_value(event: dict[str, Any]) -> dict[str, Any]:
        event["properties"]["when"] = object()
        return event

    def too_big(event: dict[str, Any]) -> dict[str, Any]:
        event["properties"]["blob"] = "x" * 2000
        return event

    def no_user(event: dict[str, Any]) -> dict[str, Any]:
        del event["userId"]
        return event

    def bool_id(event: dict[str, Any]) -> dict[str, Any]:
        event["userId"] = True
        return event

    for plugin, error, words in [
        (bad_value, MessageTypeError, "properties['when']"),
        (too_big, MessageTooLargeError, "max_message_bytes"),
        (no_user, MessageError, "userId or an anonymousId"),
        (bool_id, MessageTypeError, "userId must be a str or int"),
    ]:
        async with plugin_client(collector, plugin, max_message_bytes=1024) as client:
            with pytest.raises(error, match=re.escape(words)):
                await client.track(user_id="u", event="e", properties={})
            assert client.statistics().accepted == 0


async def test_a_changed_message_id_is_the_one_returned_and_sent(
    collector: LocalCollector,
) -> None:
    """The call returns the id the plugin set; a removed id is put back."""

    def rename(event: dict[str, Any]) -> dict[str, Any]:
        if event["event"] == "rename":
            event["messageId"] = "mine-1"
        else:
            del event["messageId"]
        return event

    async with plugin_client(collector, rename) as client:
        renamed = await client.track(user_id="u", event="rename")
        kept = await client.track(user_id="u", event="keep", message_id="given-2")
        assert await client.flush() == 0
    assert (renamed, kept) == ("mine-1", "given-2")
    assert [m["messageId"] for m in collector.messages()] == ["mine-1", "given-2"]


async def test_plugins_apply_to_enqueue_threadsafe(collector: LocalCollector) -> None:
    """Events from another thread go through the plugins in that thread, drops included."""
    threads: list[str] = []

    def tag(event: dict[str, Any]) -> dict[str, Any] | None:
        import threading

        threads.append(threading.current_thread().name)
        if event["event"] == "drop":
            return None
        event.setdefault("properties", {})["via"] = "thread"
        return event

    outcomes: list[DeliveryError | None] = []
    async with plugin_client(collector, tag) as client:

        def work() -> tuple[str, str]:
            kept = client.enqueue_threadsafe(Track(user_id="u", event="keep"))
            gone = client.enqueue_threadsafe(
                Track(user_id="u", event="drop"),
                callback=lambda _id, error: outcomes.append(error),
            )
            return kept, gone

        kept, _ = await asyncio.to_thread(work)
        await eventually(lambda: client.statistics().accepted == 2, what="the hand-off")
        assert await client.flush() == 0
        await eventually(lambda: bool(outcomes), what="the callback")
        stats = client.statistics()
    assert "MainThread" not in threads
    [received] = collector.messages()
    assert received["messageId"] == kept
    assert received["properties"] == {"via": "thread"}
    assert stats.dropped == {"filtered": 1}
    assert_accounted(stats)
    assert isinstance(outcomes[0], DroppedError)


def test_before_send_must_be_callables() -> None:
    """A non-callable, or a sequence holding one, is a ConfigError naming the position."""
    with pytest.raises(ConfigError, match=r"before_send\[1\] must be callable"):
        Client(WRITE_KEY, before_send=[lambda e: e, "nope"])
    with pytest.raises(ConfigError, match="callable or a sequence"):
        Client(WRITE_KEY, before_send=42)
    assert Client(WRITE_KEY, before_send=[]).config.before_send == ()


async def test_ready_made_plugins_together(collector: LocalCollector) -> None:
    """drop_events, scrub, add_context and sample as a chain, through the collector."""
    chain = [
        plugins.drop_events({"Heartbeat"}),
        plugins.scrub(keys={"password"}),
        plugins.add_context(app={"version": "1.4.2"}),
        plugins.sample(1.0, key="userId"),
    ]
    async with plugin_client(collector, chain) as client:
        await client.track(user_id="u", event="Heartbeat")
        await client.track(
            user_id="u",
            event="Signed up",
            properties={"Password": "hunter2", "note": "mail ada@example.com now"},
        )
        assert await client.flush() == 0
        stats = client.statistics()
    [received] = collector.messages()
    assert received["properties"] == {"Password": "[redacted]", "note": "mail [redacted] now"}
    assert received["context"]["app"] == {"version": "1.4.2"}
    assert stats.dropped == {"filtered": 1}


def test_plain_calls_through_an_identity_plugin_match_the_fast_path() -> None:
    """The plain call's event, through a plugin that changes nothing, is the fast path's."""
    import json

    from htevents_async._plugins import Pipeline

    fields = {"userId": "u", "event": "e", "properties": {"d": dt.date(2026, 1, 1), "n": 1.5}}
    _, fast = Encoder(32 * 1024).encode_plain("track", fields, "Track")
    _, piped = Pipeline((lambda event: event,), 32 * 1024).encode_plain("track", fields, "Track")
    expected, got = json.loads(fast), json.loads(piped)
    for key in ("messageId", "timestamp"):
        assert isinstance(got.pop(key), str)
        expected.pop(key)
    assert got == expected
    assert list(json.loads(piped)) == list(json.loads(fast))  # the same key order


async def test_plugins_apply_to_sync_client(collector: LocalCollector) -> None:
    """SyncClient runs the same plugins in the calling thread; drops are counted and reported."""
    from htevents_async import SyncClient

    outcomes: list[DeliveryError | None] = []

    def record() -> tuple[str, Any]:
        chain = [plugins.drop_events({"Heartbeat"}), plugins.add_context(app={"name": "shop"})]
        with SyncClient(WRITE_KEY, host=collector.url, before_send=chain, **FAST) as events:
            kept = events.track(user_id="u", event="Signed up", properties={})
            events.track(
                user_id="u",
                event="Heartbeat",
                properties={},
                callback=lambda _id, error: outcomes.append(error),
            )
            events.enqueue(Track(user_id="u", event="Heartbeat"))
            assert events.flush() == 0
            return kept, events.statistics()

    kept, stats = await asyncio.to_thread(record)
    [received] = collector.messages()
    assert received["messageId"] == kept
    assert received["context"]["app"] == {"name": "shop"}
    assert stats.dropped == {"filtered": 2}
    assert_accounted(stats)
    await eventually(lambda: bool(outcomes), what="the callback")
    assert isinstance(outcomes[0], DroppedError)


async def test_disable_skips_the_plugins() -> None:
    """With disable=True events are dropped as "disabled" before any plugin runs: a
    filtering plugin neither sees them nor turns them into losses reported to on_drop."""
    seen: list[dict[str, Any]] = []
    dropped: list[str] = []

    def drop_all(event: dict[str, Any]) -> None:
        seen.append(event)

    async with Client(
        WRITE_KEY,
        disable=True,
        before_send=drop_all,
        on_drop=lambda batch, reason: dropped.append(reason),
    ) as client:
        await client.track(user_id="1", event="e")
    assert seen == []
    assert dropped == []
    assert client.statistics().dropped == {"disabled": 1}


async def test_filtered_events_close_without_a_warning(
    collector: LocalCollector, caplog: pytest.LogCaptureFixture
) -> None:
    """A plugin filtering events out is the user's choice: the close line is DEBUG."""
    caplog.set_level(logging.DEBUG, logger="htevents_async")
    async with plugin_client(collector, plugins.drop_events({"Heartbeat"})) as client:
        await client.track(user_id="u", event="Heartbeat")
        await client.track(user_id="u", event="Signed up")
    assert client.statistics().dropped == {"filtered": 1}
    closing = [r for r in caplog.records if "closed;" in r.getMessage()]
    assert [r.levelno for r in closing] == [logging.DEBUG]
