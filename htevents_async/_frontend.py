"""From a call's arguments to the encoded event: the call-site work both front ends share.

:class:`~htevents_async.Client` (awaited) and :class:`~htevents_async.SyncClient`
(from plain threads) differ only in how they hand the encoded text to the engine;
what a call means, how it is validated and how it is encoded lives here, once.
Each function returns ``(message_id, json_text)`` (or a :class:`Dropped` in place
of the text when a ``before_send`` plugin dropped the event) or raises
:class:`~htevents_async.MessageError` naming the field.

``track`` and ``identify`` with a ``str`` user id, a ``dict`` of properties or
traits and nothing else of the caller's take the protocol's ``encode_plain``, which
skips building a message object (about half the cost of a call);
``test_plain_and_general_encodings_match`` holds the two paths together.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from ._context import current_context
from ._messages import Alias, Group, Id, Identify, Message, Page, Screen, Track
from ._plugins import Dropped
from ._protocols import OdpEvent
from ._seams import MessageEncoder as Encoder

__all__ = [
    "alias",
    "check_message",
    "encode_message",
    "group",
    "identify",
    "odp_event",
    "page",
    "screen",
    "track",
]

#: ``(message_id, json_text)``, or the id and a :class:`Dropped` when a ``before_send``
#: plugin dropped the event: the front end accounts for it instead of queueing it.
Encoded = tuple[str, "str | Dropped"]


def check_message(message: object) -> None:
    """Refuse anything but an instance of one of the concrete message classes."""
    if not isinstance(message, Message) or type(message) is Message:
        raise TypeError(
            "expected an Identify, Track, Page, Screen, Group or Alias message, "
            f"got {type(message).__name__}"
        )


def encode_message(encoder: Encoder, message: Message) -> Encoded:
    """A prepared message (``enqueue``), encoded."""
    try:
        return encoder.encode(message)
    except Dropped as dropped:
        return dropped.message_id, dropped


def identify(
    encoder: Encoder,
    user_id: Id | None,
    anonymous_id: Id | None,
    traits: Mapping[str, Any] | None,
    context: Mapping[str, Any] | None,
    timestamp: dt.datetime | None,
    integrations: Mapping[str, Any] | None,
    message_id: str | None,
) -> Encoded:
    """An ``identify`` call's arguments, encoded."""
    try:
        if (
            type(user_id) is str
            and user_id
            and type(traits) is dict
            and anonymous_id is None
            and context is None
            and timestamp is None
            and integrations is None
            and message_id is None
            and current_context() is None
        ):
            return encoder.encode_plain(
                "identify", {"userId": user_id, "traits": traits}, "Identify"
            )
        return encoder.encode(
            Identify(
                user_id=user_id,
                anonymous_id=anonymous_id,
                traits=traits,
                context=context,
                timestamp=timestamp,
                integrations=integrations,
                message_id=message_id,
            )
        )
    except Dropped as dropped:
        return dropped.message_id, dropped


def track(
    encoder: Encoder,
    event: str,
    user_id: Id | None,
    anonymous_id: Id | None,
    properties: Mapping[str, Any] | None,
    context: Mapping[str, Any] | None,
    timestamp: dt.datetime | None,
    integrations: Mapping[str, Any] | None,
    message_id: str | None,
) -> Encoded:
    """A ``track`` call's arguments, encoded."""
    try:
        if (
            type(user_id) is str
            and user_id
            and type(event) is str
            and event
            and type(properties) is dict
            and anonymous_id is None
            and context is None
            and timestamp is None
            and integrations is None
            and message_id is None
            and current_context() is None
        ):
            return encoder.encode_plain(
                "track", {"userId": user_id, "event": event, "properties": properties}, "Track"
            )
        return encoder.encode(
            Track(
                event=event,
                user_id=user_id,
                anonymous_id=anonymous_id,
                properties=properties,
                context=context,
                timestamp=timestamp,
                integrations=integrations,
                message_id=message_id,
            )
        )
    except Dropped as dropped:
        return dropped.message_id, dropped


def page(
    encoder: Encoder,
    user_id: Id | None,
    anonymous_id: Id | None,
    name: str | None,
    category: str | None,
    properties: Mapping[str, Any] | None,
    context: Mapping[str, Any] | None,
    timestamp: dt.datetime | None,
    integrations: Mapping[str, Any] | None,
    message_id: str | None,
) -> Encoded:
    """A ``page`` call's arguments, encoded."""
    return _view(
        Page,
        encoder,
        user_id,
        anonymous_id,
        name,
        category,
        properties,
        context,
        timestamp,
        integrations,
        message_id,
    )


def screen(
    encoder: Encoder,
    user_id: Id | None,
    anonymous_id: Id | None,
    name: str | None,
    category: str | None,
    properties: Mapping[str, Any] | None,
    context: Mapping[str, Any] | None,
    timestamp: dt.datetime | None,
    integrations: Mapping[str, Any] | None,
    message_id: str | None,
) -> Encoded:
    """A ``screen`` call's arguments, encoded."""
    return _view(
        Screen,
        encoder,
        user_id,
        anonymous_id,
        name,
        category,
        properties,
        context,
        timestamp,
        integrations,
        message_id,
    )


def _view(
    cls: type[Page | Screen],
    encoder: Encoder,
    user_id: Id | None,
    anonymous_id: Id | None,
    name: str | None,
    category: str | None,
    properties: Mapping[str, Any] | None,
    context: Mapping[str, Any] | None,
    timestamp: dt.datetime | None,
    integrations: Mapping[str, Any] | None,
    message_id: str | None,
) -> Encoded:
    """Page and screen views: the same fields, another type."""
    view = cls(
        user_id=user_id,
        anonymous_id=anonymous_id,
        name=name,
        category=category,
        properties=properties,
        context=context,
        timestamp=timestamp,
        integrations=integrations,
        message_id=message_id,
    )
    return encode_message(encoder, view)


def group(
    encoder: Encoder,
    group_id: Id,
    user_id: Id | None,
    anonymous_id: Id | None,
    traits: Mapping[str, Any] | None,
    context: Mapping[str, Any] | None,
    timestamp: dt.datetime | None,
    integrations: Mapping[str, Any] | None,
    message_id: str | None,
) -> Encoded:
    """A ``group`` call's arguments, encoded."""
    message = Group(
        group_id=group_id,
        user_id=user_id,
        anonymous_id=anonymous_id,
        traits=traits,
        context=context,
        timestamp=timestamp,
        integrations=integrations,
        message_id=message_id,
    )
    return encode_message(encoder, message)


def alias(
    encoder: Encoder,
    previous_id: Id,
    user_id: Id,
    context: Mapping[str, Any] | None,
    timestamp: dt.datetime | None,
    integrations: Mapping[str, Any] | None,
    message_id: str | None,
) -> Encoded:
    """An ``alias`` call's arguments, encoded."""
    message = Alias(
        previous_id=previous_id,
        user_id=user_id,
        context=context,
        timestamp=timestamp,
        integrations=integrations,
        message_id=message_id,
    )
    return encode_message(encoder, message)


def odp_event(
    encoder: Encoder,
    action: str,
    identifiers: Mapping[str, str],
    type: str,
    data: Mapping[str, Any] | None,
    message_id: str | None,
) -> Encoded:
    """An ``odp_event`` call's arguments, encoded (only the ODP protocol carries it)."""
    return encode_message(
        encoder,
        OdpEvent(
            action=action,
            identifiers=identifiers,
            event_type=type,
            data=data,
            message_id=message_id,
        ),
    )
