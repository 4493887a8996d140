"""Draw the benchmark charts and tables of the documentation from one results file.

    python benchmarks/charts.py benchmarks/published/latest.json --out docs/_generated

writes, into ``--out``:

- ``charts/<name>.svg`` (or ``.png`` with ``--format png``): one horizontal bar
  chart per figure, one bar per SDK, htevents-async highlighted;
- ``benchmark.md``: where the run comes from, and the tables the run itself
  printed (``report_markdown`` of the results file).

The performance page includes both, so its tables and charts always come from
the same run. ``benchmarks/run.py --json PATH`` writes a results file.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

# No display on build machines; Agg draws to files only.
matplotlib.use("Agg")
import matplotlib.pyplot as plt

OURS = ("htevents_async", "htevents_sync", "htevents_async_spool")
OUR_COLOUR = "#2f6fde"
PEER_COLOUR = "#9aa3ad"


@dataclass(frozen=True)
class Chart:
    """One figure of one scenario, drawn as a bar per SDK."""

    name: str
    scenario: str
    metric: str
    title: str
    unit: str
    higher_is_better: bool


CHARTS = [
    Chart(
        "delivered-events-per-second",
        "defaults",
        "delivered_eps",
        "Delivered events per second, each SDK at its defaults",
        "events/s",
        True,
    ),
    Chart(
        "delivered-events-per-second-50ms",
        "latency",
        "delivered_eps",
        "Delivered events per second, collector answering after 50 ms",
        "events/s",
        True,
    ),
    Chart(
        "microseconds-per-call",
        "defaults",
        "per_call_us",
        "Time per call in the calling code",
        "µs per call",
        False,
    ),
    Chart(
        "loop-stall",
        "eventloop",
        "stall_us_per_event",
        "Event-loop stall per event (time the loop could not run other tasks)",
        "µs per event",
        False,
    ),
    Chart(
        "cpu-per-event",
        "defaults",
        "cpu_us_per_event",
        "CPU time per event, sending included",
        "CPU µs per event",
        False,
    ),
    Chart(
        "sync-microseconds-per-call",
        "sync-1",
        "per_call_us",
        "Time per call from a plain thread (SyncClient and the thread-based SDKs)",
        "µs per call",
        False,
    ),
]


def bars(results: dict[str, Any], chart: Chart) -> list[tuple[str, float, bool]]:
    """(label, value, ours) for each SDK that has the figure, best first."""
    labels: dict[str, str] = results["labels"]
    per_sdk: dict[str, dict[str, Any]] = results["summary"].get(chart.scenario, {})
    rows = [
        (labels.get(sdk, sdk), float(values[chart.metric]), sdk in OURS)
        for sdk, values in per_sdk.items()
        if values.get(chart.metric) is not None
    ]
    rows.sort(key=lambda row: row[1], reverse=chart.higher_is_better)
    return rows


def draw(rows: list[tuple[str, float, bool]], chart: Chart, path: Path) -> None:
    """One horizontal bar chart, the best SDK on top, each bar labelled with its value."""
    figure, axes = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.2))
    labels = [label for label, _, _ in rows]
    values = [value for _, value, _ in rows]
    colours = [OUR_COLOUR if ours else PEER_COLOUR for _, _, ours in rows]
    positions = range(len(rows))
    axes.barh(positions, values, color=colours)
    axes.set_yticks(list(positions), labels)
    axes.invert_yaxis()
    better = "higher" if chart.higher_is_better else "lower"
    axes.set_xlabel(f"{chart.unit} ({better} is better)")
    axes.set_title(chart.title, fontsize=11)
    axes.spines[["top", "right"]].set_visible(False)
    for position, value in zip(positions, values, strict=True):
        text = f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"
        axes.text(value, position, " " + text, va="center", fontsize=9)
    axes.set_xlim(0, max(values) * 1.18)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def provenance(results: dict[str, Any]) -> str:
    """One paragraph naming the run: when, where, how many calls and repetitions."""
    environment = results.get("environment", {})
    arguments = results.get("arguments", {})
    commit = str(environment.get("git_commit") or "unknown")[:9]
    quick = " (`--quick`: a smoke run, small N)" if arguments.get("quick") else ""
    return (
        f"Run started {environment.get('started_utc', 'at an unknown time')} on "
        f"{environment.get('cpu_count', '?')} CPUs, Python {environment.get('python', '?')}, "
        f"commit `{commit}`; {arguments.get('reps', '?')} repetition(s){quick}, "
        f"medians shown; ratios are medians of per-repetition ratios to the best peer SDK."
    )


def write_all(results: dict[str, Any], out: Path, image_format: str) -> list[Path]:
    """Every chart the results have figures for, and the tables page; returns the files."""
    charts_dir = out / "charts"
    charts_dir.mkdir(parents=True, exist_ok=True)
    written = []
    images = []
    for chart in CHARTS:
        rows = bars(results, chart)
        if not rows:
            continue
        path = charts_dir / f"{chart.name}.{image_format}"
        draw(rows, chart, path)
        written.append(path)
        images.append(f"![{chart.title}](_generated/charts/{path.name})")
    tables = out / "benchmark.md"
    tables.write_text(
        provenance(results)
        + "\n\n"
        + "\n\n".join(images)
        + "\n\n"
        + ("\n" + results.get("report_markdown", "")).replace("\n### ", "\n#### ").strip()
        + "\n"
    )
    written.append(tables)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="a results file of benchmarks/run.py --json")
    parser.add_argument("--out", type=Path, default=Path("docs/_generated"), help="output folder")
    parser.add_argument("--format", choices=("svg", "png"), default="svg", dest="image_format")
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text())
    for path in write_all(results, args.out, args.image_format):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
