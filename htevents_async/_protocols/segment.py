"""The Segment spec: ``POST {host}/v1/batch`` (Hightouch, Segment, RudderStack).

Limits, from Segment's HTTP Tracking API documentation ("Max request size"): 32 KB
per event and 500 KB per batch request, answered ``400 Bad Request`` past them;
and 2,500 events per batch, past which ``/v1/batch`` answers 200 and drops the
events. The batch cap here is 475,000 bytes, as ``analytics-python``'s consumer
keeps, leaving room for what the envelope adds.

Authentication is HTTP Basic with the write key as the user name; the body also
carries ``writeKey`` and a per-attempt ``sentAt``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any, final

from .._batch import message_id_of
from .._encoding import Encoder, now_iso
from .._errors import MessageError
from .._messages import Message
from .._seams import Limits, RequestSpec, Verdict, classify_status
from .._version import __version__

__all__ = ["SegmentProtocol"]

USER_AGENT = f"htevents-async/{__version__}"


class _SegmentEncoder(Encoder):
    """The shared encoder, refusing the messages only another protocol can carry."""

    __slots__ = ()

    def encode(self, message: Message) -> tuple[str, str]:
        if message.type not in _SEGMENT_TYPES:
            raise MessageError(
                f"{type(message).__name__} cannot be sent with protocol='segment'"
                f" (it needs protocol={message.type!r})"
            )
        return super().encode(message)


_SEGMENT_TYPES = frozenset({"identify", "track", "page", "screen", "group", "alias"})


@final
class SegmentProtocol:
    """The Segment-spec ``/v1/batch`` API: the default protocol."""

    name = "segment"
    default_path = "/v1/batch"
    limits: Limits = Limits(message_bytes=32 * 1024, batch_bytes=500_000, batch_events=2_500)

    def __repr__(self) -> str:
        return "<SegmentProtocol>"

    def encoder(self, max_message_bytes: int) -> Encoder:
        """The shared encoder: its output is the Segment wire form."""
        return _SegmentEncoder(max_message_bytes)

    def request(self, write_key: str, url: str) -> RequestSpec:
        """Basic auth, and ``{"batch":[…],"sentAt":…,"writeKey":…}``."""
        token = base64.b64encode(f"{write_key}:".encode()).decode()
        after = b'","writeKey":' + json.dumps(write_key).encode() + b"}"

        def tail() -> bytes:
            return b'],"sentAt":"' + now_iso().encode() + after

        head = b'{"batch":['
        return RequestSpec(
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Basic {token}",
                "User-Agent": USER_AGENT,
            },
            head=head,
            tail=tail,
            overhead=len(head) + len(tail()),
            secrets=(write_key, token, json.dumps(write_key)[1:-1]),
        )

    def classify(self, status: int, headers: Mapping[str, str], body: bytes) -> Verdict:
        """The status decides alone."""
        return classify_status(status, headers)

    def message_id_of(self, text: str) -> str:
        """The ``messageId``."""
        return message_id_of(text)

    def decode_body(self, body: bytes) -> list[dict[str, Any]]:
        """The ``batch`` array."""
        batch = json.loads(body).get("batch")
        return list(batch) if isinstance(batch, list) else []
