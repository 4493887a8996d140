"""``htevents-async import``: stream an NDJSON file of wire-form messages to the collector."""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import stat
import sys
import time
from typing import IO, TYPE_CHECKING, Final

import attrs

from .._importer import ImportCounts, Rejection
from ._common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    PROG,
    UsageError,
    add_give_up_options,
    add_target_options,
    check_give_up_options,
    one_line,
    quiet_client_logs,
    run_until_signal,
    target_host,
    write_key,
)
from ._temporal_import import add_temporal_arguments, run_on_temporal

if TYPE_CHECKING:
    from .._client import Client
    from ._progress import Progress

DESCRIPTION = (
    "Send every line of an NDJSON file (or stdin) of messages in Segment wire form, at full "
    "speed and in bounded memory. Lines that are not valid JSON or not valid messages are "
    "listed in a report file; the exit code is 1 if any line was rejected or any event was "
    "not delivered. Ctrl+C or SIGTERM stops reading, delivers what is in flight for up to "
    "5 seconds, and prints the summary."
)

#: Seconds an interrupted import keeps delivering what it already read.
SHUTDOWN_GRACE: Final = 5.0
# Distinct failure reasons kept for the summary; a down collector makes them all alike.
_MAX_FAILURE_REASONS: Final = 5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``import``."""
    parser.add_argument("file", metavar="FILE", help="the NDJSON file, or - for stdin")
    parser.add_argument(
        "--report",
        metavar="PATH",
        help="where to list rejected lines (default: FILE.rejected.txt)",
    )
    parser.add_argument(
        "--allow-anonymous",
        action="store_true",
        help="give a line with neither userId nor anonymousId a random anonymousId "
        "(default: reject it, as it would create a user nobody can match)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=100, metavar="N", help="events per request (100)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=4, metavar="N", help="requests in flight (4)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="longest wait for room in the queue, and for delivery at the end (600)",
    )
    add_give_up_options(parser)
    progress = parser.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="show a progress bar of delivered events (default: when stderr is a terminal)",
    )
    progress.add_argument("--no-progress", dest="progress", action="store_false")
    add_target_options(parser)
    add_temporal_arguments(parser)


@attrs.define
class _Result:
    counts: ImportCounts = attrs.Factory(ImportCounts)
    delivered: int = 0
    failed: int = 0
    elapsed: float = 0.0
    gave_up: str | None = None
    failures: collections.Counter[str] = attrs.Factory(collections.Counter)


class _RejectReport:
    """The rejected-lines report: ``line N: reason``, one per rejected line.

    Opened before the first line is read, so that an unwritable path fails
    before anything is sent, and a stale report from an earlier run is never
    mistaken for this one's; removed at the end if nothing was rejected (and
    it is a regular file).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.count = 0
        try:
            self._file = open(path, "w", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise UsageError(f"cannot write the report {path}: {exc.strerror or exc}") from None

    def add(self, rejection: Rejection) -> None:
        self.count += 1
        self._file.write(f"line {rejection.line}: {one_line(rejection.reason)}\n")

    def close(self) -> None:
        info = os.fstat(self._file.fileno())
        self._file.close()
        # Only a regular file is ours to remove: --report may name /dev/null or a FIFO.
        if not self.count and stat.S_ISREG(info.st_mode):
            with contextlib.suppress(OSError):
                os.remove(self.path)


async def _import(
    stream: IO[bytes],
    client: Client,
    args: argparse.Namespace,
    report: _RejectReport,
    progress: Progress,
    result: _Result,
) -> None:
    from .._importer import import_ndjson
    from ._watch import OutageWatch

    started = time.monotonic()
    counts = result.counts
    reading = True

    async def read_then_deliver() -> None:
        nonlocal reading
        await import_ndjson(
            stream,
            client,
            allow_anonymous=args.allow_anonymous,
            on_reject=report.add,
            counts=counts,
        )
        reading = False
        await client.flush(args.timeout)

    watch = OutageWatch(
        client,
        lambda line: progress.write(f"{PROG} import: {line}"),
        args.max_failures,
        args.give_up_after,
        tick=lambda stats: progress.update(stats.delivered, counts, not reading),
    )
    try:
        async with client:
            work = asyncio.get_running_loop().create_task(read_then_deliver())
            if await watch.guard(work):
                result.gave_up = watch.gave_up
                await client.aclose(timeout=0)
    finally:
        # Also on Ctrl+C, so that the summary says what got through.
        stats = client.statistics()
        progress.update(stats.delivered, counts, not reading)
        result.delivered = stats.delivered
        result.failed += stats.failed + stats.dropped_total
        for reason, count in stats.dropped.items():
            # The client's "shutdown" is the import stopping: the end, a signal, or giving up.
            label = "still pending when the import stopped" if reason == "shutdown" else reason
            result.failures[f"dropped ({label})"] += count
        result.elapsed = time.monotonic() - started


def _input_size(stream: IO[bytes]) -> int | None:
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def run(args: argparse.Namespace) -> int:
    """Import the file; exit code 0 all delivered, 1 anything rejected or not delivered."""
    # Imported here, not at parse time: --help and the other commands need none of it.
    from .._batch import Batch
    from .._client import Client
    from .._errors import DeliveryError
    from ._progress import make_progress

    quiet_client_logs(args)
    if args.temporal:
        return run_on_temporal(args)
    key = write_key(args)
    host = target_host(args)
    check_give_up_options(args)
    if args.batch_size < 1 or args.concurrency < 1:
        raise UsageError("--batch-size and --concurrency must be at least 1")
    source: str = args.file
    from_stdin = source == "-"
    result = _Result()

    def on_failure(batch: Batch, error: DeliveryError) -> None:
        reason = one_line(error)
        if reason in result.failures or len(result.failures) < _MAX_FAILURE_REASONS:
            result.failures[reason] += len(batch)

    # Built first, so that a bad option value fails before any I/O.
    client = Client(
        key,
        host=host,
        gzip=not args.no_gzip,
        max_batch_size=args.batch_size,
        max_concurrent_requests=args.concurrency,
        max_queue_size=max(10_000, 4 * args.batch_size),
        # A backfill must not lose events to a full queue: reading waits for room instead.
        overflow="wait",
        enqueue_timeout=args.timeout,
        shutdown_timeout=SHUTDOWN_GRACE,
        on_failure=on_failure,
    )
    try:
        stream: IO[bytes] = (
            open(sys.stdin.fileno(), "rb", closefd=False)  # noqa: SIM115
            if from_stdin
            else open(source, "rb")  # noqa: SIM115
        )
    except OSError as exc:
        raise UsageError(f"cannot read {source}: {exc.strerror or exc}") from None
    with stream:
        report = _RejectReport(
            args.report or ("stdin.rejected.txt" if from_stdin else f"{source}.rejected.txt")
        )
        progress = make_progress(args.progress, _input_size(stream), "import")
        try:
            stopped = run_until_signal(_import(stream, client, args, report, progress, result))
        finally:
            progress.close()
            report.close()
    _print_summary("stdin" if from_stdin else source, client.config.url, result, report)
    if stopped is not None:
        verb = "Interrupted" if stopped.name == "SIGINT" else f"Stopped by {stopped.name}"
        print(f"{verb} after line {result.counts.lines:,}.")
        return EXIT_INTERRUPTED if stopped.name == "SIGINT" else EXIT_TERMINATED
    if result.gave_up is not None:
        print(f"Gave up after line {result.counts.lines:,}: {result.gave_up}")
        return EXIT_FAILED
    return EXIT_FAILED if result.counts.rejected or result.failed else EXIT_OK


def _print_summary(source: str, url: str, result: _Result, report: _RejectReport) -> None:
    counts = result.counts
    rate = result.delivered / result.elapsed if result.elapsed > 0 else 0.0
    rows = [
        ("lines read", f"{counts.lines:,}", ""),
        ("  accepted", f"{counts.accepted:,}", ""),
        ("  rejected", f"{counts.rejected:,}", f"  listed in {report.path}" * bool(report.count)),
        ("  blank", f"{counts.blank:,}", ""),
        ("delivered", f"{result.delivered:,}", ""),
        ("failed", f"{result.failed:,}", ""),
        ("elapsed", f"{result.elapsed:.2f} s", f"  ({rate:,.0f} delivered events/s)"),
    ]
    width = max(len(value) for _, value, _ in rows)
    print(f"Imported {source} into {url}")
    for label, value, note in rows:
        print(f"  {label:<12}{value:>{width}}{note}")
    for reason, count in result.failures.most_common():
        print(f"  {count:,} events not delivered: {reason}")
