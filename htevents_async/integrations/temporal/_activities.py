"""The specification's activities, around one :class:`~htevents_async.Client` per worker.

``Activity<Method>Validation`` checks an input with the call-site rules (the message's
own validation, the value rules and size limit of encoding); ``Activity<Method>Request``
records it and completes only once the collector accepted it, so Temporal's retry
policy governs redelivery: a final HTTP status fails non-retryably, a spent retry budget
(or a drop) fails retryably and Temporal tries again with the same ``messageId``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, final

from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from ..._client import Client
from ..._config import Config as ClientConfig
from ..._delete import Delete, check_deletion_config
from ..._errors import ConfigError, DeliveryError, DroppedError, HTTPStatusError, MessageError
from ..._messages import Message
from . import _registry
from ._backfill import Backfill
from ._backfill_workflow import WorkflowBackfill
from ._converter import invalid_input
from ._inputs import (
    Config,
    InputAlias,
    InputDelete,
    InputGroup,
    InputIdentify,
    InputPage,
    InputScreen,
    InputTrack,
    Output,
)
from ._workflows import WORKFLOWS

__all__ = ["WORKER_CLIENT_DEFAULTS", "Analytics"]

#: Client options a worker's client starts from (any may be overridden): short batching,
#: retries that end well within the request activity's 30 s attempt, and a full queue
#: that makes activities wait rather than drop (a backfill reads faster than it sends).
WORKER_CLIENT_DEFAULTS: dict[str, Any] = {
    "flush_interval": 0.05,
    "max_retries": 3,
    "max_retry_time": 10.0,
    "overflow": "wait",
    "enqueue_timeout": 30.0,
}


#: Drops that are the worker's own choice (a before_send filter, disable=True): the
#: request is done, and sending again would only be dropped again.
_CHOSEN_DROPS = frozenset({"filtered", "disabled"})


def _refused(error: DeliveryError) -> ApplicationError:
    if isinstance(error, HTTPStatusError):
        # Sending the same event again cannot change the answer.
        return ApplicationError(
            str(error), error.status_code, type="HTTPStatusError", non_retryable=True
        )
    if isinstance(error, DroppedError) and error.reason == "plugin_error":
        # A plugin that raises is a bug in the worker's code: a retry raises again.
        return ApplicationError(str(error), type="DroppedError", non_retryable=True)
    return ApplicationError(str(error), type=type(error).__name__)


@final
class Analytics:
    """Registers the specification on a worker, with the worker's shared client.

    ::

        async with temporal.Analytics(write_key, task_queue="analytics", host=...) as analytics:
            worker = Worker(temporal_client, task_queue="analytics", **analytics.worker_options())
            await worker.run()

    Entering opens the client and registers ``config`` for ``task_queue``; leaving
    flushes and closes the client. Client options (``host``, ``gzip``, ...) are keywords
    over :data:`WORKER_CLIENT_DEFAULTS`; ``Config.max_retry_time`` must stay below the
    request activity's ``start_to_close_timeout``, so that Temporal, not a timeout, ends
    an attempt.
    """

    def __init__(
        self,
        write_key: str,
        *,
        task_queue: str,
        config: Config | None = None,
        **client_options: Any,
    ) -> None:
        """Build the client and the activities; nothing connects until entered."""
        self.config: Config = config or Config()
        """The policies the workflows of :attr:`task_queue` use."""
        self.task_queue = task_queue
        """The task queue the worker polls."""
        self.client: Client = Client(write_key, **{**WORKER_CLIENT_DEFAULTS, **client_options})
        """The client every request activity of this worker records through."""
        client_config: ClientConfig = self.client.config
        budget = client_config.max_retry_time + client_config.request_timeout
        if budget >= self.config.policies.request.start_to_close_timeout:
            raise ConfigError(
                f"the client's max_retry_time + request_timeout ({budget} s) must be below "
                "Policies.request.start_to_close_timeout "
                f"({self.config.policies.request.start_to_close_timeout} s)"
            )
        # The worker client's own protocol decides what validation accepts.
        self._encoder = self.client._protocol.encoder(client_config.max_message_bytes)
        self._backfill = Backfill(self.client)

    async def __aenter__(self) -> Analytics:
        await self.client.__aenter__()
        _registry.register(self.task_queue, self.config)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _registry.unregister(self.task_queue, self.config)
        await self.client.aclose()

    @property
    def workflows(self) -> Sequence[type]:
        """``Workflow<Method>`` for every method and ``WorkflowBackfill``, for
        ``Worker(workflows=...)``."""
        return (*WORKFLOWS, WorkflowBackfill)

    @property
    def activities(self) -> Sequence[Callable[..., Any]]:
        """``Activity<Method>Validation`` and ``Activity<Method>Request`` for every method,
        and the backfill's ``ActivityBackfillPlan`` and ``ActivityBackfillImport``."""
        return [
            self.identify_validation,
            self.identify_request,
            self.track_validation,
            self.track_request,
            self.group_validation,
            self.group_request,
            self.alias_validation,
            self.alias_request,
            self.page_validation,
            self.page_request,
            self.screen_validation,
            self.screen_request,
            self.delete_validation,
            self.delete_request,
            self._backfill.plan,
            self._backfill.import_chunk,
        ]

    def worker_options(self) -> dict[str, Any]:
        """Keyword arguments for ``temporalio.worker.Worker``: the workflows, the
        activities, and a sandbox that passes ``htevents_async`` through (its modules
        are deterministic, and the worker's registration must be shared)."""
        return {
            "workflows": list(self.workflows),
            "activities": list(self.activities),
            "workflow_runner": workflow_runner(),
        }

    # -- validation ---------------------------------------------------------------

    def _validate(self, message: Message | Delete) -> Output:
        try:
            if isinstance(message, Delete):
                check_deletion_config(self.client.config)
                return Output()
            self._encoder.encode(message)
        except MessageError as exc:
            raise invalid_input(exc) from None
        except ConfigError as exc:
            raise ApplicationError(str(exc), type="ConfigError", non_retryable=True) from None
        return Output(message_id=message.message_id or "")

    @activity.defn(name="ActivityIdentifyValidation")
    async def identify_validation(self, input: InputIdentify) -> Output:
        """Check an identify input with the call-site rules."""
        return self._validate(input.identify)

    @activity.defn(name="ActivityTrackValidation")
    async def track_validation(self, input: InputTrack) -> Output:
        """Check a track input with the call-site rules."""
        return self._validate(input.track)

    @activity.defn(name="ActivityGroupValidation")
    async def group_validation(self, input: InputGroup) -> Output:
        """Check a group input with the call-site rules."""
        return self._validate(input.group)

    @activity.defn(name="ActivityAliasValidation")
    async def alias_validation(self, input: InputAlias) -> Output:
        """Check an alias input with the call-site rules."""
        return self._validate(input.alias)

    @activity.defn(name="ActivityPageValidation")
    async def page_validation(self, input: InputPage) -> Output:
        """Check a page input with the call-site rules."""
        return self._validate(input.page)

    @activity.defn(name="ActivityScreenValidation")
    async def screen_validation(self, input: InputScreen) -> Output:
        """Check a screen input with the call-site rules."""
        return self._validate(input.screen)

    @activity.defn(name="ActivityDeleteValidation")
    async def delete_validation(self, input: InputDelete) -> Output:
        """Check a delete input, and that the worker's client can send deletions."""
        return self._validate(input.delete)

    # -- requests -----------------------------------------------------------------

    async def _record(self, message: Message) -> Output:
        outcome: asyncio.Future[DeliveryError | None] = asyncio.get_running_loop().create_future()

        def settle(message_id: str, error: DeliveryError | None) -> None:
            if not outcome.done():
                outcome.set_result(error)

        try:
            message_id = await self.client.enqueue(message, callback=settle)
        except MessageError as exc:
            raise invalid_input(exc) from None
        error = await outcome
        if isinstance(error, DroppedError) and error.reason in _CHOSEN_DROPS:
            return Output(message_id=message_id)
        if error is not None:
            raise _refused(error)
        return Output(message_id=message_id)

    @activity.defn(name="ActivityIdentifyRequest")
    async def identify_request(self, input: InputIdentify) -> Output:
        """Record an identify; complete once the collector accepted it."""
        return await self._record(input.identify)

    @activity.defn(name="ActivityTrackRequest")
    async def track_request(self, input: InputTrack) -> Output:
        """Record a track; complete once the collector accepted it."""
        return await self._record(input.track)

    @activity.defn(name="ActivityGroupRequest")
    async def group_request(self, input: InputGroup) -> Output:
        """Record a group; complete once the collector accepted it."""
        return await self._record(input.group)

    @activity.defn(name="ActivityAliasRequest")
    async def alias_request(self, input: InputAlias) -> Output:
        """Record an alias; complete once the collector accepted it."""
        return await self._record(input.alias)

    @activity.defn(name="ActivityPageRequest")
    async def page_request(self, input: InputPage) -> Output:
        """Record a page; complete once the collector accepted it."""
        return await self._record(input.page)

    @activity.defn(name="ActivityScreenRequest")
    async def screen_request(self, input: InputScreen) -> Output:
        """Record a screen; complete once the collector accepted it."""
        return await self._record(input.screen)

    @activity.defn(name="ActivityDeleteRequest")
    async def delete_request(self, input: InputDelete) -> Output:
        """Send the suppression-and-deletion request; one attempt, Temporal retries."""
        request = input.delete
        try:
            regulate_id = await self.client.delete(
                user_id=request.user_id, traits=request.traits, max_retries=0
            )
        except ConfigError as exc:
            raise ApplicationError(str(exc), type="ConfigError", non_retryable=True) from None
        except DeliveryError as exc:
            raise _refused(exc) from None
        return Output(regulate_id=regulate_id)


def workflow_runner() -> SandboxedWorkflowRunner:
    """The workflow sandbox with ``htevents_async`` passed through (for ``Worker`` and
    ``Replayer``)."""
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules("htevents_async")
    )
