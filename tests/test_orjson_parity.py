"""The optional orjson fast path writes the same wire values as the stdlib path."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import property_values

from htevents_async import MessageError, Track
from htevents_async import _encoding as encoding

pytest.importorskip("orjson")

values = property_values()


@pytest.fixture
def restore_default() -> Iterator[None]:
    yield
    encoding.use_orjson(True)


def encode_with(orjson: bool, properties: dict[str, Any]) -> str:
    encoding.use_orjson(orjson)
    message = Track(
        event="e",
        user_id="1",
        message_id="m",
        timestamp=dt.datetime(2026, 1, 1),
        properties=properties,
    )
    return encoding.Encoder(10**7).encode(message)[1]


@settings(max_examples=300, deadline=None)
@given(properties=st.dictionaries(st.text(max_size=8), values, max_size=5))
def test_same_decoded_values_or_same_error(properties: dict[str, Any]) -> None:
    """For any value both paths produce equal JSON values, or both refuse it alike."""
    try:
        fast = encode_with(True, properties)
    except MessageError as exc:
        with pytest.raises(type(exc)):
            encode_with(False, properties)
        return
    finally:
        encoding.use_orjson(True)
    plain = encode_with(False, properties)
    encoding.use_orjson(True)
    assert fast.isascii()
    assert json.loads(fast) == json.loads(plain)


def test_special_values_match(restore_default: None) -> None:
    """The documented rules hold on the orjson path too."""
    properties = {
        "at": dt.datetime(2026, 1, 2, 3, 4, 5),
        "price": decimal.Decimal("1.5"),
        "id": uuid.UUID(int=3),
        "nan": float("nan"),
        "tags": {"x"},
        "text": "café",
        7: "int key",
    }
    assert json.loads(encode_with(True, properties)) == json.loads(encode_with(False, properties))
