"""The contracts between the engine and what plugs into it.

* A wire protocol: the batcher and the transport see it only through
  :class:`WireProtocol`: its :class:`Limits`, the :class:`RequestSpec` a request
  is built from, and the :class:`Verdict` it gives on each answer. They never ask
  which protocol runs.
* Where events are kept: the batcher calls a :class:`Store` at the points where
  events are accepted, settled and left over at shutdown, and lets it feed the
  queue; it never knows whether the store is memory alone
  (:class:`~htevents_async._store.MemoryStore`) or a disk spool behind the queue
  (``_spool.SqliteStore``).
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, final, runtime_checkable

import attrs

from ._batch import Entry
from ._errors import DeliveryError
from ._retry import is_retryable_status, is_success, parse_retry_after

if TYPE_CHECKING:
    from ._messages import Message

__all__ = [
    "Admit",
    "Disposition",
    "Limits",
    "MessageEncoder",
    "RequestSpec",
    "Store",
    "Verdict",
    "WireProtocol",
    "classify_status",
]


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


#: Puts an entry read back from the store into the queue; ``False`` when it is full.
Admit = Callable[[Entry], bool]


class Disposition(enum.Enum):
    """What became of a batch once the transport had an outcome for it."""

    DELIVERED = "delivered"
    """The collector accepted it."""
    FAILED = "failed"
    """Given up on and gone (no spool to keep it)."""
    DEAD_LETTERED = "dead_lettered"
    """Given up on, and kept apart by the store with the reason (a final status)."""
    RETRY_LATER = "retry_later"
    """Not final: the store keeps the events and feeds them to the queue again later."""


class Store(Protocol):
    """Where accepted events are kept, besides the queue; all methods run on the loop."""

    def start(
        self, admit: Admit, room: Callable[[], int], drop: Callable[[list[Entry], str], None]
    ) -> None:
        """Begin feeding the queue through ``admit`` whenever ``room()`` says it has space;
        ``drop`` reports events the store can no longer keep (counted, logged, hooks)."""

    def accept(self, entry: Entry, queued: bool) -> bool:
        """Record an accepted entry. ``queued`` says whether the queue took it; if it did
        not, returns whether the store keeps it anyway (else overflow applies)."""

    @property
    def behind(self) -> bool:
        """Whether producers should pace themselves (see :meth:`pace`) even with room."""

    def pace(self) -> Coroutine[Any, Any, None]:
        """What a producer awaits when the queue is at least half full: a bare yield, or
        a short wait while the store catches up with what it has been given."""

    def settle(self, batch: Sequence[Entry], error: DeliveryError | None) -> Disposition:
        """Record a batch's outcome and say what became of its events."""

    def release(self, entries: Sequence[Entry]) -> bool:
        """At shutdown: whether the store keeps these undelivered entries (else they are
        dropped as ``shutdown``)."""

    async def drain(self, flush: Callable[[float], Awaitable[int]], timeout: float) -> int:
        """Run ``flush`` until the store has nothing waiting either, within ``timeout``;
        return how many events are still pending."""

    async def commit(self, timeout: float) -> int:
        """Wait until every event accepted so far is durable; return how many are not yet
        at ``timeout`` (0 when all are, and always 0 when nothing is ever durable)."""

    async def aclose(self, timeout: float) -> None:
        """Stop feeding the queue and make what is left durable, within ``timeout``."""

    def abandon(self) -> None:
        """In a forked child: let go of the parent's resources without touching them."""
