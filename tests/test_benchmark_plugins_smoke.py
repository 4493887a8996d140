"""benchmarks/plugins.py runs end to end on a tiny N; it asserts the report, never timings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "plugins.py"


def test_the_plugin_benchmark_reports_every_variant() -> None:
    """Each variant gets a wall and a CPU line."""
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--n", "50", "--reps", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = completed.stdout.splitlines()
    for variant in ("none", "identity", "add_context", "sample_10pct", "scrub"):
        assert sum(line.split()[0] == variant for line in lines if line.strip()) == 2, lines
