"""Real servers in subprocesses: started on a free port of 127.0.0.1, stopped by their PID."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

import httpx

TESTS = Path(__file__).parent


def free_port() -> int:
    """A port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def environment(extra: Mapping[str, str]) -> dict[str, str]:
    """This environment, with the tests directory and the project on the import path."""
    paths = [str(TESTS), str(TESTS.parent), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p), **extra}


@contextlib.asynccontextmanager
async def serve(
    argv: Sequence[str], port: int, env: Mapping[str, str], *, timeout: float = 60.0
) -> AsyncIterator[httpx.AsyncClient]:
    """Run ``python -m argv...`` until the block ends, then stop it with SIGTERM and wait.

    Yields an HTTP client for ``http://127.0.0.1:port`` once the server answers.
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", *argv, env=environment(env), stderr=asyncio.subprocess.PIPE
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            await _wait_until_up(http, process, timeout)
            yield http
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), timeout)
    # uvicorn re-raises the signal it handled once it has shut down.
    assert process.returncode in (0, -signal.SIGTERM), err.decode()
    assert b"Traceback" not in err, err.decode()


async def _wait_until_up(
    http: httpx.AsyncClient, process: asyncio.subprocess.Process, timeout: float
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            await http.get("/")
            return
        except httpx.TransportError:
            if process.returncode is not None or loop.time() > deadline:
                raise
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def redis_server(*, timeout: float = 30.0) -> AsyncIterator[str]:
    """Debian's ``redis-server`` on a free port, no persistence; yields its URL."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        "redis-server",
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--save", "",
        "--appendonly", "no",
        stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                if process.returncode is not None or loop.time() > deadline:
                    raise
                await asyncio.sleep(0.02)
                continue
            writer.close()
            await writer.wait_closed()
            break
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), timeout)
