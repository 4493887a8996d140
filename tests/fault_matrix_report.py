"""Run every fault-matrix scenario and print the results as a markdown table.

    python tests/fault_matrix_report.py [--output artifacts/fault_matrix.md]

Each row is one run of a scenario from ``fault_matrix.py`` through the real
client and a local fault-injecting server: events sent, accepted ids the server
received at least once, extra copies a real collector may have stored (retries
of requests it read but never answered, or answered too late), HTTP requests as
the client and the server counted them (a closed port sees none), retries, and
the scenario's time on the loop clock.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fault_matrix import SCENARIOS, Result, run

HEADER = (
    "| scenario | sent | delivered (unique) | duplicates | requests (client / server) "
    "| retries | wall time (s) |\n"
    "|---|---:|---:|---:|---:|---:|---:|"
)


def row(result: Result) -> str:
    """One markdown table row for ``result``."""
    stats = result.stats
    return (
        f"| {result.scenario} | {len(result.accepted)} | {result.delivered_unique} "
        f"| {result.duplicates} | {stats.requests} / {result.server_requests} "
        f"| {stats.retries} | {result.seconds:.2f} |"
    )


async def run_all() -> list[Result]:
    """Run the scenarios one after another, printing each row as it completes."""
    print(HEADER, flush=True)
    results = []
    for scenario in SCENARIOS:
        results.append(await run(scenario))
        print(row(results[-1]), flush=True)
    return results


def main(output: Path | None) -> int:
    """Print the table, write it to ``output``; non-zero if any accepted event was lost."""
    results = asyncio.run(run_all())
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text("\n".join([HEADER, *map(row, results)]) + "\n")
        print(f"\nwritten to {output}", file=sys.stderr)
    lost = sum(len(set(r.accepted) - set(r.received)) for r in results)
    if lost:
        print(f"{lost} accepted events never reached the server", file=sys.stderr)
    return 1 if lost else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--output",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "artifacts" / "fault_matrix.md",
        help="where to write the table (default: artifacts/fault_matrix.md)",
    )
    parser.add_argument("--no-output", action="store_true", help="only print the table")
    args = parser.parse_args()
    sys.exit(main(None if args.no_output else args.output))
