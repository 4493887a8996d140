"""One adapter per SDK under test: how to open it, call it N times, flush it and close it.

Every adapter sends the same message: a track call ``Order completed`` for one of 1,000
user ids, with a fresh three-key properties dict per call (as application code builds
one per request). Each adapter writes the call loop itself, in the SDK's own idiom, so
no shared wrapper adds a function call per event to some SDKs and not to others.

Queues are sized so that nothing is dropped (``Settings.max_queue``), batches hold 100
events wherever that is configurable, and the flush interval is 0.5 s (the Python
Segment-lineage peers' default) so that no SDK waits for a timer the others do not. With
``Settings.defaults`` an adapter passes only the host, the write key and the queue size,
and every other option keeps the SDK's own default (batch size, flush interval,
compression, concurrency).

Imports of the SDKs happen inside the adapters: the runner lists adapters whose SDK is
not installed without importing anything, and each benchmark process imports only
the SDK it measures.
"""

from __future__ import annotations

import importlib
import importlib.util
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

EVENT = "Order completed"
USER_IDS = [f"user-{i}" for i in range(1000)]


@dataclass(frozen=True)
class Settings:
    """What every adapter is told about the run."""

    host: str
    """Collector base URL, e.g. ``http://127.0.0.1:40123``."""
    write_key: str = "bench-write-key"
    gzip: bool = False
    """Compress request bodies, for SDKs that can."""
    max_queue: int = 200_000
    """Queue capacity: larger than any run, so that no SDK drops events."""
    batch_size: int = 100
    flush_interval: float = 0.5
    """Seconds; the Python peers' default age limit of a partial batch."""
    flush_timeout: float = 300.0
    """Seconds an awaited flush may take before the benchmark gives up."""
    defaults: bool = False
    """Leave batch size, flush interval and gzip at the SDK's defaults (queue stays large)."""
    options: dict[str, Any] = field(default_factory=dict)
    """Extra keyword options for htevents-async's ``Client`` (``--htevents-option``)."""

    def common(self) -> dict[str, Any]:
        """The common settings, or nothing when the SDK's defaults apply."""
        if self.defaults:
            return {}
        return {
            "gzip": self.gzip,
            "batch_size": self.batch_size,
            "flush_interval": self.flush_interval,
        }


class Adapter(ABC):
    """Common description of an SDK under test."""

    name: ClassVar[str]
    """Short name used on the command line (``--sdks``)."""
    label: ClassVar[str]
    """Name and version shown in tables."""
    distribution: ClassVar[str | None] = None
    """PyPI distribution whose installed version goes into the label."""
    module: ClassVar[str]
    """Import name whose absence means the SDK is not installed."""
    is_peer: ClassVar[bool] = True
    """Third-party SDKs; the ratio columns compare against the best of them."""
    opt_in: ClassVar[bool] = False
    """Run only in the scenarios that name it in ``Scenario.only``."""
    supports_gzip: ClassVar[bool] = True
    threads_only: ClassVar[bool] = False
    """Measured only in the scenarios that call from plain threads (``sync-1``, ``sync-8``)."""

    def missing(self) -> str | None:
        """Why this adapter cannot run here, or ``None`` if it can."""
        if importlib.util.find_spec(self.module.split(".")[0]) is None:
            return f"{self.module} is not installed"
        return None

    def describe(self) -> str:
        """The label with the installed version, when it can be read cheaply."""
        if self.distribution is None:
            return self.label
        from importlib import metadata

        try:
            return f"{self.label} {metadata.version(self.distribution)}"
        except metadata.PackageNotFoundError:
            return self.label


class ThreadAdapter(Adapter):
    """An SDK whose calls are plain functions and whose sending runs in threads."""

    kind: ClassVar[str] = "thread"

    @abstractmethod
    def open(self, settings: Settings) -> None:
        """Create the client."""

    @abstractmethod
    def calls(self, start: int, count: int) -> None:
        """Make ``count`` track calls, numbered from ``start``."""

    @abstractmethod
    def flush(self) -> None:
        """Block until everything queued was sent (or given up on)."""

    @abstractmethod
    def close(self) -> None:
        """Stop background threads."""

    def statistics(self) -> dict[str, Any]:
        """SDK-reported counters, if it has any."""
        return {}


class AsyncAdapter(Adapter):
    """An SDK used from coroutines, sending from tasks in the same event loop."""

    kind: ClassVar[str] = "async"

    @abstractmethod
    async def open(self, settings: Settings) -> None:
        """Create the client (inside the running loop)."""

    @abstractmethod
    async def calls(self, start: int, count: int) -> None:
        """Make ``count`` track calls, numbered from ``start``."""

    @abstractmethod
    async def flush(self) -> None:
        """Wait until everything queued was sent (or given up on)."""

    @abstractmethod
    async def close(self) -> None:
        """Close the client."""

    def statistics(self) -> dict[str, Any]:
        """SDK-reported counters, if it has any."""
        return {}


class _SegmentFamily(ThreadAdapter):
    """Hightouch, Segment and RudderStack share one client shape (the Segment lineage)."""

    client_path: ClassVar[str]
    client: Any

    def open(self, settings: Settings) -> None:
        module_name, _, class_name = self.client_path.rpartition(".")
        client_class = getattr(importlib.import_module(module_name), class_name)
        common = settings.common()
        self.client = client_class(
            write_key=settings.write_key,
            host=settings.host,
            max_queue_size=settings.max_queue,
            **(
                {
                    "gzip": common["gzip"],
                    "upload_size": common["batch_size"],
                    "upload_interval": common["flush_interval"],
                }
                if common
                else {}
            ),
        )

    def calls(self, start: int, count: int) -> None:
        track, users = self.client.track, USER_IDS
        for i in range(start, start + count):
            track(
                user_id=users[i % 1000],
                event=EVENT,
                properties={"total": 29.99, "currency": "USD", "index": i},
            )

    def flush(self) -> None:
        self.client.flush()

    def close(self) -> None:
        self.client.join()


class Hightouch(_SegmentFamily):
    """Hightouch's Python SDK (``events-sdk-python``, import ``hightouch.htevents``)."""

    name = "hightouch"
    label = "events-sdk-python"
    distribution = "events-sdk-python"
    module = "hightouch.htevents"
    client_path = "hightouch.htevents.Client"


class Segment(_SegmentFamily):
    """Segment's Python SDK (``segment-analytics-python``, import ``segment.analytics``)."""

    name = "segment"
    label = "segment-analytics-python"
    distribution = "segment-analytics-python"
    module = "segment.analytics"
    client_path = "segment.analytics.Client"


class Rudder(_SegmentFamily):
    """RudderStack's Python SDK (``rudder-sdk-python``, import ``rudderstack.analytics``)."""

    name = "rudder"
    label = "rudder-sdk-python"
    distribution = "rudder-sdk-python"
    module = "rudderstack.analytics"
    client_path = "rudderstack.analytics.Client"


def _posthog_options(settings: Settings) -> dict[str, Any]:
    common = settings.common()
    if not common:
        return {}
    return {
        "flush_at": common["batch_size"],
        "flush_interval": common["flush_interval"],
        "gzip": common["gzip"],
    }


class PostHogThreads(ThreadAdapter):
    """PostHog's classic client: ``capture()`` queues, a consumer thread sends."""

    name = "posthog"
    label = "posthog (threads)"
    distribution = "posthog"
    module = "posthog"
    client: Any

    def open(self, settings: Settings) -> None:
        from posthog import Posthog

        self.client = Posthog(
            settings.write_key,
            host=settings.host,
            max_queue_size=settings.max_queue,
            **_posthog_options(settings),
        )

    def calls(self, start: int, count: int) -> None:
        capture, users = self.client.capture, USER_IDS
        for i in range(start, start + count):
            capture(
                EVENT,
                distinct_id=users[i % 1000],
                properties={"total": 29.99, "currency": "USD", "index": i},
            )

    def flush(self) -> None:
        self.client.flush(timeout_seconds=None)

    def close(self) -> None:
        self.client.shutdown()


class PostHogAsync(AsyncAdapter):
    """PostHog's ``AsyncClient``: ``capture()`` is a plain call, sending runs in tasks."""

    name = "posthog-async"
    label = "posthog AsyncClient"
    distribution = "posthog"
    module = "posthog"
    client: Any

    def missing(self) -> str | None:
        """Older posthog releases have no ``AsyncClient``."""
        reason = super().missing()
        if reason is None and not hasattr(importlib.import_module("posthog"), "AsyncClient"):
            reason = "this posthog release has no AsyncClient"
        return reason

    async def open(self, settings: Settings) -> None:
        from posthog import AsyncClient

        self.client = AsyncClient(
            settings.write_key,
            host=settings.host,
            max_queue_size=settings.max_queue,
            **_posthog_options(settings),
        )
        self._flush_timeout = settings.flush_timeout

    async def calls(self, start: int, count: int) -> None:
        # capture() is synchronous in this client; it is still called from the coroutine.
        capture, users = self.client.capture, USER_IDS
        for i in range(start, start + count):
            capture(
                EVENT,
                distinct_id=users[i % 1000],
                properties={"total": 29.99, "currency": "USD", "index": i},
            )

    async def flush(self) -> None:
        await self.client.flush(timeout_seconds=self._flush_timeout)

    async def close(self) -> None:
        await self.client.shutdown()


class Naive(AsyncAdapter):
    """The naive asyncio sender in ``naive.py``: the floor any SDK is compared with."""

    name = "naive"
    label = "naive asyncio sender"
    module = "httpx"
    is_peer = False
    sender: Any

    async def open(self, settings: Settings) -> None:
        from naive import NaiveSender

        common = settings.common()
        self.sender = NaiveSender(
            settings.host,
            settings.write_key,
            **({"batch_size": common["batch_size"], "compress": common["gzip"]} if common else {}),
        )

    async def calls(self, start: int, count: int) -> None:
        track, users = self.sender.track, USER_IDS
        for i in range(start, start + count):
            await track(
                user_id=users[i % 1000],
                event=EVENT,
                properties={"total": 29.99, "currency": "USD", "index": i},
            )

    async def flush(self) -> None:
        await self.sender.flush()

    async def close(self) -> None:
        await self.sender.aclose()

    def statistics(self) -> dict[str, Any]:
        """Batches answered 2xx and batches lost."""
        return {
            "sent_batches": self.sender.sent_batches,
            "failed_batches": self.sender.failed_batches,
        }


class HteventsAsync(AsyncAdapter):
    """This project's SDK, used as DESIGN.md section 2 describes."""

    name = "htevents_async"
    label = "htevents-async"
    distribution = "htevents-async"
    module = "htevents_async"
    is_peer = False
    client: Any

    def missing(self) -> str | None:
        """The package may be importable before its ``Client`` exists."""
        reason = super().missing()
        if reason is None and not hasattr(importlib.import_module("htevents_async"), "Client"):
            reason = "htevents_async has no Client yet"
        return reason

    async def open(self, settings: Settings) -> None:
        import htevents_async

        common = settings.common()
        options: dict[str, Any] = (
            {
                "max_batch_size": common["batch_size"],
                "gzip": common["gzip"],
                "flush_interval": common["flush_interval"],
            }
            if common
            else {}
        )
        options.update(settings.options)
        self.client = htevents_async.Client(
            settings.write_key,
            host=settings.host,
            max_queue_size=settings.max_queue,
            **options,
        )
        await self.client.__aenter__()
        self._flush_timeout = settings.flush_timeout

    async def calls(self, start: int, count: int) -> None:
        track, users = self.client.track, USER_IDS
        for i in range(start, start + count):
            await track(
                user_id=users[i % 1000],
                event=EVENT,
                properties={"total": 29.99, "currency": "USD", "index": i},
            )

    async def flush(self) -> None:
        # flush() returns what is still pending at its deadline: worth keeping, since a
        # non-zero value explains a run whose events did not all arrive.
        self._pending_after_flush = await self.client.flush(timeout=self._flush_timeout)

    async def close(self) -> None:
        await self.client.__aexit__(None, None, None)

    def statistics(self) -> dict[str, Any]:
        """The client's own ``statistics()``, as a plain dict."""
        import attrs

        stats = self.client.statistics()
        result = attrs.asdict(stats) if attrs.has(type(stats)) else {"repr": repr(stats)}
        result["pending_after_flush"] = getattr(self, "_pending_after_flush", None)
        return result


class HteventsSync(ThreadAdapter):
    """This project's ``SyncClient``, for code without an event loop (docs/guides/sync.md)."""

    name = "htevents_sync"
    label = "htevents-async SyncClient"
    distribution = "htevents-async"
    module = "htevents_async"
    is_peer = False
    threads_only = True
    client: Any

    def missing(self) -> str | None:
        """The package may be importable before its ``SyncClient`` exists."""
        reason = super().missing()
        if reason is None and not hasattr(importlib.import_module("htevents_async"), "SyncClient"):
            reason = "htevents_async has no SyncClient yet"
        return reason

    def open(self, settings: Settings) -> None:
        import htevents_async

        self.client = htevents_async.SyncClient(
            settings.write_key,
            host=settings.host,
            max_queue_size=settings.max_queue,
            max_batch_size=settings.batch_size,
            gzip=settings.gzip,
            flush_interval=settings.flush_interval,
        )
        self._flush_timeout = settings.flush_timeout

    def calls(self, start: int, count: int) -> None:
        track, users = self.client.track, USER_IDS
        for i in range(start, start + count):
            track(
                user_id=users[i % 1000],
                event=EVENT,
                properties={"total": 29.99, "currency": "USD", "index": i},
            )

    def flush(self) -> None:
        self._pending_after_flush = self.client.flush(timeout=self._flush_timeout)

    def close(self) -> None:
        self.client.close()

    def statistics(self) -> dict[str, Any]:
        """The client's own ``statistics()``, as a plain dict."""
        import attrs

        result = attrs.asdict(self.client.statistics())
        result["pending_after_flush"] = getattr(self, "_pending_after_flush", None)
        return result


def _disk_write_bytes() -> int | None:
    """Bytes this process dirtied in files (Linux ``/proc/self/io``), sockets not included."""
    try:
        with open("/proc/self/io") as io:
            fields = dict(line.split(": ") for line in io.read().splitlines())
    except OSError:
        return None
    return int(fields["write_bytes"])


class HteventsAsyncSpool(HteventsAsync):
    """The same client with the durable spool on (``spool=`` a fresh directory)."""

    name = "htevents_async_spool"
    label = "htevents-async (spool)"
    opt_in = True

    async def open(self, settings: Settings) -> None:
        import tempfile

        import htevents_async

        self._directory = tempfile.mkdtemp(prefix="htevents-bench-spool-")
        self._written_before = _disk_write_bytes()
        self.client = htevents_async.Client(
            settings.write_key,
            host=settings.host,
            max_queue_size=settings.max_queue,
            max_batch_size=settings.batch_size,
            gzip=settings.gzip,
            flush_interval=settings.flush_interval,
            spool=self._directory,
        )
        await self.client.__aenter__()
        self._flush_timeout = settings.flush_timeout

    async def close(self) -> None:
        await super().close()
        import shutil

        shutil.rmtree(self._directory, ignore_errors=True)

    def statistics(self) -> dict[str, Any]:
        """The client's statistics, and the bytes written to disk so far (taken after the
        flush, before the close)."""
        result = super().statistics()
        written = _disk_write_bytes()
        if written is not None and self._written_before is not None:
            result["disk_write_bytes"] = written - self._written_before
        return result


ADAPTERS: dict[str, type[Adapter]] = {
    adapter.name: adapter
    for adapter in (
        HteventsAsync,
        HteventsAsyncSpool,
        HteventsSync,
        Naive,
        Hightouch,
        Segment,
        Rudder,
        PostHogThreads,
        PostHogAsync,
    )
}
"""Every adapter, by command-line name, in table order."""
