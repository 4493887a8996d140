"""One way to bound an await, for every supported Python.

``asyncio.timeout`` (3.11+) cancels the awaiting task itself: no extra task, so
what the await completed is seen by the code right after it, with nothing else
running in between. ``asyncio.wait_for`` on 3.10 and 3.11 runs the await in
a task of its own, which opens a window where a close can act on an event the
caller has not yet seen accepted; anyio's ``fail_after`` keeps 3.10 correct.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator

import anyio

__all__ = ["deadline"]

if sys.version_info >= (3, 11):
    # anyio's fail_after looks up the running async library on every use: a tenth
    # of a request's CPU in profiles.
    deadline = asyncio.timeout
else:  # pragma: no cover - Python 3.10

    @contextlib.asynccontextmanager
    async def deadline(delay: float) -> AsyncIterator[None]:
        """Raise ``TimeoutError`` if the block takes longer than ``delay`` seconds."""
        with anyio.fail_after(delay):
            yield
