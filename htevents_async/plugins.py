"""Ready-made ``before_send`` plugins: sample, drop by name, scrub, add context.

Pass one, or a list applied in order, as the ``before_send`` option::

    from htevents_async import Client, plugins

    events = Client(write_key, before_send=[
        plugins.drop_events({"Heartbeat"}),
        plugins.scrub(keys={"password"}),
        plugins.sample(0.1, key="userId"),
        plugins.add_context(app={"version": "1.4.2"}),
    ])

Each plugin gets the event as a wire-form ``dict`` (a copy the client made for
the plugins) and returns it, changed in place, or ``None`` to drop it.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Iterable
from typing import Any, final

from ._errors import ConfigError
from ._plugins import BeforeSend

__all__ = ["BeforeSend", "add_context", "drop_events", "sample", "scrub"]

#: What :func:`scrub` writes in place of a redacted value or match.
REDACTED = "[redacted]"
#: Matches email addresses in text: what :func:`scrub` redacts by default.
EMAIL_PATTERN = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")

# Keys that identify or frame the event: scrub leaves them alone (see scrub()).
_FRAME_KEYS = frozenset(
    {"type", "messageId", "timestamp", "userId", "anonymousId", "groupId", "previousId"}
)
_SCALE = float(1 << 64)


def _names(value: Iterable[str], what: str) -> frozenset[str]:
    # A bare string is an iterable of its letters: almost always a mistake.
    if isinstance(value, (str, bytes)):
        raise ConfigError(f"{what} must be a collection of str, not a single str {value!r}")
    names = frozenset(value)
    for name in names:
        if not isinstance(name, str):
            raise ConfigError(f"{what} must hold str, got {type(name).__name__} {name!r}")
    return names


@final
class _Sample:
    __slots__ = ("_key", "_random", "_rate")

    def __init__(self, rate: float, key: str | Callable[[dict[str, Any]], object] | None) -> None:
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
            raise ConfigError(f"sample() rate must be a number from 0 to 1, got {rate!r}")
        if key is not None and not isinstance(key, str) and not callable(key):
            raise ConfigError(f"sample() key must be a str, a callable or None, got {key!r}")
        self._rate = float(rate)
        self._key = key
        self._random = random.Random()

    def __repr__(self) -> str:
        return f"sample({self._rate!r}, key={self._key!r})"

    def __call__(self, event: dict[str, Any]) -> dict[str, Any] | None:
        key = self._key
        value = event.get(key) if isinstance(key, str) else None if key is None else key(event)
        if value is None:
            keep = self._random.random() < self._rate
        else:
            # A stable hash, unlike hash(): the same user is kept or dropped in
            # every process and on every run.
            digest = hashlib.blake2b(str(value).encode(), digest_size=8).digest()
            keep = int.from_bytes(digest, "big") / _SCALE < self._rate
        return event if keep else None


def sample(
    rate: float, *, key: str | Callable[[dict[str, Any]], object] | None = None
) -> BeforeSend:
    """Keep a fraction ``rate`` (0 to 1) of the events, dropping the rest as ``filtered``.

    Without ``key`` each event is kept at random. With ``key``, a wire key
    (``"userId"``) or a function of the event, the choice is a stable hash of
    that value: a user's events are all kept or all dropped, in every process.
    Events where the key is missing (``None``) are kept at random.
    """
    return _Sample(rate, key)


@final
class _DropEvents:
    __slots__ = ("_names",)

    def __init__(self, names: Iterable[str]) -> None:
        self._names = _names(names, "drop_events() names")

    def __repr__(self) -> str:
        return f"drop_events({sorted(self._names)!r})"

    def __call__(self, event: dict[str, Any]) -> dict[str, Any] | None:
        return None if event.get("type") == "track" and event.get("event") in self._names else event


def drop_events(names: Iterable[str]) -> BeforeSend:
    """Drop ``track`` events whose ``event`` name is one of ``names`` (exact match)."""
    return _DropEvents(names)


@final
class _Scrub:
    __slots__ = ("_keys", "_patterns")

    def __init__(self, keys: Iterable[str], patterns: Iterable[str | re.Pattern[str]]) -> None:
        self._keys = frozenset(key.casefold() for key in _names(keys, "scrub() keys"))
        if isinstance(patterns, (str, re.Pattern)):
            patterns = (patterns,)
        compiled: list[re.Pattern[str]] = []
        for pattern in patterns:
            if isinstance(pattern, str):
                try:
                    pattern = re.compile(pattern)
                except re.error as exc:
                    raise ConfigError(f"scrub() pattern {pattern!r} is not valid: {exc}") from None
            elif not isinstance(pattern, re.Pattern):
                raise ConfigError(f"scrub() patterns must be str or re.Pattern, got {pattern!r}")
            compiled.append(pattern)
        self._patterns = tuple(compiled)

    def __repr__(self) -> str:
        patterns = [p.pattern for p in self._patterns]
        return f"scrub(keys={sorted(self._keys)!r}, patterns={patterns!r})"

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        for key, value in event.items():
            if key not in _FRAME_KEYS:
                event[key] = self._clean(value)
        return event

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            for pattern in self._patterns:
                value = pattern.sub(REDACTED, value)
            return value
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str) and key.casefold() in self._keys:
                    value[key] = REDACTED
                else:
                    value[key] = self._clean(item)
            return value
        if isinstance(value, list):
            value[:] = [self._clean(item) for item in value]
            return value
        if isinstance(value, tuple):
            return tuple(self._clean(item) for item in value)
        return value


def scrub(
    *,
    keys: Iterable[str] = (),
    patterns: Iterable[str | re.Pattern[str]] = (EMAIL_PATTERN,),
) -> BeforeSend:
    """Redact personal data anywhere in the event: properties, traits, context, integrations.

    The value of every key named in ``keys`` (case-insensitive, at any depth)
    becomes ``"[redacted]"``, and every match of ``patterns`` inside a string
    value is replaced by it; by default, email addresses. The ids and the
    event's frame (``userId``, ``anonymousId``, ``groupId``, ``previousId``,
    ``type``, ``messageId``, ``timestamp``) are left alone: they tie events
    together, so pseudonymise them in a plugin of your own if they hold
    personal data. Values other than str, dict, list and tuple are not looked
    into.
    """
    return _Scrub(keys, patterns)


@final
class _AddContext:
    __slots__ = ("_values",)

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values

    def __repr__(self) -> str:
        return f"add_context({', '.join(self._values)})"

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        context = event.get("context")
        if not isinstance(context, dict):
            context = event["context"] = {} if context is None else dict(context)
        for key, value in self._values.items():
            if key not in context:
                # A copy per event: a later plugin may change it in place.
                context[key] = _copy_json(value)
        return event


def _copy_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _copy_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy_json(item) for item in value]
    return value


def add_context(**values: Any) -> BeforeSend:
    """Add ``values`` to each event's ``context`` (``app``, ``deployment``, …).

    Keys the event's context already has (from the call, or
    ``htevents_async.context()``) are kept: the call knows better.
    """
    return _AddContext(values)
