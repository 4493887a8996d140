"""``htevents-async collect``: a local Segment-spec collector with a live event viewer."""

from __future__ import annotations

import argparse

from ._common import EXIT_FAILED, EXIT_OK, fail, load_optional

DESCRIPTION = (
    "Run a local Segment-spec collector (POST /v1/batch) with a live event viewer at its "
    "root URL, until Ctrl+C."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``collect``."""
    parser.add_argument("--host", default="127.0.0.1", help="interface (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8787, help="port (default: %(default)s)")
    parser.add_argument(
        "--write-key", metavar="KEY", help="accept only this write key (default: any)"
    )
    parser.add_argument("--db", metavar="FILE", help="also keep messages in this SQLite file")
    parser.add_argument(
        "--max-events",
        type=_positive,
        default=100_000,
        metavar="N",
        help="messages kept in memory; older ones leave the viewer (default: %(default)s)",
    )
    parser.add_argument(
        "--max-bytes",
        type=_positive,
        default=64 * 1024 * 1024,
        metavar="N",
        help="bytes of messages kept in memory (default: %(default)s)",
    )
    parser.add_argument(
        "--keep-duplicates",
        action="store_true",
        help="store every copy of a messageId (default: drop and count duplicates)",
    )
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also accept requests whose Host header names NAME (repeatable); loopback "
        "names and the bound address are always accepted",
    )


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; exit code 1 if the port cannot be bound or Starlette is missing."""
    collector = load_optional("htevents_async._collector", "collect")
    if collector is None:
        return EXIT_FAILED
    try:
        collector.serve(
            args.host,
            args.port,
            args.write_key,
            args.db,
            max_messages=args.max_events,
            max_bytes=args.max_bytes,
            keep_duplicates=args.keep_duplicates,
            allowed_hosts=args.allow_host,
        )
    except OSError as exc:
        fail("collect", f"cannot listen on {args.host}:{args.port}: {exc}")
        return EXIT_FAILED
    return EXIT_OK
