"""The six Segment-spec message types as frozen attrs classes, validated on construction.

Each class takes the same keyword names as the client method of the same name
(``Track(event=..., user_id=..., properties=...)``). Construction checks every
field's type and presence and raises :class:`~htevents_async.MessageError`
naming the field; JSON encoding (and its value rules) happens when the message
is enqueued.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, ClassVar, TypeAlias, final

import attrs

from ._errors import MessageError, MessageTypeError

__all__ = ["Alias", "Group", "Identify", "Message", "Page", "Screen", "Track"]

#: A user, anonymous, group or previous id: a string or an integer (``0`` included).
Id: TypeAlias = str | int


def _describe(value: object) -> str:
    return f"{type(value).__name__} {value!r}" if value is not None else "None"


def _type_error(inst: object, name: str, requirement: str, value: object) -> MessageTypeError:
    return MessageTypeError(
        f"{type(inst).__name__}.{name} must be {requirement}, got {_describe(value)}"
    )


def _optional_id(inst: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None or type(value) is int:
        return
    if type(value) is str or isinstance(value, str):
        if not value:
            raise MessageError(f"{type(inst).__name__}.{attribute.name} must not be empty")
        return
    if isinstance(value, int) and not isinstance(value, bool):
        return
    raise _type_error(inst, attribute.name, "a str or int", value)


def _required_id(inst: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        raise MessageError(
            f"{type(inst).__name__}.{attribute.name} is required (a str or int), got None"
        )
    _optional_id(inst, attribute, value)


def _optional_message_id(inst: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None or (isinstance(value, str) and value):
        return
    raise _type_error(inst, attribute.name, "a non-empty str", value)


def _optional_mapping(inst: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None or type(value) is dict or isinstance(value, Mapping):
        return
    raise _type_error(inst, attribute.name, "a dict (or other Mapping)", value)


def _optional_str(inst: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None or isinstance(value, str):
        return
    raise _type_error(inst, attribute.name, "a str", value)


def _required_name(inst: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, str):
        if value:
            return
        raise MessageError(f"{type(inst).__name__}.{attribute.name} must not be empty")
    if value is None:
        raise MessageError(
            f"{type(inst).__name__}.{attribute.name} is required (a non-empty str), got None"
        )
    raise _type_error(inst, attribute.name, "a non-empty str", value)


def _optional_timestamp(inst: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None or isinstance(value, dt.datetime):
        return
    raise _type_error(inst, attribute.name, "a datetime (naive means UTC)", value)


@attrs.frozen(kw_only=True)
class Message:
    """Fields every message type shares. Not instantiated directly."""

    type: ClassVar[str]

    user_id: Id | None = attrs.field(default=None, validator=_optional_id)
    """The known user's id; ``str`` or ``int`` (``0`` is valid)."""

    anonymous_id: Id | None = attrs.field(default=None, validator=_optional_id)
    """A pseudonymous id; a random one is set when neither id is given."""

    context: Mapping[str, Any] | None = attrs.field(default=None, validator=_optional_mapping)
    """Extra context, merged over the library's own ``context`` (never mutated)."""

    timestamp: dt.datetime | None = attrs.field(default=None, validator=_optional_timestamp)
    """When the event happened; naive means UTC. Defaults to the time of the call."""

    integrations: Mapping[str, Any] | None = attrs.field(default=None, validator=_optional_mapping)
    """Per-destination switches, passed through as given."""

    message_id: str | None = attrs.field(default=None, validator=_optional_message_id)
    """A caller-chosen idempotence id; a random UUID4 when omitted."""

    def _payload(self) -> dict[str, Any]:
        """The fields this type adds to the wire message, ``None`` values included."""
        raise NotImplementedError


@final
@attrs.frozen(kw_only=True)
class Identify(Message):
    """Ties a user to their traits (``identify`` call)."""

    type: ClassVar[str] = "identify"

    traits: Mapping[str, Any] | None = attrs.field(default=None, validator=_optional_mapping)
    """What is known of the user: email, name, plan…"""

    def _payload(self) -> dict[str, Any]:
        return {"traits": self.traits}


@final
@attrs.frozen(kw_only=True)
class Track(Message):
    """Records an action the user performed (``track`` call)."""

    type: ClassVar[str] = "track"

    event: str = attrs.field(validator=_required_name)
    """The action's name, e.g. ``"Order completed"``. Required."""

    properties: Mapping[str, Any] | None = attrs.field(default=None, validator=_optional_mapping)
    """Details of the action."""

    def _payload(self) -> dict[str, Any]:
        return {"event": self.event, "properties": self.properties}


@attrs.frozen(kw_only=True)
class _View(Message):
    """The fields page and screen views share."""

    name: str | None = attrs.field(default=None, validator=_optional_str)
    """The page's or screen's name."""

    category: str | None = attrs.field(default=None, validator=_optional_str)
    """The page's or screen's category."""

    properties: Mapping[str, Any] | None = attrs.field(default=None, validator=_optional_mapping)
    """Details of the view (url, referrer…)."""

    def _payload(self) -> dict[str, Any]:
        return {"name": self.name, "category": self.category, "properties": self.properties}


@final
@attrs.frozen(kw_only=True)
class Page(_View):
    """Records a web page view (``page`` call)."""

    type: ClassVar[str] = "page"


@final
@attrs.frozen(kw_only=True)
class Screen(_View):
    """Records a mobile or desktop screen view (``screen`` call)."""

    type: ClassVar[str] = "screen"


@final
@attrs.frozen(kw_only=True)
class Group(Message):
    """Ties a user to a group: a company, team or account (``group`` call)."""

    type: ClassVar[str] = "group"

    group_id: Id = attrs.field(validator=_required_id)
    """The group's id; ``str`` or ``int``. Required."""

    traits: Mapping[str, Any] | None = attrs.field(default=None, validator=_optional_mapping)
    """What is known of the group."""

    def _payload(self) -> dict[str, Any]:
        return {"groupId": str(self.group_id), "traits": self.traits}


@final
@attrs.frozen(kw_only=True)
class Alias(Message):
    """Merges two identities: ``previous_id`` becomes ``user_id`` (``alias`` call)."""

    type: ClassVar[str] = "alias"

    previous_id: Id = attrs.field(validator=_required_id)
    """The identity being merged away. Required."""

    def __attrs_post_init__(self) -> None:
        # Alias needs both of its ids: a random anonymous id would merge nothing.
        if self.user_id is None:
            raise MessageError("Alias.user_id is required (a str or int), got None")

    def _payload(self) -> dict[str, Any]:
        return {"previousId": str(self.previous_id)}
