"""The ``import`` progress display: delivered events and their rate, on stderr.

The bar counts events the collector has acknowledged, not lines read: reading
runs ahead of delivery by a queue's worth of events, and against a collector
that is down it would otherwise race to 100 % with nothing delivered. When the
input's size is known, the total is an estimate from the accepted events per
byte read so far, exact once reading ends; the bar reaches 100 % only when every
accepted event is delivered.
"""

from __future__ import annotations

import importlib
import sys
import time
from typing import Any, Protocol

from .._importer import ImportCounts

__all__ = ["Progress", "make_progress"]


class Progress(Protocol):
    """What the import command drives."""

    def update(self, delivered: int, counts: ImportCounts, done_reading: bool) -> None:
        """Show ``delivered`` events so far, with ``counts`` for the estimate."""

    def write(self, line: str) -> None:
        """Print ``line`` on stderr without breaking the display."""

    def close(self) -> None:
        """Leave the display as it last was, on its own line."""


def _estimate(total_bytes: int | None, counts: ImportCounts, done_reading: bool) -> int | None:
    """Events the whole input will give, judged from what was read so far."""
    if done_reading:
        return counts.accepted
    if total_bytes is None or counts.offset <= 0:
        return None
    remaining = max(total_bytes - counts.offset, 0)
    return counts.accepted + round(remaining * counts.accepted / counts.offset)


class _Quiet:
    def update(self, delivered: int, counts: ImportCounts, done_reading: bool) -> None:
        pass

    def write(self, line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        pass


# tqdm's own percentage is rounded: 99.7 % would read "100%" with a batch still out.
_BAR_FORMAT = (
    "{desc}: {whole_percent:3d}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]"
)


def _floored(tqdm: Any) -> Any:
    """A subclass of the ``tqdm`` class offering ``{whole_percent}``, rounded down."""

    class Bar(tqdm):  # type: ignore[misc]
        @property
        def format_dict(self) -> dict[str, Any]:
            # tqdm's documented way to add a field to bar_format.
            values: dict[str, Any] = super().format_dict
            total = values.get("total")
            values["whole_percent"] = 100 * values["n"] // total if total else 0
            return values

    return Bar


class _Tqdm:
    """A tqdm bar over delivered events; tqdm computes the rate from them."""

    def __init__(self, tqdm: Any, total_bytes: int | None, label: str) -> None:
        self._tqdm = tqdm
        self._total_bytes = total_bytes
        self._bar = _floored(tqdm)(
            desc=label,
            unit=" events",
            dynamic_ncols=True,
            file=sys.stderr,
            total=None,
            bar_format=_BAR_FORMAT,
        )

    def update(self, delivered: int, counts: ImportCounts, done_reading: bool) -> None:
        estimate = _estimate(self._total_bytes, counts, done_reading)
        if estimate is not None:
            # Below 100 % until done: never let the estimate fall to what is delivered.
            floor = delivered if done_reading else delivered + 1
            self._bar.total = max(estimate, floor)
        self._bar.update(delivered - self._bar.n)

    def write(self, line: str) -> None:
        self._tqdm.write(line, file=sys.stderr)

    def close(self) -> None:
        self._bar.close()


class _Plain:
    """A one-line counter on stderr, for when tqdm is not installed."""

    def __init__(self, total_bytes: int | None) -> None:
        self._total_bytes = total_bytes
        self._started = time.monotonic()
        self._line = ""

    def update(self, delivered: int, counts: ImportCounts, done_reading: bool) -> None:
        elapsed = max(time.monotonic() - self._started, 1e-9)
        line = f"{delivered:,} events delivered, {delivered / elapsed:,.0f} events/s"
        estimate = _estimate(self._total_bytes, counts, done_reading)
        if estimate:
            done = min(delivered / estimate, 1.0 if done_reading else 0.999)
            line = f"{done:6.1%}  {line}"
        self._line = line
        sys.stderr.write(f"\r{line}   ")
        sys.stderr.flush()

    def write(self, line: str) -> None:
        sys.stderr.write(f"\r{line:<{len(self._line) + 3}}\n\r{self._line}   ")
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\n")


def make_progress(mode: bool | None, total_bytes: int | None, label: str) -> Progress:
    """A tqdm bar, a plain counter without tqdm, or nothing (``mode`` False, or not a tty)."""
    show = sys.stderr.isatty() if mode is None else mode
    if not show:
        return _Quiet()
    try:
        tqdm = importlib.import_module("tqdm")
    except ModuleNotFoundError:
        return _Plain(total_bytes)
    return _Tqdm(tqdm.tqdm, total_bytes, label)
