"""Watch a client while a command waits on it: report outages as they happen, give up early.

The client's :meth:`~htevents_async.Client.statistics` already know what a
user needs (``consecutive_failures``, ``last_error``, ``pending``); polling
them a few times a second costs nothing next to delivery, and keeps the
command's output in one place instead of in hooks on the flusher's path.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import attrs

if TYPE_CHECKING:
    from .._client import Client
    from .._stats import Statistics

__all__ = ["OutageWatch", "describe_failure"]

#: Seconds between two looks at the client's statistics.
POLL_INTERVAL: Final = 0.2
#: Seconds between two "still unreachable" lines during one outage.
REPEAT_EVERY: Final = 5.0


def events(count: int) -> str:
    """``1 event``, ``2,000 events``."""
    return f"{count:,} event{'' if count == 1 else 's'}"


def describe_failure(last_error: str | None) -> str:
    """``collector unreachable (ConnectError: …)`` or ``collector answered HTTP 503``."""
    if last_error is None:
        return "collector failing"
    if last_error.startswith("HTTP "):
        return f"collector answered {last_error}"
    return f"collector unreachable ({last_error})"


@attrs.define
class OutageWatch:
    """Polls a client's statistics while a task runs; says when delivery fails and recovers.

    ``say`` prints one line (above a progress bar, if any); ``tick`` is called
    with every snapshot (to move the bar). With ``max_failures`` or
    ``give_up_after`` set, :meth:`guard` cancels its task once that many
    attempts in a row have failed, or the failures have lasted that long.
    """

    client: Client
    say: Callable[[str], None]
    max_failures: int | None = None
    give_up_after: float | None = None
    tick: Callable[[Statistics], None] | None = None
    gave_up: str | None = attrs.field(default=None, init=False)
    """Why :meth:`guard` gave up, or ``None``."""
    _failing_since: float | None = attrs.field(default=None, init=False)
    _said_at: float = attrs.field(default=0.0, init=False)
    _attempts_seen: int = attrs.field(default=0, init=False)

    async def guard(self, work: asyncio.Task[Any]) -> bool:
        """Wait for ``work``, watching; returns ``True`` if it was cancelled to give up.

        If the caller is cancelled, ``work`` is cancelled too and awaited.
        """
        try:
            while not work.done():
                await asyncio.wait({work}, timeout=POLL_INTERVAL)
                if self.check(time.monotonic()):
                    work.cancel()
                    break
        finally:
            if not work.done():
                work.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work
        return self.gave_up is not None

    def check(self, now: float) -> bool:
        """Look at the statistics once; returns ``True`` when it is time to give up."""
        stats = self.client.statistics()
        if self.tick is not None:
            self.tick(stats)
        failures = stats.consecutive_failures
        if failures == 0:
            if self._failing_since is not None:
                self.say(
                    f"collector reachable again after {now - self._failing_since:.0f} s; "
                    f"{events(stats.pending)} waiting"
                )
                self._failing_since = None
            self._attempts_seen = stats.attempts
            return False
        if self._failing_since is None:
            self._failing_since = now
            self._said_at = 0.0
        # A line per new failure, but at most one per REPEAT_EVERY: a down
        # collector fails every request within milliseconds.
        if stats.attempts != self._attempts_seen and now - self._said_at >= REPEAT_EVERY:
            self._said_at = now
            self.say(
                f"{describe_failure(stats.last_error)}, retrying; {events(stats.pending)} waiting"
            )
        self._attempts_seen = stats.attempts
        failing_for = now - self._failing_since
        if self.max_failures is not None and failures >= self.max_failures:
            self.gave_up = (
                f"{failures} failed attempts in a row (--max-failures {self.max_failures}); "
                f"last error: {stats.last_error}"
            )
        elif self.give_up_after is not None and failing_for >= self.give_up_after:
            self.gave_up = (
                f"every attempt failed for {failing_for:.0f} s (--give-up-after "
                f"{self.give_up_after:g}), {failures} in a row; last error: {stats.last_error}"
            )
        return self.gave_up is not None
