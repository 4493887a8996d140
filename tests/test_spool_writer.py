"""The spool's writer thread and store driven directly, on real files: the bookkeeping of
groups, acknowledgements and failures that whole-client tests reach only by timing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from htevents_async._batch import Entry
from htevents_async._logging import RateLimitedLog
from htevents_async._spool import SqliteStore, _adopt
from htevents_async._spool._adopt import ASIDE, AdoptReport, adopt_all, own_file
from htevents_async._spool._locks import lock_path, try_lock
from htevents_async._spool._schema import (
    append_group,
    connect,
    fingerprint,
    initialise,
    waiting_spans,
)
from htevents_async._spool._writer import Writer
from htevents_async._stats import Counters

PRINTS = fingerprint("segment", "http://127.0.0.1:1", "wk")


class Sink:
    """Records what the writer reports to the loop."""

    def __init__(self) -> None:
        self.hwm = 0
        self.inserted = 0
        self.failures: list[tuple[int, list[str], str]] = []
        self.reports: list[AdoptReport] = []
        self.committed_event = asyncio.Event()

    def committed(self, hwm: int, inserted: int, used_bytes: int, text_bytes: int) -> None:
        self.hwm = max(self.hwm, hwm)
        self.inserted += inserted
        self.committed_event.set()

    def recovered(self, report: AdoptReport) -> None:
        self.reports.append(report)

    def broken(self, first: int, texts: list[str], reason: str) -> None:
        self.failures.append((first, texts, reason))

    def scanned(self) -> None:
        pass


def start_writer(directory: Path, sink: Sink, interval: float) -> Writer:
    path, lock = own_file(str(directory))
    return Writer(
        path,
        lock,
        PRINTS,
        synchronous="normal",
        interval=interval,
        loop=asyncio.get_running_loop(),
        sink=sink,
    )


@contextlib.asynccontextmanager
async def held(
    writer: Writer, first: Callable[[sqlite3.Connection], None] | None = None
) -> AsyncIterator[None]:
    """Keep the writer thread inside an operation of its own (which runs ``first``) for
    the duration of the block, so that whatever the block hands over is taken together
    afterwards."""
    entered = threading.Event()
    go_on = threading.Event()

    def hold(conn: sqlite3.Connection) -> None:
        if first is not None:
            first(conn)
        entered.set()
        go_on.wait()

    done = writer.submit(hold)
    await asyncio.to_thread(entered.wait)
    try:
        yield
    finally:
        go_on.set()
        await done


def exists(path: str) -> bool:
    return os.path.exists(path)


def file_state(path: str) -> tuple[list[tuple[int, int]], int]:
    conn = sqlite3.connect(path)
    try:
        spans = waiting_spans(conn)
        live = int(conn.execute("SELECT TOTAL(live) FROM groups").fetchone()[0])
    finally:
        conn.close()
    return spans, live


async def test_group_acknowledged_in_part_before_it_is_written_keeps_the_rest(
    tmp_path: Path,
) -> None:
    """Events delivered before the writer took their group are counted down once: the
    rest of the group stays waiting, its live count equal to what the file still holds."""
    sink = Sink()
    writer = start_writer(tmp_path, sink, interval=0.0)
    async with held(writer):
        # The thread is busy: the events and their acknowledgement make one group.
        for seq in range(1, 151):
            writer.insert(seq, f'{{"n": {seq}}}')
        writer.acknowledge(list(range(1, 101)))
    await writer.submit(lambda conn: None)
    assert sink.hwm == 150
    assert not sink.failures
    spans, live = file_state(writer.path)
    assert spans == [(101, 150)]
    assert live == 50
    rows, missing = await writer.read([(101, 150)])
    assert missing == 0
    assert [seq for seq, _ in rows] == list(range(101, 151))
    # Delivering the rest finishes the group: it goes, and the file is removed on close.
    writer.acknowledge(list(range(101, 151)))
    await writer.submit(lambda conn: None)
    assert file_state(writer.path) == ([], 0)
    await writer.stop()
    assert not exists(writer.path)


def make_store(directory: Path, counters: Counters) -> SqliteStore:
    return SqliteStore(
        str(directory),
        url="http://127.0.0.1:1",
        write_key="wk",
        protocol="segment",
        counters=counters,
        warnings=RateLimitedLog(),
        max_bytes=1 << 30,
        synchronous="normal",
        commit_interval=0.0,
        backoff=0.01,
    )


def cap_file(conn: sqlite3.Connection) -> None:
    """From now on the file cannot grow: the next group fails with SQLITE_FULL."""
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")


async def test_events_read_back_in_the_transaction_that_fails_are_handed_back(
    tmp_path: Path,
) -> None:
    """Disk-only events the refill reads back in the same transaction as their own group:
    the file fills up, the transaction fails, and each event goes to the queue or meets
    overflow, none left counted as spooled with no copy anywhere."""
    counters = Counters()
    store = make_store(tmp_path, counters)
    queued: list[Entry] = []
    dropped: list[tuple[list[Entry], str]] = []

    def admit(entry: Entry) -> bool:
        if len(queued) >= 5:
            return False
        queued.append(entry)
        return True

    store.start(admit, lambda: 100, lambda entries, reason: dropped.append((entries, reason)))
    await store.wait_scanned()
    writer = store._writer
    texts = [f'{{"n": {i}, "pad": "{"x" * 5000}"}}' for i in range(20)]
    async with held(writer, cap_file):
        for text in texts:
            # The queue had no room for them: on disk only.
            assert store.accept((text, None), queued=False)
        # The refill picks them and asks for them in the transaction that writes them.
        for _ in range(1000):
            if writer._ops:
                break
            await asyncio.sleep(0.001)
        assert writer._ops, "the refill asked for the events"
    # The failed transaction is reported, then the read's error reaches the refill,
    # which ends: the file is no longer read.
    assert store._refill is not None
    await asyncio.wait_for(store._refill, 30)
    assert store._broken
    await store.aclose(timeout=5)
    handed = [entry[0] for entry in queued] + [e[0] for es, _ in dropped for e in es]
    assert sorted(handed) == sorted(texts)
    assert {reason for _, reason in dropped} == {"spool_error"}
    assert counters.spooled == 0


async def test_events_left_at_shutdown_whose_group_fails_are_dropped_not_counted_kept(
    tmp_path: Path,
) -> None:
    """Events still in memory at close are handed back as staying in the file; when their
    group then fails to commit, they are reported lost (spool_error), never left counted
    as spooled with no copy anywhere."""
    counters = Counters()
    store = make_store(tmp_path, counters)
    dropped: list[tuple[list[Entry], str]] = []
    store.start(lambda entry: True, lambda: 100, lambda es, reason: dropped.append((es, reason)))
    await store.wait_scanned()
    pad = "w" * 5000
    entries: list[Entry] = [(f'{{"n": {i}, "pad": "{pad}"}}', None) for i in range(4)]
    async with held(store._writer, cap_file):
        for entry in entries:
            assert store.accept(entry, queued=True)
        # The batcher's close hands back what is still queued, before the group is written.
        assert store.release(entries)
        assert counters.spooled == 4
    await store.aclose(timeout=5)
    assert store._broken
    assert [(sorted(e[0] for e in es), reason) for es, reason in dropped] == [
        (sorted(e[0] for e in entries), "spool_error")
    ]
    assert counters.spooled == 0


def dead_file(
    directory: Path, count: int, name: str = "spool-dead-1-0000.db", prints: dict[str, str] = PRINTS
) -> str:
    """A spool file its owner left behind with ``count`` events waiting (no lock held)."""
    path = str(directory / name)
    conn = connect(path, create=True)
    try:
        initialise(conn, path, prints, "normal")
        conn.execute("BEGIN IMMEDIATE")
        append_group(conn, [f'{{"n": {i}, "pad": "{"y" * 500}"}}' for i in range(count)], 1.0)
        conn.execute("COMMIT")
    finally:
        conn.close()
    return path


def test_our_file_full_during_adoption_leaves_the_dead_file_for_the_next_scan(
    tmp_path: Path,
) -> None:
    """Our own file cannot take the copy: the other file is intact, so it is neither moved
    aside nor removed, and a later scan with room adopts it whole."""
    source = dead_file(tmp_path, 200)
    own_path = str(tmp_path / "spool-own.db")
    own = connect(own_path, create=True)
    try:
        initialise(own, own_path, PRINTS, "normal")
        cap_file(own)
        report = adopt_all(own, own_path, PRINTS, 1)
        assert report.aside == []
        assert report.events == 0
        assert os.path.exists(source)
        assert not os.path.exists(tmp_path / ASIDE)
        # No transaction left open by the failed copy.
        assert own.in_transaction is False

        own.execute("PRAGMA max_page_count = 1073741823")
        report = adopt_all(own, own_path, PRINTS, 1)
        assert report.events == 200
        assert not os.path.exists(source)
        assert sum(hi - lo + 1 for lo, hi in waiting_spans(own)) == 200
    finally:
        own.close()


async def test_commit_counts_events_accepted_after_the_file_broke(tmp_path: Path) -> None:
    """Once the file has failed, commit() still answers how many events accepted before
    the call are not in the file, those kept in memory since included."""
    store = make_store(tmp_path, Counters())
    await store.wait_scanned()
    await store._writer.submit(cap_file)
    pad = "z" * 5000
    for i in range(3):
        assert store.accept((f'{{"n": {i}, "pad": "{pad}"}}', None), queued=True)
    # Their group does not fit: the file breaks and commit() returns at once.
    assert await store.commit(timeout=30) == 3
    assert store._broken
    for i in range(4):
        assert store.accept((f'{{"m": {i}}}', None), queued=True)
    assert await store.commit(timeout=30) == 7
    await store.aclose(timeout=5)


def own_file_in(directory: Path) -> tuple[str, sqlite3.Connection]:
    own_path = str(directory / "spool-own.db")
    own = connect(own_path, create=True)
    initialise(own, own_path, PRINTS, "normal")
    return own_path, own


def test_one_failing_file_does_not_end_the_scan(tmp_path: Path) -> None:
    """A file whose lock cannot even be opened is logged and left; the files before and
    after it in the same scan are adopted and reported."""
    first = dead_file(tmp_path, 10, "spool-a.db")
    failing = dead_file(tmp_path, 20, "spool-b.db")
    last = dead_file(tmp_path, 30, "spool-c.db")
    # Its sidecar lock is a directory: opening it fails with an OSError.
    os.mkdir(lock_path(failing))
    own_path, own = own_file_in(tmp_path)
    try:
        report = adopt_all(own, own_path, PRINTS, 1, set())
        assert report.events == 40
        assert sorted(report.files) == [first, last]
        assert os.path.exists(failing)
        assert sum(hi - lo + 1 for lo, hi in waiting_spans(own)) == 40
        # Once it can be locked, the next scan takes it.
        os.rmdir(lock_path(failing))
        report = adopt_all(own, own_path, PRINTS, 1, set())
        assert report.files == [failing]
        assert report.events == 20
    finally:
        own.close()


def test_a_file_copied_but_not_removed_is_never_copied_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Removing an adopted file fails (as root nothing refuses an unlink here, so the
    failure is injected): its events are reported once, and later scans of this process
    leave it alone rather than copy its events a second time."""
    source = dead_file(tmp_path, 25)

    def refuse(path: str) -> None:
        raise PermissionError(f"cannot remove {path}")

    monkeypatch.setattr(_adopt, "remove", refuse)
    own_path, own = own_file_in(tmp_path)
    skip: set[str] = set()
    try:
        report = adopt_all(own, own_path, PRINTS, 1, skip)
        assert report.events == 25
        assert report.files == [source]
        assert os.path.exists(source)
        report = adopt_all(own, own_path, PRINTS, 1, skip)
        assert report.events == 0
        assert sum(hi - lo + 1 for lo, hi in waiting_spans(own)) == 25
        # Nor does another live process: the file was emptied once copied.
        held_by_us = try_lock(lock_path(own_path))  # ours is a live process's file
        assert held_by_us is not None
        other_path = str(tmp_path / "spool-other.db")
        other = connect(other_path, create=True)
        try:
            initialise(other, other_path, PRINTS, "normal")
            assert adopt_all(other, other_path, PRINTS, 1, set()).events == 0
        finally:
            other.close()
            held_by_us.release()
    finally:
        own.close()


def test_a_file_our_process_cannot_open_is_left_for_later(tmp_path: Path) -> None:
    """Out of file descriptors (ours, not the file's fault): the intact file is neither
    moved aside nor lost, and a later scan adopts it."""
    import resource

    source = dead_file(tmp_path, 10)
    own_path, own = own_file_in(tmp_path)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        # Room for the sidecar lock only: SQLite cannot open the file to attach it.
        opened = len(os.listdir("/proc/self/fd"))
        resource.setrlimit(resource.RLIMIT_NOFILE, (opened + 1, hard))
        try:
            report = adopt_all(own, own_path, PRINTS, 1)
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        assert report.aside == []
        assert report.events == 0
        assert os.path.exists(source)
        assert not os.path.exists(tmp_path / ASIDE)
        assert adopt_all(own, own_path, PRINTS, 1).events == 10
    finally:
        own.close()


def test_another_clients_file_is_reported_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A file for another key is left alone, with one warning for the life of the
    process rather than one per scan."""
    other = fingerprint("segment", "http://127.0.0.1:1", "another key")
    foreign = dead_file(tmp_path, 5, prints=other)
    own_path, own = own_file_in(tmp_path)
    skip: set[str] = set()
    try:
        with caplog.at_level(logging.WARNING, logger="htevents_async"):
            for _ in range(3):
                assert adopt_all(own, own_path, PRINTS, 1, skip).events == 0
    finally:
        own.close()
    assert os.path.exists(foreign)
    warnings = [r for r in caplog.records if "another protocol" in r.getMessage()]
    assert len(warnings) == 1


async def test_an_unexpected_error_in_the_writer_fails_its_work_and_keeps_serving(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A text SQLite cannot take (a lone surrogate fails to encode, not a sqlite3 error)
    raises inside the writer thread: the error is logged, the group is handed back as
    never written, every operation's future is resolved, and stop() still ends it."""
    sink = Sink()
    writer = start_writer(tmp_path, sink, interval=0.0)
    with caplog.at_level(logging.ERROR, logger="htevents_async"):
        async with held(writer):
            writer.insert(1, '{"ok": 1}')
            writer.insert(2, '{"bad": "\ud800"}')
            taken = writer.submit(lambda conn: "never")
        with pytest.raises(UnicodeEncodeError):
            await taken
        # Later work is answered too, now that the file is given up.
        with pytest.raises(RuntimeError, match="not writable"):
            await writer.submit(lambda conn: "later")
        await asyncio.wait_for(writer.stop(), 30)
    assert [(first, texts) for first, texts, _ in sink.failures] == [
        (1, ['{"ok": 1}', '{"bad": "\ud800"}'])
    ]
    assert "the spool writer failed" in caplog.text
    assert not writer._thread.is_alive()
