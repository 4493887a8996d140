"""The local collector, through real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from htevents_async._collector import LocalCollector

WRITE_KEY = "test-write-key"
REPO = Path(__file__).resolve().parents[1]


def track(event: str = "Order completed", user_id: object = "u1", **fields: Any) -> dict[str, Any]:
    """A valid track message."""
    return {"type": "track", "event": event, "userId": user_id, **fields}


def batch_body(*messages: Mapping[str, Any], **fields: Any) -> dict[str, Any]:
    """A batch body as the client sends it."""
    return {"batch": list(messages), "sentAt": "2026-11-22T04:07:19.610Z", **fields}


async def post(
    http: httpx.AsyncClient,
    body: Mapping[str, Any] | bytes,
    *,
    key: str | None = WRITE_KEY,
    compress: bool = False,
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    """POST a body to /v1/batch: JSON unless given bytes, with Basic auth unless key is None."""
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if compress:
        content = gzip.compress(content)
        all_headers["Content-Encoding"] = "gzip"
    auth = httpx.BasicAuth(key, "") if key is not None else None
    return await http.post("/v1/batch", content=content, headers=all_headers, auth=auth)


# Explicit rather than added by conftest, so that parametrized async tests keep their params.
pytestmark = pytest.mark.anyio


@contextlib.asynccontextmanager
async def serving(**options: Any) -> AsyncIterator[tuple[LocalCollector, httpx.AsyncClient]]:
    """A running collector with these options, and an HTTP client pointed at it."""
    async with (
        LocalCollector(**options) as collector,
        httpx.AsyncClient(base_url=collector.url) as http,
    ):
        yield collector, http


@pytest.fixture
async def http(collector: LocalCollector) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client pointed at the collector."""
    async with httpx.AsyncClient(base_url=collector.url) as client:
        yield client


# --- POST /v1/batch: accepted ---------------------------------------------------------------


async def test_plain_json_batch_is_accepted(
    collector: LocalCollector, http: httpx.AsyncClient
) -> None:
    """A plain JSON batch gets 200 {"success": true} and its messages are stored."""
    response = await post(http, batch_body(track("A"), track("B")))

    assert response.status_code == 200
    assert response.json() == {"success": True}
    assert [m["event"] for m in collector.messages()] == ["A", "B"]


async def test_gzip_batch_is_accepted(collector: LocalCollector, http: httpx.AsyncClient) -> None:
    """A gzip body is decompressed, stored, and recorded as gzip."""
    response = await post(http, batch_body(track("A")), compress=True)

    assert response.status_code == 200
    assert [m["event"] for m in collector.messages()] == ["A"]
    assert collector.requests[-1].gzip is True


async def test_stored_messages_get_received_at(
    collector: LocalCollector, http: httpx.AsyncClient
) -> None:
    """Every stored message carries the ISO-8601 UTC time it was received."""
    await post(http, batch_body(track()))

    received_at = collector.messages()[0]["receivedAt"]
    assert received_at == collector.requests[-1].received_at
    assert received_at.endswith("Z")


async def test_request_record_keeps_the_wire_format(
    collector: LocalCollector, http: httpx.AsyncClient
) -> None:
    """The request record has lower-case headers, the raw size and the body exactly as sent."""
    body = batch_body(track(), writeKey=WRITE_KEY)
    response = await post(http, body, compress=True, headers={"User-Agent": "probe/1"})

    record = collector.requests[-1]
    expected_auth = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    assert record.headers["authorization"] == expected_auth
    assert record.headers["user-agent"] == "probe/1"
    assert record.headers["content-encoding"] == "gzip"
    assert record.body_size == int(record.headers["content-length"])
    assert record.body == body
    assert record.status == response.status_code == 200


async def test_request_record_repr_hides_the_write_key(
    collector: LocalCollector, http: httpx.AsyncClient
) -> None:
    """Neither the Basic credentials nor the body writeKey appear in a record's repr."""
    await post(http, batch_body(track(), writeKey=WRITE_KEY))

    text = repr(collector.requests[-1])
    assert WRITE_KEY not in text
    assert base64.b64encode(f"{WRITE_KEY}:".encode()).decode() not in text


async def test_integer_and_zero_ids_are_accepted(
    collector: LocalCollector, http: httpx.AsyncClient
) -> None:
    """Ids may be integers, and 0 is a valid id."""
    response = await post(http, batch_body(track(user_id=0)))

    assert response.status_code == 200
    assert collector.messages()[0]["userId"] == 0


async def test_every_message_type_is_accepted(
    collector: LocalCollector, http: httpx.AsyncClient
) -> None:
    """All six Segment message types are accepted with their required fields."""
    messages = [
        {"type": "identify", "userId": "u1", "traits": {"email": "a@example.com"}},
        track(),
        {"type": "page", "anonymousId": "anon", "name": "Home"},
        {"type": "screen", "userId": "u1", "name": "Cart"},
        {"type": "group", "userId": "u1", "groupId": "g1"},
        {"type": "alias", "previousId": "anon", "userId": "u1"},
    ]
    response = await post(http, batch_body(*messages))

    assert response.status_code == 200
    assert [m["type"] for m in collector.messages()] == [m["type"] for m in messages]


# --- POST /v1/batch: authentication ---------------------------------------------------------


async def test_missing_write_key_is_401(collector: LocalCollector, http: httpx.AsyncClient) -> None:
    """Without Basic auth or a body writeKey the batch is refused with 401."""
    response = await post(http, batch_body(track()), key=None)

    assert response.status_code == 401
    assert response.json()["success"] is False
    assert collector.messages() == []


async def test_write_key_in_body_only_is_accepted(
    collector: LocalCollector, http: httpx.AsyncClient
) -> None:
    """A writeKey in the body is enough without an Authorization header."""
    response = await post(http, batch_body(track(), writeKey=WRITE_KEY), key=None)

    assert response.status_code == 200


async def test_malformed_basic_auth_is_401(
    collector: LocalCollector, http: httpx.AsyncClient
) -> None:
    """An Authorization header that is not decodable Basic credentials is refused with 401."""
    response = await post(
        http, batch_body(track()), key=None, headers={"Authorization": "Basic !!not-base64!!"}
    )

    assert response.status_code == 401


async def test_expected_write_key_is_accepted() -> None:
    """A collector started with a write key accepts that key."""
    async with serving(write_key=WRITE_KEY) as (_collector, http):
        response = await post(http, batch_body(track(), writeKey=WRITE_KEY))

    assert response.status_code == 200


async def test_wrong_write_key_is_401() -> None:
    """A collector started with a write key refuses any other key with 401."""
    async with serving(write_key=WRITE_KEY) as (collector, http):
        response = await post(http, batch_body(track()), key="another-key")

    assert response.status_code == 401
    assert collector.messages() == []
    assert "another-key" not in response.text


async def test_wrong_body_write_key_is_401_despite_right_header() -> None:
    """Every key a request presents must be the expected one."""
    async with serving(write_key=WRITE_KEY) as (_collector, http):
        response = await post(http, batch_body(track(), writeKey="another-key"))

    assert response.status_code == 401


# --- POST /v1/batch: malformed --------------------------------------------------------------

MALFORMED: dict[str, tuple[bytes, dict[str, str]]] = {
    "bad gzip": (b"\x1f\x8b\x08 this is not gzip", {"Content-Encoding": "gzip"}),
    "truncated gzip": (gzip.compress(b'{"batch": []}')[:-6], {"Content-Encoding": "gzip"}),
    "unsupported encoding": (b'{"batch": []}', {"Content-Encoding": "br"}),
    "bad json": (b'{"batch": [', {}),
    "not utf-8": (b'{"batch": "\xff"}', {}),
    "body not an object": (b"[]", {}),
    "batch missing": (b'{"sentAt": "2026-11-22T04:07:19.610Z"}', {}),
    "batch not a list": (b'{"batch": {"type": "track"}}', {}),
    "message not an object": (b'{"batch": ["track"]}', {}),
    "type missing": (b'{"batch": [{"event": "A", "userId": "u1"}]}', {}),
    "type not a string": (b'{"batch": [{"type": 1, "userId": "u1"}]}', {}),
    "unknown type": (b'{"batch": [{"type": "delete", "userId": "u1"}]}', {}),
    "no identity": (b'{"batch": [{"type": "track", "event": "A"}]}', {}),
    "boolean id": (b'{"batch": [{"type": "track", "event": "A", "userId": true}]}', {}),
    "track without event": (b'{"batch": [{"type": "track", "userId": "u1"}]}', {}),
    "group without groupId": (b'{"batch": [{"type": "group", "userId": "u1"}]}', {}),
    "alias without previousId": (b'{"batch": [{"type": "alias", "userId": "u1"}]}', {}),
    "writeKey not a string": (b'{"batch": [], "writeKey": 42}', {}),
}


@pytest.mark.parametrize(("body", "headers"), MALFORMED.values(), ids=MALFORMED.keys())
async def test_malformed_body_is_400(
    collector: LocalCollector, http: httpx.AsyncClient, body: bytes, headers: dict[str, str]
) -> None:
    """A malformed body is refused with 400 and a JSON error saying why."""
    response = await post(http, body, headers=headers)

    assert response.status_code == 400
    payload = response.json()
    assert payload["success"] is False
    assert payload["error"]
    assert collector.requests[-1].error == payload["error"]


async def test_batch_with_one_bad_message_stores_nothing(
    collector: LocalCollector, http: httpx.AsyncClient
) -> None:
    """A batch is accepted or refused as a whole."""
    response = await post(http, batch_body(track("A"), {"type": "track", "userId": "u1"}))

    assert response.status_code == 400
    assert "batch[1]" in response.json()["error"]
    assert collector.messages() == []


async def test_plain_body_over_the_cap_is_400() -> None:
    """A plain body over max_body_bytes is refused with 400, not a dropped connection."""
    async with serving(max_body_bytes=1_000) as (collector, http):
        response = await post(http, batch_body(track(properties={"pad": "x" * 2_000})))

    assert response.status_code == 400
    assert "limit" in response.json()["error"]
    assert collector.requests[-1].body_size > 2_000


async def test_gzip_body_expanding_over_the_cap_is_400() -> None:
    """A small gzip body that decompresses past the cap is refused with 400."""
    body = batch_body(track(properties={"pad": "x" * 100_000}))
    async with serving(max_body_bytes=10_000) as (collector, http):
        response = await post(http, body, compress=True)

    assert response.status_code == 400
    assert "limit" in response.json()["error"]
    assert collector.requests[-1].body_size < 10_000


async def test_default_cap_accepts_a_full_size_client_batch(
    collector: LocalCollector, http: httpx.AsyncClient
) -> None:
    """A batch at the client's 475,000 byte limit fits under the default cap."""
    pad = "x" * (475_000 // 20 - 200)
    body = batch_body(*(track(properties={"pad": pad}) for _ in range(20)))
    assert len(json.dumps(body)) <= 475_000

    response = await post(http, body)

    assert response.status_code == 200


# --- GET /v1/events -------------------------------------------------------------------------


async def seed(http: httpx.AsyncClient) -> None:
    """Post a small mixed history: two users, an anonymous visitor, three types."""
    await post(
        http,
        batch_body(
            track("Signed up", "alice"),
            {"type": "page", "anonymousId": "anon-1", "name": "Home"},
            track("Order completed", "bob"),
            {"type": "identify", "userId": "alice", "traits": {"plan": "pro"}},
            track("Order completed", "alice"),
        ),
    )


async def events(http: httpx.AsyncClient, **params: str | int) -> dict[str, Any]:
    """GET /v1/events and check it succeeded."""
    response = await http.get("/v1/events", params=params)
    assert response.status_code == 200
    payload: dict[str, Any] = response.json()
    return payload


async def test_events_are_listed_newest_first(
    collector: LocalCollector, http: httpx.AsyncClient
) -> None:
    """GET /v1/events returns stored messages newest first, with their sequence numbers."""
    await seed(http)

    payload = await events(http)

    assert [e["seq"] for e in payload["events"]] == [5, 4, 3, 2, 1]
    assert payload["events"][0]["message"] == collector.messages()[-1]
    assert payload["cursor"] == 5


async def test_events_filter_by_type(collector: LocalCollector, http: httpx.AsyncClient) -> None:
    """The type filter keeps messages of that type only."""
    await seed(http)

    payload = await events(http, type="track")

    assert [e["message"]["type"] for e in payload["events"]] == ["track"] * 3


async def test_events_filter_by_user_matches_user_or_anonymous_id(
    collector: LocalCollector, http: httpx.AsyncClient
) -> None:
    """The user_id filter matches userId and anonymousId."""
    await seed(http)

    alice = await events(http, user_id="alice")
    anonymous = await events(http, user_id="anon-1")

    assert [e["seq"] for e in alice["events"]] == [5, 4, 1]
    assert [e["message"]["name"] for e in anonymous["events"]] == ["Home"]


async def test_events_filter_by_integer_user_id(
    collector: LocalCollector, http: httpx.AsyncClient
) -> None:
    """An integer userId on the wire matches the same number in the query string."""
    await post(http, batch_body(track(user_id=0), track(user_id=7)))

    payload = await events(http, user_id="0")

    assert [e["message"]["userId"] for e in payload["events"]] == [0]


async def test_events_filter_by_event_name(
    collector: LocalCollector, http: httpx.AsyncClient
) -> None:
    """The event filter keeps track messages with that event name."""
    await seed(http)

    payload = await events(http, event="Order completed")

    assert [e["message"]["userId"] for e in payload["events"]] == ["alice", "bob"]


async def test_events_filters_combine(collector: LocalCollector, http: httpx.AsyncClient) -> None:
    """Several filters must all match."""
    await seed(http)

    payload = await events(http, type="track", user_id="alice", event="Order completed")

    assert [e["seq"] for e in payload["events"]] == [5]


async def test_events_limit_keeps_the_newest(
    collector: LocalCollector, http: httpx.AsyncClient
) -> None:
    """limit returns that many of the newest matches."""
    await seed(http)

    payload = await events(http, limit=2)

    assert [e["seq"] for e in payload["events"]] == [5, 4]


async def test_events_after_returns_only_newer_messages(
    collector: LocalCollector, http: httpx.AsyncClient
) -> None:
    """after=cursor returns only what arrived since, and an unchanged cursor when nothing did."""
    await seed(http)
    cursor = (await events(http))["cursor"]

    idle = await events(http, after=cursor)
    await post(http, batch_body(track("Later")))
    fresh = await events(http, after=cursor)

    assert idle == {"events": [], "cursor": cursor}
    assert [e["message"]["event"] for e in fresh["events"]] == ["Later"]
    assert fresh["cursor"] == cursor + 1


async def test_events_cursor_advances_past_filtered_messages(
    collector: LocalCollector, http: httpx.AsyncClient
) -> None:
    """The cursor counts every message, so a filtered poll never re-reads what it skipped."""
    await seed(http)

    payload = await events(http, type="identify")

    assert [e["seq"] for e in payload["events"]] == [4]
    assert payload["cursor"] == 5


@pytest.mark.parametrize(
    "params",
    [{"limit": "many"}, {"limit": "-1"}, {"limit": "100000"}, {"after": "x"}, {"type": "delete"}],
    ids=["limit not a number", "negative limit", "limit too big", "after not a number", "type"],
)
async def test_events_bad_query_is_400(
    collector: LocalCollector, http: httpx.AsyncClient, params: dict[str, str]
) -> None:
    """An invalid query parameter is refused with 400 and a JSON error."""
    response = await http.get("/v1/events", params=params)

    assert response.status_code == 400
    assert response.json()["error"]


# --- GET /stats and the Python accessors ----------------------------------------------------


async def test_stats_count_messages_requests_and_bytes(
    collector: LocalCollector, http: httpx.AsyncClient
) -> None:
    """GET /stats counts messages by type, requests, rejected requests and body bytes."""
    await seed(http)
    await post(http, batch_body(track()), key=None)

    stats = (await http.get("/stats")).json()

    assert stats == {
        "messages": 5,
        "by_type": {"identify": 1, "page": 1, "track": 3},
        "retained": 5,
        "retained_bytes": collector.requests[0].body_size,
        "evicted": 0,
        "duplicates": 0,
        "requests": 2,
        "rejected": 1,
        "bytes_received": sum(r.body_size for r in collector.requests),
        "max_messages": 100_000,
        "max_bytes": 64 * 1024 * 1024,
        "keep_duplicates": False,
        "suppressed": 0,
        "regulations": 0,
    }
    assert collector.stats().as_dict() == stats


async def test_messages_filter_by_type(collector: LocalCollector, http: httpx.AsyncClient) -> None:
    """messages(type) returns that type only, in arrival order."""
    await seed(http)

    assert [m["userId"] for m in collector.messages("track")] == ["alice", "bob", "alice"]


async def test_ring_keeps_the_newest_messages() -> None:
    """Past max_messages the oldest messages are dropped, and stats still count them."""
    async with serving(max_messages=2) as (collector, http):
        await post(http, batch_body(track("A"), track("B"), track("C")))

    assert [m["event"] for m in collector.messages()] == ["B", "C"]
    assert collector.stats().messages == 3
    assert collector.stats().retained == 2


async def test_request_records_are_bounded() -> None:
    """Past max_requests the oldest request records are dropped."""
    async with serving(max_requests=2) as (collector, http):
        for name in ("A", "B", "C"):
            await post(http, batch_body(track(name)))

    assert [r.body["batch"][0]["event"] for r in collector.requests if r.body] == ["B", "C"]
    assert collector.stats().requests == 3


async def test_wait_for_returns_once_enough_messages_arrived(
    collector: LocalCollector, http: httpx.AsyncClient
) -> None:
    """wait_for() returns the messages once the count is reached by a post made meanwhile."""
    arrived, _ = await asyncio.gather(
        collector.wait_for(2), post(http, batch_body(track("A"), track("B")))
    )

    assert [m["event"] for m in arrived] == ["A", "B"]


async def test_wait_for_by_type_counts_that_type(
    collector: LocalCollector, http: httpx.AsyncClient
) -> None:
    """wait_for(type=...) counts only messages of that type."""
    await seed(http)

    identified = await collector.wait_for(1, type="identify")

    assert [m["traits"] for m in identified] == [{"plan": "pro"}]


async def test_wait_for_times_out_saying_how_many_arrived(
    collector: LocalCollector, http: httpx.AsyncClient
) -> None:
    """wait_for() raises TimeoutError naming the count when too few messages arrive."""
    await post(http, batch_body(track()))

    with pytest.raises(TimeoutError, match="for 2 messages, 1 arrived"):
        await collector.wait_for(2, timeout=0.01)


# --- lifecycle ------------------------------------------------------------------------------


async def test_port_zero_gives_each_collector_its_own_port() -> None:
    """Two collectors on port 0 run side by side on different ports."""
    async with LocalCollector() as first, LocalCollector() as second:
        assert first.url != second.url
        assert first.url.startswith("http://127.0.0.1:")


async def test_url_before_start_is_an_error() -> None:
    """Reading url before the collector is started raises RuntimeError."""
    with pytest.raises(RuntimeError, match="started"):
        _ = LocalCollector().url


async def test_closed_collector_cannot_restart() -> None:
    """A closed collector refuses to start again."""
    collector = LocalCollector()
    async with collector:
        pass

    with pytest.raises(RuntimeError, match="closed"):
        await collector.start()


async def test_messages_stay_readable_after_close() -> None:
    """What arrived stays available once the collector is stopped."""
    async with serving() as (collector, http):
        await post(http, batch_body(track("A")))

    assert [m["event"] for m in collector.messages()] == ["A"]


async def test_busy_port_fails_to_start() -> None:
    """Starting on a port that is already taken raises OSError."""
    async with LocalCollector() as first:
        port = int(first.url.rsplit(":", 1)[1])
        with pytest.raises(OSError, match="in use"):
            await LocalCollector(port=port).start()


# --- SQLite persistence ---------------------------------------------------------------------


async def test_sqlite_keeps_messages_across_restarts(tmp_path: Path) -> None:
    """A collector restarted on the same database file lists the earlier messages."""
    db = tmp_path / "events.sqlite3"
    async with serving(db_path=db) as (first, http):
        await post(http, batch_body(track("A"), track("B", user_id=0)))

    async with LocalCollector(db_path=db) as second:
        restored = second.messages()

    assert restored == first.messages()
    assert second.stats().by_type == {"track": 2}


async def test_sqlite_restart_continues_sequence_numbers(tmp_path: Path) -> None:
    """After a restart new messages get sequence numbers after the stored ones."""
    db = tmp_path / "events.sqlite3"
    async with serving(db_path=db) as (_first, http):
        await post(http, batch_body(track("A"), track("B")))

    async with serving(db_path=db) as (_second, http):
        await post(http, batch_body(track("C")))
        payload = await events(http)

    assert [(e["seq"], e["message"]["event"]) for e in payload["events"]] == [
        (3, "C"),
        (2, "B"),
        (1, "A"),
    ]


async def test_sqlite_restart_loads_only_the_newest(tmp_path: Path) -> None:
    """A restarted collector loads at most max_messages of the newest stored messages."""
    db = tmp_path / "events.sqlite3"
    async with serving(db_path=db) as (_first, http):
        await post(http, batch_body(track("A"), track("B"), track("C")))

    async with LocalCollector(db_path=db, max_messages=2) as second:
        assert [m["event"] for m in second.messages()] == ["B", "C"]
        assert second.stats().messages == 3


async def test_sqlite_does_not_store_rejected_batches(tmp_path: Path) -> None:
    """Only accepted batches reach the database."""
    db = tmp_path / "events.sqlite3"
    async with serving(db_path=db) as (_first, http):
        await post(http, batch_body(track("A")), key=None)
        await post(http, batch_body(track("B")))

    async with LocalCollector(db_path=db) as second:
        assert [m["event"] for m in second.messages()] == ["B"]


# --- packaging and the foreground server ----------------------------------------------------


def test_core_import_does_not_load_the_collector() -> None:
    """Importing htevents_async loads neither the collector nor Starlette nor uvicorn."""
    code = textwrap.dedent(
        """
        import sys, htevents_async
        optional = ("htevents_async._collector", "starlette", "uvicorn")
        loaded = [name for name in optional if name in sys.modules]
        assert not loaded, loaded
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, cwd=REPO)


def test_serve_prints_the_viewer_url_and_stops_on_ctrl_c() -> None:
    """serve() prints its URL, accepts batches, and exits cleanly on SIGINT."""
    code = "from htevents_async._collector import serve; serve(port=0)"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env, cwd=REPO
    ) as process:
        assert process.stdout is not None
        first_line = process.stdout.readline()
        url = first_line.rsplit(" ", 1)[1].strip()
        try:
            response = httpx.post(
                f"{url}/v1/batch", json=batch_body(track()), auth=(WRITE_KEY, ""), timeout=10
            )
        finally:
            process.send_signal(signal.SIGINT)
            # read() rather than communicate(): readline() may already hold the rest in its buffer.
            rest = process.stdout.read()
            process.wait(timeout=30)

    assert first_line.startswith("htevents-async collector listening on http://127.0.0.1:")
    assert f"viewer:    {url}/" in rest
    assert response.status_code == 200
    assert process.returncode == 0
