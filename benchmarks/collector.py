"""A local batch collector for the benchmarks: counts what arrives, as fast as it can.

Run it as its own process (``python benchmarks/collector.py``); it prints one JSON line
``{"port": N, ...}`` on stdout once it listens, then serves until killed.

Any ``POST`` to a path other than the control paths is treated as a batch upload: the
body (gzip-aware) is parsed and ``len(body["batch"])`` events are counted. Control
endpoints, used by the runner:

- ``GET /stats``: counters and the monotonic/wall time the first and last events arrived.
- ``POST /reset?fail_every=K&hold=1&delay_ms=D``: zero the counters; answer every K-th
  upload with 500, starting with the first (``0`` = never); with ``hold=1`` park uploads
  until ``POST /release`` (or a reset, or a safety timeout), which the memory-backlog
  scenario uses to keep events queued inside the SDK under test; with ``delay_ms=D``
  answer every upload D ms after its body arrived, as a collector across a real network
  would (a sleep per request, so uploads overlap and the collector stays as fast as
  before).
- ``POST /release``: let parked uploads through.

``python benchmarks/collector.py --self-check`` starts a collector and loads it with
pre-built batches over raw sockets, to show that it absorbs far more than any SDK sends.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import os
import socket
import subprocess
import sys
import time
import zlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

try:
    import orjson

    _loads: Callable[[bytes], Any] = orjson.loads
    PARSER = "orjson"
except ImportError:  # the test venv has no orjson; json is fast enough there
    _loads = json.loads
    PARSER = "json"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

HOLD_SAFETY_TIMEOUT = 60.0
"""Seconds a parked upload waits at most, so a runner that died cannot wedge a client."""

_OK_BODY = b'{"success":true}'
_FAIL_BODY = b'{"code":"benchmark_fault","message":"injected failure"}'


class Collector:
    """A bare ASGI app that counts events per upload and serves its own statistics."""

    def __init__(self) -> None:
        self.fail_every = 0
        self.delay = 0.0
        self._hold: asyncio.Event | None = None
        self.reset()

    def reset(self, *, fail_every: int = 0, hold: bool = False, delay_ms: float = 0.0) -> None:
        """Zero every counter and set the fault, hold and delay behaviour for the next run."""
        self.fail_every = fail_every
        self.delay = delay_ms / 1000
        self.requests = 0
        self.accepted_requests = 0
        self.failed_requests = 0
        self.events = 0
        self.rejected_events = 0
        self.bytes_in = 0
        self.bytes_decoded = 0
        self.parse_errors = 0
        self.held_requests = 0
        self.first_event_mono: float | None = None
        self.last_event_mono: float | None = None
        self.first_event_wall: float | None = None
        self.last_event_wall: float | None = None
        self.paths: dict[str, int] = {}
        self.user_agents: dict[str, int] = {}
        self.content_encodings: dict[str, int] = {}
        # Releasing the old gate lets uploads parked by a previous run finish.
        if self._hold is not None:
            self._hold.set()
        self._hold = asyncio.Event() if hold else None

    def stats(self) -> dict[str, Any]:
        """Everything the runner needs to judge a run, JSON-serialisable."""
        return {
            "requests": self.requests,
            "accepted_requests": self.accepted_requests,
            "failed_requests": self.failed_requests,
            "events": self.events,
            "rejected_events": self.rejected_events,
            "bytes_in": self.bytes_in,
            "bytes_decoded": self.bytes_decoded,
            "parse_errors": self.parse_errors,
            "held_requests": self.held_requests,
            "first_event_mono": self.first_event_mono,
            "last_event_mono": self.last_event_mono,
            "first_event_wall": self.first_event_wall,
            "last_event_wall": self.last_event_wall,
            "fail_every": self.fail_every,
            "delay_ms": self.delay * 1000,
            "holding": self._hold is not None and not self._hold.is_set(),
            "paths": self.paths,
            "user_agents": self.user_agents,
            "content_encodings": self.content_encodings,
            "parser": PARSER,
            "pid": os.getpid(),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method: str = scope["method"]
        path: str = scope["path"]
        body = await _read_body(receive)
        if method == "GET" and path == "/stats":
            await _respond(send, 200, json.dumps(self.stats()).encode())
        elif method == "POST" and path == "/reset":
            query = parse_qs(scope.get("query_string", b"").decode())
            self.reset(
                fail_every=int(query.get("fail_every", ["0"])[0]),
                hold=query.get("hold", ["0"])[0] == "1",
                delay_ms=float(query.get("delay_ms", ["0"])[0]),
            )
            await _respond(send, 200, _OK_BODY)
        elif method == "POST" and path == "/release":
            if self._hold is not None:
                self._hold.set()
            await _respond(send, 200, _OK_BODY)
        elif method == "POST":
            await self._upload(scope, body, send)
        else:
            await _respond(send, 404, b'{"code":"not_found"}')

    async def _upload(self, scope: Scope, body: bytes, send: Send) -> None:
        headers = dict(scope["headers"])
        encoding = headers.get(b"content-encoding", b"").decode().lower()
        agent = headers.get(b"user-agent", b"").decode()
        path: str = scope["path"]
        self.requests += 1
        number = self.requests
        self.bytes_in += len(body)
        self.paths[path] = self.paths.get(path, 0) + 1
        self.user_agents[agent] = self.user_agents.get(agent, 0) + 1
        self.content_encodings[encoding] = self.content_encodings.get(encoding, 0) + 1
        count = self._count(body, encoding)
        if self.delay:
            # The round trip of a distant collector: the event counts as arrived when
            # its answer leaves, as the client sees it.
            await asyncio.sleep(self.delay)
        # Uploads 1, 1 + K, 1 + 2K, …: the first one meets a fault too, so a run whose
        # events leave in one or two full requests still exercises the retry path.
        if self.fail_every and number % self.fail_every == 1 % self.fail_every:
            self.failed_requests += 1
            self.rejected_events += count
            await _respond(send, 500, _FAIL_BODY)
            return
        gate = self._hold
        if gate is not None and not gate.is_set():
            self.held_requests += 1
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(gate.wait(), HOLD_SAFETY_TIMEOUT)
        now_mono, now_wall = time.monotonic(), time.time()
        self.accepted_requests += 1
        if count:
            self.events += count
            self.last_event_mono, self.last_event_wall = now_mono, now_wall
            if self.first_event_mono is None:
                self.first_event_mono, self.first_event_wall = now_mono, now_wall
        await _respond(send, 200, _OK_BODY)

    def _count(self, body: bytes, encoding: str) -> int:
        try:
            if encoding == "gzip":
                # wbits=31 reads the gzip container directly, without GzipFile's overhead.
                body = zlib.decompress(body, 31)
            self.bytes_decoded += len(body)
            batch = _loads(body)["batch"]
            return len(batch) if isinstance(batch, list) else 0
        except (ValueError, KeyError, TypeError, zlib.error):
            self.parse_errors += 1
            return 0


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _respond(send: Send, status: int, body: bytes) -> None:
    # An explicit length keeps responses out of chunked encoding: less work for both sides.
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def serve(host: str = "127.0.0.1", port: int = 0) -> None:
    """Listen on ``host:port`` (0 = any free port), announce the port on stdout, serve."""
    import uvicorn

    # Naming IPPROTO_TCP matters: asyncio turns Nagle off (TCP_NODELAY) only on sockets
    # whose proto says TCP, and with Nagle on, the split header/body writes of a response
    # wait 40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    # Listening before announcing the port lets the runner connect at once: connections
    # wait in the backlog until uvicorn starts accepting.
    sock.listen(2048)
    config = uvicorn.Config(
        Collector(),
        log_level="warning",
        access_log=False,
        lifespan="off",
        # "auto" picks httptools and uvloop when they are installed (the bench venv),
        # h11 and the stdlib loop otherwise (the test venv).
        http="auto",
        loop="auto",
        timeout_keep_alive=30,
    )
    server = uvicorn.Server(config)
    announce = {
        "port": sock.getsockname()[1],
        "pid": os.getpid(),
        "parser": PARSER,
        "http": _installed("httptools") or "h11",
        "loop": _installed("uvloop") or "asyncio",
    }
    print(json.dumps(announce), flush=True)
    server.run(sockets=[sock])


def _installed(module: str) -> str | None:
    try:
        __import__(module)
    except ImportError:
        return None
    return module


def start_process(python: str = sys.executable) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """Start a collector subprocess and return it with its announcement (port, parser...)."""
    proc = subprocess.Popen(
        [python, os.path.abspath(__file__)],
        stdout=subprocess.PIPE,
        stderr=None,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(timeout=10)
        raise RuntimeError(f"collector exited with {proc.returncode} before listening")
    return proc, json.loads(line)


def _batch_request(port: int, events: int, *, compress: bool) -> bytes:
    item = {
        "type": "track",
        "messageId": "00000000-0000-4000-8000-000000000000",
        "timestamp": "2026-01-01T00:00:00.000Z",
        "userId": "user-1",
        "event": "Order completed",
        "properties": {"total": 29.99, "currency": "USD", "index": 1},
        "context": {"library": {"name": "self-check", "version": "0"}},
        "integrations": {},
    }
    body = json.dumps({"batch": [item] * events, "sentAt": "x", "writeKey": "k"}).encode()
    extra = ""
    if compress:
        body = gzip.compress(body, compresslevel=6)
        extra = "Content-Encoding: gzip\r\n"
    head = (
        f"POST /v1/batch HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\n{extra}Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _load(port: int, seconds: float, connections: int, compress: bool) -> int:
    request = _batch_request(port, 100, compress=compress)
    deadline = time.monotonic() + seconds
    sent = 0

    async def one() -> None:
        nonlocal sent
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.monotonic() < deadline:
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            sent += 1
        writer.close()

    await asyncio.gather(*(one() for _ in range(connections)))
    return sent


def self_check(seconds: float = 3.0, connections: int = 4) -> dict[str, Any]:
    """Load a fresh collector with batches of 100 events; report what it absorbed per second.

    The load generator is a single Python process on the same machine, so the figure is
    a lower bound of what the collector can take.
    """
    import urllib.request

    proc, info = start_process()
    port = info["port"]
    results: dict[str, Any] = {"collector": info}
    try:
        for compress in (False, True):
            urllib.request.urlopen(
                urllib.request.Request(f"http://127.0.0.1:{port}/reset", method="POST")
            ).read()
            sent = asyncio.run(_load(port, seconds, connections, compress))
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats") as response:
                stats = json.loads(response.read())
            span = stats["last_event_mono"] - stats["first_event_mono"]
            results["gzip" if compress else "plain"] = {
                "requests": sent,
                "events": stats["events"],
                "events_per_s": round(stats["events"] / span) if span > 0 else None,
                "parse_errors": stats["parse_errors"],
            }
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return results


def main() -> None:
    """Command line: serve (default) or ``--self-check``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--self-check", action="store_true", help="measure how many events/s it absorbs"
    )
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    if args.self_check:
        print(json.dumps(self_check(args.seconds), indent=2))
    else:
        serve(args.host, args.port)


if __name__ == "__main__":
    main()
