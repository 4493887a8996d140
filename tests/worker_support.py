"""What the async worker tests share: running a worker command until SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import anyio
from servers import environment, redis_server

from htevents_async._collector import LocalCollector

ORDERS = 12


def by_order(messages: list[dict[str, Any]]) -> list[str]:
    """The ``order`` property of each message, ordered by its number (``o0``, ``o1``, ...)."""
    return sorted((m["properties"]["order"] for m in messages), key=lambda o: int(o[1:]))


def expected_orders() -> list[str]:
    """The orders every test submits, in order."""
    return [f"o{n}" for n in range(ORDERS)]


def worker_env(broker: str, collector: str, flush_interval: float) -> dict[str, str]:
    """What the example workers read: the broker, the collector, the flush interval, a key."""
    return {
        "REDIS_URL": broker,
        "HT_COLLECTOR": collector,
        "HT_FLUSH_INTERVAL": str(flush_interval),
        "HT_WRITE_KEY": "example-key",
    }


def assert_every_order_charged(messages: list[dict[str, Any]]) -> None:
    """Each submitted order arrived once, as the event the example jobs record."""
    assert by_order(messages) == expected_orders()
    assert {m["event"] for m in messages} == {"Order charged"}


@contextlib.asynccontextmanager
async def worker(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    timeout: float = 60.0,
    stderr: list[str] | None = None,
    clean_exit: bool = True,
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run ``python argv...`` until the block ends, then SIGTERM it and wait for a clean exit.

    The worker leads a process group of its own (taskiq's worker processes are its
    children): if it has not exited ``timeout`` seconds after SIGTERM, the whole group is
    killed and the test fails. The worker's stderr is appended to ``stderr`` when given.
    With ``clean_exit=False`` the worker may exit with an error (but must exit).
    """
    # A file, not a pipe: nothing has to read it while the worker runs, and what the
    # worker wrote survives a kill.
    with tempfile.TemporaryFile() as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *argv,
            env=environment(env),
            stderr=log,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
            with anyio.move_on_after(timeout) as waited:
                await process.wait()
            if waited.cancelled_caught:
                # The group id is the worker's pid, still ours: it has not been reaped.
                os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
            else:
                # Children the worker left behind (it exited, they did not).
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
            log.seek(0)
            err = log.read().decode(errors="replace")
            if stderr is not None:
                stderr.append(err)
        assert not waited.cancelled_caught, f"still running {timeout} s after SIGTERM:\n{err}"
    if clean_exit:
        assert process.returncode == 0, err
        assert "Traceback" not in err, err


#: Submits the ``ORDERS`` jobs to the broker at the given URL and waits for their results.
Submit = Callable[[str], Awaitable[None]]


async def check_events_arrive_while_running(
    argv: Sequence[str], submit: Submit, collector: LocalCollector
) -> None:
    """With a short flush interval, every job's event reaches the collector while the
    worker still runs."""
    async with redis_server() as broker, worker(argv, worker_env(broker, collector.url, 0.05)):
        await submit(broker)
        messages = await collector.wait_for(ORDERS)
    assert_every_order_charged(messages)


async def check_sigterm_delivers_pending(
    argv: Sequence[str], submit: Submit, collector: LocalCollector
) -> None:
    """Nothing is sent while the worker runs (one-hour flush interval); SIGTERM runs the
    worker's shutdown hook, which delivers every job's event before the process exits."""
    async with redis_server() as broker:
        async with worker(argv, worker_env(broker, collector.url, 3600)) as process:
            await submit(broker)
            assert collector.messages() == []
        assert process.returncode == 0
    assert by_order(collector.messages()) == expected_orders()
