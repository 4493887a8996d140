"""WorkflowBackfill on a real Temporal dev server: chunks, summary, stable ids, resumption."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

temporalio = pytest.importorskip("temporalio")

from temporalio.client import Client as TemporalClient  # noqa: E402
from temporalio.testing import ActivityEnvironment  # noqa: E402
from temporalio.worker import Worker  # noqa: E402

from htevents_async._collector import LocalCollector  # noqa: E402
from htevents_async.integrations import temporal  # noqa: E402
from htevents_async.integrations.temporal._backfill import (  # noqa: E402
    Backfill,
    plan_chunks,
)

WRITE_KEY = "wk_backfill"


def write_ndjson(path: Path, count: int) -> list[int]:
    """``count`` track lines, every third one without a messageId, plus a blank line and
    two bad lines; returns the byte offsets of the bad lines."""
    bad: list[int] = []
    with path.open("wb") as file:
        for n in range(count):
            message: dict[str, Any] = {
                "type": "track",
                "userId": f"u{n % 50}",
                "event": "Imported",
                "properties": {"n": n},
                "timestamp": "2024-01-01T00:00:00Z",
            }
            if n % 3:
                message["messageId"] = f"m-{n}"
            file.write(json.dumps(message).encode() + b"\n")
            if n == count // 2:
                file.write(b"\n")
                bad.append(file.tell())
                file.write(b"{not json\n")
                bad.append(file.tell())
                file.write(b'{"type": "track", "userId": "u1"}\n')
    return bad


@pytest.fixture
async def temporal_client(temporal_address: str) -> TemporalClient:
    """A Temporal client with the integration's data converter."""
    return await TemporalClient.connect(temporal_address, data_converter=temporal.data_converter)


@contextlib.asynccontextmanager
async def worker(client: TemporalClient, url: str) -> AsyncIterator[str]:
    """A worker with the integration on a fresh task queue; yields the queue."""
    queue = f"backfill-{uuid.uuid4().hex}"
    async with (
        temporal.Analytics(WRITE_KEY, task_queue=queue, host=url, gzip=False) as analytics,
        Worker(client, task_queue=queue, **analytics.worker_options()),
    ):
        yield queue


def test_plan_cuts_chunks_at_line_starts(tmp_path: Path) -> None:
    """Chunks cover the file without gaps or overlaps, each starting at a line start."""
    path = tmp_path / "events.ndjson"
    write_ndjson(path, 500)
    data = path.read_bytes()
    chunks = plan_chunks(temporal.InputBackfill(files=[str(path)], chunk_bytes=4096))
    assert len(chunks) > 5
    assert chunks[0].start == 0
    assert chunks[-1].end == len(data)
    for before, after in itertools.pairwise(chunks):
        assert before.end == after.start
        assert data[after.start - 1 : after.start] == b"\n"
    assert len({c.fingerprint for c in chunks}) == 1


async def test_backfill_imports_every_line_once_with_stable_ids(
    tmp_path: Path, temporal_client: TemporalClient
) -> None:
    """Every valid line arrives once, the summary adds up, lines without an id get
    uuid5(fingerprint, offset): a second run sends the very same ids."""
    path = tmp_path / "events.ndjson"
    bad = write_ndjson(path, 3000)
    backfill = temporal.InputBackfill(files=[str(path)], chunk_bytes=32 * 1024)
    async with LocalCollector() as collector, worker(temporal_client, collector.url) as queue:
        summary = await temporal_client.execute_workflow(
            temporal.WorkflowBackfill.run, backfill, id=f"bf-{uuid.uuid4().hex}", task_queue=queue
        )
        assert summary.chunks > 5
        assert summary.chunks_done == summary.chunks
        assert (summary.lines, summary.accepted, summary.rejected, summary.blank) == (
            3003,
            3000,
            2,
            1,
        )
        assert (summary.delivered, summary.failed) == (3000, 0)
        assert [r.offset for r in summary.rejections] == bad
        first = {m["messageId"] for m in collector.messages("track")}
        assert len(first) == 3000
        assert collector.stats().duplicates == 0

        again = await temporal_client.execute_workflow(
            temporal.WorkflowBackfill.run, backfill, id=f"bf-{uuid.uuid4().hex}", task_queue=queue
        )
        assert again.delivered == 3000
        # The collector drops ids it has seen: every line of the second run was one.
        assert collector.stats().duplicates == 3000


async def test_import_resumes_from_the_heartbeat(tmp_path: Path) -> None:
    """An attempt that finds a heartbeat starts at its settled offset and adds its counts."""
    path = tmp_path / "events.ndjson"
    write_ndjson(path, 100)
    [chunk] = plan_chunks(temporal.InputBackfill(files=[str(path)]))
    lines = path.read_bytes().splitlines(keepends=True)
    resume_at = sum(len(line) for line in lines[:40])
    heartbeat = {
        "offset": resume_at,
        "blank": 0,
        "accepted": 40,
        "rejected": 0,
        "delivered": 39,
        "failed": 1,
        "rejections": [],
    }
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, heartbeat_details=[heartbeat])
    beats: list[Any] = []
    env.on_heartbeat = lambda *details: beats.append(details[0])
    async with (
        LocalCollector() as collector,
        temporal.Analytics(WRITE_KEY, task_queue="resume", host=collector.url) as analytics,
    ):
        result = await env.run(Backfill(analytics.client).import_chunk, chunk)
        # Lines 0-39 were settled before: only the rest is sent again.
        assert [m["properties"]["n"] for m in collector.messages("track")] == list(range(40, 100))
    assert (result.lines, result.accepted, result.delivered, result.failed) == (103, 100, 99, 1)
    assert result.rejected == 2
    assert beats[-1]["offset"] == chunk.end


async def test_backfill_survives_a_sigkilled_worker(
    tmp_path: Path, temporal_client: TemporalClient, temporal_address: str
) -> None:
    """200,000 lines on two worker processes, one SIGKILLed mid-import: every line arrives,
    and the copies sent twice are only lines its chunks read after their last heartbeat."""
    path = tmp_path / "history.ndjson"
    total = 200_000
    with path.open("wb") as file:
        for n in range(total):
            file.write(
                b'{"type":"track","userId":"u%d","event":"Imported","messageId":"m-%d"}\n'
                % (n % 1000, n)
            )
    queue = f"backfill-{uuid.uuid4().hex}"
    async with LocalCollector(max_messages=3 * total, keep_duplicates=True) as collector:
        command = [
            sys.executable, "-c", "import sys; from htevents_async._cli import main; "
            "sys.exit(main())", "worker",
            "--temporal", temporal_address, "--task-queue", queue,
            "--host", collector.url, "--write-key", WRITE_KEY,
        ]  # fmt: skip
        workers = [await asyncio.create_subprocess_exec(*command) for _ in range(2)]
        try:
            backfill = temporal.InputBackfill(
                files=[str(path)], chunk_bytes=1024 * 1024, heartbeat_timeout=5.0
            )
            handle = await temporal_client.start_workflow(
                temporal.WorkflowBackfill.run,
                backfill,
                id=f"bf-{uuid.uuid4().hex}",
                task_queue=queue,
            )
            await collector.wait_for(total // 5, timeout=120)
            workers[0].kill()
            await workers[0].wait()
            summary = await handle.result()
        finally:
            for process in workers:
                if process.returncode is None:
                    process.terminate()
                    await process.wait()
        ids = [m["messageId"] for m in collector.messages("track")]
    assert summary.accepted == summary.delivered == total
    assert len(set(ids)) == total
    duplicates = len(ids) - total
    # A resumed chunk resends at most what it read past its last settled heartbeat: never
    # more than the chunks the dead worker held, and here far less.
    assert duplicates < total // 2
    print(f"SIGKILL: {duplicates} duplicates of {total} lines, {summary.chunks} chunks")


async def test_import_command_runs_on_temporal(
    tmp_path: Path, temporal_client: TemporalClient, temporal_address: str
) -> None:
    """``import FILE --temporal`` starts the backfill, follows it, prints the summary."""
    path = tmp_path / "events.ndjson"
    write_ndjson(path, 500)
    async with LocalCollector() as collector, worker(temporal_client, collector.url) as queue:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "import sys; from htevents_async._cli import main; "
            "sys.exit(main())", "import", str(path), "--temporal", temporal_address,
            "--task-queue", queue, "--chunk-bytes", "8192", "--no-progress",
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stdout, _ = await process.communicate()
        assert len(collector.messages("track")) == 500
    text = stdout.decode()
    # Two lines are rejected on purpose, so the exit code says so.
    assert process.returncode == 1, text
    assert "lines read  503" in text
    assert "delivered   500" in text
    assert "rejected at byte" in text
