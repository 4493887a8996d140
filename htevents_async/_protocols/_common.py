"""What the protocol modules share: the value rules applied to a wire dict, and size checks."""

from __future__ import annotations

import json
from typing import Any

from .._encoding import _splice_decimals, _to_json, format_datetime, now_iso
from .._errors import MessageTooLargeError
from .._messages import Message

__all__ = ["check_size", "find_string", "stamp_of", "to_text"]

_decode_string = json.JSONDecoder().raw_decode


def to_text(wire: dict[str, Any], owner: str) -> str:
    """``wire`` as pure-ASCII JSON under the shared value rules (errors name ``owner``)."""
    return _splice_decimals(_to_json(wire, owner))


def check_size(text: str, owner: str, max_bytes: int) -> str:
    """``text``, or a :class:`MessageTooLargeError` when it is over ``max_bytes``."""
    if len(text) > max_bytes:
        raise MessageTooLargeError(
            f"{owner} encodes to {len(text)} bytes, over max_message_bytes ({max_bytes})"
        )
    return text


def stamp_of(message: Message) -> str:
    """The message's timestamp as sent: its own, or the time of the call."""
    timestamp = message.timestamp
    return now_iso() if timestamp is None else format_datetime(timestamp, "milliseconds")


def find_string(text: str, key: str) -> str:
    """The string value of the first ``key`` in ``text`` (``key`` written as ``'"name":'``).

    Inside a JSON string every quote is escaped, so the first match is a real key.
    """
    start = text.index(key) + len(key)
    value: str = _decode_string(text, start)[0]
    return value
