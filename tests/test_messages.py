"""Message validation at the call site: typed errors naming the field and the reason."""

from __future__ import annotations

import datetime as dt

import pytest

from htevents_async import (
    Alias,
    Group,
    Identify,
    MessageError,
    MessageTypeError,
    Page,
    Screen,
    Track,
)


def test_track_without_event_names_the_field() -> None:
    """Omitting event is a TypeError naming it."""
    with pytest.raises(TypeError, match="event"):
        Track(user_id="1")  # type: ignore[call-arg]


def test_track_with_none_event_is_a_message_error() -> None:
    """event=None (e.g. from dynamic code) is a MessageError naming Track.event."""
    with pytest.raises(MessageError, match=r"Track\.event is required"):
        Track(event=None, user_id="1")  # type: ignore[arg-type]


def test_track_with_empty_event_is_refused() -> None:
    """An empty event name says so."""
    with pytest.raises(MessageError, match=r"Track\.event must not be empty"):
        Track(event="", user_id="1")


def test_group_without_group_id_is_refused() -> None:
    """group_id=None names Group.group_id."""
    with pytest.raises(MessageError, match=r"Group\.group_id is required"):
        Group(group_id=None, user_id="1")  # type: ignore[arg-type]


def test_alias_without_previous_id_is_refused() -> None:
    """previous_id=None names Alias.previous_id."""
    with pytest.raises(MessageError, match=r"Alias\.previous_id is required"):
        Alias(previous_id=None, user_id="1")  # type: ignore[arg-type]


def test_alias_needs_user_id() -> None:
    """Alias needs both ids: no random anonymous id stands in."""
    with pytest.raises(MessageError, match=r"Alias\.user_id is required"):
        Alias(previous_id="old")


def test_non_dict_properties_is_a_type_error() -> None:
    """properties must be a mapping; the error is both MessageError and TypeError."""
    with pytest.raises(MessageTypeError, match=r"Track\.properties must be a dict") as caught:
        Track(event="e", user_id="1", properties=["total", 3])  # type: ignore[arg-type]
    assert isinstance(caught.value, TypeError)


def test_non_datetime_timestamp_is_refused() -> None:
    """timestamp must be a datetime, not an ISO string."""
    with pytest.raises(MessageTypeError, match=r"Identify\.timestamp must be a datetime"):
        Identify(user_id="1", timestamp="2026-01-01T00:00:00Z")  # type: ignore[arg-type]


def test_user_id_zero_is_valid() -> None:
    """0 is a real id; peers drop it by truthiness."""
    assert Track(event="e", user_id=0).user_id == 0


def test_bool_is_not_an_id() -> None:
    """True is an int to Python, but never a user id."""
    with pytest.raises(MessageTypeError, match=r"Page\.user_id must be a str or int"):
        Page(user_id=True)


def test_empty_string_id_is_refused() -> None:
    """An empty id identifies no one."""
    with pytest.raises(MessageError, match=r"Screen\.anonymous_id must not be empty"):
        Screen(anonymous_id="")


def test_message_id_must_be_a_string() -> None:
    """A caller-chosen message id is a non-empty string."""
    with pytest.raises(MessageTypeError, match=r"Track\.message_id"):
        Track(event="e", user_id="1", message_id=5)  # type: ignore[arg-type]


def test_messages_are_frozen() -> None:
    """Messages cannot change after validation."""
    message = Track(event="e", user_id="1", timestamp=dt.datetime(2026, 1, 1))
    with pytest.raises(AttributeError):
        message.event = "other"  # type: ignore[misc]
