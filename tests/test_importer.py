"""The import pipeline on its own: sinks, exact counts, byte ranges, and resuming after a stop."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import os
from pathlib import Path
from typing import Any

import pytest
from support import FAST, WRITE_KEY

import htevents_async
from htevents_async._collector import LocalCollector
from htevents_async._importer import ImportCounts, Rejection, import_ndjson, message_from_wire


def write_lines(path: Path, lines: list[bytes]) -> None:
    """Write ``lines``, each followed by a newline."""
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def track(number: int) -> bytes:
    """A valid track line whose message id is its number."""
    return json.dumps(
        {"type": "track", "userId": "u", "event": "E", "messageId": str(number)}
    ).encode()


class ListSink:
    """An async callable sink that keeps the message ids it is given."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    async def __call__(self, message: htevents_async.Message) -> None:
        assert message.message_id is not None
        self.ids.append(message.message_id)


async def test_every_line_is_counted_once(tmp_path: Path) -> None:
    """Lines read = accepted + rejected + blank, and each rejection names its line and offset."""
    lines = [track(1), b"", b"{oops", b"   ", track(5), b'{"type": "track", "event": "E"}']
    source = tmp_path / "mixed.ndjson"
    write_lines(source, lines)
    rejections: list[Rejection] = []

    with source.open("rb") as stream:
        counts = await import_ndjson(stream, ListSink(), on_reject=rejections.append)

    assert counts == ImportCounts(
        lines=6, accepted=2, rejected=2, blank=2, offset=source.stat().st_size
    )
    starts = [sum(len(line) + 1 for line in lines[:index]) for index in range(len(lines))]
    assert [(r.line, r.offset) for r in rejections] == [(3, starts[2]), (6, starts[5])]
    assert "invalid JSON" in rejections[0].reason
    assert "neither userId nor anonymousId" in rejections[1].reason


async def test_a_client_is_a_sink(tmp_path: Path, collector: LocalCollector) -> None:
    """A :class:`~htevents_async.Client` takes the messages through its ``enqueue``."""
    source = tmp_path / "client.ndjson"
    write_lines(source, [track(n) for n in range(50)])

    async with htevents_async.Client(WRITE_KEY, host=collector.url, **FAST) as client:
        with source.open("rb") as stream:
            counts = await import_ndjson(stream, client)
        assert await client.flush() == 0

    assert counts.accepted == 50
    assert sorted(int(m["messageId"]) for m in collector.messages()) == list(range(50))


@pytest.mark.parametrize("parts", [2, 3, 7])
async def test_byte_ranges_cut_anywhere_split_a_file_into_whole_lines(
    tmp_path: Path, parts: int
) -> None:
    """Ranges cut at arbitrary bytes give every line to exactly one range."""
    source = tmp_path / "ranges.ndjson"
    write_lines(source, [track(n) for n in range(100)])
    size = source.stat().st_size
    cuts = [0, *(size * k // parts + k for k in range(1, parts)), size]
    sink = ListSink()
    total = 0

    with source.open("rb") as stream:
        for start, end in itertools.pairwise(cuts):
            counts = await import_ndjson(stream, sink, start=start, end=end)
            total += counts.lines
            assert counts.offset >= end or counts.offset == size

    assert total == 100
    assert sorted(map(int, sink.ids)) == list(range(100))


async def test_a_stopped_import_resumes_at_its_offset(tmp_path: Path) -> None:
    """Cancelled while the sink waits, the counts stop before that line; resuming finishes it."""
    source = tmp_path / "resume.ndjson"
    write_lines(source, [track(n) for n in range(20)])
    seen: list[str] = []
    blocked = asyncio.Event()

    async def stalling_sink(message: htevents_async.Message) -> None:
        assert message.message_id is not None
        if message.message_id == "7":
            blocked.set()
            await asyncio.Event().wait()  # a full queue that never drains
        seen.append(message.message_id)

    counts = ImportCounts()
    with source.open("rb") as stream:
        task = asyncio.get_running_loop().create_task(
            import_ndjson(stream, stalling_sink, counts=counts)
        )
        await blocked.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (counts.lines, counts.accepted) == (7, 7)
        assert counts.offset == sum(len(track(n)) + 1 for n in range(7))

        rest = ListSink()
        resumed = await import_ndjson(stream, rest, start=counts.offset)

    assert seen + rest.ids == [str(n) for n in range(20)]
    assert resumed.lines == 13


async def test_a_range_needs_a_regular_file() -> None:
    """``start`` or ``end`` on a pipe is refused: a pipe cannot seek."""
    read_fd, write_fd = os.pipe()
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as stream, pytest.raises(ValueError, match="regular file"):
        await import_ndjson(stream, ListSink(), start=10)


# -- message_from_wire ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        (
            {"type": "identify", "userId": "1", "traits": {"plan": "pro"}},
            htevents_async.Identify(user_id="1", traits={"plan": "pro"}),
        ),
        (
            {"type": "track", "anonymousId": "a", "event": "E", "properties": {"x": 1}},
            htevents_async.Track(anonymous_id="a", event="E", properties={"x": 1}),
        ),
        (
            {"type": "page", "userId": 0, "name": "Home", "category": "Docs"},
            htevents_async.Page(user_id=0, name="Home", category="Docs"),
        ),
        (
            {"type": "screen", "userId": "1", "name": "Cart", "properties": {}},
            htevents_async.Screen(user_id="1", name="Cart", properties={}),
        ),
        (
            {"type": "group", "userId": "1", "groupId": 42, "traits": {"n": 2}},
            htevents_async.Group(user_id="1", group_id=42, traits={"n": 2}),
        ),
        (
            {"type": "alias", "previousId": "anon-1", "userId": "1", "messageId": "m-1"},
            htevents_async.Alias(previous_id="anon-1", user_id="1", message_id="m-1"),
        ),
    ],
)
def test_message_from_wire_builds_each_type(
    wire: dict[str, Any], expected: htevents_async.Message
) -> None:
    """Each wire type becomes its message class, camelCase keys mapped to keyword names."""
    assert message_from_wire(wire) == expected


def test_message_from_wire_parses_iso_timestamps() -> None:
    """An ISO-8601 timestamp with ``Z`` becomes an aware datetime; transport keys are ignored."""
    message = message_from_wire(
        {
            "type": "track",
            "userId": "1",
            "event": "E",
            "timestamp": "2021-03-04T05:06:07.250Z",
            "sentAt": "2021-03-04T05:06:08Z",
            "receivedAt": "2021-03-04T05:06:09Z",
        }
    )
    assert message.timestamp == dt.datetime(2021, 3, 4, 5, 6, 7, 250_000, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize(
    ("wire", "error", "text"),
    [
        ([1, 2], htevents_async.MessageTypeError, "must be a JSON object, got list"),
        ({"userId": "1"}, htevents_async.MessageError, "type is required"),
        ({"type": "click"}, htevents_async.MessageError, "got 'click'"),
        ({"type": "track", "userId": "1"}, htevents_async.MessageError, "Track.event is required"),
        (
            {"type": "group", "userId": "1"},
            htevents_async.MessageError,
            "Group.group_id is required",
        ),
        ({"type": "alias", "userId": "1"}, htevents_async.MessageError, "Alias.previous_id"),
        ({"type": "identify", "event": "E"}, htevents_async.MessageError, "no field 'event'"),
        (
            {"type": "track", "event": "E", "timestamp": "yesterday"},
            htevents_async.MessageTypeError,
            "Track.timestamp must be an ISO-8601",
        ),
        (
            {"type": "track", "event": "E", "properties": [1]},
            htevents_async.MessageTypeError,
            "Track.properties must be a dict",
        ),
    ],
)
def test_message_from_wire_names_the_bad_field(
    wire: Any, error: type[Exception], text: str
) -> None:
    """Invalid wire messages raise the package's errors, naming the field."""
    with pytest.raises(error, match=text):
        message_from_wire(wire)


async def test_integers_past_64_bits_keep_every_digit(
    collector: LocalCollector, tmp_path: Path
) -> None:
    """A backfilled integer too large for 64 bits reaches the collector exact, not as a
    float, whichever JSON parser reads the line."""
    line = (
        b'{"type":"track","userId":"1","event":"e","properties":'
        b'{"big":18446744073709551616,"neg":-9223372036854775809,"id":"12345678901234567890"}}\n'
    )
    path = tmp_path / "big.ndjson"
    path.write_bytes(line)
    async with htevents_async.Client(WRITE_KEY, host=collector.url, **FAST) as client:
        with path.open("rb") as stream:
            counts = await import_ndjson(stream, client)
    assert counts.accepted == 1
    [message] = await collector.wait_for(1)
    assert message["properties"] == {
        "big": 18446744073709551616,
        "neg": -9223372036854775809,
        "id": "12345678901234567890",
    }
