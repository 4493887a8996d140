"""Turns a message into the JSON bytes sent on the wire, once, at the call site.

The value rules: ``datetime`` → ISO-8601 in UTC (naive means UTC), ``date`` →
ISO date, ``Decimal`` → number, ``UUID`` → string, ``Enum`` → its value,
``set``/``frozenset``/``tuple`` → array, NaN and ±Infinity → ``null``, attrs
classes and dataclasses → objects, other mappings → objects. Anything else is
a :class:`~htevents_async.MessageTypeError` naming the key path.

The common case costs one C-accelerated ``json`` call. Only when it fails (an
unknown type, a non-finite float, a circular reference) does a pure-Python walk
find the key path for the error, or rebuild the value with the rules applied.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import json
import math
import os
import random
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from ._context import current_context
from ._errors import MessageError, MessageTooLargeError, MessageTypeError
from ._messages import Message
from ._version import __version__

__all__ = ["Encoder", "format_datetime", "new_message_id", "now_iso"]

LIBRARY = {"name": "htevents-async", "version": __version__}

_UTC = dt.timezone.utc
# Python refuses to turn ints of more digits than this into text (sys.set_int_max_str_digits).
_MAX_INT_DIGITS = 4300
# A private generator: an application calling random.seed() (tests, simulations)
# would otherwise make every process repeat the same message ids, and collectors
# deduplicate by id. Seeded from os.urandom, and again in every forked child.
_rng = random.Random()
_getrandbits = _rng.getrandbits
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_rng.seed)
# uuid4 layout: version nibble 4, variant bits 10.
_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)


def new_message_id() -> str:
    """A random UUID4 string.

    Four times cheaper than ``str(uuid.uuid4())``: the ids need uniqueness, not
    secrecy, which a private, urandom-seeded generator gives.
    """
    h = "%032x" % ((_getrandbits(128) & _UUID4_CLEAR) | _UUID4_SET)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# (millisecond, text) swapped as one tuple, so that threads never pair one
# millisecond with another's text. A burst of calls shares each millisecond's text.
_last_stamp: tuple[int, str] = (-1, "")


def now_iso() -> str:
    """The current UTC time as ISO-8601 with milliseconds and ``Z``."""
    global _last_stamp
    millis = time.time_ns() // 1_000_000
    cached, text = _last_stamp
    if millis != cached:
        second, milli = divmod(millis, 1000)
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)) + f".{milli:03d}Z"
        _last_stamp = (millis, text)
    return text


def format_datetime(value: dt.datetime, timespec: str = "auto") -> str:
    """ISO-8601 in UTC with a ``Z``; naive datetimes are taken to be UTC.

    Message timestamps use ``timespec="milliseconds"``, as the spec and the
    call-time stamps do; datetimes in properties keep their full precision.
    """
    try:
        # Python's own definition of naive: no tzinfo, or one whose utcoffset() is None.
        value = value.replace(tzinfo=_UTC) if value.utcoffset() is None else value.astimezone(_UTC)
    except OverflowError:
        # Within a day of year 1 or 9999, the UTC time may fall outside datetime's range.
        raise MessageError(f"datetime {value.isoformat()} has no UTC equivalent") from None
    return value.replace(tzinfo=None).isoformat(timespec=timespec) + "Z"


# A JSON string that stands for a Decimal's exact text until the encoded message is
# finished. The NUL that opens it is always escaped by the encoders, and the random
# part keeps any caller's string from ever looking the same.
_DECIMAL_MARK = "\x00" + f"{random.SystemRandom().getrandbits(64):016x}:"
_ESCAPED_MARK = json.dumps(_DECIMAL_MARK)[:-1]  # '"\u0000<nonce>:'


def _splice_decimals(text: str) -> str:
    """Turn each Decimal's stand-in string into its exact JSON number."""
    if _ESCAPED_MARK not in text:
        return text
    parts = text.split(_ESCAPED_MARK)
    out = [parts[0]]
    for part in parts[1:]:
        end = part.index('"')  # digits, sign, '.', 'E': nothing the encoder escapes
        out.append(part[:end])
        out.append(part[end + 1 :])
    return "".join(out)


def _convert(value: Any) -> Any:
    """One non-JSON value to a JSON-ready one, or ``TypeError`` if the rules have none."""
    if isinstance(value, dt.datetime):
        return format_datetime(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return None
        if value == value.to_integral_value():
            if value.adjusted() >= _MAX_INT_DIGITS:
                # int() of Decimal("1E+999999999") would take minutes and gigabytes.
                raise MessageError(f"Decimal {value} has too many digits for a JSON number")
            return int(value)
        # Its own digits, not a float's 17: the JSON number text is spliced in after
        # encoding (see _splice_decimals), as no stdlib encoder writes raw numbers.
        return f"{_DECIMAL_MARK}{value}"
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    if attrs.has(type(value)):
        return {a.name: getattr(value, a.name) for a in attrs.fields(type(value))}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


_plain_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def _make_fast_encode() -> Callable[[Any], str]:
    """The C encoder, built once: ``json.dumps`` rebuilds it on every call.

    No circular-reference markers: a cycle ends in ``RecursionError`` instead,
    and the slow path then names where the cycle is.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython always has the accelerator
        return json.JSONEncoder(
            separators=(",", ":"), allow_nan=False, default=_convert, check_circular=False
        ).encode
    encoder = make(
        None, _convert, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, False
    )

    def encode(value: Any) -> str:
        return "".join(encoder(value, 0))

    return encode


_fast_encode = _make_fast_encode()


def _make_orjson_encode() -> Callable[[Any], str] | None:
    """orjson, when installed (the ``orjson`` extra): three times faster on typical events.

    It must write the same values as the stdlib path, so everything our rules
    define differently is handed to :func:`_convert` (datetimes, dataclasses),
    and any output that is not pure ASCII, or anything orjson refuses (huge
    ints, non-string keys, deep nesting), is encoded again by the stdlib path.
    """
    try:
        import orjson
    except ImportError:
        return None
    dumps = orjson.dumps
    options = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS

    def encode(value: Any) -> str:
        try:
            raw = dumps(value, default=_convert, option=options)
        except (TypeError, ValueError):
            return _fast_encode(value)
        return raw.decode("ascii") if raw.isascii() else _fast_encode(value)

    return encode


_orjson_encode = _make_orjson_encode()
#: The encoder the fast path uses: orjson when installed, else the stdlib's C encoder.
fast_encode: Callable[[Any], str] = _orjson_encode or _fast_encode


def use_orjson(enabled: bool) -> bool:
    """Switch the fast path between orjson and the stdlib; returns whether orjson is now used.

    For tests that compare the two; orjson is used by default when installed.
    """
    global fast_encode
    fast_encode = _orjson_encode if enabled and _orjson_encode is not None else _fast_encode
    return fast_encode is not _fast_encode


_JSON_SCALARS = (str, int, bool, type(None))


def _normalise(value: Any, path: str, seen: set[int]) -> Any:
    """Rebuild ``value`` from JSON types only, raising with the key path where it cannot."""
    if isinstance(value, _JSON_SCALARS):
        return _normalise(value.value, path, seen) if isinstance(value, enum.Enum) else value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if not isinstance(value, (dict, list, tuple)):
        try:
            converted = _convert(value)
        except TypeError:
            raise MessageTypeError(
                f"{path} has a value of type {type(value).__qualname__}, which has no JSON "
                "form (use str, int, float, bool, None, dict, list, datetime, date, Decimal, "
                "UUID, Enum, set, tuple, an attrs class or a dataclass)"
            ) from None
        return _normalise(converted, path, seen)
    marker = id(value)
    if marker in seen:
        raise MessageTypeError(f"{path} is a circular reference")
    seen.add(marker)
    try:
        if not isinstance(value, dict):
            return [_normalise(item, f"{path}[{i}]", seen) for i, item in enumerate(value)]
        result: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(key, str):
                name = key
            elif (
                isinstance(key, int)
                or key is None
                or (isinstance(key, float) and math.isfinite(key))
            ):
                name = _plain_encode(key)  # the key json itself would have written
            else:
                raise MessageTypeError(
                    f"{path} has a key of type {type(key).__qualname__} ({key!r}); "
                    "keys must be str, int, finite float, bool or None"
                )
            result[name] = _normalise(item, f"{path}[{key!r}]", seen)
        return result
    finally:
        seen.discard(marker)


# Wire names back to the keyword names users wrote, for error paths.
_FIELD_NAMES = {
    "userId": "user_id",
    "anonymousId": "anonymous_id",
    "groupId": "group_id",
    "previousId": "previous_id",
    "messageId": "message_id",
}


def _to_json(wire: dict[str, Any], owner: str) -> str:
    try:
        return fast_encode(wire)
    except (TypeError, ValueError, RecursionError):
        return _to_json_by_rules(wire, owner)


def _to_json_by_rules(wire: dict[str, Any], owner: str) -> str:
    """The slow path: a rule the fast path cannot apply (NaN to null), or a real
    error to name with its key path."""
    try:
        clean = {
            key: _normalise(value, f"{owner}.{_FIELD_NAMES.get(key, key)}", set())
            for key, value in wire.items()
        }
    except RecursionError:
        raise MessageTypeError(f"{owner} is nested too deeply to encode") from None
    try:
        return _plain_encode(clean)
    except ValueError as exc:  # an int past Python's int-to-text digit limit
        raise MessageTypeError(f"{owner} has a value JSON text cannot hold: {exc}") from None


# The context and integrations of a call that sets neither: encoded once, appended as text.
_DEFAULT_TAIL = "," + _plain_encode({"context": {"library": LIBRARY}, "integrations": {}})[1:]


class Encoder:
    """Encodes messages for one client: its size limit, the shared value rules."""

    __slots__ = ("_max_bytes",)

    def __init__(self, max_message_bytes: int) -> None:
        self._max_bytes = max_message_bytes

    def encode(self, message: Message) -> tuple[str, str]:
        """Return ``(message_id, json_text)``, or raise a :class:`MessageError`.

        The text is pure ASCII (non-ASCII is escaped), so its length is its
        size in bytes and batches can be joined as text and encoded once.
        """
        message_id = message.message_id
        timestamp = message.timestamp
        stamp = now_iso() if timestamp is None else format_datetime(timestamp, "milliseconds")
        # The head and the default tail are built from strings that need no
        # escaping (type names, UUIDs, timestamps); only caller data goes
        # through the JSON encoder.
        if message_id is None:
            message_id = new_message_id()
            head = f'{{"type":"{message.type}","messageId":"{message_id}","timestamp":"{stamp}",'
        else:
            head = (
                f'{{"type":"{message.type}","messageId":{_plain_encode(message_id)},'
                f'"timestamp":"{stamp}",'
            )
        fields: dict[str, Any] = {}
        # Ids are strings on the wire (the spec's type); an int id goes as its decimal text.
        if message.user_id is not None:
            fields["userId"] = str(message.user_id)
        if message.anonymous_id is not None:
            fields["anonymousId"] = str(message.anonymous_id)
        elif message.user_id is None:
            fields["anonymousId"] = new_message_id()
        for key, value in message._payload().items():
            if value is not None:
                fields[key] = value
        scoped = current_context()
        if scoped is None and message.context is None and message.integrations is None:
            tail = _DEFAULT_TAIL
        else:
            # Explicit context wins over scoped context, which wins over ours.
            fields["context"] = {"library": LIBRARY, **(scoped or {}), **(message.context or {})}
            fields["integrations"] = {} if message.integrations is None else message.integrations
            tail = "}"
        text = head + _splice_decimals(_to_json(fields, type(message).__name__))[1:-1] + tail
        if len(text) > self._max_bytes:
            raise MessageTooLargeError(
                f"{type(message).__name__} encodes to {len(text)} bytes, over "
                f"max_message_bytes ({self._max_bytes})"
            )
        return message_id, text

    def encode_plain(self, type_name: str, fields: dict[str, Any], owner: str) -> tuple[str, str]:
        """:meth:`encode` for the common call the client has already checked: a
        generated id, the time of the call, no context or integrations of the
        caller's or in scope, and ``fields`` ready for the wire, ``None`` dropped.

        It skips building a message object, about half the cost of a call;
        ``test_plain_and_general_encodings_match`` holds the two paths together.
        """
        message_id = new_message_id()
        try:
            body = fast_encode(fields)
        except (TypeError, ValueError, RecursionError):
            body = _to_json_by_rules(fields, owner)
        body = _splice_decimals(body)
        text = (
            f'{{"type":"{type_name}","messageId":"{message_id}","timestamp":"{now_iso()}",'
            f"{body[1:-1]}{_DEFAULT_TAIL}"
        )
        if len(text) > self._max_bytes:
            raise MessageTooLargeError(
                f"{owner} encodes to {len(text)} bytes, over max_message_bytes ({self._max_bytes})"
            )
        return message_id, text
