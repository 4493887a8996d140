"""SyncClient: the engine behind a synchronous API, driven from plain threads."""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from support import WRITE_KEY, assert_accounted, fork_and_report

import htevents_async
from htevents_async import (
    ClientClosedError,
    ClientStateError,
    DeliveryError,
    DroppedError,
    MessageError,
    MessageTypeError,
    QueueFullError,
    SyncClient,
    Track,
    context_scope,
)
from htevents_async._collector import LocalCollector
from htevents_async._portal import LOOP_GRACE

FAST: dict[str, Any] = {
    "flush_interval": 0.02,
    "backoff_initial": 0.01,
    "backoff_max": 0.05,
    "gzip": False,
}


def sync_client(url: str, **options: Any) -> SyncClient:
    """A SyncClient pointed at ``url`` with quick batching, overridden by ``options``."""
    return SyncClient(WRITE_KEY, host=url, **{**FAST, **options})


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A collector that accepts connections and never answers (a hung server)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(100)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


async def test_every_method_delivers_from_a_thread(collector: LocalCollector) -> None:
    """identify, track, page, screen, group, alias and enqueue each deliver and return the id."""

    def record() -> list[str]:
        with sync_client(collector.url) as events:
            ids = [
                events.identify(user_id="u1", traits={"plan": "pro"}),
                events.track(user_id="u1", event="Signed up", properties={"n": 1}),
                events.page(anonymous_id="a1", name="Home"),
                events.screen(user_id=7, name="Settings", category="app"),
                events.group(group_id="g1", user_id="u1", traits={"size": 3}),
                events.alias(previous_id="a1", user_id="u1"),
                events.enqueue(Track(user_id="u1", event="Prepared")),
            ]
            assert events.flush() == 0
            return ids

    ids = await asyncio.to_thread(record)
    messages = await collector.wait_for(len(ids))
    assert [m["messageId"] for m in messages] == ids
    types = [m["type"] for m in messages]
    assert types == ["identify", "track", "page", "screen", "group", "alias", "track"]


async def test_scoped_context_is_read_in_the_calling_thread(collector: LocalCollector) -> None:
    """context_scope() around a call in the calling thread reaches the event."""

    def record() -> None:
        with sync_client(collector.url) as events:
            with context_scope({"ip": "203.0.113.7"}):
                events.track(user_id="u1", event="Scoped")
            events.track(user_id="u1", event="Unscoped")

    await asyncio.to_thread(record)
    scoped, unscoped = await collector.wait_for(2)
    assert scoped["context"]["ip"] == "203.0.113.7"
    assert "ip" not in unscoped["context"]


async def test_bad_input_raises_in_the_calling_thread_naming_the_field(
    collector: LocalCollector,
) -> None:
    """Bad arguments raise MessageError in the caller's thread, naming the field."""

    def run() -> int:
        with sync_client(collector.url) as events:
            with pytest.raises(MessageError, match=r"Track\.event"):
                events.track(user_id="u1", event="")  # before the client even starts
            events.track(user_id="u1", event="ok")
            with pytest.raises(MessageTypeError, match=r"Track\.properties\['when'\]"):
                events.track(user_id="u1", event="e", properties={"when": object()})
            with pytest.raises(TypeError, match="expected an Identify"):
                events.enqueue({"type": "track"})  # type: ignore[arg-type]
            assert events.flush() == 0
            return events.statistics().accepted

    assert await asyncio.to_thread(run) == 1
    await collector.wait_for(1)


@pytest.mark.slow
async def test_sixteen_threads_of_ten_thousand_lose_nothing() -> None:
    """16 producer threads x 10,000 events: every id arrives, every event is accounted."""
    threads, per_thread = 16, 10_000
    total = threads * per_thread
    async with LocalCollector(max_messages=total) as collector:
        events = sync_client(collector.url, overflow="wait", max_batch_size=500)
        sent: list[list[str]] = [[] for _ in range(threads)]

        def produce(n: int) -> None:
            ids = sent[n]
            for i in range(per_thread):
                ids.append(events.track(user_id=f"t{n}", event="e", properties={"i": i}))

        def run() -> int:
            workers = [threading.Thread(target=produce, args=(n,)) for n in range(threads)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            return events.close(timeout=60)

        assert await asyncio.to_thread(run) == 0
        await collector.wait_for(total, timeout=60)
        arrived = {m["messageId"] for m in collector.messages()}
        assert arrived == {message_id for ids in sent for message_id in ids}
        stats = events.statistics()
        assert stats.delivered == total
        assert not stats.dropped
        assert_accounted(stats)


async def test_overflow_wait_blocks_the_caller_then_raises(silent_url: str) -> None:
    """overflow="wait": past max_queue_size unsettled events the caller waits, then raises."""
    events = sync_client(
        silent_url, overflow="wait", max_queue_size=10, max_batch_size=10, enqueue_timeout=0.2
    )

    def fill() -> None:
        for _ in range(10):
            events.track(user_id="u1", event="e")
        with pytest.raises(QueueFullError, match="enqueue_timeout"):
            events.track(user_id="u1", event="one too many")

    try:
        await asyncio.to_thread(fill)
        assert events.statistics().accepted == 10
    finally:
        assert await asyncio.to_thread(events.close, 0.2) == 10


async def test_dead_collector_never_stretches_flush_or_close(silent_url: str) -> None:
    """A collector that never answers: flush() and close() return at their timeouts."""
    # Defaults far longer than the test: a wait that ignored the timeout would hang it.
    events = sync_client(silent_url, request_timeout=600, flush_timeout=600, shutdown_timeout=600)

    def run() -> tuple[int, int, float]:
        for _ in range(5):
            events.track(user_id="u1", event="e")
        started = time.monotonic()
        pending = events.flush(timeout=0.2)
        dropped = events.close(timeout=0.2)
        return pending, dropped, time.monotonic() - started

    pending, dropped, elapsed = await asyncio.to_thread(run)
    assert pending == 5
    assert dropped == 5
    # Each wait may overrun its timeout only by the loop's grace; 2 s of slack for a
    # loaded machine, far below the 600 s a wait that ignored its timeout would take.
    assert elapsed < 0.2 + 0.2 + 2 * LOOP_GRACE + 2.0
    assert events.statistics().dropped == {"shutdown": 5}


async def test_closed_client_refuses_calls(collector: LocalCollector) -> None:
    """After close() calls raise ClientClosedError; close() again returns 0."""

    def run() -> None:
        events = sync_client(collector.url)
        events.track(user_id="u1", event="e")
        assert events.close() == 0
        with pytest.raises(ClientClosedError):
            events.track(user_id="u1", event="e")
        assert events.close() == 0
        assert events.flush() == 0

    await asyncio.to_thread(run)
    await collector.wait_for(1)


async def test_flush_from_a_callback_raises(collector: LocalCollector) -> None:
    """A callback runs on the client's thread, where flush() refuses to wait on itself."""
    raised: list[BaseException] = []
    done = threading.Event()

    def run() -> None:
        with sync_client(collector.url) as events:

            def callback(message_id: str, error: object) -> None:
                try:
                    events.flush()
                except ClientStateError as exc:
                    raised.append(exc)
                done.set()

            events.track(user_id="u1", event="e", callback=callback)
            events.flush()
            assert done.wait(10)

    await asyncio.to_thread(run)
    assert len(raised) == 1
    assert "own thread" in str(raised[0])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
async def test_client_made_before_fork_works_in_the_child(collector: LocalCollector) -> None:
    """A client used before fork() starts afresh in the child; the parent keeps its own."""
    events = sync_client(collector.url, flush_interval=3600)
    parent_ids = await asyncio.to_thread(
        lambda: [events.track(user_id="parent", event="e") for _ in range(4)]
    )

    def child() -> dict[str, Any]:
        ids = [events.track(user_id="child", event="e") for _ in range(3)]
        pending = events.flush(timeout=10)
        stats = events.statistics()
        events.close()
        return {
            "ids": ids,
            "pending": pending,
            "dropped": stats.dropped,
            "delivered": stats.delivered,
        }

    reported = await asyncio.to_thread(fork_and_report, child)
    assert "raised" not in reported, reported
    assert reported["pending"] == 0
    assert reported["delivered"] == 3
    assert reported["dropped"] == {"fork": 4}
    await collector.wait_for(3)
    assert {m["messageId"] for m in collector.messages()} == set(reported["ids"])
    assert await asyncio.to_thread(events.close) == 0
    await collector.wait_for(7)
    assert {m["messageId"] for m in collector.messages()} == set(reported["ids"] + parent_ids)


_UNCLOSED_SCRIPT = textwrap.dedent(
    """
    import sys
    import htevents_async

    events = htevents_async.SyncClient(
        "wk", host=sys.argv[1], flush_interval=3600, shutdown_timeout=float(sys.argv[2]),
        request_timeout=600, max_batch_size=100,
    )
    # About 1 KB an event: a full batch is big enough to be compressed off the loop.
    padding = "x" * 1000
    for i in range(int(sys.argv[3])):
        events.track(user_id="script", event="e", properties={"i": i, "padding": padding})
    print("recorded", flush=True)
    """
)


async def _run_script(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _UNCLOSED_SCRIPT,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_unclosed_client_delivers_at_interpreter_exit(
    collector: LocalCollector, host: str
) -> None:
    """A script that never closes its client still delivers everything at exit, even when
    the exit close must resolve a host name and compress large batches."""
    url = collector.url.replace("127.0.0.1", host)
    code, out, err = await _run_script(url, "30", "120")
    assert (code, out) == (0, "recorded\n"), err
    assert "Traceback" not in err, err
    messages = await collector.wait_for(120)
    assert sorted(m["properties"]["i"] for m in messages) == list(range(120))


async def test_exit_with_a_dead_collector_stops_at_shutdown_timeout(silent_url: str) -> None:
    """Interpreter exit waits for a hung collector no longer than shutdown_timeout."""
    started = time.monotonic()
    code, out, err = await _run_script(silent_url, "0.3", "10")
    elapsed = time.monotonic() - started
    assert (code, out) == (0, "recorded\n"), err
    assert "cannot schedule new futures" not in err
    assert "Traceback" not in err, err
    assert "dropped {'shutdown': 10}" in err
    # shutdown_timeout plus the interpreter's own start and exit; the request timeout
    # that a close ignoring shutdown_timeout would wait for is 600 s.
    assert elapsed < 0.3 + LOOP_GRACE + 15


async def test_client_collected_unclosed_delivers(collector: LocalCollector) -> None:
    """A client dropped without close() is closed as it is collected: its events arrive."""

    def run() -> str:
        events = sync_client(collector.url, flush_interval=3600)
        message_id = events.track(user_id="u1", event="Forgotten")
        del events
        gc.collect()
        return message_id

    message_id = await asyncio.to_thread(run)
    (message,) = await collector.wait_for(1)
    assert message["messageId"] == message_id


async def test_disable_with_overflow_wait_never_blocks() -> None:
    """disable=True queues nothing, so overflow="wait" has nothing to wait for; every
    callback hears DroppedError("disabled")."""
    outcomes: list[str] = []

    def callback(message_id: str, error: DeliveryError | None) -> None:
        assert isinstance(error, DroppedError)
        outcomes.append(error.reason)

    events = htevents_async.SyncClient(
        "wk", disable=True, overflow="wait", max_queue_size=5, max_batch_size=5
    )

    def record() -> None:
        for _ in range(12):
            events.track(user_id="u1", event="e", callback=callback)
        events.flush(timeout=5)

    try:
        await asyncio.to_thread(record)
    finally:
        await asyncio.to_thread(events.close, 1.0)
    assert events.statistics().dropped == {"disabled": 12}
    assert outcomes == ["disabled"] * 12


async def test_overflow_wait_with_a_spool_waits_on_disk_not_in_the_caller(
    silent_url: str, tmp_path: Any
) -> None:
    """With a spool, events the queue has no room for wait on disk: a SyncClient with
    overflow="wait" accepts past max_queue_size, as Client does."""
    events = sync_client(
        silent_url,
        spool=str(tmp_path),
        overflow="wait",
        max_queue_size=100,
        max_batch_size=50,
        enqueue_timeout=0.5,
    )

    def record() -> None:
        for _ in range(1_000):
            events.track(user_id="u1", event="e")

    try:
        await asyncio.to_thread(record)
        assert events.statistics().accepted == 1_000
    finally:
        await asyncio.to_thread(events.close, 0.2)
