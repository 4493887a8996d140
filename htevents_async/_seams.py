"""The seams between the engine's parts: what the batcher sees of where events are kept.

The batcher calls a :class:`Store` at the points where events are accepted,
settled and left over at shutdown, and lets it feed the queue; it never knows
whether the store is memory alone (:class:`~htevents_async._store.MemoryStore`)
or a disk spool behind the queue (``_spool.SqliteStore``).
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Protocol

from ._batch import Entry
from ._errors import DeliveryError

__all__ = ["Admit", "Disposition", "Store"]

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

    def start(self, admit: Admit, room: Callable[[], int]) -> None:
        """Begin feeding the queue through ``admit`` whenever ``room()`` says it has space."""

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
