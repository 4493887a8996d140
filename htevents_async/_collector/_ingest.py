"""Turning the bytes of a ``POST /v1/batch`` into validated messages, or a precise rejection.

Everything here is pure and synchronous so that the contract the collector enforces can be
read, and tested, without a server: decode the body (gzip or plain), find the write key,
check the batch against the Segment spec as Hightouch accepts it (DESIGN.md section 3).
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from collections.abc import Mapping
from typing import Any, Final

MESSAGE_TYPES: Final = frozenset({"identify", "track", "page", "screen", "group", "alias"})
"""The ``type`` values a batch may carry."""

_GZIP_WBITS: Final = 16 + zlib.MAX_WBITS  # zlib's way of saying "expect a gzip header"


class IngestError(Exception):
    """A request the collector refuses: ``status`` is the HTTP status, the message says why."""

    #: The decoded body, when the request got as far as that (for the request record).
    body: Any = None

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        """The HTTP status to answer with (400 or 401)."""
        self.reason = reason
        """A human-readable reason, sent back as the JSON ``error`` field."""


def decompress(raw: bytes, content_encoding: str | None, *, max_bytes: int) -> tuple[bytes, bool]:
    """Undo ``Content-Encoding`` and return ``(body, was_gzip)``.

    Decompression stops as soon as the output exceeds ``max_bytes``, so a small gzip bomb
    cannot make the collector allocate its expanded size.
    """
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "identity":
        if len(raw) > max_bytes:
            raise IngestError(400, f"body is {len(raw)} bytes, over the {max_bytes} byte limit")
        return raw, False
    if encoding != "gzip":
        raise IngestError(400, f"unsupported Content-Encoding {content_encoding!r}")

    out = bytearray()
    remaining = raw
    # Concatenated gzip members are valid gzip, so decode member after member.
    while remaining:
        inflater = zlib.decompressobj(_GZIP_WBITS)
        try:
            out += inflater.decompress(remaining, max_bytes + 1 - len(out))
        except zlib.error as exc:
            raise IngestError(400, f"body is not valid gzip: {exc}") from None
        if len(out) > max_bytes:
            raise IngestError(400, f"decompressed body is over the {max_bytes} byte limit")
        if not inflater.eof:
            raise IngestError(400, "body is truncated gzip")
        remaining = inflater.unused_data
    return bytes(out), True


def parse_body(body: bytes) -> dict[str, Any]:
    """Parse the JSON body and check that it is an object."""
    try:
        parsed = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IngestError(400, f"body is not valid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise IngestError(400, f"body must be a JSON object, got {type(parsed).__name__}")
    return parsed


def key_from_authorization(header: str | None) -> str | None:
    """Return the write key from ``Authorization: Basic base64(key + ":")``, or None if absent.

    A header that is present but not decodable Basic credentials is rejected with 401,
    because a client that sends it certainly meant to authenticate.
    """
    if header is None:
        return None
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "basic":
        raise IngestError(401, f"unsupported Authorization scheme {scheme!r}")
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise IngestError(401, "Authorization header is not valid Basic credentials") from None
    key, _, _password = decoded.partition(":")
    return key or None


def check_write_key(header_key: str | None, body: Mapping[str, Any], expected: str | None) -> str:
    """Return the write key the request authenticates with, or raise a 401.

    The key may come from Basic auth, the body's ``writeKey``, or both (our client sends
    both). When the collector expects a key, every key the request presents must match.
    """
    body_key = body.get("writeKey")
    if body_key is not None and not isinstance(body_key, str):
        raise IngestError(400, f"writeKey must be a string, got {type(body_key).__name__}")
    presented = [key for key in (header_key, body_key) if key]
    if not presented:
        raise IngestError(401, "missing write key (Basic auth or body writeKey)")
    if expected is not None and any(key != expected for key in presented):
        # Never echo the key: the error reaches logs and the request record.
        raise IngestError(401, "invalid write key")
    return presented[0]


def _has_id(value: object) -> bool:
    # Ids may be str or int (user_id=0 is valid); bool is an int subclass but never an id.
    return (isinstance(value, str) and value != "") or (
        isinstance(value, int) and not isinstance(value, bool)
    )


def validate_batch(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Return the body's messages if all are acceptable, else raise a 400 naming the first bad one.

    A batch is accepted or refused as a whole, so a client never has to guess which part of a
    rejected request was stored.
    """
    batch = body.get("batch")
    if not isinstance(batch, list):
        raise IngestError(400, f"batch must be a list, got {type(batch).__name__}")
    messages: list[dict[str, Any]] = []
    for index, message in enumerate(batch):
        where = f"batch[{index}]"
        if not isinstance(message, dict):
            raise IngestError(400, f"{where} must be an object, got {type(message).__name__}")
        kind = message.get("type")
        if not isinstance(kind, str) or kind not in MESSAGE_TYPES:
            allowed = ", ".join(sorted(MESSAGE_TYPES))
            raise IngestError(400, f"{where}.type must be one of {allowed}, got {kind!r}")
        _check_fields(where, kind, message)
        messages.append(message)
    return messages


def _check_fields(where: str, kind: str, message: Mapping[str, Any]) -> None:
    if kind == "alias":
        for field in ("previousId", "userId"):
            if not _has_id(message.get(field)):
                raise IngestError(400, f"{where}.{field} is required for alias")
        return
    if not (_has_id(message.get("userId")) or _has_id(message.get("anonymousId"))):
        raise IngestError(400, f"{where} needs a userId or an anonymousId")
    if kind == "track":
        event = message.get("event")
        if not isinstance(event, str) or not event:
            raise IngestError(400, f"{where}.event must be a non-empty string for track")
    elif kind == "group" and not _has_id(message.get("groupId")):
        raise IngestError(400, f"{where}.groupId is required for group")
