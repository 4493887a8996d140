"""Per-call cost of ``track()`` without plugins and with one or more ``before_send`` plugins.

Each variant runs ``--n`` calls in a tight loop, ``--reps`` times, interleaved (A B C, A
B C, ...) so that a noisy machine's drifts spread over all of them; the median of the
repetitions is printed in microseconds per call. The collector is an in-process httpx
transport that answers 200 at once: what is measured is the call path (validation,
plugins, encoding, queueing) and the flusher turns it takes, not the network.

    python benchmarks/plugins.py                 # N=20,000, 5 repetitions
    python benchmarks/plugins.py --n 5000 --reps 3

To compare against another checkout, put its package first on the path:
``PYTHONPATH=/path/to/checkout python benchmarks/plugins.py --only none``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx

import htevents_async
from htevents_async import Client

PROPERTIES = {"plan": "pro", "total": 29.99, "items": 3, "coupon": None}


def variants() -> dict[str, Callable[[], Any]]:
    """Name -> the ``before_send`` value (``None``: no plugins, the plain fast path)."""

    def ready_made(name: str, *args: Any, **kwargs: Any) -> Callable[[], Any]:
        # Imported late: a checkout without plugins can still run the "none" variant.
        def make() -> Any:
            from htevents_async import plugins

            return getattr(plugins, name)(*args, **kwargs)

        return make

    return {
        "none": lambda: None,
        "identity": lambda: lambda event: event,
        "add_context": ready_made("add_context", app={"version": "1.4.2"}),
        "sample_10pct": ready_made("sample", 0.1, key="userId"),
        "scrub": ready_made("scrub", keys={"password"}),
    }


async def one_run(before_send: Any, n: int) -> tuple[float, float]:
    """Wall and CPU seconds per call for ``n`` plain track calls.

    On a shared machine the CPU time is the steadier figure: it leaves out the
    time other processes hold the cores."""
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: httpx.Response(200)))
    options: dict[str, Any] = {"max_queue_size": max(n + 1, 100), "gzip": False}
    if before_send is not None:
        options["before_send"] = before_send
    async with Client("bench-key", host="http://127.0.0.1:9", http_client=http, **options) as c:
        for i in range(200):  # warm-up
            await c.track(user_id=str(i), event="Warm up", properties=PROPERTIES)
        await c.flush()
        started, cpu_started = time.perf_counter(), time.process_time()
        for i in range(n):
            await c.track(user_id=str(i), event="Order completed", properties=PROPERTIES)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        await c.flush()
    await http.aclose()
    return elapsed / n, cpu / n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="calls per run")
    parser.add_argument("--reps", type=int, default=5, help="repetitions of each variant")
    parser.add_argument("--only", help="comma-separated variants to run (default: all)")
    args = parser.parse_args(argv)
    chosen = variants()
    if args.only:
        chosen = {name: chosen[name] for name in args.only.split(",")}
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in chosen}
    for _ in range(args.reps):
        for name, make in chosen.items():
            runs[name].append(asyncio.run(one_run(make(), args.n)))
    print(f"htevents_async {htevents_async.__version__} from {htevents_async.__file__}")
    print(f"n={args.n}, reps={args.reps}; medians in µs per track() call (min-max)")
    first = next(iter(runs))
    for column, label in ((0, "wall"), (1, "CPU")):
        base = statistics.median(run[column] for run in runs[first])
        print(f"{label}:")
        for name, values in runs.items():
            taken = [run[column] * 1e6 for run in values]
            median = statistics.median(taken)
            print(
                f"  {name:<14} {median:6.2f}  ({min(taken):.2f}-{max(taken):.2f})"
                f"  {median - base * 1e6:+.2f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
