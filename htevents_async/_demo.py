"""``htevents-async demo``: events of every type through the client, into a local collector.

Everything runs in one event loop on 127.0.0.1: the embedded collector on a
free port, and an :class:`~htevents_async.Client` sending a deterministic mix
of identify, track, page, screen, group and alias calls (some backdated, with
``Decimal``, ``datetime``, ``date``, ``UUID``, ``Enum`` and tuple values).
Then it prints what the collector received. Needs the ``collector`` extra.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any, Final, TextIO

from ._client import Client
from ._collector import LocalCollector
from ._context import context_scope
from ._stats import Statistics
from ._version import __version__

__all__ = ["run_demo"]

# One cycle of 20 calls, so the counts by type are exact and easy to check by eye.
_CYCLE: Final = (
    ("track",) * 10 + ("page",) * 3 + ("screen",) * 2 + ("identify",) * 2 + ("group",) * 2
) + ("alias",)
_TYPES_IN_ORDER: Final = ("track", "page", "screen", "identify", "group", "alias")

_TRACK_EVENTS: Final = (
    "Product viewed",
    "Product added",
    "Checkout started",
    "Coupon applied",
    "Order completed",
)
_PAGES: Final = (("Home", "Marketing", "/"), ("Pricing", "Marketing", "/pricing"))
_PAGES_DOCS: Final = (("Quickstart", "Docs", "/docs/quickstart"),)
_SCREENS: Final = ("Cart", "Player", "Settings")
_BACKFILL_SHARE: Final = 0.3
_BACKFILL_DAYS: Final = 90


class Plan(enum.Enum):
    """A subscription plan; sent as its value."""

    FREE = "free"
    PRO = "pro"
    ENTERPRISE = "enterprise"


class _Generator:
    """Deterministic demo data: users, accounts and the call for each step."""

    def __init__(self, seed: int = 2026) -> None:
        self.rng = random.Random(seed)
        self.now = dt.datetime.now(dt.timezone.utc)
        self.backdated = 0

    def user(self) -> str:
        return f"user-{self.rng.randrange(1, 251):04d}"

    def identity(self) -> dict[str, Any]:
        # One call in five comes from a visitor who has not signed in yet.
        if self.rng.random() < 0.2:
            return {"anonymous_id": f"anon-{self.rng.randrange(1, 501):04d}"}
        return {"user_id": self.user()}

    def timestamp(self) -> dt.datetime | None:
        if self.rng.random() >= _BACKFILL_SHARE:
            return None  # now
        self.backdated += 1
        seconds = self.rng.uniform(3600, _BACKFILL_DAYS * 86400)
        return self.now - dt.timedelta(seconds=seconds)

    def price(self) -> Decimal:
        return Decimal(self.rng.randrange(499, 19999)) / 100

    def track(self) -> dict[str, Any]:
        event = self.rng.choice(_TRACK_EVENTS)
        sku = f"SKU-{self.rng.randrange(100, 999)}"
        properties: dict[str, Any] = {"sku": sku, "price": self.price(), "currency": "EUR"}
        if event == "Order completed":
            quantity = self.rng.randrange(1, 4)
            properties = {
                "order_id": uuid.UUID(int=self.rng.getrandbits(128), version=4),
                "total": properties["price"] * quantity,
                "currency": "EUR",
                "items": ({"sku": sku, "quantity": quantity, "price": properties["price"]},),
                "placed_at": self.now - dt.timedelta(minutes=self.rng.randrange(1, 60)),
            }
        elif event == "Coupon applied":
            properties = {"coupon": "SPRING24", "discount": Decimal("0.15")}
        return {"event": event, "properties": properties}

    def page(self) -> dict[str, Any]:
        name, category, path = self.rng.choice(_PAGES + _PAGES_DOCS)
        return {
            "name": name,
            "category": category,
            "properties": {
                "path": path,
                "url": f"https://shop.example.com{path}",
                "referrer": "https://www.example.org/search?q=shoes",
            },
        }

    def screen(self) -> dict[str, Any]:
        return {
            "name": self.rng.choice(_SCREENS),
            "category": "App",
            "properties": {"build": 412, "orientation": "portrait"},
        }

    def identify(self) -> dict[str, Any]:
        user = self.user()
        return {
            "user_id": user,
            "traits": {
                "email": f"{user}@example.com",
                "plan": self.rng.choice(list(Plan)),
                "signed_up": (self.now - dt.timedelta(days=self.rng.randrange(1, 700))).date(),
                "logins": self.rng.randrange(1, 300),
            },
        }

    def group(self) -> dict[str, Any]:
        account = self.rng.randrange(1, 41)
        return {
            "group_id": f"acct-{account:03d}",
            "traits": {
                "name": f"Company {account}",
                "employees": self.rng.randrange(5, 5000),
                "plan": Plan.ENTERPRISE,
                "mrr": self.price() * 10,
            },
        }

    def alias(self) -> dict[str, Any]:
        return {"previous_id": f"anon-{self.rng.randrange(1, 501):04d}", "user_id": self.user()}


async def _send_all(
    client: Client, count: int, generator: _Generator
) -> tuple[dict[str, int], float]:
    """Make ``count`` calls; return the count per type and the seconds spent inside the calls."""
    sent = dict.fromkeys(_TYPES_IN_ORDER, 0)
    in_calls = 0.0
    clock = time.perf_counter
    methods: dict[str, tuple[Callable[..., Awaitable[str]], Callable[[], dict[str, Any]]]] = {
        "track": (client.track, generator.track),
        "page": (client.page, generator.page),
        "screen": (client.screen, generator.screen),
        "identify": (client.identify, generator.identify),
        "group": (client.group, generator.group),
        "alias": (client.alias, generator.alias),
    }
    for step in range(count):
        kind = _CYCLE[step % len(_CYCLE)]
        method, fields_of = methods[kind]
        fields = fields_of()
        if kind not in ("identify", "alias"):
            fields = {**generator.identity(), **fields}
        timestamp = generator.timestamp()
        if timestamp is not None:
            fields["timestamp"] = timestamp
        # Half the calls run inside a request-like scope, as framework middleware would set.
        if step % 2:
            with context_scope(ip=f"203.0.113.{step % 250 + 1}", locale="en-GB"):
                before = clock()
                await method(**fields)
                in_calls += clock() - before
        else:
            before = clock()
            await method(**fields)
            in_calls += clock() - before
        sent[kind] += 1
    return sent, in_calls


def _symbols(out: TextIO) -> tuple[str, str]:
    encoding = getattr(out, "encoding", None) or "ascii"
    try:
        "█—".encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return "#", "-"
    return "█", "—"


def _kb(size: int) -> str:
    return f"{size / 1024:,.1f} KiB" if size < 1024 * 1024 else f"{size / 1024 / 1024:,.2f} MiB"


def _sample(messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    # The most telling sample: a backdated order, with its Decimal, UUID, tuple and
    # datetime values in wire form.
    orders = [m for m in messages if m.get("event") == "Order completed"]
    for message in orders:
        if str(message.get("timestamp"))[:10] != str(message.get("receivedAt"))[:10]:
            return message
    candidates = orders or messages
    return candidates[0] if candidates else None


def _statistics_lines(stats: Statistics) -> list[str]:
    dropped = ", ".join(f"{reason} {count:,}" for reason, count in stats.dropped.items())
    return [
        f"  accepted {stats.accepted:,}   delivered {stats.delivered:,}   "
        f"failed {stats.failed:,}   dropped {stats.dropped_total:,}"
        + (f" ({dropped})" if dropped else ""),
        f"  batches {stats.batches_delivered:,}   requests {stats.requests:,}   "
        f"retries {stats.retries:,}   bytes sent {_kb(stats.bytes_sent)} (gzip)",
    ]


def _report(
    out: TextIO,
    *,
    url: str,
    count: int,
    sent: Mapping[str, int],
    by_type: Mapping[str, int],
    requests: int,
    bytes_received: int,
    stats: Statistics,
    backdated: int,
    call_seconds: float,
    total_seconds: float,
    sample: dict[str, Any] | None,
) -> None:
    block, dash = _symbols(out)
    received = sum(by_type.values())
    lines = [
        f"htevents-async {__version__} demo {dash} a local collector: no account, no internet",
        "",
        f"  collector  {url}/v1/batch (embedded, in this process)",
        f"  sent       {count:,} events through htevents_async.Client",
        f"             {backdated:,} of them backdated up to {_BACKFILL_DAYS} days (a backfill)",
        "",
        f"Collector received {received:,} events in {requests:,} requests "
        f"({_kb(bytes_received)} on the wire):",
        "",
        f"  {'type':<10}{'sent':>8}{'received':>10}",
    ]
    largest = max(by_type.values(), default=0)
    kinds = [*_TYPES_IN_ORDER, *sorted(set(by_type) - set(_TYPES_IN_ORDER))]
    for kind in kinds:
        got = by_type.get(kind, 0)
        bar = block * max(1, round(30 * got / largest)) if got and largest else ""
        lines.append(f"  {kind:<10}{sent.get(kind, 0):>8,}{got:>10,}  {bar}")
    lines.append(f"  {'total':<10}{sum(sent.values()):>8,}{received:>10,}")
    lines += ["", "Client statistics:", *_statistics_lines(stats), ""]
    per_call = call_seconds / count * 1e6
    rate = count / total_seconds if total_seconds > 0 else 0.0
    lines += [
        "Timing:",
        f"  {per_call:.1f} µs per call: {call_seconds:.3f} s inside {count:,} calls "
        "(validate, encode, queue; never a network wait)",
        f"  all delivered {total_seconds:.3f} s after the first call: {rate:,.0f} events/s "
        "end to end, collector included",
        "",
    ]
    if sample is not None:
        lines += [
            f"Sample message ({sample.get('type')}, as the collector received it):",
            json.dumps(sample, indent=2, ensure_ascii=False),
            "",
        ]
    lines.append(
        "Next: `htevents-async collect` runs this collector on http://127.0.0.1:8787 with a "
        "live viewer;\n      point a client at it: "
        'Client(write_key, host="http://127.0.0.1:8787").'
    )
    out.write("\n".join(lines).replace("µ", "u" if block == "#" else "µ") + "\n")
    out.flush()


async def run_demo(count: int, out: TextIO) -> int:
    """Send ``count`` events of every type to an embedded collector and report on ``out``.

    Returns the exit code: 0 when the collector received every event, else 1.
    """
    generator = _Generator()
    async with LocalCollector(max_messages=max(count, 1000)) as collector:
        # "wait" so that any --events N arrives whole, whatever the queue size.
        client = Client("demo-write-key", host=collector.url, overflow="wait")
        started = time.perf_counter()
        async with client:
            sent, call_seconds = await _send_all(client, count, generator)
        # Leaving `async with` flushed: every delivered batch is already stored.
        total_seconds = time.perf_counter() - started
        collector_stats = collector.stats()
        _report(
            out,
            url=collector.url,
            count=count,
            sent=sent,
            by_type=collector_stats.by_type,
            requests=collector_stats.requests,
            bytes_received=collector_stats.bytes_received,
            stats=client.statistics(),
            backdated=generator.backdated,
            call_seconds=call_seconds,
            total_seconds=total_seconds,
            sample=_sample(collector.messages("track")),
        )
    if collector_stats.messages != count:
        out.write(f"\nerror: sent {count:,} events but the collector received ")
        out.write(f"{collector_stats.messages:,}\n")
        return 1
    return 0
