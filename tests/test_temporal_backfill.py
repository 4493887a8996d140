"""WorkflowBackfill on a real Temporal dev server: chunks, summary, stable ids, resumption."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import dataclasses
import itertools
import json
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

temporalio = pytest.importorskip("temporalio")

from temporalio.api.enums.v1 import PendingActivityState  # noqa: E402
from temporalio.api.workflow.v1 import PendingActivityInfo  # noqa: E402
from temporalio.client import Client as TemporalClient  # noqa: E402
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle  # noqa: E402
from temporalio.exceptions import ActivityError, ApplicationError  # noqa: E402
from temporalio.testing import ActivityEnvironment  # noqa: E402
from temporalio.worker import Worker  # noqa: E402

from htevents_async import ConfigError  # noqa: E402
from htevents_async._collector import LocalCollector  # noqa: E402
from htevents_async.integrations import temporal  # noqa: E402
from htevents_async.integrations.temporal import Chunk  # noqa: E402
from htevents_async.integrations.temporal._backfill import (  # noqa: E402
    Backfill,
    plan_chunks,
)

WRITE_KEY = "wk_backfill"
PENDING_ACTIVITY_STATE_SCHEDULED = PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED


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


def test_chunk_size_by_default_makes_enough_chunks_within_bounds() -> None:
    """Without chunk_bytes, big inputs get DEFAULT_CHUNK_BYTES; smaller ones get smaller
    chunks, MIN_CHUNKS of them, but never under MIN_CHUNK_BYTES."""
    mib = 1024 * 1024
    assert temporal.auto_chunk_bytes(20_000 * mib) == temporal.DEFAULT_CHUNK_BYTES
    assert temporal.auto_chunk_bytes(temporal.MIN_CHUNKS * 3 * mib) == 3 * mib
    assert temporal.auto_chunk_bytes(1000) == temporal.MIN_CHUNK_BYTES


def test_chunk_size_by_default_keeps_to_max_chunks() -> None:
    """Inputs too big for MAX_CHUNKS chunks of DEFAULT_CHUNK_BYTES get bigger chunks, few
    enough even when every file ends in a short chunk."""
    gib = 1024**3
    for total, files in ((100 * gib, 1), (40 * gib, 7), (10 * gib, 1500)):
        size = temporal.auto_chunk_bytes(total, files=files)
        assert size > temporal.DEFAULT_CHUNK_BYTES
        assert -(-total // size) + files <= temporal.MAX_CHUNKS


def test_plan_refuses_more_chunks_than_a_history_holds(tmp_path: Path) -> None:
    """A chunk size that would make more than MAX_CHUNKS chunks fails the plan with a
    ConfigError that names chunk_bytes and the least size that fits."""
    path = tmp_path / "events.ndjson"
    line = b'{"type":"track","userId":"u","event":"e"}\n'
    path.write_bytes(line * (temporal.MAX_CHUNKS + 10))
    with pytest.raises(ConfigError, match=r"InputBackfill\.chunk_bytes=1 cuts") as caught:
        plan_chunks(temporal.InputBackfill(files=[str(path)], chunk_bytes=1))
    least = int(str(caught.value).split("set chunk_bytes to ")[1].split()[0].replace(",", ""))
    assert len(plan_chunks(temporal.InputBackfill(files=[str(path)], chunk_bytes=least))) <= (
        temporal.MAX_CHUNKS
    )
    # Without chunk_bytes the planner keeps to the limit by itself.
    assert len(plan_chunks(temporal.InputBackfill(files=[str(path)]))) <= temporal.MAX_CHUNKS


@pytest.mark.parametrize(
    ("field", "options"),
    [
        ("chunk_bytes", {"chunk_bytes": 0}),
        ("chunks_in_flight", {"chunks_in_flight": 0}),
        ("chunks_in_flight", {"chunks_in_flight": temporal.MAX_CHUNKS_IN_FLIGHT + 1}),
    ],
)
def test_input_checks_its_sizes_at_the_call_site(field: str, options: dict[str, Any]) -> None:
    """Sizes out of range raise ConfigError naming the field when the input is made."""
    with pytest.raises(ConfigError, match=rf"InputBackfill\.{field} must be"):
        temporal.InputBackfill(files=["x.ndjson"], **options)


def test_plan_by_default_splits_into_auto_sized_chunks(tmp_path: Path) -> None:
    """The planner applies auto_chunk_bytes to the files' total size."""
    first, second = tmp_path / "a.ndjson", tmp_path / "b.ndjson"
    line = b'{"type":"track","userId":"u","event":"e"}\n'
    first.write_bytes(line * (3 * 1024 * 1024 // len(line)))
    second.write_bytes(line * (2 * 1024 * 1024 // len(line)))
    chunks = plan_chunks(temporal.InputBackfill(files=[str(first), str(second)]))
    # 5 MiB in all: 2 MiB chunks, each file cut on its own.
    assert [(c.path, c.end - c.start > 0) for c in chunks] == [
        (str(first), True),
        (str(first), True),
        (str(second), True),
    ]
    assert max(c.end - c.start for c in chunks) <= temporal.MIN_CHUNK_BYTES + len(line)


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


async def test_backfill_keeps_chunks_in_flight_to_its_window(
    tmp_path: Path, temporal_client: TemporalClient
) -> None:
    """With chunks_in_flight=2 and more chunks than that, never more than two import
    activities are open at once in the workflow's history, and every line arrives."""
    path = tmp_path / "events.ndjson"
    write_ndjson(path, 600)
    backfill = temporal.InputBackfill(
        files=[str(path)], chunk_bytes=path.stat().st_size // 6 + 1, chunks_in_flight=2
    )
    assert len(plan_chunks(backfill)) == 6
    async with LocalCollector() as collector, worker(temporal_client, collector.url) as queue:
        handle = await temporal_client.start_workflow(
            temporal.WorkflowBackfill.run, backfill, id=f"bf-{uuid.uuid4().hex}", task_queue=queue
        )
        summary = await handle.result()
        assert (summary.chunks, summary.chunks_done) == (6, 6)
        assert (summary.accepted, summary.delivered) == (600, 600)
        assert len({m["messageId"] for m in collector.messages("track")}) == 600
        open_imports: set[int] = set()
        most = 0
        async for event in handle.fetch_history_events():
            if event.HasField("activity_task_scheduled_event_attributes"):
                scheduled = event.activity_task_scheduled_event_attributes
                if scheduled.activity_type.name == "ActivityBackfillImport":
                    open_imports.add(event.event_id)
                    most = max(most, len(open_imports))
            elif event.HasField("activity_task_completed_event_attributes"):
                open_imports.discard(
                    event.activity_task_completed_event_attributes.scheduled_event_id
                )
        assert most == 2
        assert not open_imports


async def test_backfill_with_too_many_chunks_fails_at_once(
    tmp_path: Path, temporal_client: TemporalClient
) -> None:
    """A plan past MAX_CHUNKS fails the workflow with a non-retryable ConfigError naming
    chunk_bytes, before any chunk is imported."""
    path = tmp_path / "events.ndjson"
    line = b'{"type":"track","userId":"u","event":"e"}\n'
    path.write_bytes(line * (temporal.MAX_CHUNKS + 10))
    backfill = temporal.InputBackfill(files=[str(path)], chunk_bytes=1)
    async with LocalCollector() as collector, worker(temporal_client, collector.url) as queue:
        with pytest.raises(WorkflowFailureError) as caught:
            await temporal_client.execute_workflow(
                temporal.WorkflowBackfill.run,
                backfill,
                id=f"bf-{uuid.uuid4().hex}",
                task_queue=queue,
            )
        assert collector.messages("track") == []
    cause = caught.value.cause
    assert isinstance(cause, ActivityError)
    assert isinstance(cause.cause, ApplicationError)
    assert cause.cause.type == "ConfigError"
    assert cause.cause.non_retryable
    assert "InputBackfill.chunk_bytes=1" in cause.cause.message


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


async def _pending_imports(handle: WorkflowHandle[Any, Any]) -> dict[str, PendingActivityInfo]:
    """The workflow's pending import activities, by activity id, as the server has them."""
    described = await handle.describe()
    return {
        info.activity_id: info
        for info in described.raw_description.pending_activities
        if info.activity_type.name == "ActivityBackfillImport"
    }


async def _scheduled_chunks(
    handle: WorkflowHandle[Any, Any], client: TemporalClient
) -> dict[str, Chunk]:
    """The chunk each import activity was given, read back from the workflow's history."""
    chunks: dict[str, Chunk] = {}
    async for event in handle.fetch_history_events():
        if event.HasField("activity_task_scheduled_event_attributes"):
            scheduled = event.activity_task_scheduled_event_attributes
            if scheduled.activity_type.name == "ActivityBackfillImport":
                [chunk] = await client.data_converter.decode(
                    scheduled.input.payloads, [temporal.Chunk]
                )
                chunks[scheduled.activity_id] = chunk
    return chunks


async def _worker_past_a_heartbeat(
    handle: WorkflowHandle[Any, Any],
    client: TemporalClient,
    backfill: temporal.InputBackfill,
    workers: list[asyncio.subprocess.Process],
) -> asyncio.subprocess.Process:
    """The first worker whose heartbeat, as the server has it, lies inside a chunk."""
    starts = {chunk.start for chunk in plan_chunks(backfill)}
    while True:
        pending = await _pending_imports(handle)
        if not pending and (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
            raise AssertionError("the backfill ended before a worker was seen mid-chunk")
        for info in pending.values():
            details = await client.data_converter.decode(info.heartbeat_details.payloads)
            if details and details[0]["offset"] not in starts:
                # The SDK's default worker identity is "PID@host".
                pid = int(info.last_worker_identity.split("@", 1)[0])
                return next(process for process in workers if process.pid == pid)
        await asyncio.sleep(0.1)


async def test_backfill_survives_a_sigkilled_worker(
    tmp_path: Path, temporal_client: TemporalClient, temporal_address: str
) -> None:
    """200,000 lines on two worker processes, one SIGKILLed mid-chunk: every line arrives,
    and the lines sent twice are exactly those of its chunks that it had delivered at or
    after the chunk's last heartbeat, so at most the lines after that heartbeat."""
    path = tmp_path / "history.ndjson"
    total = 200_000
    offsets: list[int] = []
    with path.open("wb") as file:
        for n in range(total):
            offsets.append(file.tell())
            file.write(
                b'{"type":"track","userId":"u%d","event":"Imported","messageId":"m-%d"}\n'
                % (n % 1000, n)
            )
    queue = f"backfill-{uuid.uuid4().hex}"
    # A timed-out chunk waits this long before its next attempt: the window in which the
    # test reads what the killed attempt had delivered, before anyone resends that chunk.
    policy = dataclasses.replace(temporal.DEFAULT_IMPORT_POLICY, initial_interval=3.0)
    # Temporal sends a chunk's first heartbeat at once (its start: nothing settled yet) and
    # the next ones at most every 0.8 x heartbeat_timeout: 3 s makes that 2.4 s, well
    # inside a run whose chunks take several seconds, so mid-chunk heartbeats show early.
    backfill = temporal.InputBackfill(
        files=[str(path)], chunk_bytes=1024 * 1024, heartbeat_timeout=3.0, policy=policy
    )
    # (last heartbeat as the server kept it, messageIds that had arrived) per killed chunk
    killed: dict[str, tuple[dict[str, Any] | None, set[str]]] = {}
    async with LocalCollector(max_messages=3 * total, keep_duplicates=True) as collector:
        command = [
            sys.executable, "-m", "htevents_async", "worker",
            "--temporal", temporal_address, "--task-queue", queue,
            "--host", collector.url, "--write-key", WRITE_KEY,
        ]  # fmt: skip
        workers = [await asyncio.create_subprocess_exec(*command) for _ in range(2)]
        try:
            handle = await temporal_client.start_workflow(
                temporal.WorkflowBackfill.run,
                backfill,
                id=f"bf-{uuid.uuid4().hex}",
                task_queue=queue,
            )
            while True:
                victim = await _worker_past_a_heartbeat(handle, temporal_client, backfill, workers)
                victim.kill()
                await victim.wait()
                held = {
                    activity_id
                    for activity_id, info in (await _pending_imports(handle)).items()
                    if info.last_worker_identity.startswith(f"{victim.pid}@")
                }
                if held:
                    break
                # Its chunk finished between the poll that chose it and the kill: nothing
                # of it to resume. A fresh worker takes its place, and another is chosen.
                workers.append(await asyncio.create_subprocess_exec(*command))
            while len(killed) < len(held):
                pending = await _pending_imports(handle)
                for activity_id in held - killed.keys():
                    info = pending[activity_id]
                    if info.attempt < 2 or info.state != PENDING_ACTIVITY_STATE_SCHEDULED:
                        continue
                    # Timed out and not yet restarted: nobody sends this chunk's lines now.
                    details = await temporal_client.data_converter.decode(
                        info.heartbeat_details.payloads
                    )
                    arrived = {m["messageId"] for m in collector.messages("track")}
                    again = (await _pending_imports(handle))[activity_id]
                    assert again.state == PENDING_ACTIVITY_STATE_SCHEDULED, "restarted too soon"
                    killed[activity_id] = (details[0] if details else None, arrived)
                await asyncio.sleep(0.1)
            summary = await handle.result()
            chunks = await _scheduled_chunks(handle, temporal_client)
        finally:
            for process in workers:
                if process.returncode is None:
                    process.terminate()
                    await process.wait()
        ids = Counter(m["messageId"] for m in collector.messages("track"))
    assert summary.accepted == summary.delivered == total
    assert len(ids) == total
    # Two copies at most; one only when the killed worker had delivered nothing past its
    # heartbeats.
    assert max(ids.values()) <= 2
    duplicated = {message_id for message_id, copies in ids.items() if copies > 1}

    expected: set[str] = set()
    after_heartbeat = 0
    mid_chunk = False
    for activity_id, (heartbeat, arrived) in killed.items():
        chunk = chunks[activity_id]
        settled = chunk.start if heartbeat is None else heartbeat["offset"]
        mid_chunk |= chunk.start < settled < chunk.end
        first = bisect.bisect_left(offsets, settled)
        last = bisect.bisect_left(offsets, chunk.end)
        after_heartbeat += last - first
        expected.update(f"m-{n}" for n in range(first, last) if f"m-{n}" in arrived)
    assert mid_chunk, "no killed chunk had heartbeated mid-chunk"
    # Nothing below a heartbeat, nothing of the surviving worker's chunks, is sent twice;
    # everything the killed attempts delivered past their heartbeats is. The bound
    # (duplicates at most the lines after the chunks' last heartbeats) follows from this.
    assert duplicated == expected
    print(
        f"SIGKILL: {len(duplicated)} duplicates of {total} lines; {len(killed)} chunks of "
        f"{summary.chunks} resumed; {after_heartbeat} lines after their heartbeats"
    )


async def test_import_command_runs_on_temporal(
    tmp_path: Path, temporal_client: TemporalClient, temporal_address: str
) -> None:
    """``import FILE --temporal`` starts the backfill, follows it, prints the summary."""
    path = tmp_path / "events.ndjson"
    write_ndjson(path, 500)
    async with LocalCollector() as collector, worker(temporal_client, collector.url) as queue:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "htevents_async", "import", str(path),
            "--temporal", temporal_address,
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


async def import_failing(path: Path, *options: str) -> tuple[int | None, str]:
    """``htevents-async import PATH OPTIONS --no-progress``: its exit code and stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "htevents_async", "import", str(path), *options, "--no-progress",
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await process.communicate()
    return process.returncode, stderr.decode()


async def test_import_command_says_why_a_backfill_failed(
    tmp_path: Path, temporal_client: TemporalClient, temporal_address: str
) -> None:
    """A backfill the plan refuses ends the command with exit code 1 and the reason, the
    chunk size to use, on one line of stderr."""
    path = tmp_path / "events.ndjson"
    line = b'{"type":"track","userId":"u","event":"e"}\n'
    path.write_bytes(line * (temporal.MAX_CHUNKS + 10))
    async with LocalCollector() as collector, worker(temporal_client, collector.url) as queue:
        code, text = await import_failing(
            path, "--temporal", temporal_address, "--task-queue", queue, "--chunk-bytes", "1"
        )
    assert code == 1, text
    assert (
        "import: error: the backfill failed: ConfigError: InputBackfill.chunk_bytes=1 cuts" in text
    )
    assert "Traceback" not in text


async def test_import_command_says_why_the_server_refused(
    tmp_path: Path, temporal_address: str
) -> None:
    """A namespace the server does not know: exit code 1 and the server's reason on
    stderr, no traceback, no crash as the command exits."""
    path = tmp_path / "events.ndjson"
    write_ndjson(path, 10)
    code, text = await import_failing(
        path, "--temporal", temporal_address, "--namespace", "no-such-namespace"
    )
    assert code == 1, text
    assert f"import: error: cannot run the backfill on {temporal_address}:" in text
    assert "no-such-namespace" in text
    assert "Traceback" not in text


async def test_a_backfill_started_by_0_1_0_replays_on_this_release(
    tmp_path: Path, temporal_client: TemporalClient
) -> None:
    """0.1.0 scheduled every chunk at once. Its history, with more chunks than
    ``chunks_in_flight``, replays without nondeterminism on today's workflow, so a worker
    upgraded during such a backfill can take it over."""
    from backfill_v010 import WorkflowBackfillV010
    from temporalio.worker import Replayer
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

    runner = SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(
            "htevents_async", "backfill_v010"
        )
    )
    path = tmp_path / "events.ndjson"
    write_ndjson(path, 300)
    backfill = temporal.InputBackfill(
        files=[str(path)], chunk_bytes=path.stat().st_size // 5 + 1, chunks_in_flight=2
    )
    queue = f"backfill-{uuid.uuid4().hex}"
    async with (
        LocalCollector() as collector,
        temporal.Analytics(
            WRITE_KEY, task_queue=queue, host=collector.url, gzip=False
        ) as analytics,
    ):
        options = analytics.worker_options()
        options["workflows"] = [WorkflowBackfillV010]
        options["workflow_runner"] = runner
        async with Worker(temporal_client, task_queue=queue, **options):
            handle = await temporal_client.start_workflow(
                WorkflowBackfillV010.run, backfill, id=f"bf-{uuid.uuid4().hex}",
                task_queue=queue,
            )  # fmt: skip
            summary = await handle.result()
    assert summary.chunks == 5
    history = await handle.fetch_history()
    replayer = Replayer(
        workflows=[temporal.WorkflowBackfill],
        data_converter=temporal.data_converter,
        workflow_runner=runner,
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
