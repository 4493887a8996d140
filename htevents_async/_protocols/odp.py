"""Optimizely Data Platform events: ``POST {host}/v3/events``, a bare JSON array.

Limits: ODP's REST API reference ("Rate limits") allows up to 500 objects per
request; the events API has no rate limit. ODP documents no byte cap per event
or per request; the caps here are the default protocol's (32 KiB per event, 500 KB
per request), so a batch that fits one fits the other.

Authentication is the ``x-api-key`` header. ODP answers 202 to an accepted batch
(``optimizely/odp/odp_event_api_manager.py`` treats any 2xx as sent, 4xx as
final and 5xx as worth a retry, as the default classification does).

Each event is ``{"data": {…}, "type": …, "action": …, "identifiers": {…}}``. ``data``
starts with the defaults the Optimizely SDKs add, any of which the caller may
override: ``idempotence_id`` (our message id, so a retried batch is deduplicated),
``data_source_type: "sdk"``, ``data_source`` and ``data_source_version``. Data
values are strings, numbers, booleans or null, and null is sent as ``""``.

The mapping from our calls (identifiers: ``fs_user_id`` from the user id, ``vuid``
from the anonymous id; at least one is required):

==========  ==================================================================
odp_event   as given
identify    type ``"fullstack"``, action ``"identified"``, traits as data
track       type ``"fullstack"``, action the event name, properties as data
page        type ``"fullstack"``, action ``"pageview"``, properties as data, plus
            ``name`` and ``category``
screen      type ``"fullstack"``, action ``"screenview"``, as page
group       refused: ODP events carry no group membership
alias       refused: ODP merges identities by sending both in ``identifiers``
==========  ==================================================================
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar, final

import attrs

from .._encoding import new_message_id
from .._errors import MessageError, MessageTypeError
from .._messages import Message
from .._seams import Limits, RequestSpec, Verdict, classify_status
from .._version import __version__
from ._common import check_size, find_string, to_text
from .segment import USER_AGENT

__all__ = ["OdpEvent", "OdpProtocol"]

_ID_KEY = '"idempotence_id":'
_SCALARS = (str, int, float, bool)
_DATA_SOURCE = {
    "data_source_type": "sdk",
    "data_source": "htevents-async",
    "data_source_version": __version__,
}


def _check_data(owner: str, field: str, data: Mapping[str, Any] | None) -> dict[str, Any]:
    """``data`` with null sent as ``""``, or a :class:`MessageTypeError` naming a bad value."""
    clean: dict[str, Any] = {}
    for key, value in (data or {}).items():
        if not isinstance(key, str):
            raise MessageTypeError(f"{owner}.{field} keys must be str, got {key!r}")
        if value is None:
            value = ""
        elif isinstance(value, (Mapping, list, tuple, set, frozenset)):
            raise MessageTypeError(
                f"{owner}.{field}[{key!r}] must be a str, number, bool or None for ODP, "
                f"got {type(value).__name__}"
            )
        clean[key] = value
    return clean


def _identifiers(inst: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    owner = f"{type(inst).__name__}.{attribute.name}"
    if not isinstance(value, Mapping) or not value:
        raise MessageError(f"{owner} must be a str to str mapping with at least one pair")
    for key, item in value.items():
        if not isinstance(key, str) or not key or not isinstance(item, str) or not item:
            raise MessageTypeError(
                f"{owner} must map non-empty str to non-empty str, got {key!r}: {item!r}"
            )


def _non_empty_str(inst: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise MessageError(
            f"{type(inst).__name__}.{attribute.name} must be a non-empty str, got {value!r}"
        )


def _data(inst: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, Mapping):
        raise MessageTypeError(
            f"{type(inst).__name__}.{attribute.name} must be a dict, got {type(value).__name__}"
        )
    _check_data(type(inst).__name__, attribute.name, value)


@final
@attrs.frozen(kw_only=True)
class OdpEvent(Message):
    """An Optimizely Data Platform event (``odp_event`` call); only ``protocol="odp"``
    sends it. ``message_id`` becomes ``data.idempotence_id`` unless ``data`` sets one."""

    type: ClassVar[str] = "odp"
    action: str = attrs.field(validator=_non_empty_str)
    """What happened, e.g. ``"purchased"``. Required."""
    identifiers: Mapping[str, str] = attrs.field(validator=_identifiers)
    """The user's identifiers, e.g. ``{"fs_user_id": "123", "email": "a@b.c"}``: at least one."""
    event_type: str = attrs.field(default="fullstack", validator=_non_empty_str)
    """ODP's event ``type``."""
    data: Mapping[str, Any] | None = attrs.field(default=None, validator=_data)
    """Event data: str, number, bool or None (sent as ``""``) values."""

    def _payload(self) -> dict[str, Any]:
        return {"action": self.action, "identifiers": self.identifiers, "data": self.data}


@final
class OdpProtocol:
    """Optimizely Data Platform's ``/v3/events`` API."""

    name = "odp"
    default_path = "/v3/events"
    limits: Limits = Limits(message_bytes=32 * 1024, batch_bytes=500_000, batch_events=500)

    def __repr__(self) -> str:
        return "<OdpProtocol>"

    def encoder(self, max_message_bytes: int) -> _OdpEncoder:
        """The encoder mapping our calls onto ODP events."""
        return _OdpEncoder(max_message_bytes)

    def request(self, write_key: str, url: str) -> RequestSpec:
        """A bare array, the key in ``x-api-key``."""

        def tail() -> bytes:
            return b"]"

        return RequestSpec(
            headers={
                "Content-Type": "application/json",
                "x-api-key": write_key,
                "User-Agent": USER_AGENT,
            },
            head=b"[",
            tail=tail,
            overhead=2,
            secrets=(write_key, json.dumps(write_key)[1:-1]),
        )

    def classify(self, status: int, headers: Mapping[str, str], body: bytes) -> Verdict:
        """The status decides alone (202 is the usual success)."""
        return classify_status(status, headers)

    def message_id_of(self, text: str) -> str:
        """``data.idempotence_id``."""
        return find_string(text, _ID_KEY)

    def decode_body(self, body: bytes) -> list[dict[str, Any]]:
        """The array itself."""
        events = json.loads(body)
        return list(events) if isinstance(events, list) else []


_ACTIONS = {"identify": "identified", "page": "pageview", "screen": "screenview"}


class _OdpEncoder:
    """The ODP ``Encoder``: each message as one ``/v3/events`` event."""

    __slots__ = ("_max_bytes",)

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes

    def encode(self, message: Message) -> tuple[str, str]:
        """``(message_id, text)`` of ``message`` as an ODP event."""
        owner = type(message).__name__
        if isinstance(message, OdpEvent):
            return self._text(
                message.message_id,
                message.event_type,
                message.action,
                dict(message.identifiers),
                _check_data(owner, "data", message.data),
                owner,
            )
        kind = message.type
        if kind in ("group", "alias"):
            raise MessageError(
                f"{owner} cannot be sent with protocol='odp': ODP events carry no "
                + (
                    "group membership"
                    if kind == "group"
                    else "alias (send both ids as identifiers)"
                )
            )
        identifiers: dict[str, str] = {}
        if message.user_id is not None:
            identifiers["fs_user_id"] = str(message.user_id)
        if message.anonymous_id is not None:
            identifiers["vuid"] = str(message.anonymous_id)
        if not identifiers:
            raise MessageError(f"{owner} needs a user_id or an anonymous_id for protocol='odp'")
        payload: Any = message
        if kind == "track":
            action = payload.event
            data = _check_data(owner, "properties", payload.properties)
        elif kind == "identify":
            action = _ACTIONS[kind]
            data = _check_data(owner, "traits", payload.traits)
        else:
            action = _ACTIONS[kind]
            data = _check_data(owner, "properties", payload.properties)
            for key in ("name", "category"):
                if getattr(payload, key) is not None:
                    data[key] = getattr(payload, key)
        return self._text(message.message_id, "fullstack", action, identifiers, data, owner)

    def encode_plain(self, type_name: str, fields: dict[str, Any], owner: str) -> tuple[str, str]:
        """``(message_id, text)`` of a plain ``identify`` or ``track`` as an ODP event."""
        if type_name == "track":
            action = fields["event"]
            data = _check_data(owner, "properties", fields["properties"])
        else:
            action = _ACTIONS[type_name]
            data = _check_data(owner, "traits", fields["traits"])
        identifiers = {"fs_user_id": fields["userId"]}
        return self._text(None, "fullstack", action, identifiers, data, owner)

    def _text(
        self,
        message_id: str | None,
        event_type: str,
        action: str,
        identifiers: dict[str, str],
        data: dict[str, Any],
        owner: str,
    ) -> tuple[str, str]:
        given = data.pop("idempotence_id", None)
        if given not in (None, ""):
            message_id = str(given)
        elif message_id is None:
            message_id = new_message_id()
        # data comes first and idempotence_id first in it, so message_id_of finds ours.
        wire = {
            "data": {"idempotence_id": message_id, **_DATA_SOURCE, **data},
            "type": event_type,
            "action": action,
            "identifiers": identifiers,
        }
        return message_id, check_size(to_text(wire, owner), owner, self._max_bytes)
