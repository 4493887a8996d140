"""Running the collector: inside the current event loop for tests, or blocking for the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import socket
from collections.abc import Iterable, Iterator
from os import PathLike
from types import TracebackType
from typing import Any, final

import uvicorn

from ._app import MAX_BODY_BYTES, create_app
from ._sqlite import SqliteLog
from ._store import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_MESSAGES,
    CollectorStats,
    EventStore,
    RequestRecord,
)

# Bounds the wait for in-flight requests when the collector stops.
_GRACEFUL_SHUTDOWN_SECONDS = 5


class _Server(uvicorn.Server):
    """uvicorn's server, with a readiness event and optional signal handling."""

    def __init__(self, config: uvicorn.Config, *, handle_signals: bool) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()
        self._handle_signals = handle_signals

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self.ready.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # Embedded in someone else's program (a test run), Ctrl+C belongs to that program.
        if not self._handle_signals:
            yield
            return
        with super().capture_signals():
            yield


class _State(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket whose accepted connections get ``TCP_NODELAY``.

    ``socket.create_server`` leaves ``proto`` at 0, and asyncio only disables Nagle's
    algorithm on sockets whose ``proto`` is ``IPPROTO_TCP``; accepted sockets inherit it.
    Without it, every response on a kept-alive connection waits for the client's delayed
    ACK (about 40 ms on Linux).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        if os.name == "posix":
            # As create_server does: a restarted collector may reuse a port in TIME_WAIT.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        # Listening before uvicorn starts means connections made right after start() queue
        # up in the backlog instead of being refused.
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        # The same wording as create_server, which the CLI shows as is.
        raise OSError(
            exc.errno, f"{exc.strerror} (while attempting to bind on address {(host, port)!r})"
        ) from None
    except BaseException:
        sock.close()
        raise
    return sock


@final
class LocalCollector:
    """A Segment-spec collector on 127.0.0.1, run in the current event loop.

    ::

        async with LocalCollector() as collector:
            ...  # point a client at collector.url
            await collector.wait_for(3)
            assert collector.messages("track")[0]["event"] == "Order completed"

    ``port=0`` picks a free port. With ``write_key`` only that key is accepted, otherwise
    any non-empty key.

    Memory keeps the newest messages within ``max_messages`` and ``max_bytes`` (bytes of
    their JSON); ``stats()`` shows both limits and how many messages left memory. Messages
    whose ``messageId`` was already seen (among the newest 100,000 ids) are counted in
    ``stats().duplicates`` and dropped, unless ``keep_duplicates``.

    With ``db_path`` every accepted batch is written to an SQLite file before it is shown
    or acknowledged, and the newest messages within the limits are loaded back at start.

    Requests must name this machine in ``Host`` (a loopback name or address, ``host``, or
    one of ``allowed_hosts``), which keeps DNS rebinding pages out.

    ``/regulations`` (user deletion, see ``Client.delete``) takes any bearer token, or
    only ``regulations_token``.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        write_key: str | None = None,
        db_path: str | PathLike[str] | None = None,
        max_messages: int = DEFAULT_MAX_MESSAGES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        keep_duplicates: bool = False,
        max_requests: int = 1_000,
        max_body_bytes: int = MAX_BODY_BYTES,
        allowed_hosts: Iterable[str] = (),
        regulations_token: str | None = None,
    ) -> None:
        """Configure the collector; nothing is bound or opened until it is entered."""
        self._host = host
        self._port = port
        self._write_key = write_key
        self._db_path = db_path
        self._max_messages = max_messages
        self._max_bytes = max_bytes
        self._max_body_bytes = max_body_bytes
        self._allowed_hosts = tuple(allowed_hosts)
        self._regulations_token = regulations_token
        self._store = EventStore(
            max_messages=max_messages,
            max_bytes=max_bytes,
            max_requests=max_requests,
            keep_duplicates=keep_duplicates,
        )
        self._state = _State.UNOPENED
        self._url: str | None = None
        self._db: SqliteLog | None = None
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        # The write key stays out of reprs, which end up in logs and test reports.
        return f"<LocalCollector {self._state.value} url={self._url!r}>"

    @property
    def url(self) -> str:
        """The base URL, such as ``http://127.0.0.1:54321``; batches go to ``url + "/v1/batch"``."""
        if self._url is None:
            raise RuntimeError("LocalCollector.url is only known once the collector is started")
        return self._url

    @property
    def requests(self) -> list[RequestRecord]:
        """Records of the latest batch requests (accepted or not), oldest first."""
        return self._store.requests()

    def messages(
        self,
        type: str | None = None,
        *,
        user_id: str | None = None,
        event: str | None = None,
    ) -> list[dict[str, Any]]:
        """The retained messages in arrival order, optionally filtered like ``GET /v1/events``."""
        found = self._store.events(type=type, user_id=user_id, event=event)
        return [stored.message for stored in found]

    def stats(self) -> CollectorStats:
        """The collector's counters, the same as ``GET /stats``."""
        return self._store.stats()

    async def wait_for(
        self, count: int, *, type: str | None = None, timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """Wait until ``count`` messages (of ``type``, if given) arrived since start.

        Returns :meth:`messages` for the same ``type``. Raises :class:`TimeoutError` after
        ``timeout`` seconds, saying how many arrived.
        """
        store = self._store

        def arrived() -> int:
            return store.received if type is None else store.received_of_type(type)

        try:
            await asyncio.wait_for(store.wait_until(lambda: arrived() >= count), timeout)
        except asyncio.TimeoutError:
            what = "messages" if type is None else f"{type} messages"
            raise TimeoutError(
                f"waited {timeout} s for {count} {what}, {arrived()} arrived"
            ) from None
        return self.messages(type)

    async def __aenter__(self) -> LocalCollector:
        """Start serving; see :meth:`start`."""
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop serving; see :meth:`aclose`."""
        await self.aclose()

    async def start(self) -> None:
        """Bind the port, load the database if any, and start serving in the running loop."""
        await self._start(handle_signals=False)

    async def _start(self, *, handle_signals: bool) -> None:
        if self._state is not _State.UNOPENED:
            raise RuntimeError(f"cannot start a LocalCollector that is {self._state.value}")
        self._state = _State.OPEN
        sock: socket.socket | None = None
        try:
            if self._db_path is not None:
                self._db = await SqliteLog.open(self._db_path)
                events, counts = await self._db.load(self._max_messages, self._max_bytes)
                self._store.preload(events, counts, await self._db.last_seq())
            sock = _bind(self._host, self._port)
            app = create_app(
                self._store,
                write_key=self._write_key,
                sink=self._db,
                max_body_bytes=self._max_body_bytes,
                bound_host=self._host,
                allowed_hosts=self._allowed_hosts,
                regulations_token=self._regulations_token,
                database=self._db,
            )
            config = uvicorn.Config(
                app,
                # Embedded servers must not reconfigure the host program's logging.
                log_config=None,
                log_level="warning",
                access_log=False,
                lifespan="off",
                ws="none",
                timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_SECONDS,
            )
            self._server = _Server(config, handle_signals=handle_signals)
            self._task = asyncio.create_task(
                self._server.serve(sockets=[sock]), name="htevents-collector"
            )
            ready = asyncio.create_task(self._server.ready.wait())
            await asyncio.wait({ready, self._task}, return_when=asyncio.FIRST_COMPLETED)
            ready.cancel()
            if self._task.done():
                self._task.result()  # re-raises the startup failure, if it was one
                raise RuntimeError("the collector's server stopped during startup")
            host, port = sock.getsockname()[:2]
            self._url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        except BaseException:
            self._state = _State.CLOSED
            # Startup already failed: clean up without letting a second error hide the first.
            with contextlib.suppress(Exception):
                await self._stop()
            if sock is not None:
                sock.close()
            raise

    async def _wait_closed(self) -> None:
        # Shielded: cancelling the waiter must not cancel the server, aclose() stops it.
        if self._task is not None:
            await asyncio.shield(self._task)

    async def aclose(self) -> None:
        """Stop accepting, let in-flight requests finish (bounded), close the database.

        Idempotent. Messages stay readable after closing.
        """
        if self._state is _State.CLOSED:
            return
        self._state = _State.CLOSED
        await self._stop()

    async def _stop(self) -> None:
        try:
            if self._server is not None and self._task is not None:
                self._server.should_exit = True
                await self._task
        finally:
            if self._db is not None:
                await self._db.aclose()


def serve(
    host: str = "127.0.0.1",
    port: int = 8787,
    write_key: str | None = None,
    db_path: str | PathLike[str] | None = None,
    *,
    max_messages: int = DEFAULT_MAX_MESSAGES,
    max_bytes: int = DEFAULT_MAX_BYTES,
    keep_duplicates: bool = False,
    allowed_hosts: Iterable[str] = (),
) -> None:
    """Run a collector in the foreground until Ctrl+C (or SIGTERM), printing its URLs on start.

    This is what ``htevents-async collect`` runs; the options are :class:`LocalCollector`'s.
    A port already in use raises :class:`OSError` before anything is printed.
    """
    collector = LocalCollector(
        host=host,
        port=port,
        write_key=write_key,
        db_path=db_path,
        max_messages=max_messages,
        max_bytes=max_bytes,
        keep_duplicates=keep_duplicates,
        allowed_hosts=allowed_hosts,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(collector, write_key is not None, db_path))


async def _serve(
    collector: LocalCollector, has_key: bool, db_path: str | PathLike[str] | None
) -> None:
    await collector._start(handle_signals=True)
    try:
        stats = collector.stats()
        lines = [
            f"htevents-async collector listening on {collector.url}",
            f"  viewer:    {collector.url}/",
            f"  endpoint:  {collector.url}/v1/batch",
            "  write key: " + ("required (as configured)" if has_key else "any non-empty key"),
            f"  memory:    newest {stats.max_messages:,} messages within "
            f"{stats.max_bytes / 1024 / 1024:,.1f} MiB of JSON",
            "  messageId: "
            + ("duplicates kept (and counted)" if stats.keep_duplicates else "duplicates dropped"),
        ]
        if db_path is not None:
            lines.append(f"  database:  {db_path} ({stats.messages} messages loaded)")
        lines.append("Press Ctrl+C to stop.")
        print("\n".join(lines), flush=True)
        await collector._wait_closed()
    finally:
        await collector.aclose()
