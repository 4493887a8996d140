"""Shared fixtures. Async tests run through the anyio plugin (``anyio_mode = "auto"`` in
pyproject.toml), on asyncio only, in debug mode."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from htevents_async._collector import LocalCollector


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    """Run on asyncio only (the SDK is asyncio-native), with the loop's debug checks on."""
    return ("asyncio", {"debug": True})


@pytest.fixture
async def collector() -> AsyncIterator[LocalCollector]:
    """The embedded local collector on a random free port of 127.0.0.1."""
    async with LocalCollector() as running:
        yield running


@pytest.fixture
def fast() -> dict[str, Any]:
    """Client options that keep tests quick: no batching delay, tiny backoffs."""
    return {"flush_interval": 0.01, "backoff_initial": 0.01, "backoff_max": 0.05}
