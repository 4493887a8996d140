"""The retry policy: which answers are retried, and how long to wait before the next attempt.

Every 2xx is success. Network errors, timeouts, 408, 429 and 5xx other than
501 and 505 are worth another attempt; every other status is final for the
batch, because sending the same body again cannot change the answer.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import math
import random
import time
from typing import final

import attrs

__all__ = ["RetryPolicy", "is_retryable_status", "is_success", "parse_retry_after"]

# 501 Not Implemented and 505 HTTP Version Not Supported will answer the same way forever.
_FINAL_5XX = frozenset({501, 505})


def is_success(status: int) -> bool:
    """Every 2xx means the collector took the batch."""
    return 200 <= status < 300


def is_retryable_status(status: int) -> bool:
    """Whether an unsuccessful status may succeed if the same batch is sent again."""
    return status in (408, 429) or (500 <= status < 600 and status not in _FINAL_5XX)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), or ``None``."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
            if when.tzinfo is None:  # "-0000" means UTC of unknown origin, not local time
                when = when.replace(tzinfo=dt.timezone.utc)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


@final
@attrs.frozen(kw_only=True)
class RetryPolicy:
    """Capped exponential backoff with full jitter, bounded by count and by total time."""

    max_retries: int
    """Retries after the first attempt."""
    max_retry_time: float
    """Seconds a batch may spend from its first attempt until its last retry starts."""
    backoff_initial: float
    """Ceiling of the first backoff, in seconds; it doubles each retry."""
    backoff_max: float
    """Largest ceiling of any backoff, in seconds."""
    retry_after_max: float
    """Largest ``Retry-After`` honoured, in seconds."""

    def delay(self, retry: int, retry_after: float | None) -> float:
        """Seconds to sleep before retry number ``retry`` (1-based).

        A server's ``Retry-After`` (capped) wins over the computed backoff: it
        knows when it will have room again.
        """
        if retry_after is not None:
            return min(retry_after, self.retry_after_max)
        ceiling = min(self.backoff_max, self.backoff_initial * 2.0 ** min(retry - 1, 62))
        # Full jitter spreads the retries of many clients that failed together.
        return random.uniform(0.0, ceiling)
