"""Delivery through a misbehaving collector: retryable faults, final statuses, retry budgets."""

from __future__ import annotations

import asyncio
import logging

import anyio
import pytest
from fault_matrix import SCENARIOS, Result, Scenario, run
from faultserver import Action, FaultServer, Hang, ReceivedRequest, Respond, http_date
from support import assert_accounted, client_for, eventually

from htevents_async import (
    Batch,
    ClientClosedError,
    DeliveryError,
    HTTPStatusError,
    RetriesExhaustedError,
)

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_fault_matrix_delivers_every_accepted_event(scenario: Scenario) -> None:
    """Every accepted id arrives at least once and the client's counters match the server's."""
    result: Result = await run(scenario)
    stats = result.stats
    accepted = set(result.accepted)
    assert len(accepted) == len(result.accepted)
    assert result.flush_pending == 0
    # At least once, and nothing the client did not accept.
    assert set(result.received) == accepted
    # The client counts an event delivered only on a 2xx, and stops sending it then.
    assert sorted(result.delivered_by_server) == sorted(accepted)
    assert stats.delivered == len(accepted) == stats.accepted
    assert stats.failed == 0
    assert dict(stats.dropped) == {}
    assert stats.pending == 0
    assert_accounted(stats)
    # Requests the server saw are requests the client counted; a closed port sees
    # attempts, never requests.
    if scenario.start_down:
        assert stats.requests == result.server_requests < stats.attempts
    elif scenario.choreography is not None:
        assert stats.requests >= result.server_requests
        assert stats.attempts > result.server_requests
    elif "request_timeout" in scenario.options:
        # An attempt our own short deadline cuts may end before the server has read the
        # request (a loaded machine, a slow turn of the loop); the client counts it as
        # sent all the same, since it cannot tell.
        assert result.server_requests <= stats.requests <= stats.attempts
    else:
        assert stats.requests == result.server_requests
    assert stats.attempts == stats.batches_delivered + stats.retries
    assert stats.retries >= 1


async def test_retry_after_in_seconds_is_honoured() -> None:
    """A 429 with ``Retry-After: 1`` delays the retry by a second, not by the tiny backoff."""
    async with FaultServer(Respond(429, retry_after="1")) as server:
        async with client_for(server.url) as client:
            await client.track(user_id="u", event="e")
            assert await client.flush() == 0
        first, second = server.requests
        assert second.at - first.at >= 1.0 - 0.05
        assert client.statistics().retries == 1


async def test_retry_after_as_http_date_is_honoured() -> None:
    """A 429 with an HTTP-date two seconds ahead delays the retry past the whole second it names."""
    async with FaultServer(Respond(429, retry_after=http_date(2))) as server:
        async with client_for(server.url) as client:
            await client.track(user_id="u", event="e")
            assert await client.flush() == 0
        first, second = server.requests
        # The date has whole-second resolution: two seconds ahead is at least one second away.
        assert second.at - first.at >= 1.0 - 0.05


async def test_retry_after_is_capped_by_retry_after_max() -> None:
    """An hour-long Retry-After is cut to ``retry_after_max``."""
    async with FaultServer(Respond(503, retry_after="3600")) as server:
        async with client_for(server.url, retry_after_max=0.05) as client:
            await client.track(user_id="u", event="e")
            assert await client.flush(timeout=10.0) == 0
        assert [r.status for r in server.requests] == [503, 200]


async def test_retry_after_past_the_retry_budget_still_gets_a_last_retry() -> None:
    """A Retry-After cut to a budget-sized retry_after_max is retried, not failed at once."""
    # The defaults have this shape: retry_after_max == max_retry_time (60 s each).
    async with FaultServer(Respond(429, retry_after="3600")) as server:
        async with client_for(server.url, retry_after_max=0.3, max_retry_time=0.3) as client:
            await client.track(user_id="u", event="e")
            assert await client.flush(timeout=10.0) == 0
            stats = client.statistics()
        assert [r.status for r in server.requests] == [429, 200]
        assert (stats.delivered, stats.failed) == (1, 0)


async def test_retries_stop_at_the_end_of_the_retry_budget() -> None:
    """Long Retry-Afters get one retry at the end of max_retry_time, then the batch fails."""
    errors: list[DeliveryError] = []
    async with FaultServer(then=Respond(503, retry_after="3600")) as server:
        async with client_for(
            server.url,
            retry_after_max=3600.0,
            max_retry_time=0.3,
            on_failure=lambda _, error: errors.append(error),
        ) as client:
            await client.track(user_id="u", event="e")
            assert await client.flush(timeout=10.0) == 0
        assert len(server.requests) == 2
        assert server.requests[1].at - server.requests[0].at >= 0.3 - 0.05
        assert [type(e) for e in errors] == [RetriesExhaustedError]


@pytest.mark.parametrize("status", [400, 401, 413])
async def test_client_errors_are_final_for_their_batch_only(status: int) -> None:
    """A 4xx is sent once, reported through on_failure, and other batches are delivered."""
    failures: list[tuple[Batch, DeliveryError]] = []

    def script(request: ReceivedRequest) -> Respond:
        poisoned = any(m.get("event") == "poison" for m in request.batch)
        return Respond(status, body=b"rejected") if poisoned else Respond(200)

    async with FaultServer() as server:
        server.script = script
        async with client_for(
            server.url, on_failure=lambda batch, error: failures.append((batch, error))
        ) as client:
            before = [await client.track(user_id="u", event="ok") for _ in range(5)]
            assert await client.flush() == 0
            poison = [await client.track(user_id="u", event="poison") for _ in range(5)]
            assert await client.flush() == 0
            after = [await client.track(user_id="u", event="ok") for _ in range(5)]
            assert await client.flush() == 0
            stats = client.statistics()
        assert [r.status for r in server.requests] == [200, status, 200]
        assert len(failures) == 1
        batch, error = failures[0]
        assert batch.message_ids == poison
        assert isinstance(error, HTTPStatusError)
        assert error.status_code == status
        assert sorted(server.delivered_ids()) == sorted(before + after)
        assert (stats.delivered, stats.failed, stats.retries, stats.batches_failed) == (10, 5, 0, 1)
        assert_accounted(stats)


@pytest.mark.parametrize("status", [200, 201, 202, 204])
async def test_every_2xx_is_success_and_not_retried(status: int) -> None:
    """Any 2xx answer delivers the batch on the first request."""
    delivered: list[Batch] = []
    async with FaultServer(then=Respond(status)) as server:
        async with client_for(server.url, on_success=delivered.append) as client:
            ids = [await client.track(user_id="u", event="e") for _ in range(3)]
            assert await client.flush() == 0
            stats = client.statistics()
        assert len(server.requests) == 1
        assert [b.message_ids for b in delivered] == [ids]
        assert (stats.delivered, stats.requests, stats.retries) == (3, 1, 0)


_NOT_GZIP = (("Content-Encoding", "gzip"),)


async def test_2xx_with_an_undecodable_body_is_success(caplog: pytest.LogCaptureFixture) -> None:
    """The status decides: a 200 whose body does not match its Content-Encoding is delivery."""
    caplog.set_level(logging.WARNING, logger="htevents_async")
    answer = Respond(200, body=b"not gzip", headers=_NOT_GZIP)
    async with FaultServer(then=answer) as server, client_for(server.url) as client:
        await client.track(user_id="u", event="e")
        assert await client.flush() == 0
        stats = client.statistics()
    assert (stats.delivered, stats.failed, stats.requests) == (1, 0, len(server.requests))
    assert not [r for r in caplog.records if r.name.startswith("htevents_async")]


async def test_error_with_an_undecodable_body_is_still_a_final_status() -> None:
    """A 400 whose body cannot be decoded is reported as HTTP 400, with the body described."""
    errors: list[DeliveryError] = []
    answer = Respond(400, body=b"not gzip", headers=_NOT_GZIP)
    async with (
        FaultServer(then=answer) as server,
        client_for(server.url, on_failure=lambda _, e: errors.append(e)) as client,
    ):
        await client.track(user_id="u", event="e")
        assert await client.flush() == 0
    assert len(server.requests) == 1
    assert [type(e) for e in errors] == [HTTPStatusError]
    assert isinstance(errors[0], HTTPStatusError)
    assert errors[0].status_code == 400
    assert "not valid gzip" in str(errors[0])


async def test_batches_reuse_one_connection() -> None:
    """Successive batches go over one kept-alive connection."""
    async with FaultServer() as server, client_for(server.url) as client:
        for _ in range(3):
            await client.track(user_id="u", event="e")
            assert await client.flush() == 0
    assert len({request.peer for request in server.requests}) == 1


@pytest.mark.parametrize("status", [501, 505])
async def test_501_and_505_are_final(status: int) -> None:
    """Not Implemented and HTTP Version Not Supported are not retried."""
    errors: list[DeliveryError] = []
    async with FaultServer(then=Respond(status)) as server:
        async with client_for(server.url, on_failure=lambda _, error: errors.append(error)) as c:
            await c.track(user_id="u", event="e")
            assert await c.flush() == 0
            stats = c.statistics()
        assert len(server.requests) == 1
        assert [type(e) for e in errors] == [HTTPStatusError]
        assert (stats.failed, stats.retries) == (1, 0)


async def test_max_retries_bounds_the_attempts() -> None:
    """A batch that always gets 503 is sent ``max_retries + 1`` times, then reported failed."""
    errors: list[DeliveryError] = []
    async with FaultServer(then=Respond(503)) as server:
        async with client_for(
            server.url, max_retries=3, on_failure=lambda _, error: errors.append(error)
        ) as client:
            await client.track(user_id="u", event="e")
            assert await client.flush() == 0
            stats = client.statistics()
        assert len(server.requests) == 4
        assert len(errors) == 1
        assert isinstance(errors[0], RetriesExhaustedError)
        assert errors[0].attempts == 4
        assert (stats.failed, stats.requests, stats.retries, stats.batches_failed) == (1, 4, 3, 1)


async def test_max_retry_time_bounds_the_time_spent_retrying() -> None:
    """With unlimited retries, ``max_retry_time`` still ends the batch's retries."""
    errors: list[DeliveryError] = []
    loop = asyncio.get_running_loop()
    async with FaultServer(then=Respond(503)) as server:
        async with client_for(
            server.url,
            max_retries=1_000_000,
            max_retry_time=0.3,
            on_failure=lambda _, error: errors.append(error),
        ) as client:
            await client.track(user_id="u", event="e")
            assert await client.flush() == 0
        assert [type(e) for e in errors] == [RetriesExhaustedError]
        # No retry may start after the budget ends (a generous margin for a slow machine).
        span = server.requests[-1].at - server.requests[0].at
        assert span <= 0.3 + 0.5
        assert loop.time() >= server.requests[-1].at


async def test_a_hanging_batch_does_not_stall_the_others() -> None:
    """With two request slots, one batch hanging on the server leaves the other slot working."""

    def script(request: ReceivedRequest) -> Action:
        return Hang() if any(m.get("event") == "slow" for m in request.batch) else Respond(200)

    async with FaultServer() as server:
        server.script = script
        client = client_for(server.url, max_concurrent_requests=2, request_timeout=60.0)
        async with client:
            await client.track(user_id="u", event="slow")
            await server.wait_for_requests(1)
            ids = [await client.track(user_id="u", event="fast") for _ in range(50)]
            await eventually(lambda: client.statistics().delivered == 50, what="delivery")
            assert sorted(server.delivered_ids()) == sorted(ids)
            assert client.statistics().in_flight == 1
            dropped = await client.aclose(timeout=0.1)
        assert dropped == 1
        assert client.statistics().dropped == {"shutdown": 1}


async def test_no_more_than_max_concurrent_requests_are_in_flight() -> None:
    """With every request hanging, the server sees exactly max_concurrent_requests of them."""
    async with FaultServer(then=Hang()) as server:
        client = client_for(
            server.url,
            request_timeout=60.0,
            max_batch_size=5,
            max_queue_size=5,
            max_concurrent_requests=3,
            overflow="wait",
            enqueue_timeout=60.0,
        )

        async def produce() -> None:
            for _ in range(50):
                await client.track(user_id="u", event="e")

        producer = asyncio.create_task(produce())
        await server.wait_for_requests(3)
        await anyio.wait_all_tasks_blocked()
        assert len(server.requests) == 3
        stats = client.statistics()
        # Three batches of five on the wire, a fourth formed and waiting for a slot,
        # a full queue, and the producer waiting for room.
        assert (stats.in_flight, stats.queued) == (20, 5)
        assert not producer.done()
        assert await client.aclose(timeout=0) == 25
        with pytest.raises(ClientClosedError):
            await producer
