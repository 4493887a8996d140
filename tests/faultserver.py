"""A scriptable HTTP server on 127.0.0.1 that misbehaves on purpose, for reliability tests.

::

    async with FaultServer(Respond(503), Respond(429, retry_after="1")) as server:
        client = Client("key", host=server.url)
        ...
        assert set(accepted) <= set(server.received_ids())

The script is the action for each request in arrival order: the listed actions
first, then ``then`` for every later request. A callable script decides per
request instead (it sees the decoded batch). Actions:

* :class:`Respond`: a status, headers (``Retry-After`` in seconds or as an
  HTTP-date) and an optional delay before answering.
* :class:`Hang`: read the request and never answer.
* :class:`Reset`: reset the TCP connection (RST), before or after reading the body.

:meth:`FaultServer.down` closes the port (connections are refused and open ones
reset) and :meth:`FaultServer.up` listens on the same port again; ``start_down``
starts with the port closed.

Built on h11 (the HTTP/1.1 state machine under httpx and uvicorn) over a raw
``asyncio`` listener: a resetting, hanging or vanishing server is below what an
ASGI application can express, and one listener keeps every fault on one port.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import gzip
import http
import json
import socket
import ssl
import struct
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

import h11

__all__ = ["FaultServer", "Hang", "ReceivedRequest", "Reset", "Respond", "http_date"]


@dataclass(frozen=True)
class Respond:
    """Answer with ``status`` after ``delay`` seconds (or not at all if the client leaves first)."""

    status: int = 200
    retry_after: str | None = None
    """The ``Retry-After`` header value, if any: delta-seconds or an HTTP-date."""
    delay: float = 0.0
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    """Extra response headers, e.g. ``(("Content-Encoding", "gzip"),)`` over a body that is not."""
    echo_auth: bool = False
    """Put the request's ``Authorization`` header and ``writeKey`` in the response body, as a
    careless collector's error message might."""


@dataclass(frozen=True)
class Hang:
    """Read the request and never answer; the connection stays open until the client leaves."""


@dataclass(frozen=True)
class Reset:
    """Reset the connection with a TCP RST instead of answering."""

    after: Literal["head", "body"] = "head"
    """``"head"``: as soon as the request line and headers are in, leaving the body unread
    (the server never sees the events). ``"body"``: after reading the whole request, so
    the events were received but the client cannot know (a retry duplicates them)."""


Action = Respond | Hang | Reset


def http_date(seconds_from_now: float) -> str:
    """An HTTP-date ``seconds_from_now`` in the future, for ``Retry-After``."""
    return email.utils.formatdate(time.time() + seconds_from_now, usegmt=True)


@dataclass
class ReceivedRequest:
    """One request as the server saw it, and what it did about it."""

    index: int
    """Arrival order, from 0."""
    at: float
    """Loop time (``loop.time()``) when the request head arrived."""
    method: str
    path: str
    headers: dict[str, str]
    """Lower-case names; the last value wins."""
    peer: tuple[str, int] = ("", 0)
    """The client's address: one per connection, so reuse shows as a repeated peer."""
    body: Any = None
    """The decoded JSON body (an object, or an ODP array); ``None`` if it was not read or
    not JSON."""
    action: Action | None = None
    status: int | None = None
    """The status actually sent; ``None`` when the request was reset, left hanging, or the
    client gave up before the answer."""

    @property
    def batch(self) -> list[dict[str, Any]]:
        """The messages of the batch (empty if the body was not read)."""
        batch = self.body.get("batch") if isinstance(self.body, dict) else None
        return batch if isinstance(batch, list) else []

    @property
    def message_ids(self) -> list[str]:
        """The ``messageId`` of each message, in batch order."""
        return [message.get("messageId") for message in self.batch]

    @property
    def answered_2xx(self) -> bool:
        """Whether the client was sent a success answer for this request."""
        return self.status is not None and 200 <= self.status < 300


Script = Sequence[Action] | Callable[[ReceivedRequest], Action]


def _reserve(port: int) -> socket.socket:
    """A socket bound to ``port`` but not listening: connections to it are refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except BaseException:
        sock.close()
        raise
    return sock


def _abort_with_rst(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        # Linger 0 turns close() into a RST rather than an orderly FIN.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultServer:
    """See the module docstring. Use as ``async with``; everything runs on the current loop."""

    def __init__(
        self,
        *script: Action,
        then: Action = Respond(200),
        start_down: bool = False,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.script: Script = list(script)
        self.then = then
        self._tls = tls
        self.requests: list[ReceivedRequest] = []
        self._start_down = start_down
        self._sock: socket.socket | None = None
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._changed: asyncio.Event | None = None
        self.port = 0

    # -- lifecycle --------------------------------------------------------------

    async def __aenter__(self) -> FaultServer:
        self._changed = asyncio.Event()
        self._sock = _reserve(0)
        self.port = self._sock.getsockname()[1]
        if not self._start_down:
            await self.up()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stop_listening()
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (``https://`` with ``tls``): the client's ``host``."""
        scheme = "http" if self._tls is None else "https"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def is_up(self) -> bool:
        """Whether the port is accepting connections."""
        return self._server is not None

    async def up(self) -> None:
        """Listen on the port (again)."""
        if self._server is not None:
            return
        if self._sock is None:
            self._sock = _reserve(self.port)
        sock, self._sock = self._sock, None
        sock.listen(128)
        self._server = await asyncio.start_server(self._handle, sock=sock, ssl=self._tls)

    async def down(self) -> None:
        """Close the port as a crashed server would: refuse new connections, reset open ones."""
        await self._stop_listening()
        self._sock = _reserve(self.port)

    async def _stop_listening(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            _abort_with_rst(writer)
        handlers = set(self._handlers)
        if handlers:
            await asyncio.wait(handlers)
        if server is not None:
            await server.wait_closed()

    # -- what arrived -------------------------------------------------------------

    def received_ids(self) -> list[str]:
        """Every message id in every request body read, duplicates included, in order."""
        return [mid for request in self.requests for mid in request.message_ids]

    def delivered_ids(self) -> list[str]:
        """Message ids in requests answered with a 2xx (what the client counts as delivered)."""
        return [
            mid for request in self.requests if request.answered_2xx for mid in request.message_ids
        ]

    def answered(self, status: int) -> list[ReceivedRequest]:
        """Requests that were sent ``status``."""
        return [request for request in self.requests if request.status == status]

    async def wait_until(
        self, predicate: Callable[[FaultServer], bool], *, timeout: float = 10.0
    ) -> None:
        """Wait until ``predicate(self)`` holds, re-checking after every request event."""
        assert self._changed is not None, "enter the server first"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate(self):
            self._changed.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"condition not met within {timeout} s; saw {self.requests!r}")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def wait_for_requests(self, count: int, *, timeout: float = 10.0) -> None:
        """Wait until ``count`` requests have arrived."""
        await self.wait_until(lambda server: len(server.requests) >= count, timeout=timeout)

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()

    # -- serving ----------------------------------------------------------------------

    def _next_action(self, request: ReceivedRequest) -> Action:
        script = self.script
        if callable(script):
            return script(request)
        if request.index < len(script):
            return script[request.index]
        return self.then

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        conn = h11.Connection(h11.SERVER)
        try:
            while await self._serve_one(conn, reader, writer):
                conn.start_next_cycle()
        except (ConnectionError, h11.ProtocolError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()
            self._handlers.discard(task)
            self._notify()

    async def _serve_one(
        self, conn: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Serve one request; return whether the connection may carry another."""
        event = await _next_event(conn, reader)
        if not isinstance(event, h11.Request):
            return False
        loop = asyncio.get_running_loop()
        headers = {name.decode().lower(): value.decode() for name, value in event.headers}
        request = ReceivedRequest(
            index=len(self.requests),
            at=loop.time(),
            method=event.method.decode(),
            path=event.target.decode(),
            headers=headers,
            peer=writer.get_extra_info("peername")[:2],
        )
        script_sees_body = callable(self.script)
        action = None if script_sees_body else self._next_action(request)
        if isinstance(action, Reset) and action.after == "head":
            request.action = action
            self._record(request)
            _abort_with_rst(writer)
            return False
        chunks = []
        while True:
            event = await _next_event(conn, reader)
            if isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                return False
        request.body = _decode(b"".join(chunks), headers)
        if action is None:
            action = self._next_action(request)
        request.action = action
        self._record(request)
        if isinstance(action, Reset):
            _abort_with_rst(writer)
            return False
        if isinstance(action, Hang):
            await _client_leaves(reader, None)
            return False
        if action.delay > 0 and await _client_leaves(reader, action.delay):
            return False
        self._answer(conn, writer, request, action)
        request.status = action.status
        self._notify()
        return conn.our_state is h11.DONE and conn.their_state is h11.DONE

    def _record(self, request: ReceivedRequest) -> None:
        self.requests.append(request)
        self._notify()

    def _answer(
        self,
        conn: h11.Connection,
        writer: asyncio.StreamWriter,
        request: ReceivedRequest,
        action: Respond,
    ) -> None:
        body = action.body
        if action.echo_auth:
            key = request.body.get("writeKey") if request.body else None
            body += f" auth={request.headers.get('authorization')} key={key}".encode()
        headers = [("Content-Type", "text/plain")]
        if action.retry_after is not None:
            headers.append(("Retry-After", action.retry_after))
        headers.extend(action.headers)
        if action.status not in (204, 304):
            headers.append(("Content-Length", str(len(body))))
        try:
            reason = http.HTTPStatus(action.status).phrase.encode()
        except ValueError:
            reason = b""
        out = conn.send(h11.Response(status_code=action.status, headers=headers, reason=reason))
        if body and action.status not in (204, 304):
            out += conn.send(h11.Data(data=body))
        out += conn.send(h11.EndOfMessage())
        writer.write(out)


async def _next_event(conn: h11.Connection, reader: asyncio.StreamReader) -> Any:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        conn.receive_data(await reader.read(65536))


async def _client_leaves(reader: asyncio.StreamReader, timeout: float | None) -> bool:
    """Wait up to ``timeout`` seconds (forever if ``None``); return whether the client left."""
    try:
        # EOF means the client gave up; a byte would be a pipelined request, which the
        # clients under test never send, so either way this exchange is over.
        await asyncio.wait_for(reader.read(1), timeout)
    except asyncio.TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


def _decode(raw: bytes, headers: Mapping[str, str]) -> Any:
    try:
        if headers.get("content-encoding") == "gzip":
            raw = gzip.decompress(raw)
        body = json.loads(raw)
    except (OSError, ValueError):
        return None
    # Objects, and the bare arrays of the ODP protocol.
    return body if isinstance(body, (dict, list)) else None
