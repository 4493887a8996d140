"""``WorkflowBackfill`` as release 0.1.0 ran it: every chunk scheduled at once.

Its histories are what workers of later releases meet when they take over a backfill
started before an upgrade; ``tests/test_temporal_backfill.py`` replays one.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from htevents_async.integrations.temporal import (
        BackfillSummary,
        Chunk,
        ChunkResult,
        InputBackfill,
    )
    from htevents_async.integrations.temporal._workflows import activity_options


@workflow.defn(name="WorkflowBackfill")
class WorkflowBackfillV010:
    """The 0.1.0 workflow, under the same name."""

    def __init__(self) -> None:
        self._summary = BackfillSummary()

    @workflow.run
    async def run(self, input: InputBackfill) -> BackfillSummary:
        chunks: list[Chunk] = await workflow.execute_activity(
            "ActivityBackfillPlan",
            input,
            result_type=list[Chunk],
            start_to_close_timeout=timedelta(minutes=5),
        )
        summary = self._summary
        summary.files = len(input.files)
        summary.chunks = len(chunks)
        summary.bytes_total = sum(chunk.end - chunk.start for chunk in chunks)
        options = activity_options(input.policy)
        options["heartbeat_timeout"] = timedelta(seconds=input.heartbeat_timeout)

        async def run_chunk(chunk: Chunk) -> None:
            result: ChunkResult = await workflow.execute_activity(
                "ActivityBackfillImport", chunk, result_type=ChunkResult, **options
            )
            summary.add(chunk, result)

        await asyncio.gather(*(run_chunk(chunk) for chunk in chunks))
        summary.rejections.sort(key=lambda r: (input.files.index(r.path), r.offset))
        return summary

    @workflow.query(name="progress")
    def progress(self) -> BackfillSummary:
        return self._summary
