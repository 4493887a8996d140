import pytest

import htevents_async.testing

pytestmark = pytest.mark.anyio  # or anyio_mode = "auto" in your pytest configuration


async def checkout(events, user_id, total):  # your application code
    await events.track(user_id=user_id, event="Order completed", properties={"total": total})


async def test_checkout_tracks_the_order():
    async with htevents_async.testing.capture() as (client, captured):
        await checkout(client, "123", 29.99)
    # Leaving the block delivered everything; inside it, `await client.flush()` first.
    captured.assert_tracked("Order completed", user_id="123", properties={"total": 29.99})


async def test_a_rejected_batch_is_reported():
    async with htevents_async.testing.capture(statuses=[400]) as (client, captured):
        await checkout(client, "123", 29.99)
    assert captured.messages() == []
    assert client.statistics().failed == 1


@pytest.fixture
async def events():  # for apps that build their own client: hand it this one
    client, captured = htevents_async.testing.capture_client()
    async with client:
        # e.g. app.state.events = client
        yield client, captured


async def test_with_the_fixture(events):
    client, captured = events
    await checkout(client, "7", 5.0)
    await client.flush()
    captured.assert_tracked("Order completed", user_id="7")
