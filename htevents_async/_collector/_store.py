"""What the collector remembers: received messages, request records and counters, all bounded.

The store is synchronous and only used from the event loop's thread. Each accepted batch
takes its sequence numbers and enters the ring within one call, so the ring is always in
sequence order: a reader that asks for everything ``after`` a sequence number never misses
a message that arrived earlier but was stored later.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from ._regulations import Regulations


def utc_now_iso() -> str:
    """The current time as ISO-8601 in UTC with milliseconds, the way the wire format writes it."""
    now = datetime.now(timezone.utc)
    return now.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One received message and its place in arrival order."""

    seq: int
    """Sequence number, increasing by one per message, kept across restarts with a database."""
    message: dict[str, Any]
    """The message as the client sent it, plus ``receivedAt``."""


@dataclass(frozen=True, slots=True, repr=False)
class RequestRecord:
    """What one ``POST /v1/batch`` looked like on the wire, and how the collector answered."""

    received_at: str
    """When the request arrived (ISO-8601, UTC)."""
    headers: dict[str, str]
    """Request headers with lower-case names; repeated headers are joined with ``", "``."""
    gzip: bool
    """Whether the body was sent with ``Content-Encoding: gzip``."""
    body_size: int
    """Bytes of body on the wire (compressed size for gzip)."""
    body: dict[str, Any] | None
    """The decoded JSON body, or None when it could not be decoded."""
    status: int
    """The HTTP status the collector answered with."""
    error: str | None = None
    """Why the request was refused, or None when it was accepted."""

    def __repr__(self) -> str:
        # Headers and body carry the write key; reprs end up in test reports and logs.
        batch = self.body.get("batch") if self.body is not None else None
        size = len(batch) if isinstance(batch, list) else None
        return (
            f"<RequestRecord status={self.status} gzip={self.gzip} body_size={self.body_size}"
            f" messages={size} error={self.error!r}>"
        )


@dataclass(frozen=True, slots=True)
class CollectorStats:
    """Counters of a collector, as served by ``GET /stats``."""

    messages: int
    """Messages accepted, including those loaded from the database at start."""
    by_type: dict[str, int]
    """``messages`` broken down by message type."""
    retained: int
    """Messages currently held in memory (the ring keeps the newest)."""
    requests: int
    """Batch requests received since start, accepted or not."""
    rejected: int
    """Batch requests answered with an error status since start."""
    bytes_received: int
    """Body bytes received on the wire since start."""
    suppressed: int = 0
    """Messages dropped since start because a regulation suppresses their user."""
    regulations: int = 0
    """Regulations (user deletions and suppressions) in force."""

    def as_dict(self) -> dict[str, Any]:
        """The counters as a JSON-ready dict."""
        return asdict(self)


@dataclass(slots=True)
class _Counters:
    requests: int = 0
    rejected: int = 0
    bytes_received: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    received: int = 0
    received_by_type: Counter[str] = field(default_factory=Counter)


def _matches_user(message: Mapping[str, Any], user_id: str) -> bool:
    # Ids may be ints on the wire while query strings are always text.
    return any(
        (value := message.get(key)) is not None and str(value) == user_id
        for key in ("userId", "anonymousId")
    )


class EventStore:
    """Bounded in-memory storage for received messages and request records.

    Counters of what arrived *in this run* (:attr:`received`) are updated when a request is
    recorded, after its messages are stored and persisted, so that a waiter woken by them
    also finds the request record.
    """

    def __init__(self, *, max_messages: int = 100_000, max_requests: int = 1_000) -> None:
        """Keep at most ``max_messages`` messages and ``max_requests`` records, newest kept."""
        if max_messages < 1 or max_requests < 1:
            raise ValueError("max_messages and max_requests must be at least 1")
        self._events: deque[StoredEvent] = deque(maxlen=max_messages)
        self._requests: deque[RequestRecord] = deque(maxlen=max_requests)
        self._last_seq = 0
        self._counters = _Counters()
        self._waiters: set[asyncio.Future[None]] = set()
        self.regulations = Regulations()
        """User suppressions: their messages are counted, never stored."""

    @property
    def last_seq(self) -> int:
        """The sequence number of the newest message, 0 when there is none."""
        return self._last_seq

    @property
    def received(self) -> int:
        """How many messages were accepted since start (loaded ones excluded)."""
        return self._counters.received

    def received_of_type(self, type: str) -> int:
        """How many messages of one type were accepted since start."""
        return self._counters.received_by_type[type]

    def preload(self, events: Sequence[StoredEvent], counts: Mapping[str, int]) -> None:
        """Seed the store with events and per-type counts read back from the database."""
        if self._last_seq:
            raise RuntimeError("preload() must come before any message is stored")
        self._events.extend(events)
        self._counters.by_type.update(counts)
        if events:
            self._last_seq = events[-1].seq

    def add_messages(
        self, messages: Iterable[Mapping[str, Any]], received_at: str
    ) -> list[StoredEvent]:
        """Number the messages, stamp ``receivedAt`` and store them; return what was stored."""
        stored = []
        for message in self.regulations.admit(messages):
            self._last_seq += 1
            # A copy, so that the request record keeps the body exactly as it was sent.
            event = StoredEvent(self._last_seq, {**message, "receivedAt": received_at})
            self._events.append(event)
            stored.append(event)
        return stored

    def add_request(self, record: RequestRecord, accepted: Sequence[StoredEvent] = ()) -> None:
        """Record a finished request, count the messages it delivered, and wake waiters."""
        counters = self._counters
        self._requests.append(record)
        counters.requests += 1
        counters.bytes_received += record.body_size
        if record.status >= 400:
            counters.rejected += 1
        for event in accepted:
            kind = event.message["type"]
            counters.by_type[kind] += 1
            counters.received_by_type[kind] += 1
        counters.received += len(accepted)
        self._wake()

    def events(
        self,
        *,
        type: str | None = None,
        user_id: str | None = None,
        event: str | None = None,
        after: int = 0,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[StoredEvent]:
        """Return the stored events that match every given filter.

        ``user_id`` matches ``userId`` or ``anonymousId``; ``event`` matches a track event
        name; ``after`` keeps sequence numbers above it; ``limit`` keeps the newest ones.
        """
        # Walking from the newest end lets a poll with a recent ``after`` stop almost at once.
        found: list[StoredEvent] = []
        for stored in reversed(self._events):
            if stored.seq <= after or (limit is not None and len(found) >= limit):
                break
            message = stored.message
            if type is not None and message.get("type") != type:
                continue
            if event is not None and message.get("event") != event:
                continue
            if user_id is not None and not _matches_user(message, user_id):
                continue
            found.append(stored)
        if not newest_first:
            found.reverse()
        return found

    def remove_user(self, user_id: str) -> int:
        """Forget the stored messages whose ``userId`` is ``user_id``; return how many."""
        kept = [e for e in self._events if str(e.message.get("userId")) != user_id]
        removed = len(self._events) - len(kept)
        if removed:
            self._events = deque(kept, maxlen=self._events.maxlen)
        return removed

    def requests(self) -> list[RequestRecord]:
        """The request records still held, oldest first."""
        return list(self._requests)

    def stats(self) -> CollectorStats:
        """A snapshot of the counters."""
        counters = self._counters
        return CollectorStats(
            messages=sum(counters.by_type.values()),
            by_type=dict(sorted(counters.by_type.items())),
            retained=len(self._events),
            requests=counters.requests,
            rejected=counters.rejected,
            bytes_received=counters.bytes_received,
            suppressed=self.regulations.suppressed,
            regulations=len(self.regulations),
        )

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate()`` is true, re-checking it each time a request is recorded."""
        loop = asyncio.get_running_loop()
        while not predicate():
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.add(waiter)
            try:
                await waiter
            finally:
                self._waiters.discard(waiter)

    def _wake(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()
