"""PostHog's capture API: ``POST {host}/batch/`` with the project API key in the body.

Limits: 900 KiB per event and 5 MiB per request body, as the ``posthog`` Python
package's consumer enforces them (``posthog/consumer.py``: ``MAX_MSG_SIZE = 900 *
1024``, ``BATCH_SIZE_LIMIT = 5 * 1024 * 1024``, below the 20 MiB the capture
endpoint accepts). PostHog documents no cap on events per request; the cap here
is 2,500, the same as the default protocol's, so a backlog never forms a request
the engine would not form for Segment.

Answers: PostHog answers ``200 {"status": 1}`` even when a project is over its
billing quota and the events are dropped; the body then names the limited
products (``"quota_limited"``, or ``"quotaLimited"`` in older versions, PostHog
pull request 16777). Such a 200 is final, not a delivery: resending cannot help.

The mapping from our calls (``distinct_id`` is the user id, else the anonymous id):

========  ==============================================================
track     ``event`` as given, ``properties`` (``$groups`` there as PostHog's groups)
identify  ``$identify``, traits as ``$set``
alias     ``$create_alias``: ``distinct_id`` is ``previous_id``, ``alias`` the user id
group     ``$groupidentify`` by the user: ``$group_type`` (the protocol's
          ``group_type``), ``$group_key`` the group id, ``$group_set`` the traits
page      ``$pageview``, ``$current_url`` from ``properties["url"]``, ``$title``
          from ``name``
screen    ``$screen``, ``$screen_name`` from ``name``
========  ==============================================================
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, final

from .._encoding import new_message_id, now_iso
from .._errors import MessageError
from .._messages import Message
from .._seams import Limits, RequestSpec, Verdict, classify_status
from .._version import __version__
from ._common import check_size, find_string, stamp_of, to_text
from .segment import USER_AGENT

__all__ = ["PostHogProtocol"]

_LIB = {"$lib": "htevents-async", "$lib_version": __version__}
_ID_KEY = '"uuid":'
_QUOTA_KEYS = ("quota_limited", "quotaLimited")


def _properties(value: Mapping[str, Any] | None) -> dict[str, Any]:
    return {**(value or {}), **_LIB}


@final
class PostHogProtocol:
    """PostHog's ``/batch/`` capture API.

    ``group_type`` is the PostHog group type our ``group`` call identifies;
    ``historical_migration=True`` marks every request as a backfill, which PostHog
    routes away from live ingestion.
    """

    name = "posthog"
    default_path = "/batch/"
    limits: Limits = Limits(
        message_bytes=900 * 1024, batch_bytes=5 * 1024 * 1024, batch_events=2_500
    )

    def __init__(self, *, group_type: str = "company", historical_migration: bool = False) -> None:
        if not isinstance(group_type, str) or not group_type:
            raise ValueError(f"group_type must be a non-empty str, got {group_type!r}")
        self.group_type = group_type
        self.historical_migration: bool = bool(historical_migration)

    def __repr__(self) -> str:
        return (
            f"<PostHogProtocol group_type={self.group_type!r}"
            f" historical_migration={self.historical_migration}>"
        )

    def encoder(self, max_message_bytes: int) -> _PostHogEncoder:
        """The encoder mapping our calls onto PostHog events."""
        return _PostHogEncoder(self.group_type, max_message_bytes)

    def request(self, write_key: str, url: str) -> RequestSpec:
        """``{"api_key":…,"batch":[…],"sent_at":…}``; the key is in the body only."""
        head = b'{"api_key":' + json.dumps(write_key).encode() + b',"batch":['
        end = b',"historical_migration":true}' if self.historical_migration else b"}"

        def tail() -> bytes:
            return b'],"sent_at":"' + now_iso().encode() + b'"' + end

        return RequestSpec(
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
            head=head,
            tail=tail,
            overhead=len(head) + len(tail()),
            secrets=(write_key, json.dumps(write_key)[1:-1]),
        )

    def classify(self, status: int, headers: Mapping[str, str], body: bytes) -> Verdict:
        """A 200 naming ``events`` as quota limited is final; otherwise by status."""
        verdict = classify_status(status, headers)
        if verdict.outcome != "delivered" or b"uota" not in body:
            return verdict
        try:
            answer = json.loads(body)
        except ValueError:
            return verdict
        if isinstance(answer, dict):
            for key in _QUOTA_KEYS:
                limited = answer.get(key)
                if isinstance(limited, list) and "events" in limited:
                    return Verdict("final", reason="the project is over its events quota")
        return verdict

    def message_id_of(self, text: str) -> str:
        """The event's ``uuid``."""
        return find_string(text, _ID_KEY)

    def decode_body(self, body: bytes) -> list[dict[str, Any]]:
        """The ``batch`` array."""
        batch = json.loads(body).get("batch")
        return list(batch) if isinstance(batch, list) else []


class _PostHogEncoder:
    """The PostHog ``Encoder``: each message as one ``/batch/`` event."""

    __slots__ = ("_group_type", "_max_bytes")

    def __init__(self, group_type: str, max_bytes: int) -> None:
        self._group_type = group_type
        self._max_bytes = max_bytes

    def encode(self, message: Message) -> tuple[str, str]:
        """``(message_id, text)`` of ``message`` as a PostHog event."""
        owner = type(message).__name__
        message_id = message.message_id or new_message_id()
        if message.user_id is not None:
            distinct_id = str(message.user_id)
        elif message.anonymous_id is not None:
            distinct_id = str(message.anonymous_id)
        else:
            distinct_id = new_message_id()
        wire = self._wire(message.type, distinct_id, message, owner)
        return message_id, self._text(message_id, stamp_of(message), wire, owner)

    def encode_plain(self, type_name: str, fields: dict[str, Any], owner: str) -> tuple[str, str]:
        """``(message_id, text)`` of a plain ``identify`` or ``track`` as a PostHog event."""
        message_id = new_message_id()
        distinct_id = fields["userId"]
        if type_name == "track":
            wire = {
                "event": fields["event"],
                "distinct_id": distinct_id,
                "properties": _properties(fields["properties"]),
            }
        else:
            wire = {
                "event": "$identify",
                "distinct_id": distinct_id,
                "$set": fields["traits"],
                "properties": dict(_LIB),
            }
        return message_id, self._text(message_id, now_iso(), wire, owner)

    def _text(self, message_id: str, stamp: str, wire: dict[str, Any], owner: str) -> str:
        # The uuid is written first, before any caller data, so message_id_of finds it.
        head = f'{{"uuid":{json.dumps(message_id)},"timestamp":"{stamp}",'
        return check_size(head + to_text(wire, owner)[1:], owner, self._max_bytes)

    def _wire(self, kind: str, distinct_id: str, message: Any, owner: str) -> dict[str, Any]:
        if kind == "track":
            return {
                "event": message.event,
                "distinct_id": distinct_id,
                "properties": _properties(message.properties),
            }
        if kind == "identify":
            return {
                "event": "$identify",
                "distinct_id": distinct_id,
                "$set": dict(message.traits or {}),
                "properties": dict(_LIB),
            }
        if kind == "alias":
            previous = str(message.previous_id)
            return {
                "event": "$create_alias",
                "distinct_id": previous,
                "properties": {"distinct_id": previous, "alias": distinct_id, **_LIB},
            }
        if kind == "group":
            key = str(message.group_id)
            return {
                "event": "$groupidentify",
                "distinct_id": distinct_id,
                "properties": {
                    "$group_type": self._group_type,
                    "$group_key": key,
                    "$group_set": dict(message.traits or {}),
                    **_LIB,
                },
            }
        if kind in ("page", "screen"):
            properties = _properties(message.properties)
            if kind == "page":
                url = (message.properties or {}).get("url")
                if url is not None:
                    properties["$current_url"] = url
                if message.name is not None:
                    properties["$title"] = message.name
            elif message.name is not None:
                properties["$screen_name"] = message.name
            event = "$pageview" if kind == "page" else "$screen"
            return {"event": event, "distinct_id": distinct_id, "properties": properties}
        raise MessageError(f"{owner} cannot be sent with protocol='posthog'")
