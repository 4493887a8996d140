"""What the collector remembers: received messages, request records and counters, all bounded.

The store is synchronous and only used from the event loop's thread. Each accepted batch
takes its sequence numbers and enters the ring within one call, so the ring is always in
sequence order: a reader that asks for everything ``after`` a sequence number never misses
a message that arrived earlier but was stored later.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Final

from ._regulations import Regulations

DEFAULT_MAX_MESSAGES: Final = 100_000
"""Messages kept in memory by default."""
DEFAULT_MAX_BYTES: Final = 64 * 1024 * 1024
"""Bytes of message JSON kept in memory by default (Python objects take a few times more)."""
DEFAULT_DEDUPE_WINDOW: Final = 100_000
"""How many of the newest ``messageId`` values deduplication remembers."""


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
    size: int = 0
    """Bytes of JSON the message arrived as (its share of the batch body); what ``max_bytes``
    counts."""


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
    body: Any
    """The decoded JSON body (an object; for ODP an array), or None when it could not be
    decoded."""
    status: int
    """The HTTP status the collector answered with."""
    error: str | None = None
    """Why the request was refused, or None when it was accepted."""

    def __repr__(self) -> str:
        # Headers and body carry the write key; reprs end up in test reports and logs.
        batch = self.body.get("batch") if isinstance(self.body, dict) else self.body
        size = len(batch) if isinstance(batch, list) else None
        return (
            f"<RequestRecord status={self.status} gzip={self.gzip} body_size={self.body_size}"
            f" messages={size} error={self.error!r}>"
        )


@dataclass(frozen=True, slots=True)
class CollectorStats:
    """Counters and limits of a collector, as served by ``GET /stats``."""

    messages: int
    """Messages accepted, including those loaded from the database at start; duplicates
    dropped by deduplication are not counted."""
    by_type: dict[str, int]
    """``messages`` broken down by message type."""
    retained: int
    """Messages currently held in memory (the newest, within both limits)."""
    retained_bytes: int
    """Bytes of JSON the retained messages arrived as."""
    evicted: int
    """Messages accepted since start that no longer fit the limits and left memory."""
    duplicates: int
    """Messages since start whose ``messageId`` had already been seen (dropped unless
    duplicates are kept)."""
    requests: int
    """Batch requests received since start, accepted or not."""
    rejected: int
    """Batch requests answered with an error status since start."""
    bytes_received: int
    """Body bytes received on the wire since start."""
    max_messages: int
    """The retention limit by count."""
    max_bytes: int
    """The retention limit by bytes of JSON as received."""
    keep_duplicates: bool
    """Whether messages with an already seen ``messageId`` are stored anyway."""
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
    evicted: int = 0
    duplicates: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    received: int = 0
    received_by_type: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A request's messages, numbered and encoded but not yet visible (see ``prepare``)."""

    events: list[StoredEvent]
    """The messages to store, with the sequence numbers they will have."""
    ids: list[str]
    """The new ``messageId`` values, remembered once the events are committed."""
    duplicates: int
    """How many messages of the request repeat a ``messageId`` already seen."""


def encode_message(message: Mapping[str, Any]) -> str:
    """The stored form of a message: compact JSON, non-ASCII escaped.

    Escaping keeps lone surrogates (valid in a JSON string, invalid in UTF-8) lossless all
    the way to SQLite and back out of ``GET /v1/events``.
    """
    return json.dumps(message, ensure_ascii=True, separators=(",", ":"))


class _SeenIds:
    """The newest ``window`` message ids, for deduplication in bounded memory."""

    def __init__(self, window: int) -> None:
        self._window = window
        self._ids: set[str] = set()
        self._order: deque[str] = deque()

    def __contains__(self, message_id: str) -> bool:
        return message_id in self._ids

    def add(self, message_id: str) -> None:
        if message_id in self._ids:
            return
        if len(self._order) >= self._window:
            self._ids.discard(self._order.popleft())
        self._ids.add(message_id)
        self._order.append(message_id)


def _matches_user(message: Mapping[str, Any], user_id: str, contains: bool) -> bool:
    # Ids may be ints on the wire while query strings are always text.
    for key in ("userId", "anonymousId"):
        value = message.get(key)
        if value is None:
            continue
        text = str(value)
        if (user_id in text.casefold()) if contains else text == user_id:
            return True
    return False


def _matches_event(message: Mapping[str, Any], event: str, contains: bool) -> bool:
    value = message.get("event")
    if not isinstance(value, str):
        return False
    return event in value.casefold() if contains else value == event


class EventStore:
    """Bounded in-memory storage for received messages and request records.

    Messages are kept newest first within two limits, ``max_messages`` and ``max_bytes`` (of
    their JSON), and deduplicated by ``messageId`` over the newest ``dedupe_window`` ids
    unless ``keep_duplicates``.

    Storing is two steps, so that a sink (the SQLite file) sees a batch before anyone else:
    :meth:`prepare` numbers and encodes, :meth:`commit` makes the events visible. The caller
    must not let another ``prepare`` run in between (the app holds a lock across its write).

    Counters of what arrived *in this run* (:attr:`received`) are updated when a request is
    recorded, after its messages are stored and persisted, so that a waiter woken by them
    also finds the request record.
    """

    def __init__(
        self,
        *,
        max_messages: int = DEFAULT_MAX_MESSAGES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_requests: int = 1_000,
        keep_duplicates: bool = False,
        dedupe_window: int = DEFAULT_DEDUPE_WINDOW,
    ) -> None:
        """Keep at most ``max_messages`` messages of ``max_bytes`` and ``max_requests`` records."""
        for name, value in (
            ("max_messages", max_messages),
            ("max_bytes", max_bytes),
            ("max_requests", max_requests),
            ("dedupe_window", dedupe_window),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer of at least 1, got {value!r}")
        self._max_messages = max_messages
        self._max_bytes = max_bytes
        self._keep_duplicates = keep_duplicates
        self._events: deque[StoredEvent] = deque()
        self._bytes = 0
        self._seen = _SeenIds(dedupe_window)
        self._requests: deque[RequestRecord] = deque(maxlen=max_requests)
        self._last_seq = 0
        self._counters = _Counters()
        self._waiters: set[asyncio.Future[None]] = set()
        self.regulations = Regulations()
        """User suppressions: their messages are counted, never stored."""

    @property
    def last_seq(self) -> int:
        """The sequence number of the newest stored message, 0 when there is none."""
        return self._last_seq

    @property
    def received(self) -> int:
        """How many messages were accepted since start (loaded ones and duplicates excluded)."""
        return self._counters.received

    def received_of_type(self, type: str) -> int:
        """How many messages of one type were accepted since start."""
        return self._counters.received_by_type[type]

    def preload(
        self, events: Sequence[StoredEvent], counts: Mapping[str, int], last_seq: int = 0
    ) -> None:
        """Seed the store with events, per-type counts and the last sequence number read
        back from the database; their message ids count as seen."""
        if self._last_seq:
            raise RuntimeError("preload() must come before any message is stored")
        self._append(events)
        self._counters.by_type.update(counts)
        self._counters.evicted = 0  # what did not fit was never in memory in this run
        for stored in events:
            message_id = stored.message.get("messageId")
            if isinstance(message_id, str) and message_id:
                self._seen.add(message_id)
        self._last_seq = max(last_seq, events[-1].seq if events else 0)

    def prepare(
        self, messages: Sequence[Mapping[str, Any]], received_at: str, body_bytes: int = 0
    ) -> Prepared:
        """Number the messages and stamp ``receivedAt``, leaving duplicates out.

        Each message counts for its share of ``body_bytes``, the size of the decoded batch
        body: exact for the batch as a whole, and free, where encoding every message again
        to measure it would cost the collector about a fifth of its throughput.

        Nothing is visible until :meth:`commit`; a prepared batch that is never committed
        leaves no trace, so a failed write followed by a retry stores one copy.
        """
        messages = self.regulations.admit(messages)
        share, extra = divmod(body_bytes, len(messages)) if messages else (0, 0)
        events: list[StoredEvent] = []
        ids: list[str] = []
        batch_ids: set[str] = set()
        duplicates = 0
        seq = self._last_seq
        for index, message in enumerate(messages):
            message_id = message.get("messageId")
            if isinstance(message_id, str) and message_id:
                if message_id in self._seen or message_id in batch_ids:
                    duplicates += 1
                    if not self._keep_duplicates:
                        continue
                else:
                    batch_ids.add(message_id)
                    ids.append(message_id)
            seq += 1
            # A copy, so that the request record keeps the body exactly as it was sent.
            stored = {**message, "receivedAt": received_at}
            events.append(StoredEvent(seq, stored, share + (index < extra)))
        return Prepared(events, ids, duplicates)

    def commit(self, prepared: Prepared) -> list[StoredEvent]:
        """Make prepared events visible and remember their ids; return the events."""
        events = prepared.events
        if events and events[0].seq != self._last_seq + 1:
            raise RuntimeError("a batch was prepared before the previous one was committed")
        for message_id in prepared.ids:
            self._seen.add(message_id)
        self._append(events)
        if events:
            self._last_seq = events[-1].seq
        self._counters.duplicates += prepared.duplicates
        return events

    def add_messages(
        self, messages: Sequence[Mapping[str, Any]], received_at: str, body_bytes: int = 0
    ) -> list[StoredEvent]:
        """Prepare and commit at once, for callers without a sink; return what was stored."""
        return self.commit(self.prepare(messages, received_at, body_bytes))

    def _append(self, events: Iterable[StoredEvent]) -> None:
        ring = self._events
        for event in events:
            ring.append(event)
            self._bytes += event.size
        evicted = 0
        while ring and (len(ring) > self._max_messages or self._bytes > self._max_bytes):
            self._bytes -= ring.popleft().size
            evicted += 1
        self._counters.evicted += evicted

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
        before: int | None = None,
        limit: int | None = None,
        newest_first: bool = False,
        contains: bool = False,
    ) -> list[StoredEvent]:
        """Return the stored events that match every given filter.

        ``user_id`` matches ``userId`` or ``anonymousId``; ``event`` matches a track event
        name; both are exact, or case-insensitive substrings with ``contains``. ``after``
        and ``before`` bound sequence numbers (exclusive); ``limit`` keeps the newest ones.
        """
        if contains:
            user_id = user_id.casefold() if user_id is not None else None
            event = event.casefold() if event is not None else None
        # Walking from the newest end lets a poll with a recent ``after`` stop almost at once.
        found: list[StoredEvent] = []
        for stored in reversed(self._events):
            if stored.seq <= after or (limit is not None and len(found) >= limit):
                break
            if before is not None and stored.seq >= before:
                continue
            message = stored.message
            if type is not None and message.get("type") != type:
                continue
            if event is not None and not _matches_event(message, event, contains):
                continue
            if user_id is not None and not _matches_user(message, user_id, contains):
                continue
            found.append(stored)
        if not newest_first:
            found.reverse()
        return found

    def remove_user(self, user_id: str) -> int:
        """Forget the stored messages whose ``userId`` is ``user_id``; return how many."""
        kept = deque(
            e
            for e in self._events
            if e.message.get("userId") is None or str(e.message["userId"]) != user_id
        )
        removed = len(self._events) - len(kept)
        if removed:
            self._events = kept
            self._bytes = sum(e.size for e in kept)
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
            retained_bytes=self._bytes,
            evicted=counters.evicted,
            duplicates=counters.duplicates,
            requests=counters.requests,
            rejected=counters.rejected,
            bytes_received=counters.bytes_received,
            max_messages=self._max_messages,
            max_bytes=self._max_bytes,
            keep_duplicates=self._keep_duplicates,
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
