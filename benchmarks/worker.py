"""One measurement of one SDK, in a fresh process; prints one JSON object on stdout.

The runner starts this script once per (SDK, scenario, repetition), so that no SDK
inherits another's threads, imports, caches or heap. Modes:

``throughput``
    N track calls back to back (from a coroutine for async SDKs, a plain loop for
    thread-based ones), then flush and close. Reports the call time, the process CPU
    time (all threads) from the first call until the flush returned, and RSS.
``threads``
    The N calls split over K plain threads started together (``--threads``), for
    thread-based SDKs: what sync code (WSGI workers, task pools) sees. Reports the time
    from the start until every thread finished its calls, per event, then flushes.
``backlog``
    The collector parks every upload, so after N calls nearly all N events sit inside
    the SDK; reports the RSS growth, then leaves with ``os._exit`` (nothing is
    delivered; the runner resets the collector).
``eventloop``
    Inside one asyncio loop, with a 1 ms ticker task: bursts of calls, a short sleep
    between bursts, then flush. Thread-based SDKs are called from the coroutine
    directly, as applications do; only their blocking flush is moved to a thread.
    Reports the ticker's total lateness and its percentiles.

Times are ``time.monotonic()``, which on Linux is one clock for all processes, so the
runner can subtract the collector's arrival times from the first-call time reported here.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import sys
import threading
import time
from typing import Any

from sdks import ADAPTERS, AsyncAdapter, Settings, ThreadAdapter


def current_rss_bytes() -> int:
    """Resident set size now (not the peak), from ``/proc``; 0 where that is unavailable."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (``ru_maxrss``, KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def throughput_thread(adapter: ThreadAdapter, settings: Settings, n: int) -> dict[str, Any]:
    """N calls from a plain loop, then a blocking flush."""
    adapter.open(settings)
    gc.collect()
    rss_before = current_rss_bytes()
    cpu0, t0 = time.process_time(), time.monotonic()
    adapter.calls(0, n)
    t1 = time.monotonic()
    rss_after_calls = current_rss_bytes()
    adapter.flush()
    t2, cpu2 = time.monotonic(), time.process_time()
    stats = adapter.statistics()
    adapter.close()
    return _throughput_result(n, t0, t1, t2, cpu0, cpu2, rss_before, rss_after_calls, stats)


def throughput_threads(
    adapter: ThreadAdapter, settings: Settings, n: int, threads: int
) -> dict[str, Any]:
    """N calls split over ``threads`` plain threads started at once, then a blocking flush."""
    adapter.open(settings)
    share = [n // threads + (1 if k < n % threads else 0) for k in range(threads)]
    starts = [sum(share[:k]) for k in range(threads)]
    barrier = threading.Barrier(threads + 1)

    def produce(k: int) -> None:
        barrier.wait()
        adapter.calls(starts[k], share[k])

    workers = [threading.Thread(target=produce, args=(k,)) for k in range(threads)]
    for worker in workers:
        worker.start()
    gc.collect()
    rss_before = current_rss_bytes()
    cpu0, t0 = time.process_time(), time.monotonic()
    barrier.wait()
    for worker in workers:
        worker.join()
    t1 = time.monotonic()
    rss_after_calls = current_rss_bytes()
    adapter.flush()
    t2, cpu2 = time.monotonic(), time.process_time()
    stats = adapter.statistics()
    adapter.close()
    result = _throughput_result(n, t0, t1, t2, cpu0, cpu2, rss_before, rss_after_calls, stats)
    result["threads"] = threads
    return result


async def throughput_async(adapter: AsyncAdapter, settings: Settings, n: int) -> dict[str, Any]:
    """N awaited calls from one coroutine, then an awaited flush."""
    await adapter.open(settings)
    gc.collect()
    rss_before = current_rss_bytes()
    cpu0, t0 = time.process_time(), time.monotonic()
    await adapter.calls(0, n)
    t1 = time.monotonic()
    rss_after_calls = current_rss_bytes()
    await adapter.flush()
    t2, cpu2 = time.monotonic(), time.process_time()
    stats = adapter.statistics()
    await adapter.close()
    return _throughput_result(n, t0, t1, t2, cpu0, cpu2, rss_before, rss_after_calls, stats)


def _throughput_result(
    n: int,
    t0: float,
    t1: float,
    t2: float,
    cpu0: float,
    cpu2: float,
    rss_before: int,
    rss_after_calls: int,
    stats: dict[str, Any],
) -> dict[str, Any]:
    return {
        "first_call_mono": t0,
        "calls_s": t1 - t0,
        "flush_returned_s": t2 - t0,
        "per_call_us": (t1 - t0) / n * 1e6,
        "cpu_s": cpu2 - cpu0,
        "cpu_us_per_event": (cpu2 - cpu0) / n * 1e6,
        "rss_before_mb": rss_before / 2**20,
        "rss_after_calls_mb": rss_after_calls / 2**20,
        "peak_rss_mb": peak_rss_bytes() / 2**20,
        "sdk_statistics": stats,
    }


def backlog(adapter: ThreadAdapter | AsyncAdapter, settings: Settings, n: int) -> dict[str, Any]:
    """RSS growth while N events are queued and the collector accepts nothing."""

    def measure(rss_before: int, t0: float) -> dict[str, Any]:
        rss_after = current_rss_bytes()
        return {
            "first_call_mono": t0,
            "per_call_us": (time.monotonic() - t0) / n * 1e6,
            "rss_before_mb": rss_before / 2**20,
            "rss_after_calls_mb": rss_after / 2**20,
            "backlog_rss_mb": (rss_after - rss_before) / 2**20,
            "backlog_bytes_per_event": (rss_after - rss_before) / n,
            "peak_rss_mb": peak_rss_bytes() / 2**20,
        }

    if isinstance(adapter, ThreadAdapter):
        adapter.open(settings)
        gc.collect()
        rss_before, t0 = current_rss_bytes(), time.monotonic()
        adapter.calls(0, n)
        return measure(rss_before, t0)

    async def main() -> dict[str, Any]:
        await adapter.open(settings)
        gc.collect()
        rss_before, t0 = current_rss_bytes(), time.monotonic()
        await adapter.calls(0, n)
        return measure(rss_before, t0)

    return asyncio.run(main())


async def eventloop(
    adapter: ThreadAdapter | AsyncAdapter,
    settings: Settings,
    n: int,
    burst: int,
    gap_s: float,
) -> dict[str, Any]:
    """Bursts of calls in a loop that also runs a 1 ms ticker; report the ticker's lateness."""
    interval = 0.001
    lateness: list[float] = []
    tick_starts: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        clock = time.monotonic
        while not stop.is_set():
            start = clock()
            await asyncio.sleep(interval)
            # asyncio may wake a timer up to one clock resolution early; that is not lateness.
            lateness.append(max(0.0, clock() - start - interval))
            tick_starts.append(start)

    if isinstance(adapter, ThreadAdapter):
        adapter.open(settings)
    else:
        await adapter.open(settings)

    # The ticker's lateness in an otherwise idle loop: the floor every SDK pays per tick.
    tick_task = asyncio.get_running_loop().create_task(ticker())
    await asyncio.sleep(0.2)
    idle = list(lateness)
    lateness.clear()
    tick_starts.clear()

    cpu0, t0 = time.process_time(), time.monotonic()
    for start in range(0, n, burst):
        count = min(burst, n - start)
        if isinstance(adapter, ThreadAdapter):
            adapter.calls(start, count)
        else:
            await adapter.calls(start, count)
        await asyncio.sleep(gap_s)
    t1 = time.monotonic()
    if isinstance(adapter, ThreadAdapter):
        # Applications move a blocking flush off the loop; so does the benchmark.
        await asyncio.to_thread(adapter.flush)
    else:
        await adapter.flush()
    t2, cpu2 = time.monotonic(), time.process_time()
    stop.set()
    await tick_task
    stats = adapter.statistics()
    if isinstance(adapter, ThreadAdapter):
        await asyncio.to_thread(adapter.close)
    else:
        await adapter.close()

    total = sum(lateness)
    # Percentiles describe the burst phase, where applications feel them; the total
    # also counts the flush that follows, since an SDK may defer its work until then.
    during = [lag for lag, start in zip(lateness, tick_starts, strict=True) if start < t1]
    return {
        "first_call_mono": t0,
        "bursts_s": t1 - t0,
        "flush_returned_s": t2 - t0,
        "ticks": len(lateness),
        "stall_s": total,
        "stall_us_per_event": total / n * 1e6,
        "ticks_during_bursts": len(during),
        "tick_lag_p50_ms": _percentile(during, 0.50) * 1e3,
        "tick_lag_p99_ms": _percentile(during, 0.99) * 1e3,
        "tick_lag_max_ms": max(lateness, default=0.0) * 1e3,
        "idle_tick_lag_mean_us": (sum(idle) / len(idle) * 1e6) if idle else 0.0,
        "cpu_us_per_event": (cpu2 - cpu0) / n * 1e6,
        "peak_rss_mb": peak_rss_bytes() / 2**20,
        "sdk_statistics": stats,
    }


def parse_option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE as JSON (numbers, true/false), or as a plain string."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise SystemExit(f"--option wants KEY=VALUE, not {text!r}")
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    return key, value


def main() -> None:
    """Parse arguments, run one mode for one SDK, print the JSON result."""
    parser = argparse.ArgumentParser(description="One benchmark measurement in this process.")
    parser.add_argument("--sdk", required=True, choices=sorted(ADAPTERS))
    parser.add_argument(
        "--mode", required=True, choices=["throughput", "threads", "backlog", "eventloop"]
    )
    parser.add_argument("--host", required=True, help="collector base URL")
    parser.add_argument("--n", type=int, required=True, help="number of track calls")
    parser.add_argument("--gzip", action="store_true", help="compress request bodies")
    parser.add_argument("--threads", type=int, default=1, help="threads: producer threads")
    parser.add_argument(
        "--defaults",
        action="store_true",
        help="keep the SDK's own batch size, flush interval and compression",
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an htevents-async Client option (VALUE read as JSON, else as a string)",
    )
    parser.add_argument("--burst", type=int, default=1000, help="eventloop: calls per burst")
    parser.add_argument(
        "--gap-ms", type=float, default=10.0, help="eventloop: sleep between bursts"
    )
    args = parser.parse_args()

    adapter = ADAPTERS[args.sdk]()
    settings = Settings(
        host=args.host,
        gzip=args.gzip,
        defaults=args.defaults,
        options=dict(parse_option(text) for text in args.option),
    )
    result: dict[str, Any]
    if args.mode == "throughput":
        if isinstance(adapter, ThreadAdapter):
            result = throughput_thread(adapter, settings, args.n)
        else:
            assert isinstance(adapter, AsyncAdapter)
            result = asyncio.run(throughput_async(adapter, settings, args.n))
    elif args.mode == "threads":
        assert isinstance(adapter, ThreadAdapter)
        result = throughput_threads(adapter, settings, args.n, args.threads)
    elif args.mode == "backlog":
        assert isinstance(adapter, (ThreadAdapter, AsyncAdapter))
        result = backlog(adapter, settings, args.n)
    else:
        assert isinstance(adapter, (ThreadAdapter, AsyncAdapter))
        result = asyncio.run(eventloop(adapter, settings, args.n, args.burst, args.gap_ms / 1e3))
    result.update(
        {
            "sdk": args.sdk,
            "mode": args.mode,
            "n": args.n,
            "gzip": args.gzip,
            "defaults": args.defaults,
            "options": settings.options,
        }
    )
    print(json.dumps(result), flush=True)
    if args.mode == "backlog":
        # The SDK still holds N undeliverable events and parked requests; a normal exit
        # would run its atexit flush and wait for them.
        os._exit(0)


if __name__ == "__main__":
    main()
