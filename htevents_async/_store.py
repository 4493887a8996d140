"""The store of a client without a spool: the queue is all there is."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, final

from ._batch import Entry
from ._errors import DeliveryError
from ._seams import Admit, Disposition

__all__ = ["MemoryStore"]


@final
class MemoryStore:
    """Keeps nothing beyond the queue: overflow applies when it is full, and nothing is
    ever durable (``commit()`` returns 0 at once)."""

    def start(
        self, admit: Admit, room: Callable[[], int], drop: Callable[[list[Entry], str], None]
    ) -> None:
        """Nothing to feed the queue with."""

    def accept(self, entry: Entry, queued: bool) -> bool:
        """Keeps only what the queue took."""
        return queued

    @property
    def behind(self) -> bool:
        """Never: nothing to catch up with."""
        return False

    def pace(self) -> Coroutine[Any, Any, None]:
        """A bare yield, so the flusher runs."""
        return asyncio.sleep(0)

    def settle(self, batch: Sequence[Entry], error: DeliveryError | None) -> Disposition:
        """Delivered or failed, as the transport said."""
        return Disposition.DELIVERED if error is None else Disposition.FAILED

    def release(self, entries: Sequence[Entry]) -> bool:
        """Leftovers at shutdown are lost."""
        return False

    async def drain(self, flush: Callable[[float], Awaitable[int]], timeout: float) -> int:
        """Only the queue to flush."""
        return await flush(timeout)

    async def commit(self, timeout: float) -> int:
        """Nothing is durable: returns 0 at once."""
        return 0

    async def aclose(self, timeout: float) -> None:
        """Nothing to close."""

    def abandon(self) -> None:
        """Nothing inherited."""
