"""The backfill's activities: plan the chunks, import one chunk and heartbeat its progress.

The import runs the shared NDJSON pipeline (:func:`htevents_async._importer.import_ndjson`)
over one byte range into the worker's client. Its heartbeat carries the offset below which
every line is *settled* (delivered, failed or rejected), never the read offset, with the
counts of those lines; an attempt that finds such a heartbeat resumes from there. The only
lines sent twice after a crash are then those read after the last heartbeat's offset, and
they carry the same ``messageId`` again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import os
import uuid
from collections import deque
from typing import Any, Final

import attrs
from temporalio import activity
from temporalio.exceptions import ApplicationError

from ..._client import Client
from ..._errors import ConfigError, DeliveryError
from ..._importer import ImportCounts, Rejection, import_ndjson
from ..._messages import Message
from ._backfill_types import (
    MAX_CHUNKS,
    MAX_REJECTIONS,
    Chunk,
    ChunkResult,
    InputBackfill,
    Rejected,
    auto_chunk_bytes,
)

__all__ = ["Backfill", "plan_chunks"]

HEARTBEAT_INTERVAL: Final = 1.0
"""Seconds between two heartbeats of an import activity."""

_SAMPLE: Final = 64 * 1024
_NAMESPACE: Final = uuid.UUID("9a4f3c2e-6b1d-5e8a-9c7f-0d2b4e6a8c1f")


def _fingerprint(path: str, size: int) -> str:
    """A UUID for the file's content: its size and hashes of its head and tail."""
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as file:
        digest.update(file.read(_SAMPLE))
        file.seek(max(size - _SAMPLE, 0))
        digest.update(file.read(_SAMPLE))
    return str(uuid.uuid5(_NAMESPACE, digest.hexdigest()))


def _line_start_at_or_after(file: Any, position: int) -> int:
    if position == 0:
        return 0
    # A line belongs to the range it starts in: unless byte position-1 ends a line, the
    # line running through ``position`` starts before it.
    file.seek(position - 1)
    return position - 1 + len(file.readline())


def plan_chunks(input: InputBackfill) -> list[Chunk]:
    """Split every file into chunks of about ``chunk_bytes`` (by default
    :func:`auto_chunk_bytes` of the files' total size), cut at line starts.

    Raises :class:`ConfigError` when that makes more than :data:`MAX_CHUNKS` chunks,
    more than one workflow's history holds.
    """
    sizes = [os.path.getsize(path) for path in input.files]
    total = sum(sizes)
    if len(input.files) > MAX_CHUNKS:
        raise ConfigError(
            f"InputBackfill.files names {len(input.files):,} files, each at least one chunk; "
            f"one backfill takes at most {MAX_CHUNKS:,} chunks (Temporal's history limits): "
            "split the files over several backfills"
        )
    step = input.chunk_bytes or auto_chunk_bytes(total, files=len(input.files))
    chunks: list[Chunk] = []
    for path, size in zip(input.files, sizes, strict=True):
        fingerprint = _fingerprint(path, size)
        with open(path, "rb") as file:
            cuts = sorted({_line_start_at_or_after(file, p) for p in range(0, size, step)} | {size})
        chunks.extend(
            Chunk(
                path=path,
                start=start,
                end=end,
                fingerprint=fingerprint,
                allow_anonymous=input.allow_anonymous,
            )
            for start, end in itertools.pairwise(cuts)
            if end > start
        )
    if len(chunks) > MAX_CHUNKS:
        least = -(-total // max(MAX_CHUNKS - len(input.files), 1))
        raise ConfigError(
            f"InputBackfill.chunk_bytes={step:,} cuts {total:,} bytes into {len(chunks):,} "
            f"chunks; one backfill takes at most {MAX_CHUNKS:,} (Temporal's history limits): "
            f"set chunk_bytes to {least:,} or more, or None to let the planner choose"
        )
    return chunks


@attrs.define
class _Line:
    offset: int
    blank_before: int
    """Blank lines read (in this attempt) before this one."""
    done: bool = False
    delivered: bool = False
    reason: str | None = None
    """Why it was rejected; ``None`` for an accepted line."""


class _Ledger:
    """Lines handed on but not yet settled, in file order, and the totals of those settled."""

    def __init__(self, chunk: Chunk, resumed: dict[str, Any] | None) -> None:
        self.chunk = chunk
        base = resumed or {}
        self.start: int = base.get("offset", chunk.start)
        self.base_blank: int = base.get("blank", 0)
        self.accepted: int = base.get("accepted", 0)
        self.rejected: int = base.get("rejected", 0)
        self.delivered: int = base.get("delivered", 0)
        self.failed: int = base.get("failed", 0)
        self.rejections: list[dict[str, Any]] = list(base.get("rejections", []))
        self.counts = ImportCounts(offset=self.start)
        self.lines: deque[_Line] = deque()
        self.finished = False
        self.drained = asyncio.Event()

    def accepted_line(self) -> _Line:
        line = _Line(self.counts.offset, self.counts.blank)
        self.lines.append(line)
        return line

    def rejected_line(self, rejection: Rejection) -> None:
        if self.lines and self.lines[-1].offset == rejection.offset:
            self.lines.pop()  # the sink refused it after all
        self.lines.append(
            _Line(rejection.offset, self.counts.blank, done=True, reason=rejection.reason)
        )
        self.settle()

    def settle(self) -> None:
        lines = self.lines
        while lines and lines[0].done:
            line = lines.popleft()
            if line.reason is None:
                self.accepted += 1
                if line.delivered:
                    self.delivered += 1
                else:
                    self.failed += 1
            else:
                self.rejected += 1
                if len(self.rejections) < MAX_REJECTIONS:
                    self.rejections.append({"offset": line.offset, "reason": line.reason})
        if self.finished and not lines:
            self.drained.set()

    def progress(self) -> dict[str, Any]:
        """The heartbeat: the settled offset and the counts of the lines below it."""
        if self.lines:
            offset, blank = self.lines[0].offset, self.lines[0].blank_before
        else:
            offset, blank = self.counts.offset, self.counts.blank
        return {
            "offset": offset,
            "blank": self.base_blank + blank,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "delivered": self.delivered,
            "failed": self.failed,
            "rejections": list(self.rejections),
        }

    def result(self) -> ChunkResult:
        done = self.progress()
        return ChunkResult(
            lines=done["blank"] + done["accepted"] + done["rejected"],
            accepted=done["accepted"],
            rejected=done["rejected"],
            blank=done["blank"],
            delivered=done["delivered"],
            failed=done["failed"],
            rejections=[
                Rejected(path=self.chunk.path, offset=r["offset"], reason=r["reason"])
                for r in done["rejections"]
            ],
        )


class Backfill:
    """The backfill activities of one worker, recording through its shared client."""

    def __init__(self, client: Client) -> None:
        """Record through ``client``."""
        self._client = client

    @activity.defn(name="ActivityBackfillPlan")
    async def plan(self, input: InputBackfill) -> list[Chunk]:
        """Split the files into chunks cut at line starts; too many chunks fail the
        backfill at once (a non-retryable ``ConfigError``), since no retry would help."""
        try:
            return await asyncio.to_thread(plan_chunks, input)
        except ConfigError as exc:
            raise ApplicationError(str(exc), type="ConfigError", non_retryable=True) from None

    @activity.defn(name="ActivityBackfillImport")
    async def import_chunk(self, chunk: Chunk) -> ChunkResult:
        """Import one chunk, heartbeating the settled offset; resume from the last one."""
        details = activity.info().heartbeat_details
        resumed = details[0] if details and isinstance(details[0], dict) else None
        ledger = _Ledger(chunk, resumed)
        namespace = uuid.UUID(chunk.fingerprint)

        async def sink(message: Message) -> None:
            line = ledger.accepted_line()
            if message.message_id is None:
                message = attrs.evolve(
                    message, message_id=str(uuid.uuid5(namespace, str(line.offset)))
                )

            def settled(message_id: str, error: DeliveryError | None) -> None:
                line.done = True
                line.delivered = error is None
                ledger.settle()

            await self._client.enqueue(message, callback=settled)

        async def beat() -> None:
            while True:
                activity.heartbeat(ledger.progress())
                await asyncio.sleep(HEARTBEAT_INTERVAL)

        stream = await asyncio.to_thread(open, chunk.path, "rb")
        heartbeats = asyncio.create_task(beat())
        try:
            with stream:
                await import_ndjson(
                    stream,
                    sink,
                    start=ledger.start,
                    end=chunk.end,
                    allow_anonymous=chunk.allow_anonymous,
                    on_reject=ledger.rejected_line,
                    counts=ledger.counts,
                )
            ledger.finished = True
            ledger.settle()
            await ledger.drained.wait()
        finally:
            heartbeats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeats
        activity.heartbeat(ledger.progress())
        return ledger.result()
