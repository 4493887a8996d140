"""The local collector's latency, durability, cross-site defences, retention and deduplication,
through real sockets on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import socket
import sqlite3
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from htevents_async._collector import LocalCollector
from htevents_async._collector._guard import HostPolicy
from htevents_async._collector._server import _bind

pytestmark = pytest.mark.anyio

WRITE_KEY = "test-write-key"


def track(
    event: str = "Order completed", message_id: str | None = None, **fields: Any
) -> dict[str, Any]:
    """A valid track message, with a messageId when given."""
    message: dict[str, Any] = {"type": "track", "event": event, "userId": "u1", **fields}
    if message_id is not None:
        message["messageId"] = message_id
    return message


async def post(
    http: httpx.AsyncClient, *messages: Mapping[str, Any], content_type: str = "application/json"
) -> httpx.Response:
    """POST messages as one batch with the given Content-Type."""
    return await http.post(
        "/v1/batch",
        content=json.dumps({"batch": list(messages)}).encode(),
        headers={"Content-Type": content_type},
        auth=(WRITE_KEY, ""),
    )


@contextlib.asynccontextmanager
async def serving(**options: Any) -> AsyncIterator[tuple[LocalCollector, httpx.AsyncClient]]:
    """A running collector with these options, and an HTTP client pointed at it."""
    async with (
        LocalCollector(**options) as collector,
        httpx.AsyncClient(base_url=collector.url) as http,
    ):
        yield collector, http


# --- latency --------------------------------------------------------------------------------


def test_listening_socket_is_tcp_so_asyncio_sets_nodelay() -> None:
    """The listening socket's protocol is TCP, which accepted sockets inherit."""
    sock = _bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()


async def test_kept_alive_requests_are_not_delayed_by_nagle() -> None:
    """A request on a kept-alive connection takes well under the ~40 ms of a delayed ACK."""
    async with serving() as (_collector, http):
        durations = []
        for _ in range(8):
            started = time.perf_counter()
            response = await http.get("/stats")
            durations.append(time.perf_counter() - started)
            assert response.status_code == 200

    # With Nagle on, every one of these waits ~40 ms for the client's delayed ACK; without
    # it each takes a few ms. The fastest of seven against 20 ms leaves room for a busy host.
    assert min(durations[1:]) < 0.020, durations


# --- persist before show --------------------------------------------------------------------


def refuse_event(db: Path, event: str) -> None:
    """Make SQLite itself refuse inserts of ``event``: a real write failure, from outside."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON messages"
            f" WHEN NEW.event = '{event}' BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
        conn.commit()


def allow_all(db: Path) -> None:
    """Remove the trigger set by :func:`refuse_event`."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("DROP TRIGGER refuse")
        conn.commit()


async def test_failed_database_write_leaves_no_phantom_copies(tmp_path: Path) -> None:
    """A 500 from a failed write stores nothing; the client's retries then store one copy."""
    db = tmp_path / "events.sqlite3"
    async with serving(db_path=db) as (collector, http):
        assert (await post(http, track("Before", "m-0"))).status_code == 200
        refuse_event(db, "Boom")

        for _ in range(3):
            failed = await post(http, track("Boom", "m-1"), track("Fine", "m-2"))
            assert failed.status_code == 500
        assert [m["event"] for m in collector.messages()] == ["Before"]
        assert (await http.get("/v1/events")).json()["cursor"] == 1

        allow_all(db)
        retried = await post(http, track("Boom", "m-1"), track("Fine", "m-2"))

        assert retried.status_code == 200
        assert [m["event"] for m in collector.messages()] == ["Before", "Boom", "Fine"]
        stats = collector.stats()
        assert (stats.messages, stats.duplicates, stats.rejected) == (3, 0, 3)

    async with LocalCollector(db_path=db) as restarted:
        assert [m["event"] for m in restarted.messages()] == ["Before", "Boom", "Fine"]


async def test_lone_surrogate_is_stored_losslessly(tmp_path: Path) -> None:
    """A string with a lone surrogate is accepted, served and reloaded from SQLite unchanged."""
    db = tmp_path / "events.sqlite3"
    lone = "half \ud800 of a pair, and caf\u00e9"
    async with serving(db_path=db) as (collector, http):
        # json.dumps escapes the surrogate, as any client must on the wire.
        response = await post(http, track(lone, properties={lone: lone}))
        assert response.status_code == 200
        served = (await http.get("/v1/events")).json()["events"][0]["message"]

    async with LocalCollector(db_path=db) as restarted:
        reloaded = restarted.messages()[0]

    assert served["event"] == reloaded["event"] == lone
    assert served == reloaded == collector.messages()[0]


# --- cross-site requests --------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
async def test_post_without_json_content_type_is_415(
    collector: LocalCollector, content_type: str
) -> None:
    """The types a web page may POST cross-site without a preflight are refused."""
    async with httpx.AsyncClient(base_url=collector.url) as http:
        response = await post(http, track(), content_type=content_type)

    assert response.status_code == 415
    assert "application/json" in response.json()["error"]
    assert collector.messages() == []


async def test_json_content_type_with_charset_is_accepted(collector: LocalCollector) -> None:
    """Parameters after the media type are fine."""
    async with httpx.AsyncClient(base_url=collector.url) as http:
        response = await post(http, track(), content_type="Application/JSON; charset=utf-8")

    assert response.status_code == 200


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:8787", "127.0.0.1.nip.io"])
@pytest.mark.parametrize("path", ["/v1/events", "/stats", "/"])
async def test_foreign_host_header_is_403(collector: LocalCollector, host: str, path: str) -> None:
    """A Host naming another site, as a DNS rebinding page sends, is refused on every route."""
    async with httpx.AsyncClient(base_url=collector.url) as http:
        response = await http.get(path, headers={"Host": host})

    assert response.status_code == 403
    assert "not allowed" in response.json()["error"]


async def test_foreign_host_cannot_post(collector: LocalCollector) -> None:
    """A batch sent with a foreign Host is refused and stores nothing."""
    async with httpx.AsyncClient(
        base_url=collector.url, headers={"Host": "attacker.example"}
    ) as http:
        response = await post(http, track())

    assert response.status_code == 403
    assert collector.messages() == []


@pytest.mark.parametrize(
    "host",
    ["localhost:8787", "LOCALHOST", "app.localhost:1", "127.0.0.1", "127.1.2.3:80", "[::1]:8787"],
)
async def test_loopback_host_headers_are_served(collector: LocalCollector, host: str) -> None:
    """Loopback names and addresses, with or without a port, are served."""
    async with httpx.AsyncClient(base_url=collector.url) as http:
        response = await http.get("/stats", headers={"Host": host})

    assert response.status_code == 200


async def test_allowed_hosts_are_served() -> None:
    """A name passed in allowed_hosts is served."""
    async with serving(allowed_hosts=["devbox.internal"]) as (_collector, http):
        allowed = await http.get("/stats", headers={"Host": "devbox.internal:8787"})
        other = await http.get("/stats", headers={"Host": "other.internal"})

    assert (allowed.status_code, other.status_code) == (200, 403)


def test_wildcard_binding_allows_any_ip_address_but_no_foreign_name() -> None:
    """Bound to 0.0.0.0, IP addresses are allowed (rebinding needs a name); names are not."""
    policy = HostPolicy("0.0.0.0")

    assert policy.allows("192.168.1.20:8787")
    assert policy.allows("[fe80::1]:8787")
    assert not policy.allows("attacker.example")
    assert not HostPolicy("127.0.0.1").allows("192.168.1.20")


# --- retention ------------------------------------------------------------------------------


async def test_retention_by_bytes_keeps_the_newest_and_counts_evictions() -> None:
    """Past max_bytes of JSON as received the oldest messages leave memory; stats show it."""
    pad = "x" * 1_000
    async with serving(max_bytes=3_500) as (collector, http):
        for name in "ABCDE":
            await post(http, track(name, properties={"pad": pad}))
        stats = (await http.get("/stats")).json()

    kept = collector.messages()
    assert [m["event"] for m in kept] == ["C", "D", "E"]
    assert stats["retained"] == 3
    assert stats["retained_bytes"] == sum(r.body_size for r in collector.requests[-3:])
    assert stats["retained_bytes"] <= stats["max_bytes"] == 3_500
    assert (stats["messages"], stats["evicted"]) == (5, 2)


async def test_retention_by_count_is_in_stats() -> None:
    """max_messages is served by /stats with the count of evicted messages."""
    async with serving(max_messages=2) as (_collector, http):
        await post(http, track("A"), track("B"), track("C"))
        stats = (await http.get("/stats")).json()

    assert (stats["max_messages"], stats["retained"], stats["evicted"]) == (2, 2, 1)


async def test_restart_loads_only_what_fits_the_byte_limit(tmp_path: Path) -> None:
    """A restarted collector loads the newest messages within max_bytes and numbers on."""
    db = tmp_path / "events.sqlite3"
    pad = "x" * 1_000
    async with serving(db_path=db) as (_first, http):
        for name in "ABC":
            await post(http, track(name, properties={"pad": pad}))

    async with serving(db_path=db, max_bytes=1_500) as (second, http):
        assert [m["event"] for m in second.messages()] == ["C"]
        await post(http, track("D"))
        seqs = [e["seq"] for e in (await http.get("/v1/events")).json()["events"]]

    assert seqs == [4, 3]


# --- deduplication --------------------------------------------------------------------------


async def test_duplicate_message_ids_are_dropped_and_counted(collector: LocalCollector) -> None:
    """A messageId seen before, in an earlier batch or the same one, is stored once."""
    async with httpx.AsyncClient(base_url=collector.url) as http:
        await post(http, track("A", "m-1"), track("B", "m-2"))
        response = await post(http, track("A again", "m-1"), track("C", "m-3"), track("C", "m-3"))
        stats = (await http.get("/stats")).json()

    assert response.status_code == 200
    assert [m["event"] for m in collector.messages()] == ["A", "B", "C"]
    assert (stats["messages"], stats["duplicates"], stats["keep_duplicates"]) == (3, 2, False)


async def test_messages_without_id_are_never_deduplicated(collector: LocalCollector) -> None:
    """Only messages that carry a messageId can be duplicates."""
    async with httpx.AsyncClient(base_url=collector.url) as http:
        await post(http, track("A"), track("A"))

    assert len(collector.messages()) == 2
    assert collector.stats().duplicates == 0


async def test_keep_duplicates_stores_and_counts_them() -> None:
    """With keep_duplicates every copy is stored, and the repeats are still counted."""
    async with serving(keep_duplicates=True) as (collector, http):
        await post(http, track("A", "m-1"))
        await post(http, track("A", "m-1"))

    assert len(collector.messages()) == 2
    stats = collector.stats()
    assert (stats.messages, stats.duplicates, stats.keep_duplicates) == (2, 1, True)


async def test_deduplication_survives_a_restart(tmp_path: Path) -> None:
    """Ids loaded back from the database still count as seen."""
    db = tmp_path / "events.sqlite3"
    async with serving(db_path=db) as (_first, http):
        await post(http, track("A", "m-1"))

    async with serving(db_path=db) as (second, http):
        await post(http, track("A", "m-1"))

    assert len(second.messages()) == 1
    assert second.stats().duplicates == 1


# --- queries, paging and the icon -----------------------------------------------------------


async def test_event_and_user_filters_are_case_insensitive_substrings(
    collector: LocalCollector,
) -> None:
    """GET /v1/events matches event names and ids by case-insensitive substring."""
    async with httpx.AsyncClient(base_url=collector.url) as http:
        await post(
            http,
            track("Order completed", userId="Alice-1"),
            track("Order refunded", userId="bob"),
            track("Signed up", userId="alice-2"),
        )
        by_event = (await http.get("/v1/events", params={"event": "ORDER"})).json()
        by_user = (await http.get("/v1/events", params={"user_id": "ALICE"})).json()

    assert [e["message"]["event"] for e in by_event["events"]] == [
        "Order refunded",
        "Order completed",
    ]
    assert [e["message"]["userId"] for e in by_user["events"]] == ["alice-2", "Alice-1"]


async def test_before_pages_back_through_older_messages(collector: LocalCollector) -> None:
    """before=<seq> returns the page of messages older than that sequence number."""
    async with httpx.AsyncClient(base_url=collector.url) as http:
        await post(http, *(track(f"E{n}") for n in range(1, 8)))
        first = (await http.get("/v1/events", params={"limit": 3})).json()
        oldest = first["events"][-1]["seq"]
        second = (await http.get("/v1/events", params={"limit": 3, "before": oldest})).json()

    assert [e["seq"] for e in first["events"]] == [7, 6, 5]
    assert [e["seq"] for e in second["events"]] == [4, 3, 2]


async def test_favicon_is_served(collector: LocalCollector) -> None:
    """The viewer's icon is served as SVG, also where browsers look by default."""
    async with httpx.AsyncClient(base_url=collector.url) as http:
        svg = await http.get("/favicon.svg")
        ico = await http.get("/favicon.ico")

    assert svg.status_code == ico.status_code == 200
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.text.startswith("<svg")
    assert svg.text == ico.text
