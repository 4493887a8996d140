"""The ``htevents-async`` command line: ``collect``, ``demo``, ``send`` and ``import``.

::

    htevents-async demo
    htevents-async collect --port 8787
    htevents-async send --type track --user-id 123 --event "Order completed" \\
        --properties '{"total": 29.99}'
    htevents-async import backfill.ndjson --write-key "$HT_WRITE_KEY"

Arguments are parsed with the standard library alone. The local collector
(Starlette and uvicorn) and the progress bar (tqdm) are imported only by the
subcommands that use them, so ``send`` and ``import`` work on a bare install.

Exit codes: 0 success; 1 events rejected or not delivered, or a missing
optional dependency; 2 bad arguments or an invalid message; 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import datetime as dt
import importlib
import json
import logging
import os
import signal
import stat
import sys
import time
from collections.abc import AsyncIterator, Coroutine, Mapping, Sequence
from types import ModuleType
from typing import IO, Any, Final, Protocol

import anyio.to_thread
import attrs

from ._batch import Batch
from ._client import Client
from ._config import DEFAULT_HOST
from ._errors import DeliveryError, HteventsError, MessageError, MessageTypeError, QueueFullError
from ._messages import Alias, Group, Identify, Message, Page, Screen, Track
from ._version import __version__

__all__ = ["main", "message_from_wire"]

PROG: Final = "htevents-async"
EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130

INSTALL_HINT: Final = "pip install 'htevents-async[cli]'"

# -- wire form to message objects ---------------------------------------------------

_MESSAGE_CLASSES: Final[dict[str, type[Message]]] = {
    cls.type: cls for cls in (Identify, Track, Page, Screen, Group, Alias)
}
_TYPE_NAMES: Final = ", ".join(sorted(_MESSAGE_CLASSES))

# Written by the sender and the collector rather than by whoever recorded the
# event; exports of received events carry them, and the client sets its own.
_TRANSPORT_KEYS: Final = frozenset({"sentAt", "receivedAt", "writeKey"})


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


# Derived from the classes so that a field added there is accepted here too.
_WIRE_FIELDS: Final[dict[str, dict[str, str]]] = {
    kind: {_camel(field.name): field.name for field in attrs.fields(cls)}
    for kind, cls in _MESSAGE_CLASSES.items()
}


def _parse_timestamp(value: object, owner: str) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        # Python 3.10's fromisoformat() does not read the "Z" every Segment payload uses.
        if text[-1:] in ("Z", "z"):
            text = text[:-1] + "+00:00"
        try:
            return dt.datetime.fromisoformat(text)
        except ValueError:
            pass
    raise MessageTypeError(
        f"{owner}.timestamp must be an ISO-8601 date-time string such as "
        f"'2024-05-01T12:00:00Z', got {value!r}"
    )


def message_from_wire(data: Mapping[str, Any]) -> Message:
    """Build the message object for one message in Segment wire form.

    ``data`` uses the wire's camelCase keys: ``type``, ``userId``,
    ``anonymousId``, ``event``, ``properties``, ``traits``, ``name``,
    ``category``, ``groupId``, ``previousId``, ``timestamp`` (an ISO-8601
    string), ``context``, ``integrations`` and ``messageId``. ``sentAt``,
    ``receivedAt`` and ``writeKey`` are ignored, since the client and the
    collector write their own.

    Raises :class:`~htevents_async.MessageError` naming the field for a missing
    or unknown ``type``, a field the type does not have, or a value the
    message class refuses (a ``track`` without ``event``, a ``group`` without
    ``groupId``…), and :class:`~htevents_async.MessageTypeError` when ``data``
    is not an object or a value has the wrong type.

    >>> message_from_wire({"type": "track", "userId": "123", "event": "Order completed"})
    Track(user_id='123', anonymous_id=None, context=None, timestamp=None, integrations=None,\
 message_id=None, event='Order completed', properties=None)
    """
    if not isinstance(data, Mapping):
        raise MessageTypeError(f"a message must be a JSON object, got {type(data).__name__}")
    kind = data.get("type")
    cls = _MESSAGE_CLASSES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        if kind is None:
            raise MessageError(f"type is required: one of {_TYPE_NAMES}")
        raise MessageError(f"type must be one of {_TYPE_NAMES}, got {kind!r}")
    fields = _WIRE_FIELDS[cls.type]
    unknown = [key for key in data if key not in fields and key != "type"]
    unknown = [key for key in unknown if key not in _TRANSPORT_KEYS]
    if unknown:
        names = ", ".join(repr(key) for key in unknown)
        raise MessageError(
            f"{cls.__name__} has no field {names}; {cls.type} messages take "
            f"{', '.join(sorted(fields))}"
        )
    # Every field is passed, missing ones as None, so that the class's own
    # validators name what is missing instead of a generic signature TypeError.
    kwargs = {name: data.get(key) for key, name in fields.items()}
    kwargs["timestamp"] = _parse_timestamp(kwargs["timestamp"], cls.__name__)
    return cls(**kwargs)


# -- shared helpers ------------------------------------------------------------------


class _UsageError(Exception):
    """Bad input from the command line: reported on stderr with exit code 2."""


def _fail(command: str, message: object) -> None:
    print(f"{PROG} {command}: error: {message}", file=sys.stderr)


def _load_optional(module: str, command: str) -> ModuleType | None:
    """Import a module that needs an optional extra, or explain how to install it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = exc.name or "a dependency"
        if missing.partition(".")[0] == "htevents_async":
            raise  # a broken install of this package, not a missing extra
        _fail(
            command,
            f"this command needs the local collector's dependencies (Starlette, uvicorn); "
            f"{missing!r} is not installed. Install them with: {INSTALL_HINT}",
        )
        return None


def _json_object(text: str, option: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise _UsageError(f"{option} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise _UsageError(f"{option} must be a JSON object, got {type(value).__name__}")
    return value


def _write_key(args: argparse.Namespace) -> str:
    key = args.write_key or os.environ.get("HT_WRITE_KEY")
    if not key:
        raise _UsageError("no write key: pass --write-key or set HT_WRITE_KEY")
    return str(key)


def _host(args: argparse.Namespace) -> str:
    return str(args.host or os.environ.get("HT_HOST") or DEFAULT_HOST)


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


# -- collect ---------------------------------------------------------------------------


def _cmd_collect(args: argparse.Namespace) -> int:
    collector = _load_optional("htevents_async._collector", "collect")
    if collector is None:
        return EXIT_FAILED
    try:
        collector.serve(args.host, args.port, args.write_key, args.db)
    except OSError as exc:
        _fail("collect", f"cannot listen on {args.host}:{args.port}: {exc}")
        return EXIT_FAILED
    return EXIT_OK


# -- demo --------------------------------------------------------------------------------


def _cmd_demo(args: argparse.Namespace) -> int:
    if args.events < 1:
        raise _UsageError("--events must be at least 1")
    demo = _load_optional("htevents_async._demo", "demo")
    if demo is None:
        return EXIT_FAILED
    result: int = asyncio.run(demo.run_demo(args.events, sys.stdout))
    return result


# -- send --------------------------------------------------------------------------------

# (option destination, wire key) for the plain-text flags of ``send``.
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


def _wire_from_flags(args: argparse.Namespace) -> dict[str, Any]:
    wire: dict[str, Any] = {} if args.json is None else _json_object(args.json, "--json")
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
            wire[dest] = _json_object(value, f"--{dest}")
    return wire


async def _send(
    message: Message, write_key: str, host: str, timeout: float, gzip: bool
) -> tuple[str, DeliveryError | None]:
    outcomes: list[DeliveryError | None] = []

    def record(message_id: str, error: DeliveryError | None) -> None:
        outcomes.append(error)

    client = Client(
        write_key,
        host=host,
        gzip=gzip,
        flush_interval=0,
        max_retry_time=timeout,
        shutdown_timeout=timeout,
    )
    async with client:
        message_id = await client.enqueue(message, callback=record)
    if outcomes:
        return message_id, outcomes[0]
    # The callback runs for every outcome, shutdown included; this is a safety net.
    if client.statistics().delivered == 1:
        return message_id, None
    return message_id, DeliveryError("no outcome was reported before the client closed")


def _quiet_client_logs(args: argparse.Namespace) -> None:
    # send and import report every outcome themselves; the client's own log
    # lines would repeat them (and break the progress bar) unless asked for.
    if not args.verbose:
        logging.getLogger("htevents_async").setLevel(logging.CRITICAL)


def _cmd_send(args: argparse.Namespace) -> int:
    _quiet_client_logs(args)
    wire = _wire_from_flags(args)
    if "type" not in wire:
        raise _UsageError(f'--type is required (or a "type" in --json): one of {_TYPE_NAMES}')
    message = message_from_wire(wire)
    write_key = _write_key(args)
    host = _host(args)
    message_id, error = asyncio.run(_send(message, write_key, host, args.timeout, not args.no_gzip))
    print(f"message id: {message_id}")
    if error is not None:
        print(f"outcome:    {message.type} not delivered: {error}")
        return EXIT_FAILED
    print(f"outcome:    {message.type} delivered to {host.rstrip('/')}/v1/batch")
    return EXIT_OK


# -- import ------------------------------------------------------------------------------

_READ_CHUNK: Final = 256 * 1024
_PROGRESS_EVERY: Final = 1000  # lines between progress updates: a bar update costs µs


async def _read_chunks(stream: IO[bytes]) -> AsyncIterator[bytes]:
    """Yield what ``stream`` holds, chunk by chunk, without blocking the event loop.

    Pipes and terminals are read by the loop itself: a slow writer never
    stalls delivery, and Ctrl+C is not stuck behind a blocked read. Regular
    files cannot be polled, and never block for long, so a worker thread
    reads them.
    """
    loop = asyncio.get_running_loop()
    fd = stream.fileno()
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        was_blocking = os.get_blocking(fd)
        reader = asyncio.StreamReader(limit=4 * _READ_CHUNK)
        try:
            transport, _ = await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader), stream
            )
        except (OSError, ValueError):  # e.g. /dev/null, which cannot be polled either
            pass
        else:
            try:
                while chunk := await reader.read(_READ_CHUNK):
                    yield chunk
            finally:
                transport.close()
                # The flag belongs to the file description, shared with the parent shell.
                os.set_blocking(fd, was_blocking)
            return
    read = getattr(stream, "read1", stream.read)
    while chunk := await anyio.to_thread.run_sync(read, _READ_CHUNK):
        yield chunk


async def _read_lines(stream: IO[bytes]) -> AsyncIterator[bytes]:
    """Yield the lines of ``stream``, newline kept; memory is a chunk plus the longest line."""
    pending = b""
    async for chunk in _read_chunks(stream):
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        for line in lines:
            yield line + b"\n"
    if pending:
        yield pending


class _Progress(Protocol):
    def advance(self, nbytes: int, events: int) -> None: ...

    def close(self) -> None: ...


class _NoProgress:
    def advance(self, nbytes: int, events: int) -> None:
        pass

    def close(self) -> None:
        pass


class _TqdmProgress:
    """A tqdm bar: over bytes when the input size is known (for the ETA), else over events."""

    def __init__(self, tqdm: Any, total_bytes: int | None, label: str) -> None:
        self._by_bytes = total_bytes is not None
        self._events = 0
        self._started = time.monotonic()
        if self._by_bytes:
            self._bar = tqdm(
                total=total_bytes,
                desc=label,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                dynamic_ncols=True,
                file=sys.stderr,
            )
        else:
            self._bar = tqdm(
                desc=label, unit=" events", unit_scale=True, dynamic_ncols=True, file=sys.stderr
            )

    def advance(self, nbytes: int, events: int) -> None:
        self._events += events
        if self._by_bytes:
            rate = self._events / max(time.monotonic() - self._started, 1e-9)
            self._bar.set_postfix_str(f"{self._events:,} events, {rate:,.0f} events/s", False)
            self._bar.update(nbytes)
        else:
            self._bar.update(events)

    def close(self) -> None:
        self._bar.close()


class _PlainProgress:
    """A one-line counter on stderr, for when tqdm is not installed."""

    def __init__(self, total_bytes: int | None) -> None:
        self._total = total_bytes
        self._bytes = 0
        self._events = 0
        self._started = time.monotonic()
        self._shown = 0.0

    def advance(self, nbytes: int, events: int) -> None:
        self._bytes += nbytes
        self._events += events
        now = time.monotonic()
        if now - self._shown >= 0.5:
            self._shown = now
            self._show(now)

    def _show(self, now: float) -> None:
        elapsed = max(now - self._started, 1e-9)
        line = f"{self._events:,} events, {self._events / elapsed:,.0f} events/s"
        if self._total:
            done = self._bytes / self._total
            eta = elapsed * (1 - done) / done if done else 0.0
            line = f"{done:6.1%}  {line}, ETA {eta:.0f} s"
        sys.stderr.write(f"\r{line}   ")
        sys.stderr.flush()

    def close(self) -> None:
        self._show(time.monotonic())
        sys.stderr.write("\n")


def _progress(mode: bool | None, total_bytes: int | None, label: str) -> _Progress:
    show = sys.stderr.isatty() if mode is None else mode
    if not show:
        return _NoProgress()
    try:
        tqdm = importlib.import_module("tqdm")
    except ModuleNotFoundError:
        return _PlainProgress(total_bytes)
    return _TqdmProgress(tqdm.tqdm, total_bytes, label)


@attrs.define
class _ImportResult:
    lines: int = 0
    read: int = 0
    accepted: int = 0
    rejected: int = 0
    delivered: int = 0
    failed: int = 0
    elapsed: float = 0.0
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
            raise _UsageError(f"cannot write the report {path}: {exc.strerror or exc}") from None

    def add(self, line_number: int, reason: str) -> None:
        self.count += 1
        self._file.write(f"line {line_number}: {_one_line(reason)}\n")

    def close(self) -> None:
        info = os.fstat(self._file.fileno())
        self._file.close()
        # Only a regular file is ours to remove: --report may name /dev/null or a FIFO.
        if not self.count and stat.S_ISREG(info.st_mode):
            with contextlib.suppress(OSError):
                os.remove(self.path)


# Distinct failure reasons kept for the summary; a down collector makes them all alike.
_MAX_FAILURE_REASONS: Final = 5
_BOM: Final = b"\xef\xbb\xbf"


async def _import(
    stream: IO[bytes],
    client: Client,
    report: _RejectReport,
    progress: _Progress,
    result: _ImportResult,
    flush_timeout: float,
) -> None:
    started = time.monotonic()
    pending_bytes = 0
    pending_events = 0
    try:
        async with client:
            async for raw in _read_lines(stream):
                result.lines += 1
                pending_bytes += len(raw)
                if result.lines % _PROGRESS_EVERY == 0:
                    progress.advance(pending_bytes, pending_events)
                    pending_bytes = pending_events = 0
                text = raw.strip()
                if result.lines == 1:
                    text = text.removeprefix(_BOM)  # files saved by some Windows editors
                if not text:
                    continue
                result.read += 1
                try:
                    data = json.loads(text)
                except ValueError as exc:  # JSONDecodeError, or UnicodeDecodeError
                    result.rejected += 1
                    report.add(result.lines, f"invalid JSON: {exc}")
                    continue
                try:
                    await client.enqueue(message_from_wire(data))
                except (MessageError, TypeError) as exc:
                    result.rejected += 1
                    report.add(result.lines, str(exc))
                    continue
                except QueueFullError as exc:
                    result.failed += 1
                    result.failures[_one_line(exc)] += 1
                    continue
                result.accepted += 1
                pending_events += 1
            progress.advance(pending_bytes, pending_events)
            await client.flush(flush_timeout)
    finally:
        # Also on Ctrl+C, so that the summary says what got through.
        stats = client.statistics()
        result.delivered = stats.delivered
        result.failed += stats.failed + stats.dropped_total
        for reason, count in stats.dropped.items():
            result.failures[f"dropped ({reason})"] += count
        result.elapsed = time.monotonic() - started


# Python 3.11's asyncio.run cancels the main task on Ctrl+C; elsewhere (and on
# Windows, which has no loop signal handlers) asyncio.run is used as it is.
_RUN_CANCELS_ON_INTERRUPT: bool = sys.version_info >= (3, 11) or sys.platform == "win32"


def _run_cancelling_on_interrupt(main: Coroutine[Any, Any, None]) -> None:
    """``asyncio.run(main)``, where Ctrl+C cancels ``main`` and then raises
    ``KeyboardInterrupt``, as Python 3.11+ does by itself.

    Python 3.10 raises the interrupt wherever the loop happens to be and then
    cancels every task at once, so ``async with client`` could not finish the
    batches already on the wire and the summary undercounted them.
    """
    if _RUN_CANCELS_ON_INTERRUPT:
        asyncio.run(main)
        return

    async def runner() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        interrupted = False

        def interrupt() -> None:
            nonlocal interrupted
            interrupted = True
            task.cancel()

        loop.add_signal_handler(signal.SIGINT, interrupt)
        try:
            await main
        except asyncio.CancelledError:
            if interrupted:
                raise KeyboardInterrupt from None
            raise
        finally:
            loop.remove_signal_handler(signal.SIGINT)

    asyncio.run(runner())


def _input_size(stream: IO[bytes]) -> int | None:
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def _cmd_import(args: argparse.Namespace) -> int:
    _quiet_client_logs(args)
    write_key = _write_key(args)
    host = _host(args)
    if args.batch_size < 1 or args.concurrency < 1:
        raise _UsageError("--batch-size and --concurrency must be at least 1")
    source: str = args.file
    from_stdin = source == "-"
    result = _ImportResult()

    def on_failure(batch: Batch, error: DeliveryError) -> None:
        reason = _one_line(error)
        if reason in result.failures or len(result.failures) < _MAX_FAILURE_REASONS:
            result.failures[reason] += len(batch)

    # Built first, so that a bad option value (--host without http://) fails before any I/O.
    client = Client(
        write_key,
        host=host,
        gzip=not args.no_gzip,
        max_batch_size=args.batch_size,
        max_concurrent_requests=args.concurrency,
        max_queue_size=max(10_000, 4 * args.batch_size),
        # A backfill must not lose events to a full queue: reading waits for room instead.
        overflow="wait",
        enqueue_timeout=args.timeout,
        on_failure=on_failure,
    )
    try:
        stream: IO[bytes] = (
            open(sys.stdin.fileno(), "rb", closefd=False)  # noqa: SIM115
            if from_stdin
            else open(source, "rb")  # noqa: SIM115
        )
    except OSError as exc:
        raise _UsageError(f"cannot read {source}: {exc.strerror or exc}") from None
    with stream:
        report = _RejectReport(
            args.report or ("stdin.rejected.txt" if from_stdin else f"{source}.rejected.txt")
        )
        progress = _progress(args.progress, _input_size(stream), "import")
        interrupted = False
        try:
            _run_cancelling_on_interrupt(
                _import(stream, client, report, progress, result, args.timeout)
            )
        except KeyboardInterrupt:
            interrupted = True
        finally:
            progress.close()
            report.close()
    _print_import_summary("stdin" if from_stdin else source, host, result, report)
    if interrupted:
        print(f"Interrupted after line {result.lines:,}.")
        return EXIT_INTERRUPTED
    return EXIT_FAILED if result.rejected or result.failed else EXIT_OK


def _print_import_summary(
    source: str, host: str, result: _ImportResult, report: _RejectReport
) -> None:
    rate = result.delivered / result.elapsed if result.elapsed > 0 else 0.0
    rows = [
        ("lines read", f"{result.read:,}", ""),
        ("accepted", f"{result.accepted:,}", ""),
        ("rejected", f"{result.rejected:,}", f"  listed in {report.path}" if report.count else ""),
        ("delivered", f"{result.delivered:,}", ""),
        ("failed", f"{result.failed:,}", ""),
        ("elapsed", f"{result.elapsed:.2f} s", f"  ({rate:,.0f} events/s)"),
    ]
    width = max(len(value) for _, value, _ in rows)
    print(f"Imported {source} into {host.rstrip('/')}/v1/batch")
    for label, value, note in rows:
        print(f"  {label:<12}{value:>{width}}{note}")
    for reason, count in result.failures.most_common():
        print(f"  {count:,} events not delivered: {reason}")


# -- the parser ---------------------------------------------------------------------------


def _add_target_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--write-key", metavar="KEY", help="the source's write key (default: $HT_WRITE_KEY)"
    )
    parser.add_argument(
        "--host",
        metavar="URL",
        help=f"collector base URL (default: $HT_HOST, else {DEFAULT_HOST})",
    )
    parser.add_argument("--no-gzip", action="store_true", help="send request bodies uncompressed")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``htevents-async`` and its subcommands."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Record customer events and deliver them to a Segment-spec collector.",
        epilog="Start with `htevents-async demo`: no account and no network needed.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log the client's debug messages"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    collect = commands.add_parser(
        "collect",
        help="run a local collector with a live event viewer",
        description="Run a local Segment-spec collector (POST /v1/batch) with a live event "
        "viewer at its root URL, until Ctrl+C.",
    )
    collect.add_argument("--host", default="127.0.0.1", help="interface (default: %(default)s)")
    collect.add_argument("--port", type=int, default=8787, help="port (default: %(default)s)")
    collect.add_argument(
        "--write-key", metavar="KEY", help="accept only this write key (default: any)"
    )
    collect.add_argument("--db", metavar="FILE", help="also keep messages in this SQLite file")
    collect.set_defaults(handler=_cmd_collect)

    demo = commands.add_parser(
        "demo",
        help="send events of every type to an embedded collector and show what arrived",
        description="Start a collector on a free local port, send events of every type "
        "through htevents_async.Client, and print what the collector received.",
    )
    demo.add_argument(
        "--events", type=int, default=5000, metavar="N", help="events to send (default: 5000)"
    )
    demo.set_defaults(handler=_cmd_demo)

    send = commands.add_parser(
        "send",
        help="send one event",
        description="Send one event, given by flags or as a whole message in wire form "
        "(--json); flags override --json fields.",
        epilog="example: htevents-async send --type track --user-id 123 "
        "--event 'Order completed' --properties '{\"total\": 29.99}'",
    )
    send.add_argument("--type", choices=sorted(_MESSAGE_CLASSES), help="the message type")
    send.add_argument("--user-id", metavar="ID")
    send.add_argument("--anonymous-id", metavar="ID")
    send.add_argument("--event", help="track: the event name")
    send.add_argument("--properties", metavar="JSON", help="track, page, screen: a JSON object")
    send.add_argument("--traits", metavar="JSON", help="identify, group: a JSON object")
    send.add_argument("--name", help="page, screen: the name")
    send.add_argument("--category", help="page, screen: the category")
    send.add_argument("--group-id", metavar="ID", help="group: the group id")
    send.add_argument("--previous-id", metavar="ID", help="alias: the id being merged away")
    send.add_argument("--timestamp", metavar="ISO", help="when it happened (ISO-8601)")
    send.add_argument("--context", metavar="JSON", help="a JSON object merged into context")
    send.add_argument("--integrations", metavar="JSON", help="a JSON object")
    send.add_argument("--message-id", metavar="ID", help="an idempotence id (default: a UUID)")
    send.add_argument(
        "--json", metavar="JSON", help='the whole message in wire form: {"type": "track", ...}'
    )
    send.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="give up delivering after this long (default: %(default)s)",
    )
    _add_target_options(send)
    send.set_defaults(handler=_cmd_send)

    importer = commands.add_parser(
        "import",
        help="stream an NDJSON file of messages (a backfill) to the collector",
        description="Send every line of an NDJSON file (or stdin) of messages in Segment "
        "wire form, at full speed and in bounded memory. Lines that are not valid JSON or "
        "not valid messages are listed in a report file; the exit code is 1 if any line "
        "was rejected or any event was not delivered.",
    )
    importer.add_argument("file", metavar="FILE", help="the NDJSON file, or - for stdin")
    importer.add_argument(
        "--report",
        metavar="PATH",
        help="where to list rejected lines (default: FILE.rejected.txt)",
    )
    importer.add_argument(
        "--batch-size", type=int, default=100, metavar="N", help="events per request (100)"
    )
    importer.add_argument(
        "--concurrency", type=int, default=4, metavar="N", help="requests in flight (4)"
    )
    importer.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="longest wait for room in the queue, and for delivery at the end (600)",
    )
    progress = importer.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="show a progress bar (default: when stderr is a terminal)",
    )
    progress.add_argument("--no-progress", dest="progress", action="store_false")
    _add_target_options(importer)
    importer.set_defaults(handler=_cmd_import)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verbose:
        logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
        logging.getLogger("htevents_async").setLevel(logging.DEBUG)
    try:
        code: int = args.handler(args)
    except (_UsageError, MessageError) as exc:
        _fail(args.command, exc)
        return EXIT_USAGE
    except HteventsError as exc:  # a bad option value, such as --host without a scheme
        _fail(args.command, exc)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"\n{PROG} {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return code
