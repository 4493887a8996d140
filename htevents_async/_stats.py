"""Delivery statistics: the live counters, and the frozen snapshot users read."""

from __future__ import annotations

from collections.abc import Mapping
from typing import final

import attrs

__all__ = ["Counters", "Statistics"]


@final
@attrs.frozen(kw_only=True)
class Statistics:
    """A snapshot of a client's delivery counters, from ``client.statistics()``.

    Every accepted event is in exactly one place, so
    ``accepted == queued + in_flight + delivered + failed + sum(dropped.values())``.
    """

    accepted: int
    """Events that passed validation and encoding, and events a ``before_send``
    plugin dropped (counted in :attr:`dropped` too)."""
    queued: int
    """Events waiting in the queue."""
    in_flight: int
    """Events in batches being formed, sent or retried."""
    delivered: int
    """Events in batches the collector answered with a 2xx."""
    failed: int
    """Events in batches that got a final error or spent their retry budget."""
    dropped: Mapping[str, int]
    """Events dropped before delivery, by reason: ``queue_full``, ``disabled``,
    ``shutdown`` (still pending when the close deadline passed), ``fork``
    (inherited from the parent process), ``filtered`` (a ``before_send`` plugin
    returned ``None``), ``plugin_error`` (a ``before_send`` plugin raised)."""
    batches_delivered: int
    """Batches the collector answered with a 2xx."""
    batches_failed: int
    """Batches given up on."""
    attempts: int
    """Attempts to send a batch, retries included, whether or not they reached the
    collector (a refused connection is an attempt)."""
    requests: int
    """HTTP requests that reached the collector: the connection was made and the
    request was written, answered or not. Connect errors are not requests."""
    retries: int
    """Attempts that were retries of an earlier attempt."""
    bytes_sent: int
    """Request body bytes written to the collector (of :attr:`requests`), after compression."""
    consecutive_failures: int
    """Attempts that failed since the last one the collector answered with a 2xx or a
    final status: grows while the collector is unreachable or erroring, 0 when healthy."""
    last_error: str | None
    """Why the most recent unsuccessful attempt failed (``"ConnectError: …"``,
    ``"HTTP 503"``, …), with secrets redacted; ``None`` if none has failed yet."""

    @property
    def pending(self) -> int:
        """Events without a final outcome yet (``queued + in_flight``)."""
        return self.queued + self.in_flight

    @property
    def dropped_total(self) -> int:
        """Events dropped for any reason."""
        return sum(self.dropped.values())


@final
class Counters:
    """The mutable counters behind :class:`Statistics`; touched only on the client's loop."""

    __slots__ = (
        "accepted",
        "attempts",
        "batches_delivered",
        "batches_failed",
        "bytes_sent",
        "consecutive_failures",
        "delivered",
        "dropped",
        "failed",
        "in_flight",
        "last_error",
        "requests",
        "retries",
    )

    def __init__(self) -> None:
        self.accepted = 0
        self.in_flight = 0
        self.delivered = 0
        self.failed = 0
        self.dropped: dict[str, int] = {}
        self.batches_delivered = 0
        self.batches_failed = 0
        self.attempts = 0
        self.requests = 0
        self.retries = 0
        self.bytes_sent = 0
        self.consecutive_failures = 0
        self.last_error: str | None = None

    def drop(self, reason: str, count: int = 1) -> None:
        """Count ``count`` events dropped for ``reason``."""
        self.dropped[reason] = self.dropped.get(reason, 0) + count

    def snapshot(self, queued: int) -> Statistics:
        """A frozen copy, with the queue length supplied by the owner of the queue."""
        return Statistics(
            accepted=self.accepted,
            queued=queued,
            in_flight=self.in_flight,
            delivered=self.delivered,
            failed=self.failed,
            dropped=dict(self.dropped),
            batches_delivered=self.batches_delivered,
            batches_failed=self.batches_failed,
            attempts=self.attempts,
            requests=self.requests,
            retries=self.retries,
            bytes_sent=self.bytes_sent,
            consecutive_failures=self.consecutive_failures,
            last_error=self.last_error,
        )
