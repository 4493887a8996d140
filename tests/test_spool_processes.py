"""The spool across real processes: SIGKILL, a long outage, and several processes on one
directory. Each child is ``tests/spool_child.py``; the collector is a FaultServer here."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest
from faultserver import Action, FaultServer, ReceivedRequest, Respond
from support import assert_accounted, client_for

from htevents_async._batch import message_id_of
from htevents_async._spool._schema import waiting_events

CHILD = Path(__file__).with_name("spool_child.py")
ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow

#: Events recorded during the outage (SPOOL_OUTAGE_EVENTS overrides it), and the bound the
#: recording process's own peak RSS (``VmHWM``) must stay under, while recording and after
#: catching up. What the child holds is bounded by construction, whatever the backlog:
#: the queue (2,000 events), 16 outstanding batches (4 per request slot) of at most
#: 475,000 bytes each with their joined bodies (about 15 MiB), the text of disk-only
#: events handed to the spool's writer and not yet committed (producers pace themselves
#: past 4 MiB; past 16 MiB the overflow applies), the group being written or read back,
#: and SQLite's 2 MiB page cache: about 40 MiB above the interpreter with its imports
#: (about 40 MiB), 110 MiB at the very worst. Measured 60-87 MiB, with CPU burners beside
#: it too. (The 368 MiB once seen in a full run was ``ru_maxrss``, which a child inherits
#: from the pytest process that forked it.)
OUTAGE_EVENTS = int(os.environ.get("SPOOL_OUTAGE_EVENTS", "200000"))
OUTAGE_RSS_BOUND_MIB = 160


def db_files(directory: Path) -> list[str]:
    return [name for name in os.listdir(directory) if name.endswith(".db")]


async def start_child(*args: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(CHILD),
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )


async def read_lines(
    process: asyncio.subprocess.Process, keys: set[str], timeout: float
) -> dict[str, Any]:
    """The next JSON line the child prints with each of ``keys``, in whatever order."""
    assert process.stdout is not None
    found: dict[str, Any] = {}

    async def read() -> dict[str, Any]:
        while not keys <= found.keys():
            raw = await process.stdout.readline()  # type: ignore[union-attr]
            if not raw:
                missing = sorted(keys - found.keys())
                raise AssertionError(f"the child ended (rc {process.returncode}) before {missing}")
            line = json.loads(raw)
            found.update((key, line) for key in keys & line.keys() if key not in found)
        return found

    return await asyncio.wait_for(read(), timeout)


async def read_line(process: asyncio.subprocess.Process, key: str, timeout: float) -> Any:
    """The next JSON line the child prints that has ``key``."""
    return (await read_lines(process, {key}, timeout))[key]


def rows(directory: Path) -> list[str]:
    """The message ids stored (committed) and not yet delivered in every spool file of
    ``directory``."""
    found = []
    for path in sorted(directory.glob("*.db")):
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            # One read transaction: the acknowledgements and the groups of one moment.
            conn.execute("BEGIN")
            found += [message_id_of(text) for _, text, _ in waiting_events(conn)]
        finally:
            conn.close()
    return found


def rows_so_far(directory: Path) -> list[str]:
    """:func:`rows` while a child may still be creating its file: none until its tables exist."""
    try:
        return rows(directory)
    except sqlite3.OperationalError:
        return []


async def wait_for(predicate: Any, timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        await asyncio.sleep(0.2)


@pytest.mark.timeout(300)
async def test_sigkill_after_commit_loses_nothing(tmp_path: Path) -> None:
    """50,000 events committed, then SIGKILL: a second process delivers every one, once."""
    count = 50_000
    async with FaultServer(start_down=True) as server:
        child = await start_child("commit-kill", str(tmp_path), server.url, str(count), "k")
        report = await read_line(child, "committed", timeout=120)
        assert await child.wait() == -signal.SIGKILL
        assert report["committed"] == count
        assert len(rows(tmp_path)) == count
        await server.up()
        survivor = client_for(server.url, spool=str(tmp_path), max_batch_size=500)
        async with survivor:
            assert await survivor.flush(timeout=120) == 0
            stats = survivor.statistics()
        delivered = server.delivered_ids()
    assert sorted(delivered) == sorted(f"k-{i}" for i in range(count))
    assert stats.recovered == count
    assert stats.delivered == count
    assert_accounted(stats)
    assert db_files(tmp_path) == []


async def test_sigkill_mid_burst_delivers_everything_committed(tmp_path: Path) -> None:
    """Killed while recording, without commit(): what reached the file arrives, once."""
    async with FaultServer(start_down=True) as server:
        child = await start_child("burst", str(tmp_path), server.url, "5000", "b")
        try:
            await read_line(child, "going", timeout=60)
            await wait_for(lambda: len(rows_so_far(tmp_path)) >= 5000, 60, "5000 events committed")
        finally:
            # Killed whatever happened: it records without end otherwise.
            child.send_signal(signal.SIGKILL)
        assert await child.wait() == -signal.SIGKILL
        committed = rows(tmp_path)
        await server.up()
        survivor = client_for(server.url, spool=str(tmp_path))
        async with survivor:
            assert await survivor.flush(timeout=60) == 0
            stats = survivor.statistics()
        delivered = server.delivered_ids()
    assert len(committed) >= 5000
    assert sorted(delivered) == sorted(committed)
    assert stats.recovered == len(committed)


async def test_sigkill_after_commit_with_the_collector_up_loses_nothing(tmp_path: Path) -> None:
    """Recorded while the collector answers: batches are acknowledged while their groups
    are still being written. Then the collector stops answering, the child commits and is
    killed; a second process delivers the rest. Every event arrives; one arrives twice only
    if the first process had it delivered and was killed before recording that."""
    count = 5000
    state = {"phase": "child"}

    def script(request: ReceivedRequest) -> Action:
        ids = request.message_ids
        if state["phase"] == "survivor" or not ids:
            return Respond(200)
        # Two batches in three delivered at once, the third refused for as long as the
        # child lives: groups are partly delivered before they are written, and the rest
        # of them must stay in the file.
        return Respond(200) if int(ids[0].split("-")[1]) // 100 % 3 else Respond(503)

    async with FaultServer(start_down=False) as server:
        server.script = script
        child = await start_child("steady-kill", str(tmp_path), server.url, str(count), "u")
        report = await read_line(child, "committed", timeout=120)
        assert await child.wait() == -signal.SIGKILL
        assert report["committed"] == count
        by_child = set(server.delivered_ids())
        assert by_child, "the collector answered some of the child's batches"
        state["phase"] = "survivor"
        first_survivor_request = len(server.requests)
        survivor = client_for(server.url, spool=str(tmp_path), max_batch_size=500)
        async with survivor:
            assert await survivor.flush(timeout=120) == 0
            stats = survivor.statistics()
        by_survivor = [
            mid
            for request in server.requests[first_survivor_request:]
            if request.answered_2xx
            for mid in request.message_ids
        ]
    assert by_child | set(by_survivor) == {f"u-{i}" for i in range(count)}
    assert len(by_survivor) == len(set(by_survivor))
    assert stats.failed == 0
    assert_accounted(stats)
    assert db_files(tmp_path) == []


@pytest.mark.timeout(900)
async def test_outage_longer_than_retry_time(tmp_path: Path) -> None:
    """200,000 events during an outage past max_retry_time: all arrive, in bounded memory."""
    async with FaultServer(start_down=True) as server:
        child = await start_child("outage", str(tmp_path), server.url, str(OUTAGE_EVENTS), "o")
        # Some batch spent its retry budget and went back to disk instead of failing.
        lines = await read_lines(child, {"recorded", "kept"}, timeout=300)
        recorded = lines["recorded"]
        await server.up()
        report = await read_line(child, "statistics", timeout=240)
        assert await child.wait() == 0
        delivered = server.delivered_ids()
    stats = report["statistics"]
    # The figures docs/guides/durability.md quotes: run with -s to see them.
    print(
        f"\noutage: recorded {OUTAGE_EVENTS}, delivered {len(delivered)}, distinct "
        f"{len(set(delivered))}, attempts {stats['attempts']}, peak RSS "
        f"{recorded['peak_rss_kib'] // 1024} MiB recording, "
        f"{report['peak_rss_kib'] // 1024} MiB after catching up"
    )
    assert recorded["peak_rss_kib"] < OUTAGE_RSS_BOUND_MIB * 1024, recorded["peak_rss_kib"]
    assert recorded["statistics"]["failed"] == 0
    assert recorded["statistics"]["dropped"] == {}
    assert len(delivered) == OUTAGE_EVENTS
    assert set(delivered) == {f"o-{i}" for i in range(OUTAGE_EVENTS)}
    assert stats["delivered"] == OUTAGE_EVENTS
    assert stats["failed"] == 0
    assert report["peak_rss_kib"] < OUTAGE_RSS_BOUND_MIB * 1024, report["peak_rss_kib"]


async def test_two_processes_share_a_dead_ones_file(tmp_path: Path) -> None:
    """A dead process's events are adopted by one of two live ones, and sent exactly once."""
    async with FaultServer(start_down=True) as server:
        dead = await start_child("commit-kill", str(tmp_path), server.url, "5000", "d")
        await read_line(dead, "committed", timeout=60)
        assert await dead.wait() == -signal.SIGKILL
        await server.up()
        other = await start_child("serve", str(tmp_path), server.url, "1000", "s")
        try:
            here = client_for(server.url, spool=str(tmp_path))
            async with here:
                for i in range(1000):
                    await here.track(user_id="u", event="e", message_id=f"p-{i}")
                while True:
                    await here.flush(timeout=5)
                    mine = here.statistics()
                    if mine.delivered >= 1000 + mine.recovered and not mine.spooled:
                        break
                theirs = (await read_line(other, "done", timeout=60))["statistics"]
        finally:
            assert other.stdin is not None
            other.stdin.write(b"\n")
            with contextlib.suppress(ConnectionError):
                await other.stdin.drain()
            await other.wait()
        delivered = server.delivered_ids()
    expected = [f"{p}-{i}" for p, n in (("d", 5000), ("s", 1000), ("p", 1000)) for i in range(n)]
    assert sorted(delivered) == sorted(expected)
    assert mine.recovered + theirs["recovered"] == 5000
    assert_accounted(mine)
