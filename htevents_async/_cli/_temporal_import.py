"""``htevents-async import FILE --temporal HOST:PORT``: the import as a Temporal backfill.

The file is read by the workers (``htevents-async worker``), chunk by chunk, not by this
process: it starts ``WorkflowBackfill``, shows its progress from the workflow's
``progress`` query, and prints the same summary as a local import.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from typing import Any

from .._importer import ImportCounts
from ._common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    PROG,
    UsageError,
    fail,
    one_line,
    run_until_signal,
)

__all__ = ["add_temporal_arguments", "run_on_temporal"]

# Seconds between two progress queries.
_POLL = 0.5


def add_temporal_arguments(parser: argparse.ArgumentParser) -> None:
    """``--temporal``, ``--task-queue``, ``--namespace`` and ``--chunk-bytes``."""
    parser.add_argument(
        "--temporal",
        metavar="HOST:PORT",
        help="run the import as a backfill workflow on this Temporal server's workers "
        "(htevents-async worker); they read FILE, so it must be a path they can open",
    )
    parser.add_argument(
        "--task-queue", default="analytics", help="with --temporal: the workers' task queue"
    )
    parser.add_argument("--namespace", default="default", help="with --temporal: namespace")
    parser.add_argument(
        "--chunk-bytes",
        type=int,
        default=None,
        metavar="N",
        help="with --temporal: bytes per import activity (default: 16 MiB, or less to make "
        "64 chunks of a small file, never under 2 MiB; more above about 31 GiB, to stay "
        "within 2,000 chunks)",
    )


def _counts(summary: Any) -> ImportCounts:
    return ImportCounts(
        lines=summary.lines,
        accepted=summary.accepted,
        rejected=summary.rejected,
        blank=summary.blank,
        offset=summary.bytes_done,
    )


def run_on_temporal(args: argparse.Namespace) -> int:
    """Start the backfill, follow it, print the summary; 1 if anything was not delivered."""
    try:
        from ..integrations import temporal
    except ModuleNotFoundError as exc:
        fail("import", f"{exc.name!r} is not installed: pip install 'htevents-async[temporal]'")
        return EXIT_FAILED
    from temporalio.client import Client as TemporalClient
    from temporalio.client import WorkflowFailureError
    from temporalio.service import RPCError

    from ._progress import make_progress

    if args.file == "-":
        raise UsageError("--temporal needs a file the workers can read, not stdin")
    path = os.path.abspath(args.file)
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise UsageError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    options: dict[str, Any] = {"files": [path], "allow_anonymous": args.allow_anonymous}
    if args.chunk_bytes is not None:
        if args.chunk_bytes < 1:
            raise UsageError("--chunk-bytes must be at least 1")
        options["chunk_bytes"] = args.chunk_bytes
    backfill = temporal.InputBackfill(**options)
    progress = make_progress(args.progress, size, "import")
    outcome: dict[str, Any] = {}

    async def follow() -> None:
        client = await TemporalClient.connect(
            args.temporal, namespace=args.namespace, data_converter=temporal.data_converter
        )
        workflow_id = f"htevents-import-{uuid.uuid4()}"
        handle = await client.start_workflow(
            temporal.WorkflowBackfill.run,
            backfill,
            id=workflow_id,
            task_queue=args.task_queue,
        )
        progress.write(f"{PROG} import: started workflow {workflow_id}")
        outcome["workflow_id"] = workflow_id
        result = asyncio.ensure_future(handle.result())
        while not result.done():
            await asyncio.wait({result}, timeout=_POLL)
            if not result.done():
                try:
                    summary = await handle.query(temporal.WorkflowBackfill.progress)
                except RPCError:
                    # No worker answered in time (say, during a deploy): the bar waits
                    # for the next poll; the workflow goes on.
                    continue
                progress.update(summary.delivered, _counts(summary), False)
        outcome["summary"] = result.result()

    started = time.monotonic()
    try:
        stopped = run_until_signal(follow())
    except (RuntimeError, RPCError) as exc:
        # RuntimeError: no server to connect to; RPCError: the server refused a call
        # (an unknown namespace, say), or stopped answering once the workflow ran.
        progress.close()
        if "workflow_id" in outcome:
            fail(
                "import",
                f"lost track of workflow {outcome['workflow_id']} on {args.temporal}: {exc}; "
                "it goes on running on the workers",
            )
        else:
            fail("import", f"cannot run the backfill on {args.temporal}: {exc}")
        return EXIT_FAILED
    except WorkflowFailureError as exc:
        progress.close()
        # The reason is at the end of the chain: workflow, activity, application error.
        cause: BaseException = exc
        while cause.__cause__ is not None:
            cause = cause.__cause__
        fail("import", f"the backfill failed: {cause}")
        return EXIT_FAILED
    finally:
        progress.close()
    if stopped is not None:
        print("Stopped following; the backfill workflow goes on running on the workers.")
        return EXIT_INTERRUPTED if stopped.name == "SIGINT" else EXIT_TERMINATED
    summary = outcome["summary"]
    elapsed = time.monotonic() - started
    _print(args.file, summary, elapsed)
    return EXIT_FAILED if summary.rejected or summary.failed else EXIT_OK


def _print(source: str, summary: Any, elapsed: float) -> None:
    rate = summary.delivered / elapsed if elapsed > 0 else 0.0
    rows = [
        ("lines read", f"{summary.lines:,}"),
        ("  accepted", f"{summary.accepted:,}"),
        ("  rejected", f"{summary.rejected:,}"),
        ("  blank", f"{summary.blank:,}"),
        ("delivered", f"{summary.delivered:,}"),
        ("failed", f"{summary.failed:,}"),
        ("elapsed", f"{elapsed:.2f} s  ({rate:,.0f} delivered events/s)"),
    ]
    print(f"Imported {source} through Temporal ({summary.chunks} chunks)")
    for label, value in rows:
        print(f"  {label:<12}{value}")
    for rejected in summary.rejections:
        print(f"  rejected at byte {rejected.offset:,}: {one_line(rejected.reason)}")
