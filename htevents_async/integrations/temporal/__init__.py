"""Temporal: the analytics specification's workflows and activities, and ``Delete``.

Needs the ``temporal`` extra (``pip install 'htevents-async[temporal]'``). One workflow
per method (``WorkflowIdentify``, ``WorkflowTrack``, ``WorkflowGroup``,
``WorkflowAlias``, ``WorkflowPage``, ``WorkflowScreen``, ``WorkflowDelete``), each a
validation local activity then a request activity (``Activity<Method>Validation``,
``Activity<Method>Request``), with inputs shaped ``{policies, context, <method>}``.

A worker (the Temporal client must use :data:`data_converter`)::

    import asyncio

    from temporalio.client import Client
    from temporalio.worker import Worker

    from htevents_async.integrations import temporal

    async def main() -> None:
        client = await Client.connect("127.0.0.1:7233", data_converter=temporal.data_converter)
        async with temporal.Analytics(WRITE_KEY, task_queue="analytics") as analytics:
            worker = Worker(client, task_queue="analytics", **analytics.worker_options())
            await worker.run()

Start a workflow::

    await client.execute_workflow(
        temporal.WorkflowTrack.run,
        temporal.InputTrack(track=Track(user_id="123", event="Order completed")),
        id="order-123", task_queue="analytics",
    )

From a workflow of your own, ``await temporal.track(user_id=..., event=...)`` runs the
request activity with the worker's policies; the message id is fixed in the workflow, so
every retry sends the same ``messageId``.

``WorkflowBackfill`` imports NDJSON files (``InputBackfill``) in byte-range chunks, one
import activity per chunk on any worker, each resuming from its last heartbeat; at most
``chunks_in_flight`` chunks are scheduled at once, and one backfill takes at most
:data:`MAX_CHUNKS` chunks.
"""

from ._activities import WORKER_CLIENT_DEFAULTS as WORKER_CLIENT_DEFAULTS
from ._activities import Analytics as Analytics
from ._activities import workflow_runner as workflow_runner
from ._backfill_types import DEFAULT_CHUNK_BYTES as DEFAULT_CHUNK_BYTES
from ._backfill_types import DEFAULT_CHUNKS_IN_FLIGHT as DEFAULT_CHUNKS_IN_FLIGHT
from ._backfill_types import DEFAULT_IMPORT_POLICY as DEFAULT_IMPORT_POLICY
from ._backfill_types import MAX_CHUNKS as MAX_CHUNKS
from ._backfill_types import MAX_CHUNKS_IN_FLIGHT as MAX_CHUNKS_IN_FLIGHT
from ._backfill_types import MIN_CHUNK_BYTES as MIN_CHUNK_BYTES
from ._backfill_types import MIN_CHUNKS as MIN_CHUNKS
from ._backfill_types import BackfillSummary as BackfillSummary
from ._backfill_types import Chunk as Chunk
from ._backfill_types import ChunkResult as ChunkResult
from ._backfill_types import InputBackfill as InputBackfill
from ._backfill_types import Rejected as Rejected
from ._backfill_types import auto_chunk_bytes as auto_chunk_bytes
from ._backfill_workflow import WorkflowBackfill as WorkflowBackfill
from ._converter import data_converter as data_converter
from ._inputs import DEFAULT_REQUEST_POLICY as DEFAULT_REQUEST_POLICY
from ._inputs import DEFAULT_VALIDATION_POLICY as DEFAULT_VALIDATION_POLICY
from ._inputs import ActivityPolicy as ActivityPolicy
from ._inputs import Config as Config
from ._inputs import InputAlias as InputAlias
from ._inputs import InputDelete as InputDelete
from ._inputs import InputGroup as InputGroup
from ._inputs import InputIdentify as InputIdentify
from ._inputs import InputPage as InputPage
from ._inputs import InputScreen as InputScreen
from ._inputs import InputTrack as InputTrack
from ._inputs import Output as Output
from ._inputs import Policies as Policies
from ._workflows import WORKFLOWS as WORKFLOWS
from ._workflows import WorkflowAlias as WorkflowAlias
from ._workflows import WorkflowDelete as WorkflowDelete
from ._workflows import WorkflowGroup as WorkflowGroup
from ._workflows import WorkflowIdentify as WorkflowIdentify
from ._workflows import WorkflowPage as WorkflowPage
from ._workflows import WorkflowScreen as WorkflowScreen
from ._workflows import WorkflowTrack as WorkflowTrack
from ._workflows import alias as alias
from ._workflows import delete as delete
from ._workflows import group as group
from ._workflows import identify as identify
from ._workflows import page as page
from ._workflows import screen as screen
from ._workflows import send as send
from ._workflows import track as track

__all__ = [
    "DEFAULT_CHUNKS_IN_FLIGHT",
    "DEFAULT_CHUNK_BYTES",
    "DEFAULT_IMPORT_POLICY",
    "DEFAULT_REQUEST_POLICY",
    "DEFAULT_VALIDATION_POLICY",
    "MAX_CHUNKS",
    "MAX_CHUNKS_IN_FLIGHT",
    "MIN_CHUNKS",
    "MIN_CHUNK_BYTES",
    "WORKER_CLIENT_DEFAULTS",
    "WORKFLOWS",
    "ActivityPolicy",
    "Analytics",
    "BackfillSummary",
    "Chunk",
    "ChunkResult",
    "Config",
    "InputAlias",
    "InputBackfill",
    "InputDelete",
    "InputGroup",
    "InputIdentify",
    "InputPage",
    "InputScreen",
    "InputTrack",
    "Output",
    "Policies",
    "Rejected",
    "WorkflowAlias",
    "WorkflowBackfill",
    "WorkflowDelete",
    "WorkflowGroup",
    "WorkflowIdentify",
    "WorkflowPage",
    "WorkflowScreen",
    "WorkflowTrack",
    "alias",
    "auto_chunk_bytes",
    "data_converter",
    "delete",
    "group",
    "identify",
    "page",
    "screen",
    "send",
    "track",
    "workflow_runner",
]
