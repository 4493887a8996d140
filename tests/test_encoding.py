"""The JSON value rules, applied once at the call site."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import json
import uuid
from typing import Any

import attrs
import pytest

from htevents_async import Identify, MessageTooLargeError, MessageTypeError, Track, context_scope
from htevents_async._encoding import Encoder, new_message_id, now_iso


class Colour(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


@attrs.define
class Point:
    x: int
    y: float


@dataclasses.dataclass
class Item:
    sku: str
    price: decimal.Decimal


def encode(**properties: Any) -> dict[str, Any]:
    _, data = Encoder(32 * 1024).encode(Track(event="e", user_id="1", properties=properties))
    decoded: dict[str, Any] = json.loads(data)
    return decoded


def test_value_rules() -> None:
    """Each documented type becomes its documented JSON form."""
    tz = dt.timezone(dt.timedelta(hours=2))
    properties = encode(
        naive=dt.datetime(2026, 1, 2, 3, 4, 5, 6000),
        aware=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=tz),
        day=dt.date(2026, 1, 2),
        price=decimal.Decimal("19.99"),
        count=decimal.Decimal("3"),
        id=uuid.UUID(int=1),
        colour=Colour.RED,
        level=Level.HIGH,
        tags={"a"},
        pair=(1, 2),
        nan=float("nan"),
        inf=float("-inf"),
        point=Point(1, 2.5),
        item=Item("x", decimal.Decimal("1.5")),
    )["properties"]
    assert properties == {
        "naive": "2026-01-02T03:04:05.006000Z",
        "aware": "2026-01-02T01:04:05Z",
        "day": "2026-01-02",
        "price": 19.99,
        "count": 3,
        "id": "00000000-0000-0000-0000-000000000001",
        "colour": "red",
        "level": 3,
        "tags": ["a"],
        "pair": [1, 2],
        "nan": None,
        "inf": None,
        "point": {"x": 1, "y": 2.5},
        "item": {"sku": "x", "price": 1.5},
    }


def test_unserialisable_value_names_the_key_path() -> None:
    """An object without a JSON form is a TypeError naming where it is."""
    with pytest.raises(MessageTypeError, match=r"Track\.properties\['items'\]\[1\]\['x'\]"):
        encode(items=[{}, {"x": object()}])


def test_bad_key_names_the_path() -> None:
    """Keys JSON cannot hold are refused with their path."""
    with pytest.raises(MessageTypeError, match=r"Track\.properties\['m'\] has a key of type tuple"):
        encode(m={(1, 2): "x"})


def test_circular_reference_is_refused() -> None:
    """A list that contains itself is an error, not a hang."""
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(MessageTypeError, match="circular"):
        encode(loop=loop)


def test_oversized_message_is_refused() -> None:
    """Past max_message_bytes the call raises, saying the size."""
    with pytest.raises(MessageTooLargeError, match="max_message_bytes"):
        encode(blob="x" * 40_000)


def test_caller_dicts_are_not_mutated() -> None:
    """The caller's context and properties come back exactly as given."""
    context = {"ip": "203.0.113.7"}
    properties = {"when": dt.date(2026, 1, 1), "nan": float("nan")}
    snapshot = (dict(context), dict(properties))
    Encoder(32 * 1024).encode(Track(event="e", user_id="1", context=context, properties=properties))
    assert context == snapshot[0]
    assert properties["when"] == snapshot[1]["when"]
    assert set(properties) == set(snapshot[1])


def test_library_context_is_merged_with_the_callers() -> None:
    """context.library is ours; the caller's keys sit beside it."""
    _, data = Encoder(32 * 1024).encode(Identify(user_id="1", context={"ip": "203.0.113.7"}))
    context = json.loads(data)["context"]
    assert context["ip"] == "203.0.113.7"
    assert context["library"]["name"] == "htevents-async"


def test_scoped_context_applies_and_explicit_context_wins() -> None:
    """Inside context_scope every event carries it; a call's own keys win."""
    encoder = Encoder(32 * 1024)
    with context_scope({"ip": "198.51.100.1", "locale": "en-GB"}):
        _, data = encoder.encode(Identify(user_id="1", context={"locale": "fr-FR"}))
    context = json.loads(data)["context"]
    assert context["ip"] == "198.51.100.1"
    assert context["locale"] == "fr-FR"


def test_no_identity_gets_a_random_anonymous_id() -> None:
    """Without user_id or anonymous_id a random anonymousId is set."""
    _, data = Encoder(32 * 1024).encode(Track(event="e"))
    message = json.loads(data)
    assert uuid.UUID(message["anonymousId"]).version == 4
    assert "userId" not in message


def test_none_fields_are_omitted() -> None:
    """Fields left as None are not sent at all."""
    _, data = Encoder(32 * 1024).encode(Track(event="e", user_id="1"))
    message = json.loads(data)
    assert "properties" not in message
    assert "anonymousId" not in message
    assert None not in message.values()


def test_message_ids_are_uuid4() -> None:
    """Generated ids parse as version-4 UUIDs and do not repeat."""
    ids = {new_message_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(uuid.UUID(i).version == 4 and str(uuid.UUID(i)) == i for i in list(ids)[:100])


def test_now_iso_format() -> None:
    """The call-time timestamp is UTC ISO-8601 with milliseconds."""
    stamp = now_iso()
    parsed = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ")
    assert abs(parsed - dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)).total_seconds() < 60
