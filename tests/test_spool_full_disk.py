"""The spool on a full file system: a real, tiny tmpfs (mounting one needs root)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from faultserver import FaultServer
from support import assert_accounted, client_for

from htevents_async import Batch

pytestmark = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("mount") is None,
    reason="mounting a tmpfs needs root and mount(8)",
)

PAD = "x" * 1000


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, unmounted afterwards."""
    disk = tmp_path / "disk"
    disk.mkdir()
    try:
        _mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk))
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False, capture_output=True)


async def test_full_disk_falls_back_to_memory_with_overflow(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The file fills up: an error is logged and the client carries on in memory only,
    never raising. What the queue has no room for meets ``overflow`` (counted by reason,
    ``on_drop``, a log line); what the file already held is delivered by the next client
    once there is room; nothing else is lost."""
    dropped: list[tuple[str, list[str]]] = []

    def on_drop(batch: Batch, reason: str) -> None:
        dropped.append((reason, batch.message_ids))

    count = 3000
    async with FaultServer(start_down=True) as server:
        client = client_for(
            server.url,
            spool=str(small_disk),
            max_queue_size=100,
            max_batch_size=50,
            max_concurrent_requests=1,
            on_drop=on_drop,
        )
        with caplog.at_level(logging.WARNING, logger="htevents_async"):
            async with client:
                ids = [
                    await client.track(
                        user_id="u", event="e", properties={"pad": PAD}, message_id=f"f-{i}"
                    )
                    for i in range(count)
                ]
                assert await client.commit(timeout=10) > 0  # the file failed: not all durable
                stats = client.statistics()
                await server.up()
                # What is left is what the file holds: this process no longer reads it.
                left = await client.flush(timeout=30)
                first = client.statistics()
                assert left == first.spooled
                await client.aclose(timeout=0)
        delivered_first = set(server.delivered_ids())
        logged = "\n".join(r.getMessage() for r in caplog.records)

        # What the file held before it filled stays there: with room again, the next
        # client on the directory delivers it.
        _mount("-o", "remount,size=64m", str(small_disk))
        survivor = client_for(server.url, spool=str(small_disk))
        async with survivor:
            assert await survivor.flush(timeout=30) == 0
            second = survivor.statistics()
        delivered = server.delivered_ids()

    by_reason: dict[str, set[str]] = {}
    for reason, message_ids in dropped:
        by_reason.setdefault(reason, set()).update(message_ids)
    lost = set().union(*by_reason.values()) if by_reason else set()
    assert "spool disabled, events kept in memory only" in logged
    assert "database or disk is full" in logged
    assert by_reason.get("queue_full"), "overflow applies once the spool is gone"
    assert first.dropped.get("queue_full", 0) == len(by_reason["queue_full"])
    assert sum(first.dropped.values()) == len(lost)
    assert "dropped" in logged  # the overflow's rate-limited log line
    assert_accounted(stats)
    assert_accounted(first)
    assert_accounted(second)
    # The next client adopts everything the file held: the events waiting on disk, and
    # those delivered from memory after the file filled, whose acknowledgements could
    # not be written: they are sent again (same messageId), the only duplicates.
    assert second.recovered == first.committed > first.spooled > 0
    again = {message_id for message_id, n in Counter(delivered).items() if n > 1}
    assert again <= delivered_first
    assert len(delivered) - len(set(delivered)) <= first.delivered
    # Every event is delivered or was reported dropped, never both, and none is lost.
    assert lost.isdisjoint(delivered)
    assert set(delivered) | lost == set(ids)
