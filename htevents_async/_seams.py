"""The contracts between the engine and what plugs into it.

The batcher and the transport see a wire protocol only through :class:`WireProtocol`:
its :class:`Limits`, the :class:`RequestSpec` a request is built from, and the
:class:`Verdict` it gives on each answer. They never ask which protocol runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol, final, runtime_checkable

import attrs

from ._retry import is_retryable_status, is_success, parse_retry_after

if TYPE_CHECKING:
    from ._messages import Message

__all__ = ["Limits", "MessageEncoder", "RequestSpec", "Verdict", "WireProtocol", "classify_status"]


@final
@attrs.frozen(kw_only=True)
class Limits:
    """What one collector API accepts; :class:`~htevents_async.Config` may only lower these."""

    message_bytes: int
    """Most bytes one encoded event may take."""
    batch_bytes: int
    """Most bytes one request body may take, before compression."""
    batch_events: int
    """Most events one request may carry."""


@final
@attrs.frozen(kw_only=True)
class RequestSpec:
    """Everything the transport needs to post a batch: it knows nothing else of the API."""

    headers: Mapping[str, str]
    """Request headers, authentication included (``Content-Encoding`` is the transport's)."""
    head: bytes
    """Body bytes before the comma-joined events."""
    tail: Callable[[], bytes]
    """Body bytes after the events, written per attempt (a ``sentAt`` stamp, for example)."""
    overhead: int
    """Bytes ``head`` and ``tail()`` add to a body, at most."""
    secrets: tuple[str, ...] = ()
    """Texts that must never appear in an error message or a log line."""


@final
@attrs.frozen
class Verdict:
    """How one answer is taken: delivered, worth a retry (after ``retry_after``), or final."""

    outcome: Literal["delivered", "retry", "final"]
    """``"delivered"``: the events are the collector's; ``"retry"``: send the same body
    again; ``"final"``: give the batch up (``on_failure`` with an ``HTTPStatusError``)."""
    retry_after: float | None = None
    """Seconds the collector asked to wait before the retry, when it said."""
    reason: str | None = None
    """Why a 2xx answer is not a delivery (the collector dropped the events)."""


DELIVERED = Verdict("delivered")


def classify_status(status: int, headers: Mapping[str, str]) -> Verdict:
    """The common reading of an answer: 2xx delivered, 408/429/5xx retried, the rest final."""
    if is_success(status):
        return DELIVERED
    if is_retryable_status(status):
        return Verdict("retry", parse_retry_after(headers.get("retry-after")))
    return Verdict("final")


class MessageEncoder(Protocol):
    """Turns messages into one protocol's JSON text, once, at the call site."""

    def encode(self, message: Message) -> tuple[str, str]:
        """``(message_id, text)`` for ``message``, or raise a :class:`~htevents_async.MessageError`.

        The text must be pure ASCII, so that its length is its size in bytes.
        """
        ...

    def encode_plain(self, type_name: str, fields: dict[str, Any], owner: str) -> tuple[str, str]:
        """:meth:`encode` for a plain ``identify`` or ``track``: a generated id, the time of
        the call, no context or integrations, and ``fields`` in the canonical (Segment
        spec) names ``userId``, ``event``, ``properties``, ``traits``."""
        ...


@runtime_checkable
class WireProtocol(Protocol):
    """One collector API: its envelope, authentication, encoding, limits and answers.

    The built-in ones are ``"segment"``, ``"posthog"`` and ``"odp"``; an object with
    these members may be passed as ``protocol=`` instead.
    """

    name: str
    """A short name, shown by the collector and recorded with spooled events."""
    default_path: str
    """The batch endpoint's path, used when ``Config.path`` is not given."""
    limits: Limits
    """The API's documented caps."""

    def encoder(self, max_message_bytes: int) -> MessageEncoder:
        """The encoder for a client refusing events above ``max_message_bytes``."""
        ...

    def request(self, write_key: str, url: str) -> RequestSpec:
        """The fixed parts of every request to ``url`` with ``write_key``."""
        ...

    def classify(self, status: int, headers: Mapping[str, str], body: bytes) -> Verdict:
        """How to take an answer; ``body`` is its start, as sent (up to 64 KiB)."""
        ...

    def message_id_of(self, text: str) -> str:
        """The id of one encoded event (deduplication key on the collector)."""
        ...

    def decode_body(self, body: bytes) -> list[dict[str, Any]]:
        """The events of a request body (uncompressed), for tests and the collector."""
        ...
