"""The taskiq integration with the real ``taskiq worker`` and a real Redis broker."""

from __future__ import annotations

import re
import shutil

import pytest
from faultserver import FaultServer, Hang
from servers import redis_server
from worker_support import (
    ORDERS,
    check_events_arrive_while_running,
    check_sigterm_delivers_pending,
    worker,
)

from htevents_async._collector import LocalCollector

pytest.importorskip("taskiq")
taskiq_redis = pytest.importorskip("taskiq_redis")
from taskiq.kicker import AsyncKicker  # noqa: E402

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="needs Debian's redis-server"
)

# Two worker processes, each with its own client.
ARGV = ["-m", "taskiq", "worker", "sites.taskiqsite:broker", "--workers", "2"]


async def _charge_all(broker_url: str) -> None:
    broker = taskiq_redis.RedisStreamBroker(broker_url).with_result_backend(
        taskiq_redis.RedisAsyncResultBackend(broker_url)
    )
    await broker.startup()
    try:
        kicker: AsyncKicker[..., None] = AsyncKicker("charge", broker, labels={})
        tasks = [await kicker.kiq("u1", f"o{n}") for n in range(ORDERS)]
        for task in tasks:
            result = await task.wait_result(check_interval=0.05, timeout=60)
            assert not result.is_err, result.error
    finally:
        await broker.shutdown()


async def test_events_recorded_in_tasks_arrive_while_the_worker_runs(
    collector: LocalCollector,
) -> None:
    """With a short flush interval, every task's event reaches the collector before shutdown."""
    await check_events_arrive_while_running(ARGV, _charge_all, collector)


async def test_sigterm_delivers_what_is_pending_before_the_worker_exits(
    collector: LocalCollector,
) -> None:
    """SIGTERM runs the integration's shutdown hook in each worker process, which delivers
    the events still in memory (one-hour flush interval) before it exits."""
    await check_sigterm_delivers_pending(ARGV, _charge_all, collector)


async def test_a_hung_collector_gets_a_close_that_ends_before_taskiq_cancels_it() -> None:
    """With taskiq's and install()'s default timeouts, a collector that never answers makes
    each worker's close give up and report its drops, rather than be cancelled mid-flush
    by taskiq's --shutdown-timeout with nothing said."""
    stderr: list[str] = []
    async with redis_server() as broker, FaultServer(then=Hang()) as hung:
        env = {"REDIS_URL": broker, "HT_COLLECTOR": hung.url, "HT_FLUSH_INTERVAL": "3600"}
        env["HT_WRITE_KEY"] = "example-key"
        async with worker(ARGV, env, stderr=stderr):
            await _charge_all(broker)
        assert hung.requests  # the close tried to deliver before giving up
    (err,) = stderr
    assert "Broker.shutdown cannot be completed" not in err, err
    # One report per worker process that ran tasks (one may have run them all).
    reports = re.findall(r"closed; 0 delivered, 0 failed, dropped \{'shutdown': (\d+)\}", err)
    assert sum(int(n) for n in reports) == ORDERS, err
