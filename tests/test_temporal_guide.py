"""The Temporal guide's worker example, run as written against the dev server."""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path

import pytest
from servers import environment

from htevents_async._collector import LocalCollector

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "tests" / "examples" / "temporal_worker.py"


def test_the_guide_shows_the_example_that_runs() -> None:
    """tests/examples/temporal_worker.py is pasted verbatim in docs/guides/temporal.md."""
    guide = (ROOT / "docs" / "guides" / "temporal.md").read_text()
    assert f"```python\n{EXAMPLE.read_text()}```" in guide


async def test_the_guide_example_delivers_through_a_worker(
    temporal_address: str, collector: LocalCollector, tmp_path: Path
) -> None:
    """The example starts a worker, runs WorkflowTrack on it and prints the id that arrived.

    Only the addresses, and the task queue (so no other test's worker takes its tasks),
    differ from what the guide shows.
    """
    queue = f"guide-{uuid.uuid4().hex[:8]}"
    source = (
        EXAMPLE.read_text()
        .replace("127.0.0.1:7233", temporal_address)
        .replace("http://127.0.0.1:8787", collector.url)
        .replace('"analytics"', f'"{queue}"')
    )
    script = tmp_path / "temporal_worker.py"
    script.write_text(source)
    # Its own process: Temporal's runtime threads must not start inside the test process.
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        env=environment({}),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=90)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode()
    [message] = collector.messages()
    assert message["event"] == "Order completed"
    assert out.decode().split() == ["delivered", message["messageId"]]
