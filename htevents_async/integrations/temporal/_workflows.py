"""The specification's workflows, and the helpers that record events from any workflow.

Workflow code only: deterministic, no I/O. It imports temporalio, and our data classes
through the sandbox's pass-through. Each ``Workflow<Method>`` runs the validation
local activity, fixes the message id and timestamp (``workflow.uuid4()``,
``workflow.now()``) so that every retry of the request sends the same ``messageId``,
then runs the request activity under the configured policies.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    import attrs

    from ..._delete import Delete
    from ..._errors import MessageError
    from ..._messages import Alias, Group, Identify, Message, Page, Screen, Track
    from . import _registry
    from ._converter import invalid_input
    from ._inputs import (
        METHODS,
        ActivityPolicy,
        InputAlias,
        InputDelete,
        InputGroup,
        InputIdentify,
        InputPage,
        InputScreen,
        InputTrack,
        Output,
        Policies,
        _Input,
    )

__all__ = [
    "WORKFLOWS",
    "WorkflowAlias",
    "WorkflowDelete",
    "WorkflowGroup",
    "WorkflowIdentify",
    "WorkflowPage",
    "WorkflowScreen",
    "WorkflowTrack",
    "alias",
    "delete",
    "group",
    "identify",
    "page",
    "screen",
    "send",
    "track",
]

_I = TypeVar("_I", bound=_Input)


def _seconds(value: float | None) -> timedelta | None:
    return None if value is None else timedelta(seconds=value)


def activity_options(policy: ActivityPolicy) -> dict[str, Any]:
    """The keyword arguments of ``workflow.execute_activity`` for ``policy``."""
    return {
        "start_to_close_timeout": timedelta(seconds=policy.start_to_close_timeout),
        "schedule_to_close_timeout": _seconds(policy.schedule_to_close_timeout),
        "retry_policy": RetryPolicy(
            initial_interval=timedelta(seconds=policy.initial_interval),
            backoff_coefficient=policy.backoff_coefficient,
            maximum_interval=_seconds(policy.maximum_interval),
            maximum_attempts=policy.maximum_attempts,
        ),
    }


def _policies(input: _Input) -> Policies:
    config = _registry.lookup(workflow.info().task_queue)
    if input.policies is None:
        return config.policies
    if not config.allow_policies_override:
        raise ApplicationError(
            f"{type(input).__name__}.policies: this worker does not let an input override "
            "its policies (Config.allow_policies_override is False)",
            type="PoliciesOverrideRefused",
            non_retryable=True,
        )
    return input.policies


def _fixed(input: _I, field: str) -> _I:
    """The input with the message id and timestamp fixed, and the input context merged."""
    message = getattr(input, field)
    if isinstance(message, Delete):
        return input
    changes: dict[str, Any] = {}
    if message.message_id is None:
        changes["message_id"] = str(workflow.uuid4())
    if message.timestamp is None:
        changes["timestamp"] = workflow.now()
    if input.context:
        changes["context"] = {**input.context, **(message.context or {})}
    return dataclasses.replace(input, context=None, **{field: attrs.evolve(message, **changes)})


def _unwrap(exc: ActivityError) -> BaseException:
    # A final refusal (invalid input, final HTTP status) fails the workflow with the
    # activity's own non-retryable error, so callers see the field or status at the top.
    cause = exc.cause
    if isinstance(cause, ApplicationError) and cause.non_retryable:
        return ApplicationError(cause.message, *cause.details, type=cause.type, non_retryable=True)
    return exc


async def _request(method: str, input: _Input, policy: ActivityPolicy) -> Output:
    try:
        output: Output = await workflow.execute_activity(
            f"Activity{method}Request", input, result_type=Output, **activity_options(policy)
        )
    except ActivityError as exc:
        raise _unwrap(exc) from exc
    return output


async def _run(method: str, input: _Input) -> Output:
    policies = _policies(input)
    try:
        await workflow.execute_local_activity(
            f"Activity{method}Validation",
            input,
            result_type=Output,
            **activity_options(policies.validation),
        )
    except ActivityError as exc:
        raise _unwrap(exc) from exc
    return await _request(method, _fixed(input, METHODS[method][1]), policies.request)


@workflow.defn(name="WorkflowIdentify")
class WorkflowIdentify:
    """Validates, then records an ``identify`` (activities ``ActivityIdentify*``)."""

    @workflow.run
    async def run(self, input: InputIdentify) -> Output:
        """Run the workflow."""
        return await _run("Identify", input)


@workflow.defn(name="WorkflowTrack")
class WorkflowTrack:
    """Validates, then records a ``track`` (activities ``ActivityTrack*``)."""

    @workflow.run
    async def run(self, input: InputTrack) -> Output:
        """Run the workflow."""
        return await _run("Track", input)


@workflow.defn(name="WorkflowGroup")
class WorkflowGroup:
    """Validates, then records a ``group`` (activities ``ActivityGroup*``)."""

    @workflow.run
    async def run(self, input: InputGroup) -> Output:
        """Run the workflow."""
        return await _run("Group", input)


@workflow.defn(name="WorkflowAlias")
class WorkflowAlias:
    """Validates, then records an ``alias`` (activities ``ActivityAlias*``)."""

    @workflow.run
    async def run(self, input: InputAlias) -> Output:
        """Run the workflow."""
        return await _run("Alias", input)


@workflow.defn(name="WorkflowPage")
class WorkflowPage:
    """Validates, then records a ``page`` (activities ``ActivityPage*``)."""

    @workflow.run
    async def run(self, input: InputPage) -> Output:
        """Run the workflow."""
        return await _run("Page", input)


@workflow.defn(name="WorkflowScreen")
class WorkflowScreen:
    """Validates, then records a ``screen`` (activities ``ActivityScreen*``)."""

    @workflow.run
    async def run(self, input: InputScreen) -> Output:
        """Run the workflow."""
        return await _run("Screen", input)


@workflow.defn(name="WorkflowDelete")
class WorkflowDelete:
    """Validates, then sends a suppression-and-deletion request (``ActivityDelete*``)."""

    @workflow.run
    async def run(self, input: InputDelete) -> Output:
        """Run the workflow."""
        return await _run("Delete", input)


#: Every workflow of the specification, to pass to ``Worker(workflows=...)``.
WORKFLOWS: tuple[type, ...] = (
    WorkflowIdentify,
    WorkflowTrack,
    WorkflowGroup,
    WorkflowAlias,
    WorkflowPage,
    WorkflowScreen,
    WorkflowDelete,
)


# -- from users' own workflows ---------------------------------------------------------


async def send(
    message: Message | Delete,
    *,
    policies: Policies | None = None,
    context: dict[str, Any] | None = None,
) -> Output:
    """Run the request activity for ``message`` from workflow code; returns its output.

    The message id and timestamp are fixed here, deterministically, unless the message
    has them. The policies are the worker's (``policies`` only where it allows).
    """
    method = type(message).__name__
    input_class, field = METHODS[method]
    input = input_class(policies=policies, context=context, **{field: message})
    return await _request(method, _fixed(input, field), _policies(input).request)


def _build(cls: type[Any], fields: dict[str, Any]) -> Any:
    try:
        return cls(**fields)
    except MessageError as exc:
        # Raised as is, it would fail the workflow task and retry it forever.
        raise invalid_input(exc) from None


async def identify(*, policies: Policies | None = None, **fields: Any) -> Output:
    """Record an ``identify`` from workflow code (fields as for :class:`Identify`)."""
    return await send(_build(Identify, fields), policies=policies)


async def track(*, policies: Policies | None = None, **fields: Any) -> Output:
    """Record a ``track`` from workflow code (fields as for :class:`Track`)."""
    return await send(_build(Track, fields), policies=policies)


async def page(*, policies: Policies | None = None, **fields: Any) -> Output:
    """Record a ``page`` from workflow code (fields as for :class:`Page`)."""
    return await send(_build(Page, fields), policies=policies)


async def screen(*, policies: Policies | None = None, **fields: Any) -> Output:
    """Record a ``screen`` from workflow code (fields as for :class:`Screen`)."""
    return await send(_build(Screen, fields), policies=policies)


async def group(*, policies: Policies | None = None, **fields: Any) -> Output:
    """Record a ``group`` from workflow code (fields as for :class:`Group`)."""
    return await send(_build(Group, fields), policies=policies)


async def alias(*, policies: Policies | None = None, **fields: Any) -> Output:
    """Record an ``alias`` from workflow code (fields as for :class:`Alias`)."""
    return await send(_build(Alias, fields), policies=policies)


async def delete(*, policies: Policies | None = None, **fields: Any) -> Output:
    """Delete a user from workflow code (fields as for :class:`~htevents_async.Delete`)."""
    return await send(_build(Delete, fields), policies=policies)
