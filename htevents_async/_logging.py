"""The package logger, and rate limiting for warnings that can repeat per event or batch."""

from __future__ import annotations

import logging
import time
from typing import Any, final

__all__ = ["RateLimitedLog", "logger"]

#: Everything the package logs goes here; the write key never does.
logger = logging.getLogger("htevents_async")


@final
class RateLimitedLog:
    """Logs one line per ``key`` per ``interval`` seconds, counting what it held back.

    A collector that is down, or a queue that overflows, would otherwise log
    once per batch or per event and drown the application's own logs.
    """

    __slots__ = ("_interval", "_last", "_suppressed")

    def __init__(self, interval: float = 10.0) -> None:
        self._interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def log(self, level: int, key: str, message: str, *args: Any, **fields: Any) -> None:
        """Log ``message % args`` unless ``key`` was logged less than ``interval`` ago.

        ``fields`` go to :meth:`logging.Logger.log` as they are (``exc_info``, ``extra``).
        """
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        self._last[key] = now
        held = self._suppressed.pop(key, 0)
        if held:
            message += " (%d similar messages suppressed)"
            args = (*args, held)
        logger.log(level, message, *args, **fields)
