"""Which spooled events wait on disk only, as runs of sequences, never per event.

The store hands out sequences in order, so events the queue had no room for form long
runs: ``[lo, hi]`` pairs cost the same for ten events or ten million. A run is in
exactly one of three places:

- *fresh*: ready to be read back, in sequence order (a heap by ``lo``); new events
  extend the newest run (the *tail*) while they stay contiguous;
- *later*: waiting out a backoff after its retries ran out (a heap by time, then ``lo``);
- *reading*: taken by the refill and not yet back from the file. Still disk-only until
  the read returns, so a failed group can take them back.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import final

__all__ = ["Runs"]


@final
class Runs:
    """The disk-only backlog of one spool file, as runs of sequences."""

    def __init__(self) -> None:
        self._fresh: list[list[int]] = []
        self._tail: list[int] | None = None
        self._later: list[tuple[float, int, int]] = []
        self._reading: list[tuple[int, int]] = []

    def append(self, seq: int) -> None:
        """A new event, one past every sequence handed out so far, is ready."""
        tail = self._tail
        if tail is not None and tail[1] == seq - 1:
            tail[1] = seq
        else:
            self._tail = [seq, seq]
            heapq.heappush(self._fresh, self._tail)

    def add(self, spans: Iterable[tuple[int, int]]) -> None:
        """Runs ready now, e.g. adopted from a dead process's file."""
        for lo, hi in spans:
            heapq.heappush(self._fresh, [lo, hi])

    def defer(self, spans: Iterable[tuple[int, int]], not_before: float) -> None:
        """Runs that wait until ``not_before`` (a ``time.time()``)."""
        for lo, hi in spans:
            heapq.heappush(self._later, (not_before, lo, hi))

    def wake(self) -> None:
        """Every run that waits out a backoff is ready now."""
        self.add((lo, hi) for _, lo, hi in self._later)
        self._later = []

    def next_ready(self) -> float | None:
        """When the first backoff ends, or ``None`` when no run waits for one."""
        return self._later[0][0] if self._later else None

    def pick(self, limit: int, now: float, fresh_too: bool) -> list[tuple[int, int]]:
        """Up to ``limit`` events to read back, as ranges taken off the runs.

        Runs whose backoff ended at ``now`` come after the fresh ones, which are
        skipped unless ``fresh_too``. What is picked is *reading* until
        :meth:`read_done` or :meth:`read_failed`.
        """
        spans: list[tuple[int, int]] = []
        fresh, later = self._fresh, self._later
        while limit > 0:
            if fresh and fresh_too:
                run = fresh[0]
                lo, hi = run
                top = min(hi, lo + limit - 1)
                if top == hi:
                    heapq.heappop(fresh)
                    if run is self._tail:
                        self._tail = None
                else:
                    run[0] = top + 1  # still the smallest: runs never overlap
            elif later and later[0][0] <= now:
                not_before, lo, hi = heapq.heappop(later)
                top = min(hi, lo + limit - 1)
                if top < hi:
                    heapq.heappush(later, (not_before, top + 1, hi))
            else:
                break
            spans.append((lo, top))
            limit -= top - lo + 1
        self._reading = spans
        return spans

    def read_done(self) -> None:
        """The picked runs came back from the file: they are no longer disk-only."""
        self._reading = []

    def read_failed(self) -> None:
        """The read failed: what is left of the picked runs is ready again."""
        reading, self._reading = self._reading, []
        self.add(reading)

    def take(self, first: int, last: int) -> list[int]:
        """Remove the sequences in ``first..last`` from every run; returns them, sorted."""
        taken: list[int] = []

        def cut(lo: int, hi: int) -> list[tuple[int, int]]:
            """What remains of ``[lo, hi]``; the part inside the range goes to ``taken``."""
            if hi < first or lo > last:
                return [(lo, hi)]
            taken.extend(range(max(lo, first), min(hi, last) + 1))
            left = []
            if lo < first:
                left.append((lo, first - 1))
            if hi > last:
                left.append((last + 1, hi))
            return left

        fresh = [[lo, hi] for run in self._fresh for lo, hi in cut(run[0], run[1])]
        later = [
            (not_before, lo, hi)
            for not_before, run_lo, run_hi in self._later
            for lo, hi in cut(run_lo, run_hi)
        ]
        self._reading = [span for run in self._reading for span in cut(*run)]
        heapq.heapify(fresh)
        heapq.heapify(later)
        self._fresh, self._later, self._tail = fresh, later, None
        return sorted(taken)
