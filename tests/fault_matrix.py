"""The fault matrix: one scenario per way a collector misbehaves, run through the real client.

Shared by ``test_fault_matrix.py`` (assertions) and ``fault_matrix_report.py``
(the markdown table). Each scenario sends ``EVENTS`` track events in several
batches to a :class:`FaultServer` playing the scenario's script, waits for
``flush()``, and returns what the client and the server each saw.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from faultserver import Action, FaultServer, Hang, Reset, Respond, http_date
from support import client_for, eventually

from htevents_async import Client, Statistics

EVENTS = 200
BATCH = 40


@dataclass(frozen=True)
class Scenario:
    """A fault, the client options it needs, and what happens while events are sent."""

    name: str
    script: tuple[Action, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    start_down: bool = False
    choreography: Callable[[FaultServer, Client, list[str]], Awaitable[None]] | None = None
    """Sends the events itself (into the list) when the fault needs timing, e.g. an outage."""


@dataclass(frozen=True)
class Result:
    """What one scenario run produced."""

    scenario: str
    accepted: list[str]
    received: list[str]
    """Every id the server read, duplicates included."""
    kept: list[str]
    """Ids in requests the server did not refuse: answered 2xx, or read and then left
    unanswered (reset, hang, too slow). A real collector may have stored these, so a
    retry of them is a duplicate downstream; a batch answered 5xx was not stored."""
    delivered_by_server: list[str]
    """Ids in requests the server answered with a 2xx."""
    server_requests: int
    stats: Statistics
    flush_pending: int
    seconds: float

    @property
    def duplicates(self) -> int:
        """Extra copies of ids the collector may have stored more than once."""
        return len(self.kept) - len(set(self.kept))

    @property
    def delivered_unique(self) -> int:
        """Accepted ids the server received at least once."""
        return len(set(self.accepted) & set(self.received))


async def send(client: Client, accepted: list[str], count: int, start: int = 0) -> None:
    """Track ``count`` events, in batches of ``BATCH``, appending their ids to ``accepted``."""
    for i in range(start, start + count):
        accepted.append(await client.track(user_id=f"u{i}", event="Fault", properties={"i": i}))


async def _down_at_start(server: FaultServer, client: Client, accepted: list[str]) -> None:
    await send(client, accepted, EVENTS)
    await eventually(lambda: client.statistics().attempts >= 3, what="refused attempts")
    await server.up()


async def _down_in_the_middle(server: FaultServer, client: Client, accepted: list[str]) -> None:
    await send(client, accepted, EVENTS // 2)
    assert await client.flush() == 0
    await server.down()
    before = client.statistics().attempts
    await send(client, accepted, EVENTS // 2, start=EVENTS // 2)
    await eventually(lambda: client.statistics().attempts >= before + 3, what="refused attempts")
    await server.up()


_TWICE_THEN_OK = 2

SCENARIOS: list[Scenario] = [
    *(
        Scenario(f"HTTP {status}", (Respond(status),) * _TWICE_THEN_OK)
        for status in (500, 502, 503, 504, 408)
    ),
    Scenario("429 Retry-After: 1 (seconds)", (Respond(429, retry_after="1"),)),
    Scenario("429 Retry-After: HTTP-date", (Respond(429, retry_after=http_date(2)),)),
    Scenario("reset before the body is read", (Reset("head"),) * _TWICE_THEN_OK),
    Scenario("reset after the body is read", (Reset("body"),) * _TWICE_THEN_OK),
    Scenario(
        "response slower than request_timeout",
        (Respond(200, delay=30.0),) * _TWICE_THEN_OK,
        {"request_timeout": 0.2},
    ),
    Scenario("never answers (hang)", (Hang(),), {"request_timeout": 0.2}),
    Scenario("down at start, then up", start_down=True, choreography=_down_at_start),
    Scenario("down in the middle, then up", choreography=_down_in_the_middle),
]


def _fresh(scenario: Scenario) -> Scenario:
    # An HTTP-date is absolute: build it when the scenario runs, not when the module loads.
    if scenario.name == "429 Retry-After: HTTP-date":
        return Scenario(scenario.name, (Respond(429, retry_after=http_date(2)),))
    return scenario


async def run(scenario: Scenario) -> Result:
    """Run ``scenario`` against a fresh server and client; return what both sides saw."""
    scenario = _fresh(scenario)
    loop = asyncio.get_running_loop()
    started = loop.time()
    accepted: list[str] = []
    async with FaultServer(*scenario.script, start_down=scenario.start_down) as server:
        options = {"max_batch_size": BATCH, "max_concurrent_requests": 2, **scenario.options}
        async with client_for(server.url, **options) as client:
            if scenario.choreography is not None:
                await scenario.choreography(server, client, accepted)
            else:
                await send(client, accepted, EVENTS)
            pending = await client.flush(timeout=30.0)
            stats = client.statistics()
        seconds = loop.time() - started
        return Result(
            scenario=scenario.name,
            accepted=accepted,
            received=server.received_ids(),
            kept=[
                mid
                for request in server.requests
                if request.status is None or request.answered_2xx
                for mid in request.message_ids
            ],
            delivered_by_server=server.delivered_ids(),
            server_requests=len(server.requests),
            stats=stats,
            flush_pending=pending,
            seconds=seconds,
        )
