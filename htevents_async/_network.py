"""The sockets under the default ``httpx.AsyncClient``: an httpcore network backend on
asyncio's own transports and protocols.

httpcore's default backend on asyncio goes through anyio, which wraps every read
and write in a cancel scope and adds checkpoints: about a quarter of a request's CPU on
this path, and the loop is the one the application runs on. This backend calls
the event loop directly; HTTP itself (httpcore, h11) and everything httpx does
above it are unchanged. A client the application passes in keeps its own backend.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

__all__ = ["AsyncioBackend", "default_http_client", "uses_asyncio_backend"]

# Response bytes buffered before the socket stops being read until httpcore
# catches up: a server cannot make us hold more than this.
_READ_BUFFER_LIMIT = 256 * 1024


class _Protocol(asyncio.Protocol):
    """Buffers what the socket delivers and wakes the one reader or writer waiting."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self.read_waiter: asyncio.Future[bool] | None = None
        self.write_waiter: asyncio.Future[bool] | None = None
        self.write_paused = False
        self.read_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > _READ_BUFFER_LIMIT and self.transport is not None:
            self.transport.pause_reading()
            self.read_paused = True
        self._wake_reader()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake_reader()
        return False  # close our side too: HTTP/1.1 never half-closes

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self._wake_reader()
        self._wake_writer()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake_writer()

    async def park(self, timeout: float | None, *, reading: bool) -> bool:
        """Wait until the reader (or the writer) is woken; ``False`` if ``timeout``
        seconds passed first."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        if reading:
            self.read_waiter = waiter
        else:
            self.write_waiter = waiter
        timer = None if timeout is None else loop.call_later(timeout, _resolve, waiter)
        try:
            return await waiter
        finally:
            if reading:
                self.read_waiter = None
            else:
                self.write_waiter = None
            if timer is not None:
                timer.cancel()

    def _wake_reader(self) -> None:
        if self.read_waiter is not None:
            _resolve(self.read_waiter, True)

    def _wake_writer(self) -> None:
        if self.write_waiter is not None:
            _resolve(self.write_waiter, True)


def _resolve(waiter: asyncio.Future[bool], woken: bool = False) -> None:
    if not waiter.done():
        waiter.set_result(woken)


class _Stream(httpcore.AsyncNetworkStream):
    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self._transport = transport
        self._protocol = protocol

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        protocol = self._protocol
        if (
            not protocol.buffer
            and not protocol.eof
            and not await protocol.park(timeout, reading=True)
        ):
            raise httpcore.ReadTimeout(f"no data for {timeout} s")
        buffer = protocol.buffer
        if buffer:
            data = bytes(buffer[:max_bytes])
            del buffer[:max_bytes]
            if protocol.read_paused and len(buffer) <= _READ_BUFFER_LIMIT // 2:
                protocol.read_paused = False
                if protocol.transport is not None:
                    protocol.transport.resume_reading()
            return data
        if protocol.error is not None:
            raise httpcore.ReadError(str(protocol.error) or type(protocol.error).__name__)
        return b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        protocol = self._protocol
        if protocol.eof or self._transport.is_closing():
            raise httpcore.WriteError(str(protocol.error or "the connection is closed"))
        self._transport.write(buffer)
        if protocol.write_paused:
            # The kernel's send buffer is full: wait for it to drain, as a stream
            # writer's drain() would, so one large body is not all held twice.
            if not await protocol.park(timeout, reading=False):
                raise httpcore.WriteTimeout(f"could not write for {timeout} s")
            if protocol.eof:
                # Closed while the rest of the buffer waited: it was never sent.
                raise httpcore.WriteError(str(protocol.error or "the connection is closed"))

    async def aclose(self) -> None:
        self._transport.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        protocol = self._protocol
        if protocol.eof or self._transport.is_closing():
            # The TLS layer would not notice and wait out the whole timeout.
            self._transport.close()
            raise httpcore.ConnectError(str(protocol.error or "the server closed the connection"))
        loop = asyncio.get_running_loop()
        handshake = loop.start_tls(
            self._transport, protocol, ssl_context, server_hostname=server_hostname
        )
        try:
            transport = await asyncio.wait_for(handshake, timeout)
        except (TimeoutError, asyncio.TimeoutError) as exc:
            self._transport.close()
            raise httpcore.ConnectTimeout(f"TLS handshake took over {timeout} s") from exc
        except (OSError, ssl.SSLError) as exc:
            self._transport.close()
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        if transport is None:  # pragma: no cover - only for a closed transport
            raise httpcore.ConnectError("the connection closed during the TLS handshake")
        assert isinstance(transport, asyncio.Transport)
        # Reading is paused and resumed on the TLS transport from now on.
        protocol.transport = transport
        return _Stream(transport, protocol)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # Only asked of an idle keep-alive connection: anything readable there
            # (data or end of file) means the server gave up on it.
            return bool(self._protocol.buffer) or self._protocol.eof
        if info == "client_addr":
            return self._transport.get_extra_info("sockname")
        if info == "server_addr":
            return self._transport.get_extra_info("peername")
        if info in ("ssl_object", "socket"):
            return self._transport.get_extra_info(info)
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """Opens TCP connections (TLS added by httpcore through ``start_tls``) on the loop."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        connect = loop.create_connection(
            _Protocol,
            host,
            port,
            local_addr=None if local_address is None else (local_address, 0),
        )
        try:
            transport, protocol = await asyncio.wait_for(connect, timeout)
        except (TimeoutError, asyncio.TimeoutError) as exc:
            raise httpcore.ConnectTimeout(f"could not connect within {timeout} s") from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        assert isinstance(transport, asyncio.Transport)
        # asyncio already turns Nagle off on TCP sockets; these are the caller's own.
        sock = transport.get_extra_info("socket")
        try:
            for option in socket_options or ():
                sock.setsockopt(*option)
        except OSError as exc:
            transport.close()
            raise httpcore.ConnectError(f"socket option refused: {exc}") from exc
        return _Stream(transport, protocol)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def default_http_client(timeout: float, max_connections: int) -> httpx.AsyncClient:
    """The ``httpx.AsyncClient`` a :class:`~htevents_async.Client` makes for itself.

    Built as httpx builds any client, so ``HTTP(S)_PROXY``, ``NO_PROXY`` and
    ``SSL_CERT_FILE`` from the environment apply; then its direct connections
    are moved to :class:`AsyncioBackend` (proxied ones keep httpx's own). Should
    an httpx release build its pool differently, httpx's backend stays.
    """
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    client = httpx.AsyncClient(timeout=timeout, limits=limits)
    pool = getattr(getattr(client, "_transport", None), "_pool", None)
    if type(pool) is httpcore.AsyncConnectionPool and hasattr(pool, "_network_backend"):
        pool._network_backend = AsyncioBackend()
    return client


def uses_asyncio_backend(client: httpx.AsyncClient) -> bool:
    """Whether ``client``'s direct connections go through :class:`AsyncioBackend`."""
    transport = getattr(client, "_transport", None)
    pool = getattr(transport, "_pool", None)
    return isinstance(getattr(pool, "_network_backend", None), AsyncioBackend)
