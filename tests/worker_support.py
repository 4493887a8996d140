"""What the async worker tests share: running a worker command until SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from servers import environment

ORDERS = 12


def by_order(messages: list[dict[str, Any]]) -> list[str]:
    """The ``order`` property of each message, ordered by its number (``o0``, ``o1``, ...)."""
    return sorted((m["properties"]["order"] for m in messages), key=lambda o: int(o[1:]))


def expected_orders() -> list[str]:
    """The orders every test submits, in order."""
    return [f"o{n}" for n in range(ORDERS)]


@contextlib.asynccontextmanager
async def worker(
    argv: Sequence[str], env: Mapping[str, str], *, timeout: float = 60.0
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run ``python argv...`` until the block ends, then SIGTERM it and wait for a clean exit."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, *argv, env=environment(env), stderr=asyncio.subprocess.PIPE
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode == 0, err.decode()
    assert b"Traceback" not in err, err.decode()
