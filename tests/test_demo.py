"""``htevents-async demo``: the README's first command, run as a newcomer would run it."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


async def run_demo(*args: str) -> tuple[int, str]:
    """Run the demo in a subprocess, off the event loop; return its exit code and stdout."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "htevents_async", "demo", *args),
        stdout=asyncio.subprocess.PIPE,
        cwd=REPO,
    )
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_demo_prints_counts_by_type_and_a_sample() -> None:
    """The demo exits 0 and shows, per type, as many events received as sent."""
    code, out = await run_demo("--events", "600")

    assert code == 0, out
    table = re.findall(r"^  (\w+) +([\d,]+) +([\d,]+)", out, flags=re.MULTILINE)
    counts = {kind: [sent, received] for kind, sent, received in table}
    assert counts == {
        "track": ["300", "300"],
        "page": ["90", "90"],
        "screen": ["60", "60"],
        "identify": ["60", "60"],
        "group": ["60", "60"],
        "alias": ["30", "30"],
        "total": ["600", "600"],
    }
    assert "delivered 600" in out


async def test_demo_sample_message_is_valid_json() -> None:
    """The sample message is printed as indented JSON in wire form."""
    code, out = await run_demo("--events", "100")

    assert code == 0, out
    start = out.index("\n{\n") + 1
    end = out.index("\n}\n", start) + 2
    sample = json.loads(out[start:end])
    assert sample["type"] == "track"
    assert sample["context"]["library"]["name"] == "htevents-async"
