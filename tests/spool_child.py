"""A process that records events into a spool, for the crash and outage tests.

``python tests/spool_child.py MODE DIR URL COUNT PREFIX``, with message ids
``PREFIX-0`` … ``PREFIX-{COUNT-1}``. Modes:

* ``commit-kill``: record COUNT events, ``commit()``, print how many were
  committed, then SIGKILL itself.
* ``steady-kill``: record COUNT events a few at a time, letting the loop run between
  them as a busy server's would (deliveries come back while groups are still being
  gathered), then as ``commit-kill``.
* ``burst``: record events without end, printing ``going`` once COUNT are in;
  the test kills it.
* ``outage``: record COUNT events while the collector is down and print
  ``recorded``; then keep delivering until every event is, print the statistics
  and the peak RSS, and exit. It prints ``kept`` (at any point) the first time
  a batch goes back to disk after its retries ran out.
* ``serve``: record COUNT events, deliver them and whatever was adopted, print
  ``done`` and the statistics, then wait for a line on stdin before closing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
import signal
import sys

import attrs

from htevents_async import Client

WRITE_KEY = "wk_live_9Qz7S3cr3tV4lue"
OPTIONS = {
    "backoff_initial": 0.01,
    "backoff_max": 0.05,
    "max_retry_time": 0.3,
    "flush_interval": 0.05,
    "gzip": False,
}


def _peak_rss_kib() -> int:
    """This process's own peak RSS. ``ru_maxrss`` would not do on Linux: it starts from
    the RSS of the process that forked us (a test run's pytest, hundreds of MiB late in a
    full run) and survives exec; ``VmHWM`` belongs to the memory map exec made."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _say(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


async def _record(client: Client, count: int, prefix: str, start: int = 0) -> None:
    for i in range(start, start + count):
        await client.track(
            user_id=f"user-{i % 97}",
            event="Order completed",
            properties={"order": i, "total": 29.99},
            message_id=f"{prefix}-{i}",
        )


class _KeptAfterRetries(logging.Handler):
    """Says ``kept`` once, when the client logs a batch kept on disk after its retries."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.seen and "after their retries ran out" in record.getMessage():
            self.seen = True
            _say(kept=True)


async def main(mode: str, directory: str, url: str, count: int, prefix: str) -> None:
    options = dict(OPTIONS)
    if mode == "outage":
        # A small window in memory: the backlog lives on disk.
        options.update(max_queue_size=2_000, max_batch_size=500)
        logging.getLogger("htevents_async").addHandler(_KeptAfterRetries())
    client = Client(WRITE_KEY, host=url, spool=directory, **options)
    async with client:
        if mode == "commit-kill":
            await _record(client, count, prefix)
            left = await client.commit(timeout=120)
            _say(committed=count - left, statistics=attrs.asdict(client.statistics()))
            os.kill(os.getpid(), signal.SIGKILL)
        elif mode == "steady-kill":
            for start in range(0, count, 20):
                await _record(client, min(20, count - start), prefix, start)
                await asyncio.sleep(0.001)
            left = await client.commit(timeout=120)
            _say(committed=count - left, statistics=attrs.asdict(client.statistics()))
            os.kill(os.getpid(), signal.SIGKILL)
        elif mode == "burst":
            i = 0
            while True:
                await _record(client, 1000, prefix, i)
                i += 1000
                if i == count:
                    _say(going=i)
        elif mode == "outage":
            await _record(client, count, prefix)
            peak_kib = _peak_rss_kib()
            _say(
                recorded=count, statistics=attrs.asdict(client.statistics()), peak_rss_kib=peak_kib
            )
            while client.statistics().delivered < count:
                await client.flush(timeout=1)
            peak_kib = _peak_rss_kib()
            _say(statistics=attrs.asdict(client.statistics()), peak_rss_kib=peak_kib)
        elif mode == "serve":
            await _record(client, count, prefix)
            while True:
                await client.flush(timeout=1)
                stats = client.statistics()
                if stats.delivered >= count + stats.recovered and not stats.spooled:
                    break
            _say(done=True, statistics=attrs.asdict(client.statistics()))
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        else:
            raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    mode, directory, url, count, prefix = sys.argv[1:6]
    asyncio.run(main(mode, directory, url, int(count), prefix))
