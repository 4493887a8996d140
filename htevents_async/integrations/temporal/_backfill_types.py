"""The data of the distributed backfill: its input, its chunks and its summary.

Only offsets, counts and file names cross Temporal's history, never events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from ._inputs import ActivityPolicy

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "DEFAULT_IMPORT_POLICY",
    "MAX_REJECTIONS",
    "BackfillSummary",
    "Chunk",
    "ChunkResult",
    "InputBackfill",
    "Rejected",
]

DEFAULT_CHUNK_BYTES: Final = 16 * 1024 * 1024
"""Bytes of NDJSON per import activity: about 50,000 events of 300 bytes, a few seconds of
work each, so that one lost worker costs little to redo and history stays small."""

DEFAULT_IMPORT_POLICY: Final = ActivityPolicy(
    start_to_close_timeout=3600.0, initial_interval=1.0, maximum_interval=60.0
)
"""An import activity: an hour per attempt, retried without limit; its heartbeat
(every second, timeout 30 s) notices a dead worker long before that."""

MAX_REJECTIONS: Final = 100
"""Rejected lines listed in a summary (all are counted)."""


@dataclass(frozen=True, kw_only=True)
class InputBackfill:
    """Input of ``WorkflowBackfill``: NDJSON files in Segment wire form, as ``import`` reads."""

    files: list[str]
    """Paths of the files, readable by every worker (a shared volume)."""
    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    """Size of the byte ranges each import activity takes."""
    allow_anonymous: bool = False
    """Accept lines with neither ``userId`` nor ``anonymousId`` (as ``--allow-anonymous``)."""
    policy: ActivityPolicy = DEFAULT_IMPORT_POLICY
    """Timeouts and retries of the import activities."""
    heartbeat_timeout: float = 30.0
    """Seconds without a heartbeat after which a chunk moves to another worker."""


@dataclass(frozen=True, kw_only=True)
class Chunk:
    """The lines of ``path`` that start in ``[start, end)``; both ends are line starts."""

    path: str
    start: int
    end: int
    fingerprint: str
    """A UUID naming the file's content: lines without a ``messageId`` get
    ``uuid5(fingerprint, str(offset))``, the same on every attempt and every run."""
    allow_anonymous: bool = False


@dataclass(frozen=True, kw_only=True)
class Rejected:
    """A line that was not accepted."""

    path: str
    offset: int
    """Byte offset of the line in its file."""
    reason: str


@dataclass(kw_only=True)
class ChunkResult:
    """What the import of one chunk counted; every line is in exactly one of lines'
    buckets (accepted, rejected, blank), every accepted one delivered or failed."""

    lines: int = 0
    accepted: int = 0
    rejected: int = 0
    blank: int = 0
    delivered: int = 0
    failed: int = 0
    rejections: list[Rejected] = field(default_factory=list)

    def _add_counts(self, other: ChunkResult) -> None:
        # Assigned here, in the class that declares them: an augmented assignment in a
        # subclass reads to type checkers as a second, untyped declaration of the field.
        self.lines += other.lines
        self.accepted += other.accepted
        self.rejected += other.rejected
        self.blank += other.blank
        self.delivered += other.delivered
        self.failed += other.failed


@dataclass(kw_only=True)
class BackfillSummary(ChunkResult):
    """The result of ``WorkflowBackfill`` (and its ``progress`` query): the ``import``
    summary, added up over the chunks done so far."""

    files: int = 0
    chunks: int = 0
    """Chunks planned."""
    chunks_done: int = 0
    """Chunks finished."""
    bytes_total: int = 0
    """Bytes of the files."""
    bytes_done: int = 0
    """Bytes of the finished chunks."""

    def add(self, chunk: Chunk, result: ChunkResult) -> None:
        """Count a finished chunk."""
        self.chunks_done += 1
        self.bytes_done += chunk.end - chunk.start
        self._add_counts(result)
        room = MAX_REJECTIONS - len(self.rejections)
        self.rejections.extend(sorted(result.rejections, key=lambda r: r.offset)[: max(room, 0)])
