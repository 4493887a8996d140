"""``htevents-async demo``: events of every type through a client into an embedded collector."""

from __future__ import annotations

import argparse
import asyncio
import sys

from ._common import EXIT_FAILED, UsageError, load_optional

DESCRIPTION = (
    "Start a collector on a free local port, send events of every type through "
    "htevents_async.Client, and print what the collector received."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``demo``."""
    parser.add_argument(
        "--events", type=int, default=5000, metavar="N", help="events to send (default: 5000)"
    )


def run(args: argparse.Namespace) -> int:
    """Run the demo; exit code 1 if the collector's dependencies are missing."""
    if args.events < 1:
        raise UsageError("--events must be at least 1")
    demo = load_optional("htevents_async._demo", "demo")
    if demo is None:
        return EXIT_FAILED
    result: int = asyncio.run(demo.run_demo(args.events, sys.stdout))
    return result
