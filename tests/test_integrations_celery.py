"""The Celery integration with a real prefork worker and a real Redis broker."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys

import pytest
from integration_support import by_number, context_of
from servers import environment, redis_server

from htevents_async._collector import LocalCollector

celery = pytest.importorskip("celery")
pytest.importorskip("redis")
pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="needs Debian's redis-server"
)

TASKS = 12


async def test_prefork_worker_delivers_task_events_with_task_context(
    collector: LocalCollector,
) -> None:
    """Two prefork processes: every task's event arrives, with its task name and id, after
    the worker stops with SIGTERM (its processes leave through os._exit)."""
    async with redis_server() as broker:
        env = {"HT_BROKER": broker, "HT_COLLECTOR": collector.url}
        worker = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "celery",
            "-A",
            "sites.celeryapp",
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            "2",
            "--loglevel",
            "warning",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            env=environment(env),
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            sender = celery.Celery(broker=broker, backend=broker)
            results = [sender.send_task("record", args=(n,)) for n in range(TASKS)]
            pids = await asyncio.to_thread(lambda: [r.get(timeout=60) for r in results])
            assert collector.messages() == []
            sender.close()
        finally:
            if worker.returncode is None:
                worker.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(worker.communicate(), 60)
        assert worker.returncode == 0, err.decode()
        assert b"Traceback" not in err, err.decode()
    assert os.getpid() not in pids
    messages = by_number(await collector.wait_for(TASKS))
    assert [m["properties"]["n"] for m in messages] == list(range(TASKS))
    for message, result in zip(messages, results, strict=True):
        assert context_of(message) == {"task": {"name": "record", "id": result.id}}
