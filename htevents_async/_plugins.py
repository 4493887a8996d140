"""``before_send`` plugins: the wire dict they receive, and how what they return is sent.

A client with plugins builds each event as a fresh dict in wire form (the keys
the collector sees), runs the plugins on it in order in the caller's thread, then
checks what the last one returned with the same rules a call's arguments meet and
encodes it with the same encoder. A client without plugins never comes here.

Copies: every dict, list and tuple of the event is copied before the first plugin
sees it, so a plugin may change anything it receives in place and the caller's
own objects never change. Other values (datetimes, dataclasses, custom objects)
are shared: a plugin must replace them, not mutate them.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias

from ._context import current_context
from ._encoding import (
    LIBRARY,
    Encoder,
    _plain_encode,
    _splice_decimals,
    _to_json,
    format_datetime,
    new_message_id,
    now_iso,
)
from ._errors import ConfigError, MessageError, MessageTooLargeError, MessageTypeError
from ._logging import RateLimitedLog
from ._messages import Message

__all__ = ["BeforeSend", "Dropped", "Pipeline", "plugin_chain"]

#: A ``before_send`` plugin: gets the event as a wire-form dict, returns the dict to
#: send (the same one, changed or not, or a new one) or ``None`` to drop the event.
BeforeSend: TypeAlias = Callable[[dict[str, Any]], "dict[str, Any] | None"]

_TYPES = ("identify", "track", "page", "screen", "group", "alias")
_ID_KEYS = frozenset({"userId", "anonymousId", "groupId", "previousId"})
_FRAME_KEYS = frozenset({"type", "messageId", "timestamp"})
_MAPPING_KEYS = frozenset({"traits", "properties", "context", "integrations"})
# The keys each type cannot go without, besides type, messageId and timestamp.
_REQUIRED = {"track": ("event",), "group": ("groupId",), "alias": ("previousId", "userId")}


def plugin_chain(value: object) -> tuple[BeforeSend, ...]:
    """``Config.before_send`` as a tuple of callables, or ``ConfigError`` naming the bad one."""
    if value is None:
        return ()
    plugins = (value,) if callable(value) else value
    if isinstance(plugins, (str, bytes)) or not isinstance(plugins, Sequence):
        raise ConfigError(
            f"Config.before_send must be a callable or a sequence of callables, got {value!r}"
        )
    for index, plugin in enumerate(plugins):
        if not callable(plugin):
            raise ConfigError(f"Config.before_send[{index}] must be callable, got {plugin!r}")
    return tuple(plugins)


def plugin_name(plugin: object) -> str:
    """How logs name a plugin: its qualified name, or its repr for a callable object."""
    name = getattr(plugin, "__qualname__", None)
    if isinstance(name, str) and not isinstance(plugin, type):
        module = getattr(plugin, "__module__", None)
        return f"{module}.{name}" if module else name
    return repr(plugin)


class Dropped(Exception):
    """Raised by :class:`Pipeline` to the client when a plugin dropped an event.

    Carries what the client needs to account for it; never reaches the caller.
    """

    def __init__(self, message_id: str, reason: str, event: dict[str, Any]) -> None:
        super().__init__(reason)
        self.message_id = message_id
        self.reason = reason
        #: The event as the dropping plugin received it (after any change it made).
        self.event = event

    def hook_text(self) -> str:
        """The event as JSON for ``on_drop``; just its type and id if it cannot be encoded."""
        try:
            return _splice_decimals(_to_json(self.event, "event"))
        except (MessageError, RecursionError):
            return _plain_encode({"type": self.event.get("type"), "messageId": self.message_id})


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _copy(value: Any) -> Any:
    """The containers of ``value`` copied all the way down; other values shared."""
    # Scalars are checked by exact type first: most values are, and an isinstance
    # check against the Mapping ABC costs more than the copy itself.
    cls = type(value)
    if cls is dict:
        return {k: v if type(v) in _SCALARS else _copy(v) for k, v in value.items()}
    if cls in _SCALARS:
        return value
    if cls is list:
        return [v if type(v) in _SCALARS else _copy(v) for v in value]
    if cls is tuple:
        return tuple([v if type(v) in _SCALARS else _copy(v) for v in value])
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    return value


class Pipeline(Encoder):
    """An :class:`~htevents_async._encoding.Encoder` that runs a client's plugins on
    each event first, then encodes what they return.

    Both front ends use it in place of the plain encoder when plugins are set; a
    dropped event raises :class:`Dropped` instead of returning.
    """

    __slots__ = ("_log", "_names", "_plugins")

    def __init__(self, plugins: tuple[BeforeSend, ...], max_message_bytes: int) -> None:
        super().__init__(max_message_bytes)
        self._plugins = plugins
        self._names = tuple(plugin_name(plugin) for plugin in plugins)
        self._log = RateLimitedLog()

    def encode(self, message: Message) -> tuple[str, str]:
        """The event of a message object, through the plugins; ``(message_id, json_text)``."""
        timestamp = message.timestamp
        wire: dict[str, Any] = {
            "type": message.type,
            "messageId": message.message_id or new_message_id(),
            "timestamp": now_iso()
            if timestamp is None
            else format_datetime(timestamp, "milliseconds"),
        }
        if message.user_id is not None:
            wire["userId"] = str(message.user_id)
        if message.anonymous_id is not None:
            wire["anonymousId"] = str(message.anonymous_id)
        elif message.user_id is None:
            wire["anonymousId"] = new_message_id()
        for key, value in message._payload().items():
            if value is not None:
                wire[key] = _copy(value)
        scoped = current_context()
        wire["context"] = _copy({"library": LIBRARY, **(scoped or {}), **(message.context or {})})
        wire["integrations"] = _copy(message.integrations or {})
        return self._run(wire, type(message).__name__)

    def encode_plain(self, type_name: str, fields: dict[str, Any], owner: str) -> tuple[str, str]:
        """The plain call's event (see ``Encoder.encode_plain``), through the plugins."""
        wire: dict[str, Any] = {
            "type": type_name,
            "messageId": new_message_id(),
            "timestamp": now_iso(),
        }
        for key, value in fields.items():
            wire[key] = _copy(value)
        wire["context"] = {"library": dict(LIBRARY)}
        wire["integrations"] = {}
        return self._run(wire, owner)

    def _run(self, wire: dict[str, Any], owner: str) -> tuple[str, str]:
        message_id: str = wire["messageId"]
        event: dict[str, Any] = wire
        for plugin, name in zip(self._plugins, self._names, strict=True):
            try:
                result: object = plugin(event)
            except Exception as exc:
                self._log.log(
                    logging.ERROR,
                    f"plugin:{name}",
                    "htevents_async: before_send plugin %s raised %s; event %s dropped "
                    "(plugin_error)",
                    name,
                    type(exc).__name__,
                    message_id,
                    exc_info=exc,
                    extra={"plugin": name, "reason": "plugin_error", "message_id": message_id},
                )
                raise Dropped(message_id, "plugin_error", event) from None
            if result is None:
                raise Dropped(message_id, "filtered", event)
            if not isinstance(result, dict):
                self._log.log(
                    logging.ERROR,
                    f"plugin:{name}",
                    "htevents_async: before_send plugin %s returned %s, not a dict or None; "
                    "event %s dropped (plugin_error)",
                    name,
                    type(result).__name__,
                    message_id,
                    extra={"plugin": name, "reason": "plugin_error", "message_id": message_id},
                )
                raise Dropped(message_id, "plugin_error", event)
            event = result
        return self._encode_result(event, message_id, owner)

    def _encode_result(self, event: dict[str, Any], message_id: str, owner: str) -> tuple[str, str]:
        """Check the plugins' result as a call's arguments are checked, then encode it."""
        where = f"{owner} (after before_send)"
        type_name = event.get("type")
        if type_name not in _TYPES:
            raise MessageError(
                f"{where}.type must be one of {', '.join(_TYPES)}, got {type_name!r}"
            )
        new_id = event.get("messageId", message_id)
        if new_id is None:
            new_id = message_id
        if not isinstance(new_id, str) or not new_id:
            raise MessageTypeError(f"{where}.messageId must be a non-empty str, got {new_id!r}")
        stamp = event.get("timestamp")
        if stamp is None:
            stamp = now_iso()
        elif isinstance(stamp, dt.datetime):
            stamp = format_datetime(stamp, "milliseconds")
        elif not isinstance(stamp, str):
            raise MessageTypeError(
                f"{where}.timestamp must be a str or datetime, got {type(stamp).__name__}"
            )
        # The id first, before any caller data: Batch.message_ids reads the first one.
        out: dict[str, Any] = {"type": type_name, "messageId": new_id, "timestamp": stamp}
        for key, value in event.items():
            if value is None or key in _FRAME_KEYS:
                continue
            if key in _ID_KEYS:
                if type(value) is not str:
                    if isinstance(value, bool) or not isinstance(value, (str, int)):
                        raise MessageTypeError(
                            f"{where}.{key} must be a str or int, got {type(value).__name__}"
                        )
                    value = str(value)
                if not value:
                    raise MessageError(f"{where}.{key} must not be empty")
            elif (
                key in _MAPPING_KEYS and type(value) is not dict and not isinstance(value, Mapping)
            ):
                raise MessageTypeError(
                    f"{where}.{key} must be a dict (or other Mapping), got {type(value).__name__}"
                )
            out[key] = value
        if "userId" not in out and "anonymousId" not in out:
            raise MessageError(f"{where} needs a userId or an anonymousId")
        for key in _REQUIRED.get(type_name, ()):
            if key not in out or (key == "event" and not (isinstance(out[key], str) and out[key])):
                raise MessageError(f"{where}.{key} is required")
        text = _splice_decimals(_to_json(out, where))
        if len(text) > self._max_bytes:
            raise MessageTooLargeError(
                f"{where} encodes to {len(text)} bytes, over max_message_bytes ({self._max_bytes})"
            )
        return new_id, text
