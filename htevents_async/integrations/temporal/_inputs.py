"""The specification's data: policies, the configuration, and each method's input and output.

Plain dataclasses (and our attrs message classes), so that they cross Temporal's data
converter and the workflow sandbox unchanged. Durations are seconds, as JSON carries them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from ..._delete import Delete
from ..._messages import Alias, Group, Identify, Page, Screen, Track

__all__ = [
    "DEFAULT_REQUEST_POLICY",
    "DEFAULT_VALIDATION_POLICY",
    "ActivityPolicy",
    "Config",
    "InputAlias",
    "InputDelete",
    "InputGroup",
    "InputIdentify",
    "InputPage",
    "InputScreen",
    "InputTrack",
    "Output",
    "Policies",
]


@dataclass(frozen=True, kw_only=True)
class ActivityPolicy:
    """Timeouts and retry policy of one activity, in seconds.

    ``maximum_attempts=0`` retries until ``schedule_to_close_timeout`` (Temporal's
    default: forever when that is ``None`` too).
    """

    start_to_close_timeout: float
    """Longest one attempt may run."""
    schedule_to_close_timeout: float | None = None
    """Longest all attempts together may take; ``None`` for no bound."""
    initial_interval: float = 1.0
    """Wait before the first retry."""
    backoff_coefficient: float = 2.0
    """Factor the wait grows by on each retry."""
    maximum_interval: float | None = None
    """Longest wait between retries; ``None`` for Temporal's default (100 x initial)."""
    maximum_attempts: int = 0
    """Attempts in all, ``0`` for no limit."""


DEFAULT_REQUEST_POLICY: Final = ActivityPolicy(
    start_to_close_timeout=30.0,
    schedule_to_close_timeout=24 * 3600.0,
    initial_interval=1.0,
    backoff_coefficient=2.0,
    maximum_interval=60.0,
)
"""The request activity: 30 s per attempt (above the worker client's retry time), retried
with backoff up to a minute apart, for at most a day."""

DEFAULT_VALIDATION_POLICY: Final = ActivityPolicy(
    start_to_close_timeout=5.0, initial_interval=0.1, maximum_attempts=3
)
"""The validation local activity: 5 s per attempt, 3 attempts. An invalid input is never
retried: it fails at the first attempt."""


@dataclass(frozen=True, kw_only=True)
class Policies:
    """Activity policies: one for the request activity, one for validation."""

    request: ActivityPolicy = DEFAULT_REQUEST_POLICY
    """The activity that sends to the collector (or the regulations endpoint)."""
    validation: ActivityPolicy = DEFAULT_VALIDATION_POLICY
    """The local activity that checks the input."""


@dataclass(frozen=True, kw_only=True)
class Config:
    """How a worker runs the specification's workflows (the specification's ``Config``)."""

    policies: Policies = field(default_factory=Policies)
    """Policies the workflows use."""
    allow_policies_override: bool = False
    """Whether an input's own ``policies`` replace :attr:`policies`. When ``False``, an
    input that carries policies fails, non-retryably, naming ``policies``."""


@dataclass(frozen=True, kw_only=True)
class Output:
    """What a workflow or activity returns."""

    status: str = "success"
    """``"success"``; failures are raised, never returned."""
    message_id: str = ""
    """The ``messageId`` the event was sent with (empty for ``Delete``)."""
    regulate_id: str = ""
    """The regulation id the endpoint answered, for ``Delete``."""


@dataclass(frozen=True, kw_only=True)
class _Input:
    """What every workflow input carries besides its message."""

    policies: Policies | None = None
    """Policies for this input alone; honoured only if ``Config.allow_policies_override``."""
    context: dict[str, Any] | None = None
    """Context merged under the message's own ``context`` (the message's keys win)."""


@dataclass(frozen=True, kw_only=True)
class InputIdentify(_Input):
    """Input of ``WorkflowIdentify`` and its activities."""

    identify: Identify


@dataclass(frozen=True, kw_only=True)
class InputTrack(_Input):
    """Input of ``WorkflowTrack`` and its activities."""

    track: Track


@dataclass(frozen=True, kw_only=True)
class InputGroup(_Input):
    """Input of ``WorkflowGroup`` and its activities."""

    group: Group


@dataclass(frozen=True, kw_only=True)
class InputAlias(_Input):
    """Input of ``WorkflowAlias`` and its activities."""

    alias: Alias


@dataclass(frozen=True, kw_only=True)
class InputPage(_Input):
    """Input of ``WorkflowPage`` and its activities."""

    page: Page


@dataclass(frozen=True, kw_only=True)
class InputScreen(_Input):
    """Input of ``WorkflowScreen`` and its activities."""

    screen: Screen


@dataclass(frozen=True, kw_only=True)
class InputDelete(_Input):
    """Input of ``WorkflowDelete`` and its activities."""

    delete: Delete


#: Each method's name, input class and the input's field holding the message.
METHODS: Final[dict[str, tuple[type[_Input], str]]] = {
    "Identify": (InputIdentify, "identify"),
    "Track": (InputTrack, "track"),
    "Group": (InputGroup, "group"),
    "Alias": (InputAlias, "alias"),
    "Page": (InputPage, "page"),
    "Screen": (InputScreen, "screen"),
    "Delete": (InputDelete, "delete"),
}
