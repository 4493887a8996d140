"""The migration guides' statements about the peer SDKs, held to the installed packages.

``docs/migration/`` compares ``segment-analytics-python``, Hightouch's
``events-sdk-python``, ``rudder-sdk-python`` and ``posthog`` (its thread
``Client`` and its ``AsyncClient``) with this package. The defaults, limits and
call-site behaviours the guides' tables mark with ✓ are asserted here against
the versions pinned in noxfile.py's bench session (the ``test`` dependency group
pins the same), by introspecting each package or building a client with
``send=False`` (no thread, no network). What the clients do on the wire is in
``test_migration_wire.py``; the guides' examples run in
``test_migration_examples.py``.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import re
import sys
import uuid
from asyncio.subprocess import PIPE
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from migration_support import DEAD_PROXY, KEY
from servers import environment

import htevents_async.testing
from htevents_async import Client, Config, MessageTooLargeError, MessageTypeError

segment = pytest.importorskip("segment.analytics")
segment_consumer = pytest.importorskip("segment.analytics.consumer")
segment_request = pytest.importorskip("segment.analytics.request")
htevents = pytest.importorskip("hightouch.htevents")
htevents_consumer = pytest.importorskip("hightouch.htevents.consumer")
rudder = pytest.importorskip("rudderstack.analytics")
rudder_consumer = pytest.importorskip("rudderstack.analytics.consumer")
posthog = pytest.importorskip("posthog")
posthog_consumer = pytest.importorskip("posthog.consumer")

pytestmark = [
    pytest.mark.anyio,
    # events-sdk-python stamps times with datetime.utcnow(), deprecated from Python 3.12.
    pytest.mark.filterwarnings("ignore:datetime.datetime.utcnow:DeprecationWarning"),
]


# -- defaults and limits ---------------------------------------------------------------


def _defaults(function: Callable[..., Any]) -> dict[str, Any]:
    return {
        name: parameter.default
        for name, parameter in inspect.signature(function).parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }


_THREAD_PEER_DEFAULTS = {
    "max_queue_size": 10_000,
    "upload_size": 100,
    "upload_interval": 0.5,
    "max_retries": 10,
    "timeout": 15,
    "thread": 1,
    "sync_mode": False,
    "send": True,
    "host": None,
}

CLIENT_DEFAULTS: list[tuple[str, Callable[..., Any], dict[str, Any]]] = [
    (
        "segment",
        segment.Client,
        {
            **_THREAD_PEER_DEFAULTS,
            "gzip": False,
            "max_total_backoff_duration": 43_200,
            "max_rate_limit_duration": 1_800,
        },
    ),
    ("hightouch", htevents.Client, {**_THREAD_PEER_DEFAULTS, "gzip": False}),
    # rudder's host default is read from TEST_DATA_PLANE_URL (via .env) at import.
    ("rudderstack", rudder.Client, {**_THREAD_PEER_DEFAULTS, "gzip": True, "host": rudder.host}),
    (
        "posthog",
        posthog.Client,
        {
            "max_queue_size": 10_000,
            "flush_at": 100,
            "flush_interval": 5.0,
            "gzip": False,
            "max_retries": 3,
            "timeout": 15,
            "thread": 1,
            "sync_mode": False,
            "send": True,
            "disabled": False,
            "disable_geoip": True,
            "historical_migration": False,
            "before_send": None,
            "super_properties": None,
        },
    ),
    (
        "posthog-async",
        posthog.AsyncClient,
        {
            "max_queue_size": 10_000,
            "flush_at": 100,
            "flush_interval": 5.0,
            "gzip": False,
            "max_retries": 3,
            "timeout": 15,
            "thread": 1,
            "disable_geoip": True,
        },
    ),
]


@pytest.mark.parametrize(("peer", "client", "expected"), CLIENT_DEFAULTS, ids=lambda v: str(v))
def test_peer_option_defaults_are_those_the_guide_tabulates(
    peer: str, client: Callable[..., Any], expected: dict[str, Any]
) -> None:
    """Queue size, batch size and interval, retries, timeout, gzip: the peer's own defaults."""
    defaults = _defaults(client)
    assert {name: defaults[name] for name in expected} == expected


def test_our_defaults_are_those_the_guides_tabulate() -> None:
    """The "ours" column of every options table."""
    config = Config()
    assert (config.max_queue_size, config.max_batch_size, config.flush_interval) == (
        10_000,
        100,
        1.0,
    )
    assert (config.max_retries, config.max_retry_time, config.request_timeout) == (10, 60.0, 10.0)
    assert (config.gzip, config.max_concurrent_requests, config.overflow) == (True, 4, "drop")
    assert (config.max_message_bytes, config.max_batch_bytes) == (32 * 1024, 475_000)
    assert (config.shutdown_timeout, config.flush_timeout, config.retry_after_max) == (
        5.0,
        10.0,
        60.0,
    )
    assert config.host == "https://us-east-1.hightouch-events.com"


def test_message_and_batch_limits_are_those_the_guides_state() -> None:
    """32 KiB / 475,000 B (Segment, Hightouch), 4 MiB / 4 MiB (RudderStack), 900 KiB / 5 MiB."""
    assert (segment_consumer.MAX_MSG_SIZE, segment_consumer.BATCH_SIZE_LIMIT) == (32768, 475_000)
    assert (htevents_consumer.MAX_MSG_SIZE, htevents_consumer.BATCH_SIZE_LIMIT) == (32768, 475_000)
    assert (rudder_consumer.MAX_MSG_SIZE, rudder_consumer.BATCH_SIZE_LIMIT) == (4 << 20, 4 << 20)
    assert (posthog_consumer.MAX_MSG_SIZE, posthog_consumer.BATCH_SIZE_LIMIT) == (
        900 * 1024,
        5 << 20,
    )


@pytest.mark.parametrize("client", [segment.Client, htevents.Client, rudder.Client])
def test_flush_takes_no_timeout_in_the_segment_derived_sdks(client: Any) -> None:
    """``flush()`` has no time limit: it is ``queue.join()``."""
    assert list(inspect.signature(client.flush).parameters) == ["self"]


def test_posthog_flush_defaults_to_ten_seconds_and_async_shutdown_has_no_limit() -> None:
    """posthog's ``flush(timeout_seconds=10)``; ``AsyncClient.shutdown()`` takes no timeout."""
    assert _defaults(posthog.Client.flush) == {"timeout_seconds": 10}
    assert _defaults(posthog.AsyncClient.flush) == {"timeout_seconds": 10}
    assert list(inspect.signature(posthog.AsyncClient.shutdown).parameters) == ["self"]


def test_posthog_has_no_identify_and_its_async_capture_is_not_awaited() -> None:
    """posthog 7 identifies with ``set()``; ``AsyncClient.capture`` is a plain method."""
    assert not hasattr(posthog.Client, "identify")
    assert callable(posthog.Client.set)
    assert not inspect.iscoroutinefunction(posthog.AsyncClient.capture)
    assert inspect.iscoroutinefunction(posthog.AsyncClient.flush)


# -- what a call does (send=False: no thread, no network) --------------------------------

SEGMENT_LIKE = [
    pytest.param(segment.Client, id="segment"),
    pytest.param(htevents.Client, id="hightouch"),
    pytest.param(rudder.Client, id="rudderstack"),
]


@pytest.mark.parametrize("client", SEGMENT_LIKE)
def test_a_call_returns_a_success_flag_and_the_message_with_a_uuid4_id(client: Any) -> None:
    """``track()`` returns ``(True, msg)``; ``msg["messageId"]`` is a fresh uuid4."""
    accepted, message = client(KEY, send=False).track("u1", "Order completed")
    assert accepted is True
    assert uuid.UUID(message["messageId"]).version == 4


@pytest.mark.parametrize("client", SEGMENT_LIKE)
def test_an_identity_of_zero_is_refused_by_truthiness(client: Any) -> None:
    """``user_id=0`` raises ``AssertionError`` in the peers; it is a valid id here."""
    with pytest.raises(AssertionError, match="user_id or anonymous_id"):
        client(KEY, send=False).track(0, "Order completed")


async def test_an_identity_of_zero_is_valid_here_and_calls_are_keyword_only() -> None:
    """Ours accepts ``user_id=0`` (sent as ``"0"``) and refuses positional arguments."""
    async with htevents_async.testing.capture() as (client, captured):
        await client.track(user_id=0, event="Order completed")
        with pytest.raises(TypeError):
            await client.track("u1", "Order completed")  # type: ignore[misc]
    assert captured.messages()[0]["userId"] == "0"
    async with htevents_async.testing.capture(protocol="posthog") as (client, captured):
        await client.track(user_id=0, event="Order completed")
    assert captured.messages()[0]["distinct_id"] == "0"


@pytest.mark.parametrize("client", [segment.Client, htevents.Client])
def test_an_oversized_message_raises_a_bare_runtime_error(client: Any) -> None:
    """Over 32 KiB: ``RuntimeError`` (we raise ``MessageTooLargeError``, a ``ValueError``)."""
    with pytest.raises(RuntimeError):
        client(KEY, send=False).track("u1", "e", {"blob": "x" * 40_000})


def test_rudderstack_takes_messages_up_to_four_mib() -> None:
    """A 40 KB message is accepted by rudder-sdk-python (its limit is 4 MiB)."""
    accepted, _ = rudder.Client(KEY, send=False).track("u1", "e", {"blob": "x" * 40_000})
    assert accepted is True


async def test_we_refuse_an_oversized_message_and_an_unknown_value_at_the_call_site() -> None:
    """``MessageTooLargeError`` over 32 KiB, ``MessageTypeError`` for a value JSON cannot hold."""
    async with Client(KEY, disable=True) as client:
        with pytest.raises(MessageTooLargeError):
            await client.track(user_id="u1", event="e", properties={"blob": "x" * 40_000})
        with pytest.raises(MessageTypeError, match="properties"):
            await client.track(user_id="u1", event="e", properties={"o": object()})


@pytest.mark.parametrize("client", SEGMENT_LIKE)
def test_unsupported_values_are_dropped_and_decimals_become_floats(
    client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A UUID or unknown object vanishes with a warning; a ``Decimal`` loses its digits."""
    digits = Decimal("0.1000000000000000055511151231257827")
    properties = {"id": uuid.uuid4(), "o": object(), "d": digits, "n": 1}
    with caplog.at_level(logging.WARNING):
        _, message = client(KEY, send=False).track("u1", "e", properties)
    assert message["properties"] == {"d": 0.1, "n": 1}
    assert "unsupported" in caplog.text


def test_posthog_turns_uuids_to_text_decimals_to_floats_and_other_objects_to_null() -> None:
    """posthog's cleaner: ``UUID`` → text, ``Decimal`` → float, an unknown object → None."""
    value = uuid.uuid4()
    cleaned = posthog.utils.clean({"id": value, "d": Decimal("1.10"), "o": object()})
    assert cleaned == {"id": str(value), "d": 1.1, "o": None}


@pytest.mark.parametrize(
    ("client", "pattern"),
    [
        (segment.Client, r"\.\d{3}\+00:00$"),
        (htevents.Client, r"\.\d{3}\+00:00$"),
        (rudder.Client, r"\.\d{6}\+00:00$"),
    ],
)
def test_timestamp_format(client: Any, pattern: str) -> None:
    """Milliseconds and ``+00:00`` (Segment, Hightouch); microseconds (RudderStack)."""
    _, message = client(KEY, send=False).track("u1", "e")
    assert re.search(pattern, message["timestamp"]), message["timestamp"]


def test_rudderstack_identify_puts_traits_in_context_and_adds_all_integrations() -> None:
    """rudder: identify traits go to ``context.traits``; ``integrations`` {"All": true}."""
    _, message = rudder.Client(KEY, send=False).identify("u1", {"plan": "pro"})
    assert "traits" not in message
    assert message["context"]["traits"] == {"plan": "pro"}
    assert message["integrations"] == {"All": True}
    assert message["channel"] == "server"


@pytest.mark.parametrize("client", SEGMENT_LIKE)
def test_thread_option_keeps_only_the_last_consumer(client: Any) -> None:
    """``thread=3`` builds three consumers but keeps one in ``consumers`` (join stops one)."""
    assert len(client(KEY, send=False, thread=3).consumers) == 1


def test_rudderstack_module_settings_ignore_upload_size_and_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``rudder_analytics.upload_size`` and ``upload_interval`` are read by nobody."""
    monkeypatch.setattr(rudder, "write_key", KEY)
    monkeypatch.setattr(rudder, "send", False)
    monkeypatch.setattr(rudder, "upload_size", 7)
    monkeypatch.setattr(rudder, "upload_interval", 9.0)
    monkeypatch.setattr(rudder, "default_client", None)
    assert rudder.track("u1", "e") is None  # the module functions return nothing
    (consumer,) = rudder.default_client.consumers
    assert (consumer.upload_size, consumer.upload_interval) == (100, 0.5)


def test_posthog_logs_bad_input_and_returns_none(caplog: pytest.LogCaptureFixture) -> None:
    """posthog does not raise on bad input (unless ``debug=True``): it logs and returns None."""
    seen: list[dict[str, Any]] = []
    client = posthog.Client(
        KEY, host=DEAD_PROXY, send=False, before_send=lambda msg: seen.append(msg) or msg
    )
    try:
        with caplog.at_level(logging.ERROR, logger="posthog"):
            assert client.capture("e", distinct_id="u1", properties="not a dict") is None
        assert "not a mapping" in caplog.text
        assert seen == []
        # Without an id the event is sent as a personless one under a random uuid.
        assert client.capture("e") is not None
        (message,) = seen
        assert uuid.UUID(message["distinct_id"])
        assert message["properties"]["$process_person_profile"] is False
        # A falsy id is still an id.
        assert client.capture("e", distinct_id=0) is not None
        assert seen[-1]["distinct_id"] == "0"
    finally:
        client.shutdown()


def test_segment_caps_retry_after_at_300_seconds() -> None:
    """segment-analytics-python honours ``Retry-After`` (seconds or HTTP-date) up to 300 s."""
    response = requests.Response()
    response.headers["Retry-After"] = "3600"
    assert segment_request.parse_retry_after(response) == 300
    response.headers["Retry-After"] = "7"
    assert segment_request.parse_retry_after(response) == 7


_NAIVE_TIMESTAMPS = """
import asyncio
import datetime
import json

import hightouch.htevents
import rudderstack.analytics
import segment.analytics
from posthog.utils import guess_timezone

import htevents_async.testing

recent = datetime.datetime.now()
old = datetime.datetime(2020, 1, 1, 12, 0)
# What datetime.utcnow() returns (deprecated since Python 3.12): UTC's wall clock, naive.
utc_naive = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
times = (recent, old, utc_naive)
out = {}
for name, sdk in [
    ("segment", segment.analytics),
    ("hightouch", hightouch.htevents),
    ("rudderstack", rudderstack.analytics),
]:
    client = sdk.Client("key", send=False)
    out[name] = [client.track("u1", "e", timestamp=t)[1]["timestamp"] for t in times]
out["posthog"] = [guess_timezone(t).isoformat() for t in times]


async def ours():
    async with htevents_async.testing.capture() as (client, captured):
        for t in times:
            await client.track(user_id="u1", event="e", timestamp=t)
    return [m["timestamp"] for m in captured.messages()]


out["ours"] = asyncio.run(ours())
out["recent"] = recent.isoformat(timespec="milliseconds")
out["recent_in_utc"] = recent.astimezone(datetime.timezone.utc).isoformat()
out["utc_naive"] = utc_naive.isoformat(timespec="milliseconds")
print(json.dumps(out))
"""

_SEGMENT_DERIVED = ("segment", "hightouch", "rudderstack")


async def _naive_timestamps(tmp_path: Path, zone: str) -> dict[str, Any]:
    """What each SDK makes of naive timestamps, in a process whose local zone is ``zone``."""
    script = tmp_path / "naive_timestamps.py"
    script.write_text(_NAIVE_TIMESTAMPS)
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(script), env=environment({"TZ": zone}), stdout=PIPE, stderr=PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    seen: dict[str, Any] = json.loads(out)
    # Ours never guesses: naive means UTC, whatever the zone.
    assert seen["ours"] == [
        seen["recent"] + "Z",
        "2020-01-01T12:00:00.000Z",
        seen["utc_naive"] + "Z",
    ]
    return seen


async def test_a_naive_timestamp_is_local_time_when_recent_and_utc_when_old(
    tmp_path: Path,
) -> None:
    """The peers read a naive ``datetime`` from the last 5 s as local time, an old one as UTC;
    we read UTC. East of UTC, ``utcnow()`` is in the past: UTC for every peer."""
    # A zone five and a half hours ahead of UTC, so local time and UTC cannot be confused.
    seen = await _naive_timestamps(tmp_path, "Asia/Kolkata")
    for peer in (*_SEGMENT_DERIVED, "posthog"):
        recent, old, utc_naive = seen[peer]
        if peer == "posthog":  # the same reading, then converted to UTC
            assert recent == seen["recent_in_utc"]
        else:
            assert recent.endswith("+05:30"), (peer, recent)
        assert re.fullmatch(r"2020-01-01T12:00:00(\.0+)?\+00:00", old), (peer, old)
        assert utc_naive.endswith("+00:00"), (peer, utc_naive)


async def test_west_of_utc_the_segment_derived_peers_read_utcnow_as_local_time(
    tmp_path: Path,
) -> None:
    """segment, hightouch and rudderstack take any naive ``datetime`` not older than 5 s,
    future ones included, as local time: west of UTC, ``utcnow()`` is hours ahead of the
    local clock and is stamped hours off. posthog takes only the last 5 s as local time."""
    # Five hours behind UTC, with no daylight saving time to shift it.
    seen = await _naive_timestamps(tmp_path, "America/Bogota")
    for peer in _SEGMENT_DERIVED:
        utc_naive = seen[peer][2]
        assert utc_naive.endswith("-05:00"), (peer, utc_naive)
        assert utc_naive.startswith(seen["utc_naive"][:16]), (peer, utc_naive)
    assert seen["posthog"][2].endswith("+00:00"), seen["posthog"]
