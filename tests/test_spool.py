"""The durable spool within one process: commit, restart, outages, dead letters, bad files."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from faultserver import FaultServer, Respond
from support import (
    FAST,
    WRITE_KEY,
    assert_accounted,
    client_for,
    eventually,
    fork_and_report,
)

from htevents_async import Client, ConfigError, SyncClient
from htevents_async._spool import SqliteStore
from htevents_async._spool._locks import lock_path, try_lock
from htevents_async._spool._schema import FORMAT_VERSION, fingerprint

SPOOL_FAST = {**FAST, "max_retry_time": 0.2}


def spool_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.db"))


async def record(client: Client, count: int, prefix: str) -> list[str]:
    return [
        await client.track(user_id="u", event="e", properties={"i": i}, message_id=f"{prefix}-{i}")
        for i in range(count)
    ]


async def leave_on_disk(url: str, directory: Path, count: int, prefix: str) -> list[str]:
    """Record ``count`` events while the collector is unreachable and close at once: they
    stay in the spool, as after a deploy whose shutdown outlived its deadline."""
    client = client_for(url, spool=str(directory), **SPOOL_FAST)
    async with client:
        ids = await record(client, count, prefix)
        assert await client.commit(timeout=10) == 0
        await client.aclose(timeout=0)
    stats = client.statistics()
    assert stats.spooled == count
    assert stats.dropped_total == 0
    assert_accounted(stats)
    return ids


async def test_commit_without_spool_returns_at_once(collector: object) -> None:
    """No spool: nothing is durable, and commit() says so by returning 0 at once."""
    client = Client(WRITE_KEY, host="http://127.0.0.1:9")
    async with client:
        await client.track(user_id="u", event="e")
        assert await client.commit(timeout=0) == 0
        await client.aclose(timeout=0)


async def test_unwritable_directory_raises_config_error(tmp_path: Path) -> None:
    """A spool path that cannot be a directory fails when the client starts, naming it."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    client = Client(WRITE_KEY, host="http://127.0.0.1:9", spool=str(blocker / "spool"))
    with pytest.raises(ConfigError, match=r"Config\.spool"):
        async with client:
            pass


async def test_spool_option_takes_a_path(tmp_path: Path) -> None:
    """``spool`` accepts a path-like and keeps it as text; a bad value names the option."""
    assert Client(WRITE_KEY, spool=tmp_path).config.spool == str(tmp_path)
    with pytest.raises(ConfigError, match="spool_synchronous"):
        Client(WRITE_KEY, spool=tmp_path, spool_synchronous="sometimes")


@pytest.mark.parametrize("synchronous", ["normal", "full"])
async def test_delivered_events_leave_no_file(tmp_path: Path, synchronous: str) -> None:
    """Everything delivered: the client removes its file and lock at close."""
    async with FaultServer() as server:
        client = client_for(server.url, spool=str(tmp_path), spool_synchronous=synchronous)
        async with client:
            ids = await record(client, 500, "a")
            assert await client.commit(timeout=10) == 0
            assert await client.flush(timeout=10) == 0
        assert sorted(server.delivered_ids()) == sorted(ids)
    stats = client.statistics()
    assert stats.delivered == 500
    assert_accounted(stats)
    assert os.listdir(tmp_path) == []


async def test_restart_delivers_with_original_ids_and_timestamps(tmp_path: Path) -> None:
    """A new client on the directory delivers what the last one left, unchanged."""
    when = dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=dt.timezone.utc)
    async with FaultServer(start_down=True) as server:
        client = client_for(server.url, spool=str(tmp_path), **SPOOL_FAST)
        async with client:
            sent = await client.track(user_id="u", event="Signed up", timestamp=when)
            assert await client.commit(timeout=10) == 0
            await client.aclose(timeout=0)
        await server.up()
        restarted = client_for(server.url, spool=str(tmp_path))
        async with restarted:
            assert await restarted.flush(timeout=10) == 0
            stats = restarted.statistics()
        [message] = [m for r in server.requests if r.answered_2xx for m in r.batch]
    assert message["messageId"] == sent
    assert message["timestamp"] == "2026-01-02T03:04:05.678Z"
    assert stats.recovered == 1
    assert stats.delivered == 1
    assert_accounted(stats)


async def test_outage_past_retry_time_keeps_events_then_catches_up(tmp_path: Path) -> None:
    """Retries spent on a retryable error: the events stay on disk and go once it recovers."""
    async with FaultServer(start_down=True) as server:
        client = client_for(server.url, spool=str(tmp_path), max_queue_size=500, **SPOOL_FAST)
        async with client:
            ids = await record(client, 3000, "o")
            # Past max_retry_time for some batch: it was kept on disk, not failed (and
            # probed again later: watched until the backoff outlasts a poll).
            await eventually(
                lambda: client.statistics().attempts > 20 and client.statistics().spooled > 0,
                what="events kept on disk after their retries",
            )
            stats = client.statistics()
            assert stats.failed == 0
            assert_accounted(stats)
            await server.up()
            assert await client.flush(timeout=30) == 0
            stats = client.statistics()
        delivered = server.delivered_ids()
    assert set(delivered) == set(ids)
    assert len(delivered) == len(ids)  # nothing reached the collector while it was down
    assert stats.delivered == 3000
    assert stats.failed == 0
    assert stats.spooled == 0
    assert_accounted(stats)


async def test_final_status_moves_events_to_dead_letters(tmp_path: Path) -> None:
    """A 400 keeps the batch as dead letters with the status and reason, not failed."""
    async with FaultServer(Respond(400, body=b"bad batch")) as server:
        client = client_for(server.url, spool=str(tmp_path))
        async with client:
            await record(client, 5, "d")
            assert await client.flush(timeout=10) == 0
            stats = client.statistics()
    assert stats.dead_lettered == 5
    assert stats.failed == 0
    assert stats.batches_failed == 1
    assert_accounted(stats)
    [path] = spool_files(tmp_path)
    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT status, reason FROM dead_letters").fetchall()
    assert conn.execute("SELECT COUNT(*) FROM groups").fetchone()[0] == 0
    conn.close()
    assert len(rows) == 5
    assert all(status == 400 and "bad batch" in reason for status, reason in rows)


async def test_queue_full_goes_to_disk_and_memory_refills(tmp_path: Path) -> None:
    """With a tiny queue nothing is dropped: the overflow waits on disk."""
    async with FaultServer() as server:
        client = client_for(server.url, spool=str(tmp_path), max_queue_size=100)
        async with client:
            ids = await record(client, 5000, "q")
            assert await client.flush(timeout=30) == 0
            stats = client.statistics()
        assert sorted(server.delivered_ids()) == sorted(ids)
    assert stats.dropped_total == 0
    assert stats.delivered == 5000
    assert_accounted(stats)


async def test_spool_max_bytes_applies_overflow(tmp_path: Path) -> None:
    """Past spool_max_bytes, an event the queue has no room for meets overflow: dropped."""
    async with FaultServer(start_down=True) as server:
        client = client_for(
            server.url,
            spool=str(tmp_path),
            max_queue_size=100,
            max_batch_size=10,
            max_concurrent_requests=1,
            spool_max_bytes=1 << 16,
        )
        async with client:
            for i in range(1000):
                await client.track(user_id="u", event="e", properties={"pad": "x" * 200, "i": i})
            # Committed: the client now knows the file is past its bound.
            assert await client.commit(timeout=10) == 0
            for i in range(1000):
                await client.track(user_id="u", event="e", properties={"pad": "x" * 200, "i": i})
            stats = client.statistics()
            await client.aclose(timeout=0)
    assert stats.dropped.get("queue_full", 0) > 0
    assert_accounted(stats)


async def test_live_events_flow_past_the_bound_while_the_collector_answers(
    tmp_path: Path,
) -> None:
    """A client that adopts a backlog larger than its spool_max_bytes (and smaller than
    its queue), with the collector up, still takes its live events: the bound refuses
    only events the queue has no room for."""
    async with FaultServer(start_down=True) as server:
        backlog = await leave_on_disk(server.url, tmp_path, 3000, "old")
        await server.up()
        client = client_for(server.url, spool=str(tmp_path), spool_max_bytes=1 << 16)
        async with client:
            live = await record(client, 1, "first")
            # Adopted: the file now holds far more than its bound.
            await eventually(lambda: client.statistics().recovered == 3000, what="adopted")
            live += await record(client, 500, "live")
            assert await client.flush(timeout=30) == 0
            stats = client.statistics()
        delivered = server.delivered_ids()
    assert stats.recovered == 3000
    assert stats.dropped_total == 0
    assert sorted(delivered) == sorted(backlog + live)
    assert_accounted(stats)


async def test_corrupt_and_future_files_are_moved_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Unreadable and newer-format files go to aside/ with an error; the rest delivers."""
    async with FaultServer(start_down=True) as server:
        ids = await leave_on_disk(server.url, tmp_path, 50, "c")
        (tmp_path / "spool-corrupt.db").write_bytes(b"SQLite format 3\x00" + b"\xff" * 3000)
        (tmp_path / "spool-truncated.db").write_bytes(spool_files(tmp_path)[0].read_bytes()[:1500])
        future = sqlite3.connect(tmp_path / "spool-future.db")
        future.execute(f"PRAGMA user_version={FORMAT_VERSION + 1}")
        future.execute("CREATE TABLE anything (x)")
        future.close()
        await server.up()
        with caplog.at_level(logging.ERROR, logger="htevents_async"):
            client = client_for(server.url, spool=str(tmp_path))
            async with client:
                assert await client.flush(timeout=10) == 0
        assert sorted(server.delivered_ids()) == sorted(ids)
    aside = sorted(p.name.split(".db")[0] for p in (tmp_path / "aside").glob("*.db*"))
    assert {"spool-corrupt", "spool-truncated", "spool-future"} <= set(aside)
    messages = "\n".join(r.getMessage() for r in caplog.records)
    assert "spool-future.db" in messages
    assert "format version" in messages
    assert "spool-corrupt.db" in messages
    assert client.statistics().recovered == 50


async def test_other_write_key_files_are_left_alone(tmp_path: Path) -> None:
    """A file fingerprinted for another write key is neither adopted nor sent."""
    async with FaultServer(start_down=True) as server:
        await leave_on_disk(server.url, tmp_path, 10, "k")
        await server.up()
        other = Client("another-key", host=server.url, spool=str(tmp_path), **FAST)
        async with other:
            assert await other.flush(timeout=10) == 0
            assert other.statistics().recovered == 0
        assert server.delivered_ids() == []
    assert len(spool_files(tmp_path)) == 1


async def test_files_of_another_protocol_are_left_alone(tmp_path: Path) -> None:
    """Rows encoded for the Segment spec are never adopted by a PostHog client on the same
    URL and key, which would send them in the wrong envelope."""
    async with FaultServer(start_down=True) as server:
        await leave_on_disk(server.url, tmp_path, 10, "p")
        await server.up()
        posthog = client_for(
            server.url, spool=str(tmp_path), protocol="posthog", path="/v1/batch", **FAST
        )
        async with posthog:
            assert await posthog.flush(timeout=10) == 0
            assert posthog.statistics().recovered == 0
        assert server.delivered_ids() == []
    assert len(spool_files(tmp_path)) == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
async def test_forked_child_gets_its_own_file_and_the_parent_keeps_its_lock(
    tmp_path: Path,
) -> None:
    """After a fork the child spools to a file of its own; the parent's lock still holds."""
    async with FaultServer(start_down=True) as server:
        client = client_for(server.url, spool=str(tmp_path), **SPOOL_FAST)
        parent_ids = await record(client, 4, "parent")
        assert await client.commit(timeout=10) == 0
        store = client._store
        assert isinstance(store, SqliteStore)

        def child() -> dict[str, Any]:
            async def use_inherited_client() -> dict[str, Any]:
                ids = await record(client, 3, "child")
                left = await client.commit(timeout=10)
                stats = client.statistics()
                await client.aclose(timeout=0)
                return {"ids": ids, "left": left, "dropped": dict(stats.dropped)}

            return asyncio.run(use_inherited_client())

        reported = await asyncio.to_thread(fork_and_report, child)
        assert "raised" not in reported, reported
        assert reported["left"] == 0
        assert reported["dropped"] == {"fork": 4}
        assert try_lock(lock_path(store.path)) is None  # still the parent's
        await server.up()
        assert await client.flush(timeout=10) == 0
        await client.aclose()
        assert sorted(server.delivered_ids()) == sorted(parent_ids)
        survivor = client_for(server.url, spool=str(tmp_path))
        async with survivor:
            assert await survivor.flush(timeout=10) == 0
        delivered = server.delivered_ids()
    assert sorted(delivered) == sorted(parent_ids + reported["ids"])


async def test_sync_client_commits_to_the_spool(tmp_path: Path) -> None:
    """SyncClient.commit() makes what sync code recorded durable; a restart delivers it."""
    async with FaultServer(start_down=True) as server:

        def record_from_a_thread() -> list[str]:
            client = SyncClient(WRITE_KEY, host=server.url, spool=str(tmp_path), **SPOOL_FAST)
            ids = [client.track(user_id="u", event="e") for _ in range(10)]
            assert client.commit(timeout=10) == 0
            client.close(timeout=0)
            return ids

        ids = await asyncio.to_thread(record_from_a_thread)
        await server.up()
        survivor = client_for(server.url, spool=str(tmp_path))
        async with survivor:
            assert await survivor.flush(timeout=10) == 0
        assert sorted(server.delivered_ids()) == sorted(ids)


# The first released format: one row per event (what a 0.1.0 process leaves behind).
FORMAT_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE events (
    seq INTEGER PRIMARY KEY, body TEXT NOT NULL,
    created REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0),
    attempts INTEGER NOT NULL DEFAULT 0, not_before REAL NOT NULL DEFAULT 0,
    lease INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX events_waiting ON events (not_before, seq) WHERE lease = 0;
CREATE TABLE dead_letters (
    id INTEGER PRIMARY KEY, body TEXT NOT NULL, created REAL NOT NULL,
    failed_at REAL NOT NULL, status INTEGER, reason TEXT NOT NULL
);
PRAGMA user_version = 1;
"""


async def test_files_of_the_first_format_are_adopted(tmp_path: Path) -> None:
    """A file left by a process of the previous format (one row per event, with gaps in
    its sequences) is regrouped and delivered, each event once; its dead letters are kept."""
    async with FaultServer() as server:
        client = client_for(server.url, spool=str(tmp_path))
        old = sqlite3.connect(tmp_path / "spool-old-1-abcd.db")
        old.executescript(FORMAT_1)
        old.executemany(
            "INSERT INTO meta VALUES (?, ?)",
            fingerprint("segment", client.config.url, WRITE_KEY).items(),
        )
        texts = [
            f'{{"type":"track","messageId":"v1-{i}","userId":"u","event":"e"}}' for i in range(2500)
        ]
        # Every third row delivered (deleted) before the process died.
        kept = [(seq, text) for seq, text in enumerate(texts, 1) if seq % 3]
        old.executemany("INSERT INTO events (seq, body, lease) VALUES (?, ?, 1)", kept)
        old.execute(
            "INSERT INTO dead_letters (body, created, failed_at, status, reason) "
            "VALUES (?, 1.0, 2.0, 400, 'bad')",
            (texts[0],),
        )
        old.commit()
        old.close()
        async with client:
            assert await client.flush(timeout=10) == 0
            stats = client.statistics()
        delivered = server.delivered_ids()
    assert sorted(delivered) == sorted(f"v1-{seq - 1}" for seq, _ in kept)
    assert stats.recovered == len(kept)
    assert_accounted(stats)
    [path] = spool_files(tmp_path)  # ours, kept for its dead letter
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT status, reason FROM dead_letters").fetchall() == [(400, "bad")]
    assert conn.execute("PRAGMA user_version").fetchone()[0] == FORMAT_VERSION
    conn.close()
