"""htevents_async.testing, used the way an application's own test suite would use it."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest

import htevents_async
from htevents_async.testing import (
    ZERO_DELAYS,
    CapturedEvents,
    CapturingTransport,
    capture,
    capture_client,
)

# -- a tiny "application" under test ------------------------------------------------------


async def sign_up(events: htevents_async.Client, user_id: str, email: str) -> None:
    """Application code: records a sign-up."""
    await events.identify(user_id=user_id, traits={"email": email})
    await events.track(user_id=user_id, event="Signed up", properties={"plan": "free"})


async def checkout(events: htevents_async.Client, user_id: str, total: Decimal) -> None:
    """Application code: records an order."""
    await events.track(
        user_id=user_id,
        event="Order completed",
        properties={"total": total, "currency": "EUR", "items": 2},
    )


@pytest.fixture
async def events() -> AsyncIterator[tuple[htevents_async.Client, CapturedEvents]]:
    """The documented fixture pattern: a capturing client, open for the test."""
    client, captured = capture_client()
    async with client:
        yield client, captured


# -- capturing ------------------------------------------------------------------------------


async def test_leaving_capture_delivers_and_records_every_event() -> None:
    """Events recorded inside ``capture()`` are all captured once the block is left."""
    async with capture() as (client, captured):
        await sign_up(client, "123", "ada@example.com")

    assert [m["type"] for m in captured] == ["identify", "track"]
    captured.assert_tracked("Signed up", user_id="123", properties={"plan": "free"})
    captured.assert_identified("123", traits={"email": "ada@example.com"})


async def test_fixture_pattern_with_flush_inside_the_test(
    events: tuple[htevents_async.Client, CapturedEvents],
) -> None:
    """With ``capture_client()`` in a fixture, ``flush()`` makes events visible mid-test."""
    client, captured = events
    await checkout(client, "123", Decimal("29.99"))
    await client.flush()

    captured.assert_tracked("Order completed", user_id="123", properties={"total": 29.99})


async def test_expected_values_follow_the_wire_rules() -> None:
    """Expectations given as Decimal and datetime match their JSON form."""
    when = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
    async with capture() as (client, captured):
        await client.track(
            user_id=7, event="Paid", properties={"amount": Decimal("9.50")}, timestamp=when
        )

    captured.assert_tracked(
        "Paid", user_id=7, properties={"amount": Decimal("9.50")}, timestamp=when
    )


async def test_messages_filter_by_type_event_and_user() -> None:
    """``messages()`` and ``event_names()`` filter the delivered messages."""
    async with capture() as (client, captured):
        await sign_up(client, "a", "a@example.com")
        await sign_up(client, "b", "b@example.com")
        await checkout(client, "b", Decimal("5"))

    assert len(captured.messages("identify")) == 2
    assert [m["userId"] for m in captured.messages("track", event="Signed up")] == ["a", "b"]
    assert captured.event_names(user_id="b") == ["Signed up", "Order completed"]


async def test_count_requires_an_exact_number_of_matches() -> None:
    """``count=`` passes on exactly that many matches and fails otherwise."""
    async with capture() as (client, captured):
        for _ in range(3):
            await checkout(client, "123", Decimal("1"))

    assert len(captured.assert_tracked("Order completed", count=3)) == 3
    with pytest.raises(AssertionError, match=r"expected 2 track message\(s\)"):
        captured.assert_tracked("Order completed", count=2)


async def test_assert_not_sent_fails_on_a_match() -> None:
    """``assert_not_sent`` passes when nothing matches and names the match when one does."""
    async with capture() as (client, captured):
        await sign_up(client, "123", "ada@example.com")

    captured.assert_not_sent("track", event="Order completed")
    with pytest.raises(AssertionError, match="expected no track message"):
        captured.assert_not_sent("track", user_id="123")


async def test_failed_assertion_explains_the_closest_message() -> None:
    """A failed assertion shows what was expected, the closest messages, and each difference."""
    async with capture() as (client, captured):
        await checkout(client, "123", Decimal("19.99"))
        await client.track(user_id="456", event="Signed up")

    with pytest.raises(AssertionError) as failure:
        captured.assert_tracked(
            "Order completed", user_id="123", properties={"total": 29.99, "coupon": "X"}
        )

    assert str(failure.value) == "\n".join(
        [
            "expected a track message with event='Order completed', user_id='123', "
            "properties including {'total': 29.99, 'coupon': 'X'}",
            "2 track message(s) delivered; the closest:",
            '  {"type": "track", "event": "Order completed", "userId": "123", "properties": '
            '{"total": 19.99, "currency": "EUR", "items": 2}}',
            "      properties['total']: expected 29.99, got 19.99",
            "      properties['coupon']: missing, expected 'X'",
            '  {"type": "track", "event": "Signed up", "userId": "456"}',
            "      event: expected 'Order completed', got 'Signed up'",
            "      user_id: expected '123', got '456'",
            "      properties: missing, expected {'total': 29.99, 'coupon': 'X'}",
            "delivered in all: track 2",
        ]
    )


async def test_failed_assertion_mentions_pending_events(
    events: tuple[htevents_async.Client, CapturedEvents],
) -> None:
    """Asserting before the events were delivered says to flush first."""
    client, captured = events
    await checkout(client, "123", Decimal("1"))

    with pytest.raises(AssertionError, match=r"1 event\(s\) are still pending"):
        captured.assert_tracked("Order completed")


async def test_ids_match_as_sent_and_values_keep_their_json_type() -> None:
    """Ids are strings on the wire, so ``user_id=1`` matches the ``"1"`` the client sent for
    it; in properties ``True`` does not match ``1``."""
    async with capture() as (client, captured):
        await client.track(user_id=1, event="E", properties={"flag": 1})

    captured.assert_tracked("E", user_id="1", properties={"flag": 1})
    captured.assert_tracked("E", user_id=1)
    assert captured.messages("track", user_id=1)
    with pytest.raises(AssertionError):
        captured.assert_tracked("E", user_id="2")
    with pytest.raises(AssertionError):
        captured.assert_tracked("E", properties={"flag": True})


# -- scripted answers and the raw transport -------------------------------------------------


async def test_scripted_server_error_is_retried_at_once() -> None:
    """A scripted 503 is retried with no delay; the message is captured once."""
    async with capture(statuses=[503, 200]) as (client, captured):
        await checkout(client, "123", Decimal("1"))

    assert [r.status for r in captured.requests] == [503, 200]
    assert len(captured.messages()) == 1
    assert client.statistics().retries == 1


async def test_scripted_final_status_reaches_the_failure_hook() -> None:
    """A scripted 400 fails the batch: nothing is captured and ``on_failure`` is told."""
    failures: list[htevents_async.DeliveryError] = []
    async with capture(statuses=[400], on_failure=lambda batch, error: failures.append(error)) as (
        client,
        captured,
    ):
        await checkout(client, "123", Decimal("1"))

    assert captured.messages() == []
    assert [r.status for r in captured.requests] == [400]
    assert isinstance(failures[0], htevents_async.HTTPStatusError)
    assert client.statistics().failed == 1


async def test_scripted_exception_is_a_network_error() -> None:
    """An exception in the script is raised as a network error, then retried."""
    async with capture(statuses=[httpx.ConnectError("refused")]) as (client, captured):
        await checkout(client, "123", Decimal("1"))

    assert [r.status for r in captured.requests] == [None, 200]
    assert "ConnectError" in (captured.requests[0].error or "")
    assert client.statistics().delivered == 1


@pytest.mark.parametrize("gzip", [True, False])
async def test_request_bodies_are_decoded_with_or_without_gzip(gzip: bool) -> None:
    """The transport decodes gzip bodies and records the wire details."""
    async with capture("my-key", gzip=gzip) as (client, captured):
        await checkout(client, "123", Decimal("1"))

    (request,) = captured.requests
    assert request.gzip is gzip
    assert request.body["writeKey"] == "my-key"
    assert request.headers["user-agent"].startswith("htevents-async/")
    assert request.url == "https://us-east-1.hightouch-events.com/v1/batch"
    assert request.messages == captured.messages()


async def test_transport_can_be_wired_by_hand() -> None:
    """``CapturingTransport`` plugs into any client through ``http_client``."""
    transport = CapturingTransport()
    async with (
        httpx.AsyncClient(transport=transport) as http,
        htevents_async.Client("k", http_client=http, **ZERO_DELAYS) as client,
    ):
        await client.page(user_id="1", name="Home")

    transport.captured.assert_sent("page", name="Home", user_id="1")
