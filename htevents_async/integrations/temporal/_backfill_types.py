"""The data of the distributed backfill: its input, its chunks and its summary.

Only offsets, counts and file names cross Temporal's history, never events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from ..._errors import ConfigError
from ._inputs import ActivityPolicy

__all__ = [
    "DEFAULT_CHUNKS_IN_FLIGHT",
    "DEFAULT_CHUNK_BYTES",
    "DEFAULT_IMPORT_POLICY",
    "MAX_CHUNKS",
    "MAX_CHUNKS_IN_FLIGHT",
    "MAX_REJECTIONS",
    "MIN_CHUNKS",
    "MIN_CHUNK_BYTES",
    "BackfillSummary",
    "Chunk",
    "ChunkResult",
    "InputBackfill",
    "Rejected",
    "auto_chunk_bytes",
]

DEFAULT_CHUNK_BYTES: Final = 16 * 1024 * 1024
"""The largest chunk the planner picks by itself: about 78,000 events of 214 bytes, some
3 s of a worker's CPU, against Temporal's cost of about 17 ms of CPU per chunk (0.5 %).
A 100-million-line file (about 21 GB) then makes about 1,300 chunks; inputs past
:data:`MAX_CHUNKS` chunks of this size get larger chunks."""

MIN_CHUNK_BYTES: Final = 2 * 1024 * 1024
"""The smallest chunk the planner picks by itself: Temporal's cost per chunk stays near
4 % of the chunk's work."""

MIN_CHUNKS: Final = 64
"""Chunks the planner aims for at least, by making chunks smaller than
:data:`DEFAULT_CHUNK_BYTES` (down to :data:`MIN_CHUNK_BYTES`): every worker's pollers take
a share of the chunks when they are scheduled, and with a dozen chunks on two workers the
shares came out 4 to 9."""

DEFAULT_IMPORT_POLICY: Final = ActivityPolicy(
    start_to_close_timeout=3600.0, initial_interval=1.0, maximum_interval=60.0
)
"""An import activity: an hour per attempt, retried without limit; its heartbeat
(every second, timeout 30 s) notices a dead worker long before that."""

MAX_REJECTIONS: Final = 100
"""Rejected lines listed in a summary (all are counted)."""

MAX_CHUNKS: Final = 2_000
"""The most chunks one backfill takes. Temporal ends a workflow whose history passes
51,200 events or 50 MB (``limit.historyCount.error``, ``limit.historySize.error``). A
chunk adds up to six events (its activity's scheduled, started and completed, and a
workflow task to handle the completion) and up to about 20 KB (a result listing
:data:`MAX_REJECTIONS` rejected lines): 2,000 chunks stay under both, with room for the
plan, whose list of chunks must also stay under the 2 MB payload limit."""

MAX_CHUNKS_IN_FLIGHT: Final = 2_000
"""Temporal's default limit of pending activities per workflow
(``limit.numPendingActivities.error``): past it the server refuses to schedule more, and
the workflow stalls instead of failing."""

DEFAULT_CHUNKS_IN_FLIGHT: Final = 500
"""Import activities a backfill keeps scheduled at once: many more than workers take at
a time (a worker runs up to 100 activities by default), well under
:data:`MAX_CHUNKS_IN_FLIGHT`."""


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def auto_chunk_bytes(total_bytes: int, *, files: int = 1) -> int:
    """The chunk size for ``files`` files of ``total_bytes`` in all:
    :data:`DEFAULT_CHUNK_BYTES`, or less so as to make :data:`MIN_CHUNKS` chunks, never
    less than :data:`MIN_CHUNK_BYTES`; and more when needed to keep to
    :data:`MAX_CHUNKS` (each file's last chunk may be short, hence ``files``)."""
    wanted = _ceil_div(total_bytes, MIN_CHUNKS)
    size = min(DEFAULT_CHUNK_BYTES, max(MIN_CHUNK_BYTES, wanted))
    # A file of s bytes cut every `size` bytes makes at most ceil(s / size) chunks, so
    # the files make at most total_bytes / size + files.
    return max(size, _ceil_div(total_bytes, max(MAX_CHUNKS - files, 1)))


@dataclass(frozen=True, kw_only=True)
class InputBackfill:
    """Input of ``WorkflowBackfill``: NDJSON files in Segment wire form, as ``import`` reads."""

    files: list[str]
    """Paths of the files, readable by every worker (a shared volume)."""
    chunk_bytes: int | None = None
    """Size of the byte ranges each import activity takes; ``None`` lets the planner choose
    (:func:`auto_chunk_bytes`)."""
    allow_anonymous: bool = False
    """Accept lines with neither ``userId`` nor ``anonymousId`` (as ``--allow-anonymous``)."""
    policy: ActivityPolicy = DEFAULT_IMPORT_POLICY
    """Timeouts and retries of the import activities."""
    heartbeat_timeout: float = 30.0
    """Seconds without a heartbeat after which a chunk moves to another worker."""
    chunks_in_flight: int = DEFAULT_CHUNKS_IN_FLIGHT
    """Import activities scheduled at once; each further chunk is scheduled when one
    finishes. At most :data:`MAX_CHUNKS_IN_FLIGHT`."""

    def __post_init__(self) -> None:
        """Check the sizes, so that a bad value fails here rather than in the workflow."""
        if self.chunk_bytes is not None and self.chunk_bytes < 1:
            raise ConfigError(f"InputBackfill.chunk_bytes must be >= 1, got {self.chunk_bytes}")
        if not 1 <= self.chunks_in_flight <= MAX_CHUNKS_IN_FLIGHT:
            raise ConfigError(
                f"InputBackfill.chunks_in_flight must be between 1 and {MAX_CHUNKS_IN_FLIGHT} "
                f"(Temporal's default limit of pending activities), got {self.chunks_in_flight}"
            )


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
