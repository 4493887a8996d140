"""The arq integration with the real ``arq`` worker and a real Redis broker.

arq pins ``redis<6`` and Celery's Redis transport needs ``redis>=6.4``, so these tests
run in their own nox session (``nox -s arq``); elsewhere they skip.
"""

from __future__ import annotations

import contextlib
import shutil

import pytest
from servers import redis_server
from worker_support import (
    ORDERS,
    check_events_arrive_while_running,
    check_sigterm_delivers_pending,
    worker,
)

from htevents_async._collector import LocalCollector

pytest.importorskip("arq")
from arq import create_pool
from arq.connections import RedisSettings
from arq.jobs import Job

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="needs Debian's redis-server"
)

ARGV = ["-m", "arq", "sites.arqsite.WorkerSettings"]


async def _charge_all(broker: str) -> None:
    pool = await create_pool(RedisSettings.from_dsn(broker))
    try:
        jobs: list[Job] = []
        for n in range(ORDERS):
            job = await pool.enqueue_job("charge", "u1", f"o{n}")
            assert job is not None
            jobs.append(job)
        for job in jobs:
            await job.result(timeout=60, poll_delay=0.05)
    finally:
        await pool.aclose()


async def test_events_recorded_in_jobs_arrive_while_the_worker_runs(
    collector: LocalCollector,
) -> None:
    """With a short flush interval, every job's event reaches the collector before shutdown."""
    await check_events_arrive_while_running(ARGV, _charge_all, collector)


async def test_sigterm_delivers_what_is_pending_before_the_worker_exits(
    collector: LocalCollector,
) -> None:
    """SIGTERM runs the integration's shutdown hook in each worker process, which delivers
    the events still in memory (one-hour flush interval) before it exits."""
    await check_sigterm_delivers_pending(ARGV, _charge_all, collector)


async def test_on_shutdown_does_not_run_when_redis_is_gone_at_shutdown(
    collector: LocalCollector,
) -> None:
    """arq's Worker.close() deletes its health-check key before on_shutdown, unguarded:
    with Redis gone, the close fails there and the events in memory are lost. The arq
    guide and integration docstring say so; this test tells when arq changes it."""
    stderr: list[str] = []
    env = {"HT_COLLECTOR": collector.url, "HT_FLUSH_INTERVAL": "3600"}
    env["HT_WRITE_KEY"] = "example-key"
    async with contextlib.AsyncExitStack() as redis:
        broker = await redis.enter_async_context(redis_server())
        async with worker(ARGV, {**env, "REDIS_URL": broker}, stderr=stderr, clean_exit=False):
            await _charge_all(broker)
            await redis.aclose()
    (err,) = stderr
    # The close failed on the key, so on_shutdown never ran: nothing reached the collector.
    assert "self.pool.delete(self.health_check_key)" in err, err
    assert "redis.exceptions.ConnectionError" in err, err
    assert collector.messages() == []
