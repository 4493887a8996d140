"""Generated property values: delivered in the documented JSON form, or refused with a typed error.

The expected wire form comes from :func:`documented_form`, written from the value
rules in DESIGN.md rather than from the encoder: ``datetime`` → ISO-8601 UTC with
``Z`` (naive means UTC), ``date`` → ISO date, ``Decimal`` → number, ``UUID`` →
string, ``Enum`` → its value, ``set``/``frozenset``/``tuple`` → array, NaN and
±Infinity → ``null``, dataclasses → objects; anything else is refused.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import math
import random
import types
import uuid
from collections.abc import AsyncIterator
from typing import Any, NoReturn

import pytest
from faultserver import FaultServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import assert_accounted, client_for

from htevents_async import Client, MessageError, MessageTooLargeError, MessageTypeError

pytestmark = pytest.mark.anyio


class Color(enum.Enum):
    RED = "red"
    PAIR = (1, 2)


class Size(enum.IntEnum):
    SMALL = 1


class Mood(str, enum.Enum):
    HAPPY = "happy"


class Perm(enum.Flag):
    READ = 4


@dataclasses.dataclass
class Point:
    x: Any
    y: Any


class Opaque:
    """A value the encoder has no rule for."""


UNSUPPORTED = (Opaque(), complex(1, 2), b"bytes", bytearray(b"x"), range(3), print)


class Refused(Exception):
    """The documented rules give this value no JSON form."""

    @classmethod
    def fail(cls) -> NoReturn:
        raise cls("too many digits")


# Python's limit on int-to-text conversion: larger numbers have no JSON text.
_MAX_DIGITS = 4300


def _key(key: object) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    if isinstance(key, int):
        return str(int(key))
    if isinstance(key, float):
        if not math.isfinite(key):
            raise Refused("non-finite key")
        return repr(key)
    raise Refused(f"key {key!r}")


def documented_form(value: object) -> object:
    """What the collector should decode for ``value``, or :class:`Refused`."""
    if isinstance(value, enum.Enum):
        return documented_form(value.value)
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        if abs(value) >= 10**_MAX_DIGITS:
            raise Refused("more digits than JSON text in Python can hold")
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dt.datetime):
        utc = value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value
        try:
            return utc.astimezone(dt.timezone.utc).replace(tzinfo=None).isoformat() + "Z"
        except OverflowError:
            raise Refused("no UTC equivalent") from None
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return None
        if value == value.to_integral_value():
            return documented_form(int(value)) if value.adjusted() < _MAX_DIGITS else Refused.fail()
        return float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        return [documented_form(item) for item in value]
    if isinstance(value, (dict, types.MappingProxyType)):
        out: dict[str, object] = {}
        for key, item in value.items():
            out[_key(key)] = documented_form(item)
        return out
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: documented_form(getattr(value, f.name)) for f in dataclasses.fields(value)}
    raise Refused(type(value).__name__)


_offsets = st.builds(
    dt.timezone,
    st.timedeltas(min_value=dt.timedelta(hours=-23), max_value=dt.timedelta(hours=23)).map(
        lambda delta: dt.timedelta(minutes=delta // dt.timedelta(minutes=1))
    ),
)
hashable_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.datetimes(timezones=st.none() | _offsets),
    # Within a day of the ends of datetime's range, an offset can push UTC past them.
    st.datetimes(max_value=dt.datetime(1, 1, 2), timezones=_offsets),
    st.datetimes(min_value=dt.datetime(9999, 12, 31), timezones=_offsets),
    st.dates(),
    st.decimals(allow_nan=False, allow_infinity=True),
    st.builds(decimal.Decimal, st.sampled_from(["1E+4299", "1E+4300", "-7E+999999999"])),
    st.decimals(places=3, min_value=-(10**9), max_value=10**9),
    st.uuids(),
    st.sampled_from([*Color, *Size, *Mood, *Perm]),
)
# Signalling NaN cannot be hashed, so NaN decimals stay out of sets.
leaves = hashable_leaves | st.decimals(allow_nan=True) | st.sampled_from(UNSUPPORTED)
keys = st.text(max_size=10) | st.integers() | st.floats() | st.booleans() | st.none()
values = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.tuples(children, children),
        st.sets(hashable_leaves, max_size=4),
        st.frozensets(hashable_leaves, max_size=3),
        st.dictionaries(keys, children, max_size=4),
        st.dictionaries(st.text(max_size=5), children, max_size=3).map(types.MappingProxyType),
        st.builds(Point, children, children),
    ),
    max_leaves=12,
)


@pytest.fixture
async def sink() -> AsyncIterator[tuple[Client, FaultServer]]:
    """One server and client shared by every generated example of a test."""
    async with FaultServer() as server, client_for(server.url, flush_interval=0.01) as client:
        yield client, server
        assert await client.flush() == 0
        assert_accounted(client.statistics())
        assert client.statistics().failed == 0


def _delivered(server: FaultServer, message_id: str) -> dict[str, Any]:
    found = [m for r in server.requests for m in r.batch if m.get("messageId") == message_id]
    assert len(found) == 1, found
    return found[0]


@settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(value=values)
async def test_property_values_arrive_in_documented_form_or_are_refused(
    value: object, sink: tuple[Client, FaultServer]
) -> None:
    """Every value is delivered as its documented JSON form, or refused with a MessageError."""
    client, server = sink
    try:
        expected: object = {"v": documented_form(value)}
    except Refused:
        expected = Refused
    try:
        message_id = await client.track(user_id="u", event="generated", properties={"v": value})
    except MessageTooLargeError:
        return
    except MessageError as exc:
        refusal: MessageError | None = exc
    else:
        refusal = None
    if refusal is not None:
        assert expected is Refused, f"refused a value with a documented form: {refusal}"
        if isinstance(refusal, MessageTypeError):
            assert "Track" in str(refusal)
        return
    assert expected is not Refused, "accepted a value the rules give no JSON form"
    assert await client.flush() == 0
    assert _delivered(server, message_id)["properties"] == expected


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(traits=st.dictionaries(st.text(max_size=10), values, max_size=3), when=st.datetimes())
async def test_identify_traits_and_timestamps_follow_the_same_rules(
    traits: dict[str, object], when: dt.datetime, sink: tuple[Client, FaultServer]
) -> None:
    """Traits go through the same value rules, and any naive timestamp is sent as UTC."""
    client, server = sink
    try:
        expected: object = documented_form(traits)
    except Refused:
        expected = Refused
    try:
        message_id = await client.identify(user_id="u", traits=traits, timestamp=when)
    except MessageTooLargeError:
        return
    except MessageError:
        assert expected is Refused
        return
    assert expected is not Refused
    assert await client.flush() == 0
    message = _delivered(server, message_id)
    assert message["traits"] == expected
    # A message's own timestamp carries milliseconds; datetimes in values keep theirs.
    assert message["timestamp"] == documented_form(when.replace(microsecond=0))[:-1] + (
        f".{when.microsecond // 1000:03d}Z"
    )


async def test_seeding_the_random_module_does_not_repeat_message_ids(
    sink: tuple[Client, FaultServer],
) -> None:
    """An application calling random.seed() does not make message ids repeat."""
    client, _ = sink
    ids = []
    for _ in range(3):
        random.seed(1234)
        ids.append(await client.track(user_id="u", event="seeded"))
    assert len(set(ids)) == 3


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: (cycle := []).append(cycle) or cycle, id="list cycle"),
        pytest.param(lambda: (cycle := {}).update(me=cycle) or cycle, id="dict cycle"),
        pytest.param(lambda: Point(1, Opaque()), id="dataclass holding an unsupported value"),
    ],
)
async def test_unrepresentable_structures_are_refused_and_the_flusher_goes_on(
    make: Any, sink: tuple[Client, FaultServer]
) -> None:
    """Cycles and unsupported members raise a MessageTypeError; the next event is delivered."""
    client, server = sink
    with pytest.raises(MessageTypeError, match=r"Track\.properties"):
        await client.track(user_id="u", event="bad", properties={"v": make()})
    message_id = await client.track(user_id="u", event="good")
    assert await client.flush() == 0
    assert _delivered(server, message_id)["event"] == "good"


_PLUS_5 = dt.timezone(dt.timedelta(hours=5))


@pytest.mark.parametrize(
    "properties",
    [
        pytest.param({"v": 10**5000}, id="int past the int-to-text limit"),
        pytest.param({"v": decimal.Decimal("1E+999999999")}, id="Decimal with a huge exponent"),
        pytest.param({float("nan"): 1}, id="NaN key"),
        pytest.param({"v": dt.datetime(1, 1, 1, tzinfo=_PLUS_5)}, id="datetime before UTC year 1"),
    ],
)
async def test_values_past_json_limits_are_refused_with_message_errors(
    properties: dict[object, object], sink: tuple[Client, FaultServer]
) -> None:
    """Numbers, keys and datetimes JSON text cannot hold raise MessageError, quickly."""
    client, _ = sink
    with pytest.raises(MessageError):
        await client.track(user_id="u", event="bad", properties=properties)


async def test_timestamp_without_a_utc_equivalent_is_refused(
    sink: tuple[Client, FaultServer],
) -> None:
    """An aware timestamp that would fall before year 1 in UTC raises MessageError."""
    client, _ = sink
    with pytest.raises(MessageError, match="no UTC equivalent"):
        await client.track(user_id="u", event="e", timestamp=dt.datetime(1, 1, 1, tzinfo=_PLUS_5))
