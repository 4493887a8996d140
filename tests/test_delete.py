"""Client.delete and the collector's regulations endpoint: delete, suppress, lift."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from faultserver import FaultServer, Respond

import htevents_async
from htevents_async import (
    Client,
    ConfigError,
    Delete,
    HTTPStatusError,
    MessageError,
    RetriesExhaustedError,
    SyncClient,
)
from htevents_async._collector import LocalCollector

TOKEN = "workspace-token"


def _options(collector: LocalCollector, fast: dict[str, Any]) -> dict[str, Any]:
    return {
        "host": collector.url,
        "regulations_url": collector.url + "/regulations",
        "regulations_token": TOKEN,
        **fast,
    }


async def test_delete_without_endpoint_raises_config_error() -> None:
    """Without a regulations URL and token, delete() says which options to set."""
    async with Client("key") as client:
        with pytest.raises(ConfigError, match=r"regulations_url and Config\.regulations_token"):
            await client.delete(user_id="u1")


async def test_delete_validates_at_the_call_site() -> None:
    """user_id is required and traits must be a mapping, named in the error."""
    with pytest.raises(MessageError, match=r"Delete\.user_id is required"):
        Delete(user_id=None)  # type: ignore[arg-type]
    with pytest.raises(MessageError, match=r"Delete\.traits must be a dict"):
        Delete(user_id="u1", traits=["x"])  # type: ignore[arg-type]


def test_token_stays_out_of_the_config_repr() -> None:
    """The regulations token is a secret: the Config repr never shows it."""
    config = htevents_async.Config(regulations_url="http://x/regulations", regulations_token="s3")
    assert "s3" not in repr(config)


def test_delete_body_is_a_suppress_with_delete_regulation() -> None:
    """The request names the user by id, as Segment's regulations API expects."""
    assert Delete(user_id=42, traits={"email": "a@b.c"}).body() == {
        "regulationType": "SUPPRESS_WITH_DELETE",
        "subjectType": "USER_ID",
        "subjectIds": ["42"],
    }


async def test_delete_removes_then_suppresses_then_lift_admits(
    tmp_path: Path, fast: dict[str, Any]
) -> None:
    """Deletion removes stored events (memory and SQLite), drops later ones (counted), and a
    DELETE of the regulation lets them in again."""
    db = tmp_path / "events.db"
    async with (
        LocalCollector(db_path=db, regulations_token=TOKEN) as collector,
        Client("key", **_options(collector, fast)) as client,
    ):
        await client.track(user_id="gone", event="Before")
        await client.track(user_id="kept", event="Before")
        await client.flush()
        regulate_id = await client.delete(user_id="gone", traits={"email": "g@x.io"})
        assert regulate_id
        assert collector.messages(user_id="gone") == []
        assert len(collector.messages(user_id="kept")) == 1

        await client.track(user_id="gone", event="After")
        await client.track(user_id="kept", event="After")
        await client.flush()
        stats = collector.stats()
        assert stats.suppressed == 1
        assert stats.regulations == 1
        assert collector.messages(user_id="gone") == []

        async with httpx.AsyncClient(base_url=collector.url) as http:
            auth = {"Authorization": f"Bearer {TOKEN}"}
            listed = (await http.get("/regulations", headers=auth)).json()
            assert listed["data"]["regulations"][0]["subjectIds"] == ["gone"]
            assert listed["data"]["regulations"][0]["deleted"] == 1
            served = (await http.get("/stats")).json()
            assert served["suppressed"] == 1
            lifted = await http.delete(f"/regulations/{regulate_id}", headers=auth)
            assert lifted.status_code == 200
            missing = await http.delete(f"/regulations/{regulate_id}", headers=auth)
            assert missing.status_code == 404

        await client.track(user_id="gone", event="Lifted")
        await client.flush()
        assert [m["event"] for m in collector.messages(user_id="gone")] == ["Lifted"]

    # The database lost the deleted user's rows too.
    async with LocalCollector(db_path=db) as reopened:
        events = [(m["userId"], m["event"]) for m in reopened.messages()]
    assert ("gone", "Before") not in events
    assert ("kept", "Before") in events
    assert ("gone", "Lifted") in events


async def test_collector_refuses_a_wrong_token(fast: dict[str, Any]) -> None:
    """A token the collector does not expect is a final 401, raised by delete()."""
    async with LocalCollector(regulations_token=TOKEN) as collector:
        options = {**_options(collector, fast), "regulations_token": "wrong"}
        async with Client("key", **options) as client:
            with pytest.raises(HTTPStatusError) as caught:
                await client.delete(user_id="u1")
    assert caught.value.status_code == 401
    assert "wrong" not in str(caught.value)


async def test_collector_refuses_a_malformed_regulation(collector: LocalCollector) -> None:
    """An unknown regulation type or subject type is a 400 naming the field."""
    auth = {"Authorization": "Bearer t"}
    async with httpx.AsyncClient(base_url=collector.url) as http:
        bad_type = await http.post(
            "/regulations",
            headers=auth,
            json={"regulationType": "NOPE", "subjectType": "USER_ID", "subjectIds": ["u"]},
        )
        no_ids = await http.post(
            "/regulations",
            headers=auth,
            json={"regulationType": "SUPPRESS_ONLY", "subjectType": "USER_ID", "subjectIds": []},
        )
    assert bad_type.status_code == 400
    assert "regulationType" in bad_type.json()["errors"][0]["message"]
    assert no_ids.status_code == 400


async def test_delete_retries_a_503(fast: dict[str, Any]) -> None:
    """A retryable status is retried with the client's backoff until the endpoint answers."""
    body = b'{"data": {"regulateId": "r-1"}}'
    async with FaultServer(Respond(503), Respond(503), then=Respond(200, body=body)) as server:
        async with Client(
            "key",
            host=server.url,
            regulations_url=server.url + "/regulations",
            regulations_token=TOKEN,
            **fast,
        ) as client:
            assert await client.delete(user_id="u1") == "r-1"
        assert len(server.requests) == 3


async def test_delete_refuses_other_protocols() -> None:
    """A regulation is a Segment request: a PostHog or ODP client says so at the call site."""
    async with Client(
        "wk",
        protocol="posthog",
        host="http://127.0.0.1:9",
        regulations_url="http://127.0.0.1:9/regulations",
        regulations_token="t0ken-value",
        disable=True,
    ) as client:
        with pytest.raises(ConfigError, match="Segment regulation"):
            await client.delete(user_id="u1")


async def test_sync_delete_removes_then_suppresses(fast: dict[str, Any]) -> None:
    """SyncClient.delete, from a plain thread through the client's own loop, reaches the
    collector: the user's stored events go, and a later one is suppressed."""
    async with LocalCollector(regulations_token=TOKEN) as collector:

        def record_then_delete() -> str:
            with SyncClient("key", **_options(collector, fast)) as events:
                events.track(user_id="gone", event="Before")
                events.track(user_id="kept", event="Before")
                assert events.flush() == 0
                regulate_id = events.delete(user_id="gone", traits={"email": "g@x.io"})
                events.track(user_id="gone", event="After")
                assert events.flush() == 0
                return regulate_id

        regulate_id = await asyncio.to_thread(record_then_delete)
        assert regulate_id
        assert collector.messages(user_id="gone") == []
        assert [m["event"] for m in collector.messages(user_id="kept")] == ["Before"]
        stats = collector.stats()
        assert (stats.regulations, stats.suppressed) == (1, 1)
        async with httpx.AsyncClient(base_url=collector.url) as http:
            listed = await http.get("/regulations", headers={"Authorization": f"Bearer {TOKEN}"})
        [regulation] = listed.json()["data"]["regulations"]
        assert (regulation["id"], regulation["subjectIds"]) == (regulate_id, ["gone"])


def test_sync_delete_without_endpoint_raises_before_starting() -> None:
    """Without the regulations options, SyncClient.delete raises ConfigError in the calling
    thread and starts no thread."""
    events = SyncClient("key", host="http://127.0.0.1:9")
    try:
        with pytest.raises(ConfigError, match=r"regulations_url and Config\.regulations_token"):
            events.delete(user_id="u1")
        with pytest.raises(MessageError, match=r"Delete\.user_id is required"):
            events.delete(user_id=None)  # type: ignore[arg-type]
        assert "unopened" in repr(events)
    finally:
        events.close()


@contextlib.asynccontextmanager
async def trickling_endpoint() -> AsyncIterator[str]:
    """An endpoint that answers 200 and then sends its body one byte every 0.1 s, so no
    httpx timeout (each phase's, each read's) ever fires; yields its regulations URL."""
    writers: list[asyncio.StreamWriter] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        with contextlib.suppress(ConnectionError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
            while True:
                writer.write(b" ")
                await writer.drain()
                await asyncio.sleep(0.1)

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/regulations"
    finally:
        server.close()
        for writer in writers:
            writer.transport.abort()
        await server.wait_closed()


# Past the deadline within a second: max_retry_time 0, no backoff, 4 x 0.2 s.
DEADLINE_OPTIONS: dict[str, Any] = {
    "regulations_token": TOKEN,
    "request_timeout": 0.2,
    "max_retry_time": 0.0,
    "backoff_max": 0.0,
    "retry_after_max": 0.0,
}


async def test_delete_ends_at_its_deadline() -> None:
    """A request that httpx's per-phase timeouts never end is cut at the deletion
    deadline and raises RetriesExhaustedError saying so."""
    async with (
        trickling_endpoint() as url,
        Client("key", host="http://127.0.0.1:9", regulations_url=url, **DEADLINE_OPTIONS) as client,
    ):
        with pytest.raises(RetriesExhaustedError, match=r"deletion deadline of 0\.8 s"):
            await client.delete(user_id="u1")


async def test_sync_delete_waits_for_the_deadline_then_raises_its_error() -> None:
    """SyncClient.delete waits past the request's own deadline, so the caller gets the
    request's RetriesExhaustedError, not a ClientStateError for a cut-off wait."""
    async with trickling_endpoint() as url:

        def trickled() -> None:
            with SyncClient(
                "key", host="http://127.0.0.1:9", regulations_url=url, **DEADLINE_OPTIONS
            ) as events:
                events.delete(user_id="u1")

        with pytest.raises(RetriesExhaustedError, match="deletion deadline"):
            await asyncio.to_thread(trickled)


async def test_sync_delete_raises_a_refusal(fast: dict[str, Any]) -> None:
    """A final status from the endpoint raises HTTPStatusError in the calling thread."""
    async with LocalCollector(regulations_token=TOKEN) as collector:
        options = {**_options(collector, fast), "regulations_token": "wrong"}

        def refused() -> None:
            with SyncClient("key", **options) as events:
                events.delete(user_id="u1")

        with pytest.raises(HTTPStatusError) as caught:
            await asyncio.to_thread(refused)
    assert caught.value.status_code == 401
