"""Helpers shared by the reliability tests: fast client options and condition waits."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import warnings
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from htevents_async import Client, Statistics

WRITE_KEY = "wk_live_9Qz7S3cr3tV4lue"

# Retries measured in milliseconds, so a fault costs the test run almost nothing.
FAST: dict[str, Any] = {
    "backoff_initial": 0.01,
    "backoff_max": 0.05,
    "max_retries": 50,
    "max_retry_time": 30.0,
    "flush_interval": 0.05,
    "gzip": False,
}


def client_for(url: str, **options: Any) -> Client:
    """A client pointed at ``url`` with the fast retry options, overridden by ``options``."""
    return Client(WRITE_KEY, host=url, **{**FAST, **options})


async def eventually(
    predicate: Callable[[], bool], *, timeout: float = 10.0, what: str = "condition"
) -> None:
    """Wait for ``predicate()`` to hold, checking every couple of milliseconds of loop time.

    For state only the client can see (attempts against a closed port, hook calls);
    state the test server sees is awaited with ``FaultServer.wait_until`` instead.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() >= deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        await asyncio.sleep(0.002)


def assert_accounted(stats: Statistics) -> None:
    """Every accepted event is in exactly one place: the invariant ``Statistics`` documents."""
    placed = (
        stats.queued
        + stats.in_flight
        + stats.spooled
        + stats.delivered
        + stats.failed
        + stats.dead_lettered
        + stats.dropped_total
    )
    assert stats.accepted + stats.recovered == placed, stats


def property_values() -> st.SearchStrategy[Any]:
    """Values applications put in properties: every type the encoding rules name,
    the containers they nest in, and values and keys the rules refuse."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=20),
        st.datetimes(timezones=st.sampled_from([None, dt.timezone.utc])),
        st.dates(),
        st.decimals(allow_nan=True, places=3, min_value=-(10**6), max_value=10**6),
        st.uuids(),
        st.builds(object),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.tuples(inner, inner),
            st.frozensets(st.integers(), max_size=3),
            st.dictionaries(
                st.one_of(st.text(max_size=8), st.integers(), st.none()), inner, max_size=4
            ),
        ),
        max_leaves=12,
    )


def fork_and_report(child: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Fork; run ``child()`` in the child and return what it returned (as JSON) to the parent.

    Call it from a worker thread: that thread has no running event loop, so the child
    (which only has this thread) can start its own with ``asyncio.run``.
    """
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns that forking a process with threads may deadlock; the
        # children here never touch what the parent's other threads hold.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(read_end)
        try:
            try:
                result = child()
            except BaseException as exc:
                result = {"raised": type(exc).__name__, "message": str(exc)}
            os.write(write_end, json.dumps(result).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return dict(json.loads(b"".join(chunks)))
