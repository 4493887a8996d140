"""Delivery hooks: their types, and the runner that keeps a bad hook from hurting delivery."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

if TYPE_CHECKING:
    from ._batch import Batch
    from ._errors import DeliveryError

__all__ = ["Callback", "HookRunner", "OnDrop", "OnFailure", "OnSuccess"]

from ._logging import RateLimitedLog, logger


class OnSuccess(Protocol):
    """``on_success(batch)``: the batch was accepted by the collector (any 2xx)."""

    def __call__(self, batch: Batch, /) -> Awaitable[None] | None: ...


class OnFailure(Protocol):
    """``on_failure(batch, error)``: the batch will not be delivered."""

    def __call__(self, batch: Batch, error: DeliveryError, /) -> Awaitable[None] | None: ...


class OnDrop(Protocol):
    """``on_drop(batch, reason)``: events dropped before delivery was attempted."""

    def __call__(self, batch: Batch, reason: str, /) -> Awaitable[None] | None: ...


#: A per-call ``callback(message_id, error)``; ``error`` is ``None`` on delivery.
Callback: TypeAlias = Callable[[str, "DeliveryError | None"], Awaitable[None] | None]

#: Seconds a cancelled hook may take to finish before a close stops waiting for it.
CANCEL_GRACE = 0.1

# Async hook calls running at once; past this, new calls are skipped and logged
# rather than piling up tasks behind a hook that hangs.
_MAX_PENDING_HOOKS = 1000


class HookRunner:
    """Calls user hooks so that none can raise into, stop or stall the flusher.

    Sync hooks run inline and must be quick; an exception is logged. A coroutine
    returned by a hook runs in its own task, cancelled after ``timeout`` seconds.
    """

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._tasks: set[asyncio.Task[None]] = set()
        self._skips = RateLimitedLog()

    def call(self, name: str, hook: Callable[..., Any], *args: Any) -> None:
        """Call ``hook(*args)``; never raises."""
        try:
            result = hook(*args)
        except Exception:
            logger.exception("htevents_async: %s hook raised; delivery continues", name)
            return
        if inspect.isawaitable(result):
            if len(self._tasks) >= _MAX_PENDING_HOOKS:
                self._skips.log(
                    logging.ERROR,
                    f"skip:{name}",
                    "htevents_async: %d hook calls still running; skipping this %s call",
                    len(self._tasks),
                    name,
                )
                _discard(result)
                return
            task = asyncio.get_running_loop().create_task(self._guard(name, result))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _guard(self, name: str, awaitable: Awaitable[Any]) -> None:
        try:
            await asyncio.wait_for(awaitable, self._timeout)
        except asyncio.TimeoutError:
            logger.error(
                "htevents_async: %s hook ran past %.1f s and was cancelled", name, self._timeout
            )
        except Exception:
            logger.exception("htevents_async: %s hook raised; delivery continues", name)

    async def drain(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for running async hooks, then cancel the rest.

        A hook that swallows its cancellation gets :data:`CANCEL_GRACE` seconds more
        and is then left behind (and logged), so it cannot hold up a close.
        """
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=max(timeout, 0.0))
        for task in pending:
            task.cancel()
        if pending:
            _, stuck = await asyncio.wait(pending, timeout=CANCEL_GRACE)
            if stuck:
                logger.error(
                    "htevents_async: %d hook calls ignored cancellation; left running", len(stuck)
                )


def _discard(awaitable: Awaitable[Any]) -> None:
    # A coroutine that is never awaited warns when collected; close it on purpose.
    close = getattr(awaitable, "close", None)
    if close is not None:
        close()
