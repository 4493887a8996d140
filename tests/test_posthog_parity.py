"""The PostHog mapping, held to the bodies the ``posthog`` package itself sends.

The same calls go through ``posthog`` 7.x and through our client to the local
collector; the events must agree field by field, except what identifies the
sender: the library name and version, the ids and times, and the facts
``posthog`` adds about its host (``$os``, ``$python_version``…).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from htevents_async import Client
from htevents_async._collector import LocalCollector

posthog = pytest.importorskip("posthog")

pytestmark = pytest.mark.anyio

KEY = "phc_parity_key_1"
_SENDER = {"uuid", "timestamp"}
_SENDER_PROPERTIES = {
    "$lib",
    "$lib_version",
    "$python_runtime",
    "$python_version",
    "$os",
    "$os_version",
    "$os_distro",
    "$geoip_disable",
    "$is_server",
}


def _comparable(event: dict[str, Any]) -> dict[str, Any]:
    event = {key: value for key, value in event.items() if key not in _SENDER}
    properties = event.get("properties", {})
    event["properties"] = {k: v for k, v in properties.items() if k not in _SENDER_PROPERTIES}
    return event


def _theirs(url: str) -> None:
    client = posthog.Client(KEY, host=url, sync_mode=True, disable_geoip=True)
    try:
        client.capture(
            "Order completed",
            distinct_id="u1",
            properties={"total": 9.5},
            groups={"company": "acme"},
        )
        # posthog 7.x has no identify(): set() sends the same $set under event "$set".
        client.set(distinct_id="u1", properties={"plan": "pro"})
        client.alias(previous_id="anon-7", distinct_id="u1")
        client.group_identify("company", "acme", {"seats": 3}, distinct_id="u1")
        client.capture(
            "$pageview",
            distinct_id="a1",
            properties={"url": "https://example.com/", "$current_url": "https://example.com/"},
        )
        client.capture("$screen", distinct_id="u1", properties={"$screen_name": "Settings"})
    finally:
        client.shutdown()


async def _ours(url: str) -> None:
    async with Client(KEY, host=url, protocol="posthog", gzip=False, max_batch_size=6) as client:
        await client.track(
            user_id="u1",
            event="Order completed",
            properties={"total": 9.5, "$groups": {"company": "acme"}},
        )
        await client.identify(user_id="u1", traits={"plan": "pro"})
        await client.alias(previous_id="anon-7", user_id="u1")
        await client.group(user_id="u1", group_id="acme", traits={"seats": 3})
        await client.page(anonymous_id="a1", properties={"url": "https://example.com/"})
        await client.screen(user_id="u1", name="Settings")


async def test_bodies_match_the_posthog_package(collector: LocalCollector) -> None:
    """Every call's PostHog event equals the one ``posthog`` sends for it."""
    await asyncio.to_thread(_theirs, collector.url)
    await collector.wait_for(6)
    theirs = collector.requests
    await _ours(collector.url)
    await collector.wait_for(12)
    ours = collector.requests[len(theirs) :]
    assert [r.status for r in theirs + ours] == [200] * (len(theirs) + len(ours))
    their_events = [_comparable(e) for r in theirs for e in r.body["batch"]]
    our_events = [_comparable(e) for r in ours for e in r.body["batch"]]
    assert their_events[1].pop("event") == "$set"
    assert our_events[1].pop("event") == "$identify"
    assert our_events == their_events
    for request in theirs + ours:
        assert {"api_key", "batch", "sent_at"} <= set(request.body)
        assert request.body["api_key"] == KEY
