"""``htevents-async worker``: a Temporal worker running the analytics workflows and backfills."""

from __future__ import annotations

import argparse
import os
import sys

from ._common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    UsageError,
    add_target_options,
    fail,
    quiet_client_logs,
    run_until_signal,
    target_host,
    write_key,
)

DESCRIPTION = (
    "Run a Temporal worker for the analytics workflows (WorkflowTrack, ..., WorkflowDelete) "
    "and WorkflowBackfill, recording through one client, until Ctrl+C or SIGTERM."
)
EPILOG = "Needs the temporal extra: pip install 'htevents-async[temporal]'"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``worker``."""
    parser.add_argument(
        "--temporal", required=True, metavar="HOST:PORT", help="the Temporal frontend address"
    )
    parser.add_argument("--namespace", default="default", help="namespace (default: %(default)s)")
    parser.add_argument(
        "--task-queue", default="analytics", help="task queue to poll (default: %(default)s)"
    )
    add_target_options(parser)
    parser.add_argument(
        "--regulations-url",
        metavar="URL",
        help="the regulations endpoint for WorkflowDelete (default: $HT_REGULATIONS_URL)",
    )


def run(args: argparse.Namespace) -> int:
    """Poll until a signal; exit code 1 when Temporal is unreachable or the extra missing."""
    try:
        from ..integrations import temporal
    except ModuleNotFoundError as exc:
        fail("worker", f"{exc.name!r} is not installed: pip install 'htevents-async[temporal]'")
        return EXIT_FAILED
    from temporalio.client import Client as TemporalClient
    from temporalio.worker import Worker

    key = write_key(args)
    host = target_host(args)
    regulations_url = args.regulations_url or os.environ.get("HT_REGULATIONS_URL")
    if regulations_url is not None and not regulations_url.startswith(("http://", "https://")):
        raise UsageError(f"--regulations-url must be an http(s) URL, got {regulations_url!r}")
    quiet_client_logs(args)
    failure: list[str] = []

    async def main() -> None:
        try:
            client = await TemporalClient.connect(
                args.temporal, namespace=args.namespace, data_converter=temporal.data_converter
            )
        except RuntimeError as exc:  # the SDK reports connection failures as RuntimeError
            failure.append(f"cannot connect to Temporal at {args.temporal}: {exc}")
            return
        async with temporal.Analytics(
            key,
            task_queue=args.task_queue,
            host=host,
            gzip=not args.no_gzip,
            regulations_url=regulations_url,
            # The token stays out of argv, where other users of the machine could read it.
            regulations_token=os.environ.get("HT_REGULATIONS_TOKEN") or None,
        ) as analytics:
            worker = Worker(client, task_queue=args.task_queue, **analytics.worker_options())
            print(
                f"worker polling task queue {args.task_queue!r} on {args.temporal}",
                file=sys.stderr,
                flush=True,
            )
            await worker.run()

    stopped = run_until_signal(main())
    if failure:
        fail("worker", failure[0])
        return EXIT_FAILED
    if stopped is not None:
        return EXIT_INTERRUPTED if stopped.name == "SIGINT" else EXIT_TERMINATED
    return EXIT_OK
