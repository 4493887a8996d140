"""Side-by-side benchmark of htevents-async, its peers and a naive asyncio sender.

Starts one local collector process, then runs every (scenario, SDK) pair in a fresh
worker process, interleaved (A B C, A B C, ...) so that slow drifts of a noisy machine
spread over all SDKs. Prints markdown tables and writes the raw runs, medians and
ratios as JSON to ``benchmarks/results/``.

    python benchmarks/run.py --quick                    # smoke run, every installed SDK
    python benchmarks/run.py                            # full: N=100,000, 3 repetitions
    python benchmarks/run.py --sdks naive,htevents_async --n 200 --quick

SDKs that are not installed are skipped with a note. See ``benchmarks/README.md`` for
what each column means.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import collector
from import_run import run_import, write_ndjson
from sdks import ADAPTERS, Adapter, ThreadAdapter

HERE = Path(__file__).resolve().parent
WORKER = HERE / "worker.py"
RESULTS_DIR = HERE / "results"


@dataclass(frozen=True)
class Scenario:
    """One way of exercising every SDK, and how the collector behaves meanwhile."""

    name: str
    mode: str
    """Worker mode: ``throughput``, ``threads``, ``backlog`` or ``eventloop``; or ``import``,
    which runs the ``htevents-async import`` command instead of a worker."""
    size: str
    """Which event count applies: ``n``, ``n_small``, ``n_long``, ``n_latency`` or
    ``n_import``."""
    gzip: bool = False
    fail_every: int = 0
    """The collector answers every K-th upload with 500 (0 = never)."""
    hold: bool = False
    """The collector parks uploads (the backlog scenario)."""
    gzip_only: bool = False
    """Skip SDKs that cannot compress."""
    first_rep_only: bool = False
    """Memory figures barely move between repetitions; one run saves minutes."""
    only: tuple[str, ...] = ()
    """Run for these SDKs only (all when empty)."""
    threads: int = 0
    """Producer threads (``threads`` mode only, which runs thread-based SDKs only)."""
    delay_ms: float = 0.0
    """The collector answers every upload this many ms after it arrived."""
    defaults: bool = False
    """Every SDK at its own defaults (only the queue is enlarged, so nobody drops)."""

    @property
    def delivers(self) -> bool:
        """Whether events are expected at the collector after the run."""
        return not self.hold


def scenarios(fail_every: int, delay_ms: float) -> list[Scenario]:
    """Every scenario, in running order."""
    return [
        Scenario("throughput", "throughput", "n"),
        # Each SDK as a user gets it: its own batch size, flush interval, compression and
        # concurrency, on loopback and then behind a collector that answers after 50 ms.
        Scenario("defaults", "throughput", "n", defaults=True),
        Scenario("latency", "throughput", "n_latency", defaults=True, delay_ms=delay_ms),
        Scenario("backlog", "backlog", "n", hold=True, first_rep_only=True),
        Scenario("eventloop", "eventloop", "n"),
        Scenario("fault", "throughput", "n_small", fail_every=fail_every),
        # Sustained throughput with and without faults, for the fault target: an SDK
        # against its own fault-free figure at the same N. Short runs measure the
        # backoff of the last retried batch instead (at n_small a run lasts a fifth of
        # a second). Peers that sleep a second per failure would take many minutes.
        Scenario("sustained", "throughput", "n_long", only=("htevents_async", "naive")),
        Scenario(
            "sustained-fault",
            "throughput",
            "n_long",
            fail_every=fail_every,
            only=("htevents_async", "naive"),
        ),
        # Compression is compared at one N, off then on, next to each other in time.
        Scenario("gzip-off", "throughput", "n_small", gzip_only=True),
        Scenario("gzip", "throughput", "n_small", gzip=True, gzip_only=True),
        # Sync code: plain threads calling SyncClient and the thread-based peers.
        Scenario("sync-1", "threads", "n", threads=1),
        Scenario("sync-8", "threads", "n", threads=8),
        # The command-line backfill of an NDJSON file, at its own defaults.
        Scenario("import", "import", "n_import", only=("htevents_async",)),
        Scenario(
            "import-latency",
            "import",
            "n_import",
            delay_ms=delay_ms,
            only=("htevents_async",),
        ),
    ]


SCENARIO_NAMES = [s.name for s in scenarios(10, 50.0)]


class CollectorClient:
    """The runner's view of the collector's control endpoints."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def stats(self) -> dict[str, Any]:
        """``GET /stats``."""
        with urllib.request.urlopen(f"{self.base}/stats", timeout=10) as response:
            result: dict[str, Any] = json.loads(response.read())
            return result

    def reset(self, *, fail_every: int = 0, hold: bool = False, delay_ms: float = 0.0) -> None:
        """``POST /reset``: zero counters, set fault, hold and delay behaviour."""
        url = f"{self.base}/reset?fail_every={fail_every}&hold={int(hold)}&delay_ms={delay_ms:g}"
        request = urllib.request.Request(url, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def wait_for(self, expected: int, *, settle: float, limit: float) -> dict[str, Any]:
        """Poll until ``expected`` events arrived, or nothing changed for ``settle`` s."""
        deadline = time.monotonic() + limit
        last = self.stats()
        changed = time.monotonic()
        while last["events"] < expected and time.monotonic() < deadline:
            time.sleep(0.05)
            now = self.stats()
            if (now["events"], now["requests"]) != (last["events"], last["requests"]):
                changed = time.monotonic()
            elif time.monotonic() - changed > settle:
                return now
            last = now
        return last


def run_one(
    *,
    python: str,
    adapter: Adapter,
    scenario: Scenario,
    n: int,
    coll: CollectorClient,
    timeout: float,
    burst: int,
    gap_ms: float,
    options: list[str],
) -> dict[str, Any]:
    """Run one worker process for one SDK and scenario; return its merged record."""
    coll.reset(fail_every=scenario.fail_every, hold=scenario.hold, delay_ms=scenario.delay_ms)
    command = [
        python,
        str(WORKER),
        "--sdk",
        adapter.name,
        "--mode",
        scenario.mode,
        "--host",
        coll.base,
        "--n",
        str(n),
        "--burst",
        str(burst),
        "--gap-ms",
        str(gap_ms),
        "--threads",
        str(max(scenario.threads, 1)),
    ]
    if scenario.gzip:
        command.append("--gzip")
    if scenario.defaults:
        command.append("--defaults")
    if adapter.name == "htevents_async":
        for option in options:
            command += ["--option", option]
    record: dict[str, Any] = {"sdk": adapter.name, "scenario": scenario.name, "n": n}
    started = time.monotonic()
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        record.update(ok=False, error=f"worker timed out after {timeout:.0f} s")
        record["stderr_tail"] = _tail(exc.stderr)
        coll.reset()
        return record
    record["wall_s"] = time.monotonic() - started
    record["stderr_tail"] = _tail(proc.stderr)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        record.update(ok=False, error=f"worker exited with {proc.returncode}")
        coll.reset()
        return record
    worker: dict[str, Any] = json.loads(lines[-1])
    record["worker"] = worker
    if scenario.delivers:
        stats = coll.wait_for(n, settle=1.0, limit=60.0)
    else:
        stats = coll.stats()
        coll.reset()  # releases the parked uploads of the dead worker
    record["collector"] = stats
    record.update(derive(scenario, n, worker, stats))
    record["ok"] = True
    return record


def run_import_one(
    *, python: str, scenario: Scenario, path: Path, n: int, coll: CollectorClient, timeout: float
) -> dict[str, Any]:
    """Run ``htevents-async import`` once; return its record, shaped like a worker's."""
    record: dict[str, Any] = {"sdk": "htevents_async", "scenario": scenario.name, "n": n}
    started = time.monotonic()
    try:
        outcome = run_import(
            python=python,
            path=path,
            lines=n,
            coll=coll,
            delay_ms=scenario.delay_ms,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        record.update(ok=False, error=f"import timed out after {timeout:.0f} s")
        coll.reset()
        return record
    record["wall_s"] = time.monotonic() - started
    worker, stats = outcome["worker"], outcome["collector"]
    record.update(worker=worker, collector=stats)
    if not outcome["ok"]:
        record.update(ok=False, error=f"import exited with {worker['exit_code']}")
        return record
    record.update(derive(scenario, n, worker, stats))
    record["cli_eps"] = worker["cli_eps"]
    record["ok"] = True
    return record


def derive(
    scenario: Scenario, n: int, worker: dict[str, Any], stats: dict[str, Any]
) -> dict[str, Any]:
    """Numbers computed from the worker's report and the collector's counters."""
    derived: dict[str, Any] = {}
    for key in (
        "per_call_us",
        "cpu_us_per_event",
        "peak_rss_mb",
        "stall_us_per_event",
        "tick_lag_p99_ms",
        "backlog_rss_mb",
    ):
        if key in worker:
            derived[key] = worker[key]
    if "backlog_bytes_per_event" in worker:
        derived["backlog_mb_per_100k"] = worker["backlog_bytes_per_event"] * 100_000 / 2**20
    if not scenario.delivers:
        return derived
    arrived = stats["events"]
    derived["arrived"] = arrived
    derived["all_arrived"] = arrived == n
    derived["failed_requests"] = stats["failed_requests"]
    derived["requests"] = stats["requests"]
    derived["rejected_events"] = stats["rejected_events"]
    last = stats["last_event_mono"]
    span = (last - worker["first_call_mono"]) if last is not None else None
    derived["delivery_s"] = span
    derived["delivered_eps"] = arrived / span if span else 0.0
    accepted = stats["accepted_requests"]
    derived["events_per_request"] = arrived / accepted if accepted else None
    sent_events = stats["events"] + stats["rejected_events"]
    if sent_events:
        derived["wire_bytes_per_event"] = stats["bytes_in"] / sent_events
    return derived


def _tail(text: str | bytes | None, lines: int = 15) -> str:
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return "\n".join(text.splitlines()[-lines:])


# Metric name -> True when higher is better.
METRICS: dict[str, bool] = {
    "per_call_us": False,
    "delivered_eps": True,
    "cpu_us_per_event": False,
    "peak_rss_mb": False,
    "stall_us_per_event": False,
    "tick_lag_p99_ms": False,
    "backlog_mb_per_100k": False,
    "wire_bytes_per_event": False,
    "events_per_request": True,
    "cli_eps": True,
}


def summarise(
    runs: list[dict[str, Any]], adapters: list[Adapter], reps: int
) -> dict[str, dict[str, dict[str, Any]]]:
    """Medians per (scenario, SDK, metric), and ratios to the best peer per repetition.

    A ratio above 1 means better than the best third-party SDK of that repetition
    (faster, fewer µs, less memory), below 1 worse. Ratios are taken within each
    repetition, then their median is reported, so a slow phase of the machine that
    hit one repetition affects all SDKs of that repetition alike.
    """
    peers = {a.name for a in adapters if a.is_peer}
    by_key: dict[tuple[str, str, int], dict[str, Any]] = {
        (r["scenario"], r["sdk"], r["rep"]): r for r in runs if r.get("ok")
    }
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    scenario_names = sorted({r["scenario"] for r in runs})
    for scenario in scenario_names:
        summary[scenario] = {}
        for adapter in adapters:
            values: dict[str, Any] = {}
            for metric, higher_better in METRICS.items():
                samples = [
                    by_key[(scenario, adapter.name, rep)][metric]
                    for rep in range(reps)
                    if (scenario, adapter.name, rep) in by_key
                    and by_key[(scenario, adapter.name, rep)].get(metric) is not None
                ]
                if not samples:
                    continue
                values[metric] = statistics.median(samples)
                ratios = []
                for rep in range(reps):
                    own = by_key.get((scenario, adapter.name, rep), {}).get(metric)
                    peer_values = [
                        by_key[(scenario, peer, rep)][metric]
                        for peer in peers
                        if (scenario, peer, rep) in by_key
                        and by_key[(scenario, peer, rep)].get(metric) is not None
                    ]
                    if not own or not peer_values:
                        continue
                    best = max(peer_values) if higher_better else min(peer_values)
                    if best:
                        ratios.append(own / best if higher_better else best / own)
                if ratios:
                    values[f"{metric}_vs_best_peer"] = statistics.median(ratios)
            done = [
                by_key[(scenario, adapter.name, rep)]
                for rep in range(reps)
                if (scenario, adapter.name, rep) in by_key
            ]
            if done and "arrived" in done[0]:
                values["arrived_min"] = min(r["arrived"] for r in done)
                values["n"] = done[0]["n"]
                values["failed_requests"] = statistics.median(r["failed_requests"] for r in done)
                values["requests"] = statistics.median(r["requests"] for r in done)
            failed = sum(
                1
                for r in runs
                if r["scenario"] == scenario and r["sdk"] == adapter.name and not r.get("ok")
            )
            if failed:
                values["failed_runs"] = failed
            if values:
                summary[scenario][adapter.name] = values
    return summary


# (label, scenario, metric, comparison, operator, bound): issue #9's targets. Ratios of
# htevents-async's figure to the best peer's ("peer") or to its own fault-free
# throughput ("own") in the same repetition; "absolute" compares the figure itself.
TARGETS: list[tuple[str, str, str, str, str, float]] = [
    ("delivered events/s, 50 ms latency, defaults", "latency", "delivered_eps", "peer", ">=", 20.0),
    ("delivered events/s, no latency, defaults", "defaults", "delivered_eps", "peer", ">=", 8.0),
    ("µs per call, defaults", "defaults", "per_call_us", "peer", "<=", 0.10),
    ("loop stall per event", "eventloop", "stall_us_per_event", "peer", "<=", 0.12),
    ("CPU µs per event, defaults", "defaults", "cpu_us_per_event", "peer", "<=", 0.12),
    (
        "import of the NDJSON file, 50 ms latency",
        "import-latency",
        "delivered_eps",
        "absolute",
        ">=",
        20_000.0,
    ),
    ("sustained events/s with 10 % 500s", "sustained-fault", "delivered_eps", "own", ">=", 0.8),
]
# The same for SyncClient (issue #13): per call from plain threads, against the best
# thread-based peer.
SYNC_TARGETS: list[tuple[str, str, str, str, str, float]] = [
    ("SyncClient per call, 1 thread", "sync-1", "per_call_us", "peer", "<=", 0.2),
    ("SyncClient per call, 8 threads", "sync-8", "per_call_us", "peer", "<=", 0.2),
]


def targets(runs: list[dict[str, Any]], adapters: list[Adapter], reps: int) -> str:
    """The issue's targets for htevents-async: median per-repetition figures, met or not."""
    names = {a.name for a in adapters}
    checks = [(row, "htevents_async") for row in TARGETS if "htevents_async" in names]
    checks += [(row, "htevents_sync") for row in SYNC_TARGETS if "htevents_sync" in names]
    if not checks:
        return ""
    peers = [a.name for a in adapters if a.is_peer]
    ok = {(r["scenario"], r["sdk"], r["rep"]): r for r in runs if r.get("ok")}
    rows = []
    for (label, scenario, metric, versus, op, bound), own_sdk in checks:
        figures = []
        for rep in range(reps):
            own = ok.get((scenario, own_sdk, rep), {}).get(metric)
            if versus == "absolute":
                if own is not None:
                    figures.append(own)
                continue
            if versus == "peer":
                values = [
                    ok[(scenario, p, rep)].get(metric) for p in peers if (scenario, p, rep) in ok
                ]
                values = [v for v in values if v]
                base = (max(values) if op == ">=" else min(values)) if values else None
            else:
                base = ok.get(("sustained", "htevents_async", rep), {}).get(metric)
            if own and base:
                figures.append(own / base)
        if not figures:
            continue
        figure = statistics.median(figures)
        met = figure <= bound if op == "<=" else figure >= bound
        sign = op.replace("<=", "≤").replace(">=", "≥")
        if versus == "absolute":
            required, measured = f"{sign} {bound:,.0f} events/s", f"{figure:,.0f} events/s"
        else:
            what = "best peer" if versus == "peer" else "own fault-free"
            required, measured = f"vs {what} {sign} {bound:g}x", f"{figure:.3g}x"
        rows.append([label, required, measured, "met" if met else "**not met**"])
    return _table(["target", "required", "measured", "result"], rows)


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _ratio(value: Any) -> str:
    return "—" if value is None else f"{value:.2f}x"


def _table(header: list[str], rows: Iterable[list[str]]) -> str:
    align = ["---"] + ["---:"] * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def render(
    summary: dict[str, dict[str, dict[str, Any]]],
    adapters: list[Adapter],
    labels: dict[str, str],
    sizes: dict[str, Any],
) -> str:
    """The markdown report: main table, fault table, gzip table."""

    def get(scenario: str, sdk: str, metric: str) -> Any:
        return summary.get(scenario, {}).get(sdk, {}).get(metric)

    def failed(scenario: str, sdk: str) -> str:
        count = get(scenario, sdk, "failed_runs")
        return f" ({count} failed)" if count else ""

    main_rows = []
    for a in adapters:
        s = a.name
        if a.threads_only:
            continue
        main_rows.append(
            [
                labels[s] + failed("throughput", s),
                _fmt(get("throughput", s, "per_call_us")),
                _fmt(get("throughput", s, "delivered_eps")),
                _fmt(get("eventloop", s, "stall_us_per_event")),
                _fmt(get("eventloop", s, "tick_lag_p99_ms"), 2),
                _fmt(get("throughput", s, "cpu_us_per_event")),
                _fmt(get("throughput", s, "peak_rss_mb"), 0),
                _fmt(get("backlog", s, "backlog_mb_per_100k"), 0),
                _ratio(get("throughput", s, "per_call_us_vs_best_peer")),
                _ratio(get("throughput", s, "delivered_eps_vs_best_peer")),
                _ratio(get("eventloop", s, "stall_us_per_event_vs_best_peer")),
            ]
        )
    main = _table(
        [
            "SDK",
            "µs per call",
            "delivered events/s",
            "loop stall µs/event",
            "ticker p99 ms",
            "CPU µs/event",
            "peak RSS MiB",
            "MiB per 100k queued",
            "per call vs best peer",
            "delivered vs best peer",
            "stall vs best peer",
        ],
        main_rows,
    )

    fault_rows = []
    for a in adapters:
        s = a.name
        if s not in summary.get("fault", {}):
            continue
        arrived, n = get("fault", s, "arrived_min"), get("fault", s, "n")
        fault_rows.append(
            [
                labels[s] + failed("fault", s),
                _fmt(get("fault", s, "delivered_eps")),
                f"{_fmt(arrived)} / {_fmt(n)}",
                f"{_fmt(get('fault', s, 'failed_requests'), 0)} / "
                f"{_fmt(get('fault', s, 'requests'), 0)}",
                _ratio(get("fault", s, "delivered_eps_vs_best_peer")),
            ]
        )
    fault = _table(
        [
            "SDK",
            "delivered events/s",
            "arrived / sent (worst rep)",
            "500s / requests",
            "delivered vs best peer",
        ],
        fault_rows,
    )
    sustained_rows = []
    for a in adapters:
        s = a.name
        if s not in summary.get("sustained-fault", {}):
            continue
        arrived, n = get("sustained-fault", s, "arrived_min"), get("sustained-fault", s, "n")
        clean, faulty = (
            get("sustained", s, "delivered_eps"),
            get("sustained-fault", s, "delivered_eps"),
        )
        sustained_rows.append(
            [
                labels[s] + failed("sustained-fault", s),
                _fmt(clean),
                _fmt(faulty),
                _ratio(faulty / clean if clean and faulty else None),
                f"{_fmt(arrived)} / {_fmt(n)}",
                f"{_fmt(get('sustained-fault', s, 'failed_requests'), 0)} / "
                f"{_fmt(get('sustained-fault', s, 'requests'), 0)}",
            ]
        )
    if sustained_rows:
        fault += (
            f"\n\nSustained, N={sizes['n_long']:,} (async SDKs only), without and with the "
            "same faults:\n\n"
            + _table(
                [
                    "SDK",
                    "delivered events/s, no faults",
                    "delivered events/s, 10 % 500s",
                    "ratio",
                    "arrived / sent (worst rep)",
                    "500s / requests",
                ],
                sustained_rows,
            )
        )

    gzip_rows = []
    for a in adapters:
        s = a.name
        if s not in summary.get("gzip", {}):
            continue
        gzip_rows.append(
            [
                labels[s] + failed("gzip", s),
                f"{_fmt(get('gzip-off', s, 'delivered_eps'))} → "
                f"{_fmt(get('gzip', s, 'delivered_eps'))}",
                f"{_fmt(get('gzip-off', s, 'cpu_us_per_event'))} → "
                f"{_fmt(get('gzip', s, 'cpu_us_per_event'))}",
                f"{_fmt(get('gzip-off', s, 'wire_bytes_per_event'), 0)} → "
                f"{_fmt(get('gzip', s, 'wire_bytes_per_event'), 0)}",
                _ratio(get("gzip", s, "delivered_eps_vs_best_peer")),
            ]
        )
    gzip = _table(
        [
            "SDK",
            "delivered events/s, off → on",
            "CPU µs/event, off → on",
            "bytes/event on the wire, off → on",
            "delivered (on) vs best peer",
        ],
        gzip_rows,
    )
    sync_rows = []
    for a in adapters:
        s = a.name
        if s not in summary.get("sync-1", {}) and s not in summary.get("sync-8", {}):
            continue
        row = [labels[s] + failed("sync-1", s) + failed("sync-8", s)]
        for scenario in ("sync-1", "sync-8"):
            arrived, n = get(scenario, s, "arrived_min"), get(scenario, s, "n")
            row += [
                _fmt(get(scenario, s, "per_call_us")),
                _ratio(get(scenario, s, "per_call_us_vs_best_peer")),
                f"{_fmt(arrived)} / {_fmt(n)}",
            ]
        sync_rows.append(row)
    sync = ""
    if sync_rows:
        header = ["SDK"]
        for threads in (1, 8):
            header += [
                f"µs per call, {threads} thread{'s' if threads > 1 else ''}",
                "vs best peer",
                "arrived / sent",
            ]
        sync = (
            f"### Sync code: calls from plain threads (N={sizes['n']:,})\n\n"
            f"{_table(header, sync_rows)}\n\n"
        )
    sections = [
        f"### Throughput, event loop, memory (N={sizes['n']:,})\n\n{main}\n",
        sync,
        _defaults_section(summary, adapters, labels, sizes, failed),
        f"### Faults: every 10th upload answered 500 (N={sizes['n_small']:,})\n\n{fault}\n",
        f"### gzip off → on (N={sizes['n_small']:,})\n\n{gzip}\n",
        _import_section(summary, sizes, failed),
    ]
    return "\n".join(section for section in sections if section)


def _defaults_section(
    summary: dict[str, dict[str, dict[str, Any]]],
    adapters: list[Adapter],
    labels: dict[str, str],
    sizes: dict[str, Any],
    failed: Callable[[str, str], str],
) -> str:
    """Every SDK at its own defaults: on loopback, and with a 50 ms round trip."""
    if "defaults" not in summary and "latency" not in summary:
        return ""

    def get(scenario: str, sdk: str, metric: str) -> Any:
        return summary.get(scenario, {}).get(sdk, {}).get(metric)

    rows = []
    for a in adapters:
        s = a.name
        if s not in summary.get("defaults", {}) and s not in summary.get("latency", {}):
            continue
        rows.append(
            [
                labels[s] + failed("latency", s) + failed("defaults", s),
                _fmt(get("defaults", s, "per_call_us")),
                _fmt(get("defaults", s, "delivered_eps")),
                _fmt(get("defaults", s, "cpu_us_per_event")),
                _fmt(get("latency", s, "delivered_eps")),
                _fmt(get("latency", s, "cpu_us_per_event")),
                _fmt(get("latency", s, "events_per_request"), 0),
                _ratio(get("defaults", s, "per_call_us_vs_best_peer")),
                _ratio(get("defaults", s, "delivered_eps_vs_best_peer")),
                _ratio(get("defaults", s, "cpu_us_per_event_vs_best_peer")),
                _ratio(get("latency", s, "delivered_eps_vs_best_peer")),
            ]
        )
    table = _table(
        [
            "SDK",
            "µs per call",
            "delivered events/s",
            "CPU µs/event",
            "delivered events/s, 50 ms",
            "CPU µs/event, 50 ms",
            "events per request, 50 ms",
            "per call vs best peer",
            "delivered vs best peer",
            "CPU vs best peer",
            "delivered, 50 ms, vs best peer",
        ],
        rows,
    )
    return (
        f"### Each SDK at its own defaults: loopback (N={sizes['n']:,}) and a collector "
        f"answering after {sizes['delay_ms']:g} ms (N={sizes['n_latency']:,})\n\n{table}\n"
    )


def _import_section(
    summary: dict[str, dict[str, dict[str, Any]]],
    sizes: dict[str, Any],
    failed: Callable[[str, str], str],
) -> str:
    """``htevents-async import`` of the NDJSON file, without and with the delay."""
    rows = []
    for scenario, latency in (("import", "none"), ("import-latency", f"{sizes['delay_ms']:g} ms")):
        values = summary.get(scenario, {}).get("htevents_async")
        if not values:
            continue
        rows.append(
            [
                latency + failed(scenario, "htevents_async"),
                _fmt(values.get("delivered_eps")),
                _fmt(values.get("cli_eps")),
                _fmt(values.get("cpu_us_per_event")),
                _fmt(values.get("requests"), 0),
                _fmt(values.get("events_per_request"), 0),
                f"{_fmt(values.get('arrived_min'))} / {_fmt(values.get('n'))}",
            ]
        )
    if not rows:
        return ""
    table = _table(
        [
            "collector latency",
            "delivered events/s (process start → last event)",
            "events/s (command's summary)",
            "CPU µs/event",
            "requests",
            "events per request",
            "arrived / lines (worst rep)",
        ],
        rows,
    )
    return f"### htevents-async import, {sizes['n_import']:,} NDJSON lines\n\n{table}\n"


def environment(announce: dict[str, Any], python: str, labels: dict[str, str]) -> dict[str, Any]:
    """Where the numbers come from, including which htevents_async was measured."""
    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "python_executable": python,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "collector": announce,
        "sdks": labels,
        "started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        import htevents_async

        env["htevents_async_file"] = htevents_async.__file__
    except ImportError:
        pass
    # The commit is only meaningful if the measured package is this checkout's; an
    # installed snapshot of another commit says so through its path above.
    git = ["git", "-C", str(HERE.parent)]
    try:
        env["git_commit"] = subprocess.run(
            [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--", "htevents_async"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        env["git_package_dirty"] = bool(dirty)
    except (OSError, subprocess.CalledProcessError):
        pass
    return env


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description="Side-by-side benchmark of event SDKs against a local collector."
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: small N, one repetition")
    parser.add_argument(
        "--sdks",
        default=",".join(ADAPTERS),
        help=f"comma-separated subset of: {', '.join(ADAPTERS)} (default: all)",
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIO_NAMES),
        help=f"comma-separated subset of: {', '.join(SCENARIO_NAMES)} (default: all)",
    )
    parser.add_argument(
        "--n", type=int, help="track calls per run (default 100,000; --quick: 2,000)"
    )
    parser.add_argument(
        "--n-small",
        type=int,
        help="track calls for the fault and gzip runs (default 10,000; --quick: same as --n)",
    )
    parser.add_argument(
        "--n-long",
        type=int,
        help="track calls for the sustained runs (default 5 x --n; --quick: same as --n)",
    )
    parser.add_argument(
        "--n-latency",
        type=int,
        help="track calls for the latency runs (default 20,000; --quick: same as --n)",
    )
    parser.add_argument(
        "--n-import",
        type=int,
        help="NDJSON lines for the import runs (default 100,000; --quick: 10 x --n)",
    )
    parser.add_argument(
        "--delay-ms", type=float, default=50.0, help="latency, import-latency: answer delay"
    )
    parser.add_argument(
        "--htevents-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="pass a Client option to htevents-async in every worker run (VALUE as JSON, "
        "else a string), e.g. max_batch_size=500; repeatable",
    )
    parser.add_argument("--reps", type=int, help="repetitions (default 3; --quick: 1)")
    parser.add_argument("--fail-every", type=int, default=10, help="fault: every K-th upload 500")
    parser.add_argument("--burst", type=int, default=1000, help="eventloop: calls per burst")
    parser.add_argument("--gap-ms", type=float, default=10.0, help="eventloop: pause per burst")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per worker run")
    parser.add_argument("--json", type=Path, help="write results here (default: results/)")
    args = parser.parse_args(argv)
    if args.n is None:
        args.n = 2_000 if args.quick else 100_000
    if args.n_small is None:
        args.n_small = args.n if args.quick else min(args.n, 10_000)
    if args.n_long is None:
        args.n_long = args.n if args.quick else 5 * args.n
    if args.n_latency is None:
        args.n_latency = args.n if args.quick else 20_000
    if args.n_import is None:
        args.n_import = 10 * args.n if args.quick else 100_000
    if args.reps is None:
        args.reps = 1 if args.quick else 3
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit status 1 if any worker run failed."""
    args = parse_args(argv)
    wanted = [name.strip() for name in args.sdks.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in ADAPTERS]
    if unknown:
        print(f"unknown SDKs: {', '.join(unknown)}", file=sys.stderr)
        return 2
    wanted_scenarios = {name.strip() for name in args.scenarios.split(",")}
    unknown = sorted(wanted_scenarios - set(SCENARIO_NAMES))
    if unknown:
        print(f"unknown scenarios: {', '.join(unknown)}", file=sys.stderr)
        return 2
    chosen = [s for s in scenarios(args.fail_every, args.delay_ms) if s.name in wanted_scenarios]

    adapters: list[Adapter] = []
    notes: list[str] = []
    for name in wanted:
        adapter = ADAPTERS[name]()
        reason = adapter.missing()
        if reason is None:
            adapters.append(adapter)
        else:
            notes.append(f"skipped {name}: {reason}")
    for note in notes:
        print(note, file=sys.stderr)
    if not adapters:
        print("nothing to run", file=sys.stderr)
        return 2
    labels = {a.name: a.describe() for a in adapters}
    sizes: dict[str, Any] = {
        "n": args.n,
        "n_small": args.n_small,
        "n_long": args.n_long,
        "n_latency": args.n_latency,
        "n_import": args.n_import,
        "delay_ms": args.delay_ms,
    }

    python = sys.executable
    proc, announce = collector.start_process(python)
    coll = CollectorClient(announce["port"])
    runs: list[dict[str, Any]] = []
    started = time.monotonic()
    scratch = tempfile.TemporaryDirectory(prefix="htevents-bench-")
    ndjson: Path | None = None
    if any(s.mode == "import" for s in chosen) and "htevents_async" in labels:
        ndjson = write_ndjson(Path(scratch.name) / "events.ndjson", args.n_import)
    try:
        for rep in range(args.reps):
            for scenario in chosen:
                for adapter in adapters:
                    if scenario.gzip_only and not adapter.supports_gzip:
                        continue
                    if scenario.first_rep_only and rep > 0:
                        continue
                    if scenario.only and adapter.name not in scenario.only:
                        continue
                    if scenario.mode == "import":
                        assert ndjson is not None
                        record = run_import_one(
                            python=python,
                            scenario=scenario,
                            path=ndjson,
                            n=sizes[scenario.size],
                            coll=coll,
                            timeout=args.timeout,
                        )
                        record["rep"] = rep
                        runs.append(record)
                        _progress(rep, args.reps, record)
                        continue
                    if scenario.mode == "threads":
                        if not isinstance(adapter, ThreadAdapter):
                            continue
                    elif adapter.threads_only:
                        continue
                    record = run_one(
                        python=python,
                        adapter=adapter,
                        scenario=scenario,
                        n=sizes[scenario.size],
                        coll=coll,
                        timeout=args.timeout,
                        burst=args.burst,
                        gap_ms=args.gap_ms,
                        options=args.htevents_option,
                    )
                    record["rep"] = rep
                    runs.append(record)
                    _progress(rep, args.reps, record)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        scratch.cleanup()

    summary = summarise(runs, adapters, args.reps)
    report = render(summary, adapters, labels, sizes)
    target_table = targets(runs, adapters, args.reps)
    if target_table:
        report += f"\n### Targets for htevents-async (issue #9)\n\n{target_table}\n"
    elapsed = time.monotonic() - started
    footer = [
        f"{args.reps} repetition(s), interleaved; medians shown; "
        f"ratios: median of per-repetition ratios to the best peer (>1 = better).",
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, collector "
        f"{announce['http']}/{announce['loop']}/{announce['parser']}; took {elapsed:.0f} s.",
        *notes,
    ]
    print(report + "\n" + "\n".join(f"- {line}" for line in footer))

    output = args.json or RESULTS_DIR / (
        datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        + ("-quick" if args.quick else "-full")
        + ".json"
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "environment": environment(announce, python, labels),
        "arguments": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "labels": labels,
        "skipped": notes,
        "elapsed_s": elapsed,
        "summary": summary,
        "runs": runs,
        "report_markdown": report,
    }
    output.write_text(json.dumps(document, indent=2))
    print(f"\nresults: {output}", file=sys.stderr)
    return 0 if all(r.get("ok") for r in runs) else 1


def _progress(rep: int, reps: int, record: dict[str, Any]) -> None:
    shown: list[tuple[str, Callable[[Any], str]]] = [
        ("per_call_us", lambda v: f"{v:.1f} µs/call"),
        ("delivered_eps", lambda v: f"{v:,.0f} ev/s"),
        ("stall_us_per_event", lambda v: f"stall {v:.1f} µs/ev"),
        ("backlog_mb_per_100k", lambda v: f"{v:.0f} MiB/100k queued"),
        ("events_per_request", lambda v: f"{v:,.0f} ev/request"),
        ("cpu_us_per_event", lambda v: f"{v:.1f} CPU µs/ev"),
        ("arrived", lambda v: f"arrived {v:,}"),
    ]
    parts = [fmt(record[key]) for key, fmt in shown if record.get(key) is not None]
    status = ", ".join(parts) if record.get("ok") else f"FAILED: {record.get('error')}"
    print(
        f"[{rep + 1}/{reps}] {record['scenario']:<14} {record['sdk']:<15} {status}",
        file=sys.stderr,
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
