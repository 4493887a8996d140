"""The AWS Lambda pattern, with a simulated runtime that freezes the process between calls."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys

from servers import TESTS, environment

from htevents_async._collector import LocalCollector


async def test_flush_before_returning_delivers_even_when_frozen_next(
    collector: LocalCollector,
) -> None:
    """Each invocation's events are at the collector while the process is frozen after it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(TESTS / "sites" / "lambda_handler.py"),
        env=environment({"HT_COLLECTOR": collector.url}),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    delivered = 0
    try:
        for call, count in enumerate([3, 1, 5]):
            process.stdin.write(json.dumps({"call": call, "count": count}).encode() + b"\n")
            await process.stdin.drain()
            answer = json.loads(await asyncio.wait_for(process.stdout.readline(), 60))
            assert answer == {"pending": 0}
            # Frozen, as Lambda freezes an environment between invocations: only events
            # already delivered can reach the collector now.
            os.kill(process.pid, signal.SIGSTOP)
            try:
                delivered += count
                messages = await collector.wait_for(delivered)
                assert [m["properties"]["call"] for m in messages[-count:]] == [call] * count
            finally:
                os.kill(process.pid, signal.SIGCONT)
        process.stdin.close()
        assert await asyncio.wait_for(process.wait(), 60) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert len(collector.messages()) == delivered
