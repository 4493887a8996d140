"""The write key never shows: not in logs, reprs, exception messages or statistics."""

from __future__ import annotations

import base64
import logging

import pytest
from faultserver import FaultServer, Reset, Respond
from support import WRITE_KEY, client_for

from htevents_async import Client, ConfigError, DeliveryError

pytestmark = pytest.mark.anyio

SECRETS = (WRITE_KEY, base64.b64encode(f"{WRITE_KEY}:".encode()).decode())


def assert_no_secret(text: str) -> None:
    """Neither the key nor its Basic-auth encoding is in ``text``."""
    for secret in SECRETS:
        assert secret not in text


async def test_write_key_stays_out_of_logs_errors_and_statistics(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Through retries, resets and a final error whose body echoes the credentials."""
    caplog.set_level(logging.DEBUG)
    errors: list[DeliveryError] = []
    script = (Respond(503), Reset("body"), Respond(429, retry_after="0"))
    async with (
        FaultServer(*script, then=Respond(401, echo_auth=True)) as server,
        client_for(server.url, on_failure=lambda _, error: errors.append(error)) as client,
    ):
        await client.track(user_id="u", event="e")
        assert await client.flush() == 0
        assert_no_secret(repr(client))
        assert_no_secret(repr(client.config))
        stats = client.statistics()
    assert server.requests[-1].status == 401
    assert [type(e).__name__ for e in errors] == ["HTTPStatusError"]
    for error in errors:
        assert_no_secret(str(error))
        assert_no_secret(repr(error))
        assert_no_secret(repr(vars(error)))
    assert_no_secret(repr(stats))
    assert stats.retries == 3
    for record in caplog.records:
        assert_no_secret(record.getMessage())
        if record.exc_info is not None:
            assert_no_secret(logging.Formatter().formatException(record.exc_info))


def test_write_key_stays_out_of_config_errors() -> None:
    """A bad option's error names the option, not the key."""
    with pytest.raises(ConfigError) as caught:
        Client(WRITE_KEY, max_batch_size=0)
    assert_no_secret(str(caught.value))
    with pytest.raises(TypeError) as unknown:
        Client(WRITE_KEY, no_such_option=1)
    assert_no_secret(str(unknown.value))
