"""Import messages in Segment wire form from NDJSON: read, convert, reject, hand to a sink.

No argument parsing and no printing: the ``import`` command and any other
caller (a backfill job that imports one byte range of a file per worker) share
this pipeline and decide themselves how to show what it counted.

::

    counts = await import_ndjson(stream, client)          # a Client is a sink
    counts = await import_ndjson(stream, my_async_callable, start=0, end=1 << 20)

Each line ends in exactly one bucket, so ``lines == accepted + rejected + blank``
once it returns, and also when it is cancelled part-way: the line being handed
to the sink when the cancellation arrives is not counted, and ``offset`` stops
before it, so a resumed import starts with that line.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import stat
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import IO, Any, Final, Protocol, TypeAlias

import anyio.to_thread
import attrs

from ._errors import MessageError, MessageTypeError, QueueFullError
from ._messages import Alias, Group, Identify, Message, Page, Screen, Track

__all__ = [
    "ImportCounts",
    "MissingIdentityError",
    "Rejection",
    "Sink",
    "import_ndjson",
    "message_from_wire",
]

# -- wire form to message objects ---------------------------------------------------

MESSAGE_CLASSES: Final[dict[str, type[Message]]] = {
    cls.type: cls for cls in (Identify, Track, Page, Screen, Group, Alias)
}
TYPE_NAMES: Final = ", ".join(sorted(MESSAGE_CLASSES))

# Written by the sender and the collector rather than by whoever recorded the
# event; exports of received events carry them, and the client sets its own.
_TRANSPORT_KEYS: Final = frozenset({"sentAt", "receivedAt", "writeKey"})


class MissingIdentityError(MessageError):
    """A message with neither ``userId`` nor ``anonymousId`` (``allow_anonymous=False``)."""


def _make_loads() -> Callable[[bytes], Any]:
    """orjson's parser when installed (the ``orjson`` and ``cli`` extras): a tenth of the
    stdlib's time per line. A line with a run of 19 digits or more may hold an integer
    past 64 bits, which orjson reads as a float: the stdlib keeps it exact. What orjson
    refuses (NaN literals) also goes to the stdlib, which words the error of a line that
    is not JSON."""
    try:
        import orjson
    except ImportError:
        return json.loads
    fast = orjson.loads
    long_digits = re.compile(rb"[0-9]{19}").search

    def loads(text: bytes) -> Any:
        if long_digits(text) is not None:
            return json.loads(text)
        try:
            return fast(text)
        except ValueError:
            return json.loads(text)

    return loads


_loads: Final = _make_loads()


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


# Derived from the classes so that a field added there is accepted here too.
_WIRE_FIELDS: Final[dict[str, dict[str, str]]] = {
    kind: {_camel(field.name): field.name for field in attrs.fields(cls)}
    for kind, cls in MESSAGE_CLASSES.items()
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


def message_from_wire(data: Mapping[str, Any], *, allow_anonymous: bool = True) -> Message:
    """Build the message object for one message in Segment wire form.

    ``data`` uses the wire's camelCase keys: ``type``, ``userId``,
    ``anonymousId``, ``event``, ``properties``, ``traits``, ``name``,
    ``category``, ``groupId``, ``previousId``, ``timestamp`` (an ISO-8601
    string), ``context``, ``integrations`` and ``messageId``. ``sentAt``,
    ``receivedAt`` and ``writeKey`` are ignored, since the client and the
    collector write their own.

    With ``allow_anonymous=False``, a message with neither ``userId`` nor
    ``anonymousId`` is refused instead of getting a random ``anonymousId``:
    in a backfill, a random id makes a user nobody can ever match.

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
    cls = MESSAGE_CLASSES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        if kind is None:
            raise MessageError(f"type is required: one of {TYPE_NAMES}")
        raise MessageError(f"type must be one of {TYPE_NAMES}, got {kind!r}")
    fields = _WIRE_FIELDS[cls.type]
    unknown = [key for key in data if key not in fields and key != "type"]
    unknown = [key for key in unknown if key not in _TRANSPORT_KEYS]
    if unknown:
        names = ", ".join(repr(key) for key in unknown)
        raise MessageError(
            f"{cls.__name__} has no field {names}; {cls.type} messages take "
            f"{', '.join(sorted(fields))}"
        )
    if (
        not allow_anonymous
        and cls is not Alias  # alias requires its userId itself
        and data.get("userId") is None
        and data.get("anonymousId") is None
    ):
        raise MissingIdentityError(
            f"{cls.__name__} has neither userId nor anonymousId; a random anonymousId "
            "would create a user nobody can match"
        )
    # Every field is passed, missing ones as None, so that the class's own
    # validators name what is missing instead of a generic signature TypeError.
    kwargs = {name: data.get(key) for key, name in fields.items()}
    kwargs["timestamp"] = _parse_timestamp(kwargs["timestamp"], cls.__name__)
    return cls(**kwargs)


# -- reading lines ------------------------------------------------------------------

_READ_CHUNK: Final = 256 * 1024
_BOM: Final = b"\xef\xbb\xbf"


async def _read_chunks(stream: IO[bytes]) -> AsyncIterator[bytes]:
    """Yield what ``stream`` holds from its current position, without blocking the loop.

    Pipes and terminals are read by the loop itself: a slow writer never
    stalls delivery, and a cancellation is not stuck behind a blocked read.
    Regular files cannot be polled, and never block for long, so a worker
    thread reads them.
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


async def _seek_line_start(stream: IO[bytes], start: int) -> int:
    """Position ``stream`` at the first line that starts at or after byte ``start``."""
    if start == 0:
        await anyio.to_thread.run_sync(stream.seek, 0)
        return 0
    # A line belongs to the range it starts in: unless byte start-1 ends a line,
    # the line running through ``start`` is the previous range's.
    await anyio.to_thread.run_sync(stream.seek, start - 1)
    skipped = await anyio.to_thread.run_sync(stream.readline)
    return start - 1 + len(skipped)


async def _read_lines(
    stream: IO[bytes], start: int, end: int | None
) -> AsyncIterator[tuple[int, bytes]]:
    """Yield ``(offset, line)`` for each line starting in ``[start, end)``, newline kept.

    Memory is a chunk plus the longest line.
    """
    if start or end is not None:
        if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
            raise ValueError("start and end need a regular file, not a pipe or a terminal")
        offset = await _seek_line_start(stream, start)
    else:
        offset = 0
    pending = b""
    async for chunk in _read_chunks(stream):
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        for line in lines:
            if end is not None and offset >= end:
                return
            yield offset, line + b"\n"
            offset += len(line) + 1
    if pending and (end is None or offset < end):
        yield offset, pending


# -- the pipeline -------------------------------------------------------------------


class _Enqueues(Protocol):
    def enqueue(self, message: Message, /) -> Awaitable[object]: ...


#: Where accepted messages go: an async callable, or anything with an async
#: ``enqueue(message)`` such as :class:`~htevents_async.Client`.
Sink: TypeAlias = "Callable[[Message], Awaitable[object]] | _Enqueues"


@attrs.frozen
class Rejection:
    """A line that was not accepted, and why."""

    line: int
    """Its number, counting from 1 at the first line read (the file's own line number
    when reading starts at byte 0)."""
    offset: int
    """The byte offset where it starts in the file."""
    reason: str
    """Why: invalid JSON, an invalid message, or the sink refused it (queue full)."""


@attrs.define
class ImportCounts:
    """What an import has counted so far; every line read is in one bucket."""

    lines: int = 0
    """Lines read, blank ones included."""
    accepted: int = 0
    """Lines the sink took."""
    rejected: int = 0
    """Lines that were not valid JSON, not valid messages, or that the sink refused."""
    blank: int = 0
    """Empty or whitespace-only lines, skipped."""
    offset: int = 0
    """Byte offset just past the last line counted: where a resumed import starts."""


async def import_ndjson(
    stream: IO[bytes],
    sink: Sink,
    *,
    start: int = 0,
    end: int | None = None,
    allow_anonymous: bool = False,
    on_reject: Callable[[Rejection], object] | None = None,
    counts: ImportCounts | None = None,
) -> ImportCounts:
    """Read NDJSON messages in Segment wire form from ``stream`` and hand each to ``sink``.

    ``start`` and ``end`` select the lines that *start* in that byte range of a
    regular file, so ranges cut anywhere split a file into disjoint sets of
    whole lines. ``on_reject`` is called for each line not accepted. Pass
    ``counts`` to watch progress from another task (it is updated in place) and
    to keep the counts when the import is cancelled. A sink that raises
    :class:`~htevents_async.MessageError`, ``TypeError`` (a value it cannot
    encode) or :class:`~htevents_async.QueueFullError` rejects that line only;
    anything else propagates.
    """
    send: Callable[[Message], Awaitable[object]] = (
        sink.enqueue if hasattr(sink, "enqueue") else sink
    )
    counts = ImportCounts(offset=start) if counts is None else counts

    def reject(offset: int, reason: str) -> None:
        counts.rejected += 1
        if on_reject is not None:
            on_reject(Rejection(counts.lines, offset, reason))

    async for offset, raw in _read_lines(stream, start, end):
        text = raw.strip()
        if offset == 0:
            text = text.removeprefix(_BOM)  # files saved by some Windows editors
        if not text:
            counts.lines += 1
            counts.blank += 1
            counts.offset = offset + len(raw)
            continue
        try:
            data = _loads(text)
        except ValueError as exc:  # JSONDecodeError, or UnicodeDecodeError
            counts.lines += 1
            reject(offset, f"invalid JSON: {exc}")
            counts.offset = offset + len(raw)
            continue
        try:
            message = message_from_wire(data, allow_anonymous=allow_anonymous)
        except MessageError as exc:
            counts.lines += 1
            reject(offset, str(exc))
            counts.offset = offset + len(raw)
            continue
        try:
            await send(message)
        except (MessageError, TypeError) as exc:
            counts.lines += 1
            reject(offset, str(exc))
        except QueueFullError as exc:
            counts.lines += 1
            reject(offset, f"not accepted: {exc}")
        else:
            counts.lines += 1
            counts.accepted += 1
        counts.offset = offset + len(raw)
    return counts
