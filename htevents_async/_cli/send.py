"""``htevents-async send``: send one event, given by flags or as a wire-form message."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING, Any, Final

from .._importer import MESSAGE_CLASSES, TYPE_NAMES, MissingIdentityError, message_from_wire
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
    json_object,
    quiet_client_logs,
    run_until_signal,
    target_host,
    write_key,
)

if TYPE_CHECKING:
    from .._errors import DeliveryError
    from .._messages import Message

DESCRIPTION = (
    "Send one event, given by flags or as a whole message in wire form (--json); flags "
    "override --json fields."
)
EPILOG = (
    "example: htevents-async send --type track --user-id 123 --event 'Order completed' "
    "--properties '{\"total\": 29.99}'"
)

# (option destination, wire key) for the plain-text flags.
_TEXT_FLAGS: Final = (
    ("user_id", "userId"),
    ("anonymous_id", "anonymousId"),
    ("event", "event"),
    ("name", "name"),
    ("category", "category"),
    ("group_id", "groupId"),
    ("previous_id", "previousId"),
    ("timestamp", "timestamp"),
    ("message_id", "messageId"),
)
_JSON_FLAGS: Final = ("properties", "traits", "context", "integrations")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``send``."""
    parser.add_argument("--type", choices=sorted(MESSAGE_CLASSES), help="the message type")
    parser.add_argument("--user-id", metavar="ID")
    parser.add_argument("--anonymous-id", metavar="ID")
    parser.add_argument(
        "--allow-anonymous",
        action="store_true",
        help="without --user-id or --anonymous-id, send a random anonymous id "
        "(default: refuse, as such an event creates a user nobody can match)",
    )
    parser.add_argument("--event", help="track: the event name")
    parser.add_argument("--properties", metavar="JSON", help="track, page, screen: a JSON object")
    parser.add_argument("--traits", metavar="JSON", help="identify, group: a JSON object")
    parser.add_argument("--name", help="page, screen: the name")
    parser.add_argument("--category", help="page, screen: the category")
    parser.add_argument("--group-id", metavar="ID", help="group: the group id")
    parser.add_argument("--previous-id", metavar="ID", help="alias: the id being merged away")
    parser.add_argument("--timestamp", metavar="ISO", help="when it happened (ISO-8601)")
    parser.add_argument("--context", metavar="JSON", help="a JSON object merged into context")
    parser.add_argument("--integrations", metavar="JSON", help="a JSON object")
    parser.add_argument("--message-id", metavar="ID", help="an idempotence id (default: a UUID)")
    parser.add_argument(
        "--json", metavar="JSON", help='the whole message in wire form: {"type": "track", ...}'
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="give up delivering after this long (default: %(default)s)",
    )
    add_give_up_options(parser)
    add_target_options(parser)


def _wire_from_flags(args: argparse.Namespace) -> dict[str, Any]:
    wire: dict[str, Any] = {} if args.json is None else json_object(args.json, "--json")
    # Flags override the same fields given in --json.
    if args.type is not None:
        wire["type"] = args.type
    for dest, key in _TEXT_FLAGS:
        value = getattr(args, dest)
        if value is not None:
            wire[key] = value
    for dest in _JSON_FLAGS:
        value = getattr(args, dest)
        if value is not None:
            wire[dest] = json_object(value, f"--{dest}")
    return wire


def _say(line: str) -> None:
    print(f"{PROG} send: {line}", file=sys.stderr, flush=True)


async def _send(
    message: Message, key: str, host: str, args: argparse.Namespace, outcome: list[str]
) -> str:
    """Send ``message``; returns its id and appends a failure's description to ``outcome``."""
    from .._client import Client
    from .._errors import DroppedError
    from ._watch import OutageWatch, describe_failure

    errors: list[DeliveryError | None] = []

    def record(message_id: str, error: DeliveryError | None) -> None:
        errors.append(error)

    client = Client(
        key,
        host=host,
        gzip=not args.no_gzip,
        flush_interval=0,
        max_retry_time=args.timeout,
        shutdown_timeout=args.timeout,
    )
    watch = OutageWatch(client, _say, args.max_failures, args.give_up_after)
    async with client:
        message_id = await client.enqueue(message, callback=record)
        flushing = asyncio.get_running_loop().create_task(client.flush(args.timeout))
        await watch.guard(flushing)
        # Whatever is still pending has had its time (or we gave up): drop it now.
        await client.aclose(timeout=0)
    stats = client.statistics()
    error = errors[0] if errors else None
    if watch.gave_up is not None:
        outcome.append(f"gave up: {watch.gave_up}")
    elif stats.delivered == 1:
        pass
    elif isinstance(error, DroppedError) or error is None:
        # Dropped at the deadline: the drop itself says nothing, the attempts do.
        if stats.last_error is not None:
            outcome.append(
                f"{describe_failure(stats.last_error)}; {stats.attempts} attempts "
                f"in {args.timeout:g} s"
            )
        else:
            outcome.append(str(error or "no outcome was reported before the client closed"))
    else:
        outcome.append(str(error))
    return message_id


def run(args: argparse.Namespace) -> int:
    """Send one event; exit code 0 delivered, 1 not delivered, 2 a bad message or option."""
    quiet_client_logs(args)
    check_give_up_options(args)
    wire = _wire_from_flags(args)
    if "type" not in wire:
        raise UsageError(f'--type is required (or a "type" in --json): one of {TYPE_NAMES}')
    try:
        message = message_from_wire(wire, allow_anonymous=args.allow_anonymous)
    except MissingIdentityError as exc:
        raise UsageError(
            f"{exc}; pass --user-id or --anonymous-id, or --allow-anonymous to send a "
            "random anonymous id"
        ) from None
    key = write_key(args)
    host = target_host(args)
    outcome: list[str] = []
    ids: list[str] = []

    async def main() -> None:
        ids.append(await _send(message, key, host, args, outcome))

    stopped = run_until_signal(main())
    if ids:
        print(f"message id: {ids[0]}")
    if stopped is not None:
        print(f"outcome:    {message.type} not delivered: stopped by {stopped.name}")
        return EXIT_TERMINATED if stopped.name == "SIGTERM" else EXIT_INTERRUPTED
    if outcome:
        print(f"outcome:    {message.type} not delivered: {outcome[0]}")
        return EXIT_FAILED
    from .._config import Config

    print(f"outcome:    {message.type} delivered to {Config(host=host).url}")
    return EXIT_OK
