"""The default HTTP client through real sockets on 127.0.0.1: plain and TLS connections,
certificate failures, keep-alive reuse, proxies from the environment, and its errors."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import trustme
from faultserver import FaultServer, Hang, Reset
from support import client_for

from htevents_async import Batch, DeliveryError, TLSVerificationError
from htevents_async._collector import LocalCollector
from htevents_async._transport import default_http_client

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def trusted_ca(ca: trustme.CA, monkeypatch: pytest.MonkeyPatch) -> Iterator[trustme.CA]:
    """Make httpx's default verification (``SSL_CERT_FILE``) trust the test CA."""
    with ca.cert_pem.tempfile() as path:
        monkeypatch.setenv("SSL_CERT_FILE", path)
        yield ca


def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


async def test_a_default_client_delivers(collector: LocalCollector) -> None:
    """The client's own httpx client, built with httpx's public API, delivers."""
    async with client_for(collector.url) as client:
        await client.track(user_id="1", event="e", properties={"n": 1})
        await client.flush()
    [message] = await collector.wait_for(1)
    assert message["properties"] == {"n": 1}


async def test_an_injected_http_client_is_used_as_given_and_left_open(
    collector: LocalCollector,
) -> None:
    """An injected httpx client carries the requests, with its own headers, and stays open."""
    async with httpx.AsyncClient(headers={"X-Team": "growth"}) as http:
        async with client_for(collector.url, http_client=http) as client:
            await client.track(user_id="1", event="e")
        assert not http.is_closed
    assert len(await collector.wait_for(1)) == 1
    assert collector.requests[-1].headers.get("x-team") == "growth"


async def test_https_with_a_trusted_certificate_delivers(trusted_ca: trustme.CA) -> None:
    async with FaultServer(tls=server_tls(trusted_ca)) as server, client_for(server.url) as client:
        for i in range(250):
            await client.track(user_id=str(i), event="over tls", properties={"i": i})
        await client.flush()
        stats = client.statistics()
    assert stats.delivered == 250
    assert sorted(server.received_ids()) == sorted(set(server.received_ids()))
    assert len(server.received_ids()) == 250


async def test_https_with_an_untrusted_certificate_fails_as_a_connect_error(
    ca: trustme.CA,
) -> None:
    failures: list[BaseException] = []
    # The server's side of the refused handshake is reported to the loop's
    # exception handler; it is the expected outcome here, not a test error.
    loop = asyncio.get_running_loop()
    server_errors: list[dict[str, object]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: server_errors.append(context))
    try:
        await _post_to_untrusted(ca, failures)
        await asyncio.sleep(0.2)  # the server notices the client leaving
    finally:
        loop.set_exception_handler(previous)
    assert "CERTIFICATE_VERIFY_FAILED" in str(failures[0])
    for context in server_errors:
        assert isinstance(context.get("exception"), (ssl.SSLError, ConnectionError)), context


async def _post_to_untrusted(ca: trustme.CA, failures: list[BaseException]) -> None:
    async with FaultServer(tls=server_tls(ca)) as server:
        http = default_http_client(5.0, 1)
        async with http:
            with pytest.raises(httpx.ConnectError) as caught:
                await http.post(f"{server.url}/v1/batch", content=b"{}")
            failures.append(caught.value)
        assert server.requests == []


async def test_an_untrusted_certificate_fails_the_batch_at_once(
    ca: trustme.CA, caplog: pytest.LogCaptureFixture
) -> None:
    """A refused certificate is a configuration error: one attempt, a final failure that
    says so, a log line, and no retry budget spent."""
    failures: list[DeliveryError] = []

    def on_failure(batch: Batch, error: DeliveryError) -> None:
        failures.append(error)

    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: None)  # the server's failed handshake
    try:
        async with FaultServer(tls=server_tls(ca)) as server:
            async with client_for(server.url, on_failure=on_failure) as client:
                await client.track(user_id="1", event="e")
                assert await client.flush(timeout=10) == 0
                stats = client.statistics()
            await asyncio.sleep(0.1)  # the server notices the client leaving
    finally:
        loop.set_exception_handler(previous)
    assert stats.attempts == 1
    assert stats.retries == 0
    assert stats.failed == 1
    [error] = failures
    assert isinstance(error, TLSVerificationError)
    assert "CERTIFICATE_VERIFY_FAILED" in str(error)
    assert any("TLS certificate verification failed" in r.getMessage() for r in caplog.records)


async def test_refused_connection_is_a_connect_error() -> None:
    async with FaultServer(start_down=True) as server, default_http_client(5.0, 1) as http:
        with pytest.raises(httpx.ConnectError):
            await http.post(f"{server.url}/v1/batch", content=b"{}")


async def test_read_timeout_and_reset_map_to_httpx_errors() -> None:
    async with FaultServer(Hang(), Reset("body")) as server, default_http_client(0.2, 1) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.post(f"{server.url}/v1/batch", content=b"{}")
        with pytest.raises(httpx.ReadError):
            await http.post(f"{server.url}/v1/batch", content=b"{}")
        # The pool recovers: a fresh connection answers.
        response = await http.post(f"{server.url}/v1/batch", content=b"{}")
    assert response.status_code == 200


async def body_length(reader: asyncio.StreamReader) -> int:
    """Read a request's head and return its Content-Length."""
    head = await reader.readuntil(b"\r\n\r\n")
    return next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )


@pytest.fixture
async def closing_server() -> AsyncIterator[tuple[str, list[int]]]:
    """Answers each request on a connection, then closes that connection without
    saying so (no ``Connection: close``), as servers with short keep-alive do."""
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        length = await body_length(reader)
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}", connections


async def test_a_keep_alive_connection_the_server_closed_is_not_reused(
    closing_server: tuple[str, list[int]],
) -> None:
    url, connections = closing_server
    async with client_for(url, max_concurrent_requests=1) as client:
        for round_ in range(3):
            await client.track(user_id=str(round_), event="e")
            assert await client.flush() == 0
            await asyncio.sleep(0.05)  # the server's close arrives meanwhile
        stats = client.statistics()
    assert stats.delivered == 3
    assert stats.retries == 0
    assert len(connections) == 3


async def test_environment_proxies_still_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP_PROXY from the environment routes the client's own requests through the
    proxy, as for any httpx client."""
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    async with FaultServer() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        async with client_for("http://collector.invalid") as client:
            await client.track(user_id="1", event="via proxy", properties={})
            assert await client.flush(timeout=10) == 0
        [request] = proxy.requests
    assert request.path == "http://collector.invalid/v1/batch"
    assert request.batch[0]["event"] == "via proxy"
