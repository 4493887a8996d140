"""``WorkflowBackfill``: NDJSON files imported in parallel chunks, across every worker.

Workflow code only. One activity plans the chunks; then one import activity per chunk
runs on whichever workers poll the task queue, ``chunks_in_flight`` of them scheduled at
a time. A chunk whose worker dies is retried on another one after ``heartbeat_timeout``,
from its last heartbeat.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from ._backfill_types import BackfillSummary, Chunk, ChunkResult, InputBackfill
    from ._workflows import activity_options

__all__ = ["WorkflowBackfill"]

_PLAN_TIMEOUT = timedelta(minutes=5)
#: The patch id that marks histories recorded with the ``chunks_in_flight`` window.
LANES_PATCH = "backfill-lanes"


@workflow.defn(name="WorkflowBackfill")
class WorkflowBackfill:
    """Imports NDJSON files in chunks; its result, and its ``progress`` query, is the
    ``import`` summary added up over the chunks done."""

    def __init__(self) -> None:
        """Start with nothing counted."""
        self._summary = BackfillSummary()

    @workflow.run
    async def run(self, input: InputBackfill) -> BackfillSummary:
        """Plan the chunks, import them in parallel, return the summary."""
        chunks: list[Chunk] = await workflow.execute_activity(
            "ActivityBackfillPlan",
            input,
            result_type=list[Chunk],
            start_to_close_timeout=_PLAN_TIMEOUT,
        )
        summary = self._summary
        summary.files = len(input.files)
        summary.chunks = len(chunks)
        summary.bytes_total = sum(chunk.end - chunk.start for chunk in chunks)
        options = activity_options(input.policy)
        options["heartbeat_timeout"] = timedelta(seconds=input.heartbeat_timeout)

        # Temporal refuses to schedule past its limit of pending activities per workflow
        # (2,000 by default) and the workflow would stall: a fixed number of lanes each
        # take the next chunk when their last one is done. The shared iterator hands
        # chunks out in plan order, so replays schedule them in the same order.
        waiting = iter(chunks)

        async def lane() -> None:
            for chunk in waiting:
                result: ChunkResult = await workflow.execute_activity(
                    "ActivityBackfillImport", chunk, result_type=ChunkResult, **options
                )
                summary.add(chunk, result)

        lanes = len(chunks)
        if workflow.patched(LANES_PATCH):
            lanes = min(input.chunks_in_flight, len(chunks))
        # Else a history recorded before the window existed (0.1.0), where every chunk
        # was scheduled at once: one lane per chunk schedules them in that same order.
        await asyncio.gather(*(lane() for _ in range(lanes)))
        summary.rejections.sort(key=lambda r: (input.files.index(r.path), r.offset))
        return summary

    @workflow.query(name="progress")
    def progress(self) -> BackfillSummary:
        """The summary so far: chunks and bytes done, and their counts."""
        return self._summary
