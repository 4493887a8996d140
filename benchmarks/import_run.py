"""The ``import`` scenarios: ``htevents-async import`` of an NDJSON file into the collector.

The file is written once per benchmark run (the same event as the SDK scenarios, in
Segment wire form, one per line), then the command runs in its own process at its own
defaults, with its non-interactive progress mode. The runner measures from just
before the process starts until the collector accepted the last event, and reads the
command's own summary line for comparison.
"""

from __future__ import annotations

import json
import re
import resource
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, Protocol

EVENT = "Order completed"
WRITE_KEY = "bench-write-key"

_SUMMARY_RATE = re.compile(r"\(([\d,]+) delivered events/s\)")


class Collector(Protocol):
    """What the import run needs of the runner's collector client."""

    base: str

    def reset(self, *, fail_every: int = 0, hold: bool = False, delay_ms: float = 0.0) -> None:
        """Zero the counters and set the collector's behaviour."""

    def wait_for(self, expected: int, *, settle: float, limit: float) -> dict[str, Any]:
        """Poll until ``expected`` events arrived, or nothing changed for ``settle`` s."""


def write_ndjson(path: Path, lines: int) -> Path:
    """Write ``lines`` track messages in wire form, one JSON object per line."""
    with path.open("w", encoding="utf-8") as out:
        for i in range(lines):
            message = {
                "type": "track",
                "messageId": str(uuid.UUID(int=i + 1, version=4)),
                "timestamp": "2026-01-01T00:00:00.000Z",
                "userId": f"user-{i % 1000}",
                "event": EVENT,
                "properties": {"total": 29.99, "currency": "USD", "index": i},
            }
            out.write(json.dumps(message, separators=(",", ":")) + "\n")
    return path


def run_import(
    *,
    python: str,
    path: Path,
    lines: int,
    coll: Collector,
    delay_ms: float,
    timeout: float,
) -> dict[str, Any]:
    """Import the file once; return the command's outcome and the collector's counters.

    The record has the shape ``derive()`` in ``run.py`` expects of a worker: the
    monotonic start time and the CPU time per event (of the command's process, taken
    from the children's resource usage).
    """
    coll.reset(delay_ms=delay_ms)
    command = [
        python,
        "-m",
        "htevents_async",
        "import",
        str(path),
        "--host",
        coll.base,
        "--write-key",
        WRITE_KEY,
        "--no-progress",
        # Rejected lines would be a bug in the generated file; keep no report around.
        "--report",
        str(path.with_suffix(".rejected.txt")),
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    exited = time.monotonic()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    match = _SUMMARY_RATE.search(proc.stdout)
    worker: dict[str, Any] = {
        "first_call_mono": started,
        "exit_code": proc.returncode,
        "process_s": exited - started,
        "cpu_s": cpu,
        "cpu_us_per_event": cpu / lines * 1e6,
        "cli_eps": float(match.group(1).replace(",", "")) if match else None,
        "stdout_tail": "\n".join(proc.stdout.splitlines()[-12:]),
        "stderr_tail": "\n".join(proc.stderr.splitlines()[-12:]),
    }
    stats = coll.wait_for(lines, settle=1.0, limit=60.0)
    return {"worker": worker, "collector": stats, "ok": proc.returncode == 0}
