"""Client configuration: one frozen, validated object holding every option."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, final

import attrs
import httpx

from ._errors import ConfigError
from ._hooks import OnDrop, OnFailure, OnSuccess
from ._plugins import BeforeSend, plugin_chain

if TYPE_CHECKING:
    from ._seams import WireProtocol

__all__ = ["DEFAULT_HOST", "DEFAULT_PATH", "Config"]

#: Hightouch's US events endpoint.
DEFAULT_HOST = "https://us-east-1.hightouch-events.com"
#: The Segment-spec batch path.
DEFAULT_PATH = "/v1/batch"
#: The environment variable that, when set, replaces DEFAULT_HOST as the default of
#: ``host``; the command line reads the same one, so one setting points both at a collector.
HOST_ENV = "HT_HOST"

#: Segment's /v1/batch answers 200 to a larger batch and drops its events.
MAX_EVENTS_PER_REQUEST = 2_500

# Room the batch envelope needs around the messages: '{"batch":[', '],"sentAt":"…",
# "writeKey":"…"}'. The write key is added per client, this is the fixed part.
ENVELOPE_BYTES = 64


def _default_host() -> str:
    # Read at each construction, not at import, so a process that sets HT_HOST before
    # building its client (a test harness, a container entrypoint) is honoured.
    value = os.environ.get(HOST_ENV)
    if not value:
        return DEFAULT_HOST
    problem = _host_problem(value)
    if problem is not None:
        # The user never passed host: name where the value came from.
        raise ConfigError(
            f"the {HOST_ENV} environment variable (the default Config.host) must be "
            f"{problem}, got {value!r}"
        )
    return value


def _seconds(value: float | dt.timedelta) -> float:
    # timedelta is accepted wherever seconds are, so ``timedelta(minutes=1)`` reads naturally.
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return value


def _fail(attribute: attrs.Attribute[Any], requirement: str, value: object) -> ConfigError:
    return ConfigError(f"Config.{attribute.name} must be {requirement}, got {value!r}")


def _int_at_least(minimum: int) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def check(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise _fail(attribute, f"an int >= {minimum}", value)

    return check


def _int_at_most(maximum: int) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def check(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value > maximum:
            raise _fail(
                attribute, f"at most {maximum:,} (the collector's limit per request)", value
            )

    return check


def _seconds_at_least(
    minimum: float, *, strict: bool = False
) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def check(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = ok and value == value and value != float("inf")  # reject NaN and infinity
        ok = ok and (value > minimum if strict else value >= minimum)
        if not ok:
            relation = ">" if strict else ">="
            raise _fail(attribute, f"a finite number of seconds {relation} {minimum}", value)

    return check


def _bool(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, bool):
        raise _fail(attribute, "a bool", value)


def _optional_callable(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not callable(value):
        raise _fail(attribute, "a callable or None", value)


def _url_part(prefix: str) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def check(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not isinstance(value, str) or not value.startswith(prefix):
            raise _fail(attribute, f"a str starting with {prefix!r}", value)

    return check


def _host_problem(value: Any) -> str | None:
    """What a host value lacks, or None when it is a usable collector URL."""
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        return "an http:// or https:// URL"
    # Parsed now, so a typo fails here, naming the option, not at every send.
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL as exc:
        return f"a valid URL ({exc})"
    if not url.host:
        return "a URL with a host name"
    if url.query or url.fragment:
        return "a URL without a query or fragment"
    return None


def _host(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    problem = _host_problem(value)
    if problem is not None:
        raise _fail(attribute, problem, value)


#: Each built-in protocol's batch path (the protocol modules own the rest).
PROTOCOL_PATHS = {"segment": DEFAULT_PATH, "posthog": "/batch/", "odp": "/v3/events"}


def _protocol(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, str):
        if value not in PROTOCOL_PATHS:
            raise _fail(attribute, "'segment', 'posthog', 'odp' or a WireProtocol", value)
        return
    from ._seams import WireProtocol

    if not isinstance(value, WireProtocol):
        raise _fail(attribute, "'segment', 'posthog', 'odp' or a WireProtocol", value)


def _default_path(config: Any) -> str:
    protocol = config.protocol
    if isinstance(protocol, str):
        return PROTOCOL_PATHS.get(protocol, DEFAULT_PATH)
    return str(protocol.default_path)


def _optional_http_url(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None:
        _host(_, attribute, value)


def _optional_token(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        # Never the value itself: it is a secret.
        raise ConfigError(f"Config.{attribute.name} must be a non-empty str or None")


def _overflow(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value not in ("drop", "wait"):
        raise _fail(attribute, "'drop' or 'wait'", value)


def _spool_dir(value: Any) -> str | None:
    # A path-like is kept as text, so the frozen config stays printable and comparable.
    return None if value is None else os.fspath(value)


def _spool_path(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise _fail(attribute, "a directory path or None", value)


def _synchronous(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value not in ("normal", "full"):
        raise _fail(attribute, "'normal' or 'full'", value)


@final
@attrs.frozen(kw_only=True)
class Config:
    """Every option of :class:`~htevents_async.Client`, validated once.

    Pass the fields as keyword arguments to ``Client(write_key, **options)``, or
    build a ``Config`` and pass it whole as ``Client(write_key, config=config)``.
    Durations are seconds (``float``) and also accept :class:`datetime.timedelta`.
    A bad value raises :class:`~htevents_async.ConfigError` naming the option.
    """

    host: str = attrs.field(factory=_default_host, validator=_host)
    """Scheme and authority of the collector, e.g. ``http://127.0.0.1:8787``. Default:
    the ``HT_HOST`` environment variable when it is set and not empty, else Hightouch US."""

    protocol: str | WireProtocol = attrs.field(default="segment", validator=_protocol)
    """The collector's API: ``"segment"`` (Hightouch, Segment, RudderStack), ``"posthog"``,
    ``"odp"`` (Optimizely Data Platform), or a :class:`~htevents_async.WireProtocol`."""
    path: str = attrs.field(
        default=attrs.Factory(_default_path, takes_self=True), validator=_url_part("/")
    )
    """Path of the batch endpoint; the protocol's own (``/v1/batch``, ``/batch/``,
    ``/v3/events``) by default."""

    max_batch_size: int = attrs.field(
        default=100, validator=(_int_at_least(1), _int_at_most(MAX_EVENTS_PER_REQUEST))
    )
    """Events that close a batch at once (Node.js ``maxEventsInBatch``). While every
    request slot is busy, the batch being formed keeps filling past this, up to
    2,500 events and ``max_batch_bytes``, so a backlog leaves in fewer requests."""

    max_batch_bytes: int = attrs.field(default=475_000, validator=_int_at_least(1024))
    """Most bytes in one request body, measured before compression."""

    max_message_bytes: int = attrs.field(default=32 * 1024, validator=_int_at_least(64))
    """Most bytes one encoded message may take; larger ones are refused at the call site."""

    flush_interval: float = attrs.field(
        default=1.0, converter=_seconds, validator=_seconds_at_least(0.0)
    )
    """Seconds the oldest queued event may wait before its batch is sent (Node.js
    ``flushInterval``). ``0`` sends as soon as the queue runs empty."""

    max_queue_size: int = attrs.field(default=10_000, validator=_int_at_least(1))
    """Most events waiting to be sent; what happens past it is ``overflow``."""

    overflow: Literal["drop", "wait"] = attrs.field(default="drop", validator=_overflow)
    """When the queue is full: ``"drop"`` the new event (counted, warned, ``on_drop``
    called) or ``"wait"`` for room up to ``enqueue_timeout``, then raise
    :class:`~htevents_async.QueueFullError`."""

    enqueue_timeout: float = attrs.field(
        default=5.0, converter=_seconds, validator=_seconds_at_least(0.0)
    )
    """Seconds an enqueue may wait for room with ``overflow="wait"``."""

    max_retries: int = attrs.field(default=10, validator=_int_at_least(0))
    """Retries per batch after the first attempt (Node.js ``maxRetries``)."""

    max_retry_time: float = attrs.field(
        default=60.0, converter=_seconds, validator=_seconds_at_least(0.0)
    )
    """Seconds a batch may spend retrying, counted from its first attempt."""

    backoff_initial: float = attrs.field(
        default=0.1, converter=_seconds, validator=_seconds_at_least(0.0)
    )
    """Backoff ceiling of the first retry; it doubles per retry, with full jitter."""

    backoff_max: float = attrs.field(
        default=30.0, converter=_seconds, validator=_seconds_at_least(0.0)
    )
    """Largest backoff between two attempts."""

    retry_after_max: float = attrs.field(
        default=60.0, converter=_seconds, validator=_seconds_at_least(0.0)
    )
    """Largest ``Retry-After`` honoured; longer ones are cut to this."""

    request_timeout: float = attrs.field(
        default=10.0, converter=_seconds, validator=_seconds_at_least(0.0, strict=True)
    )
    """Seconds one HTTP request may take (Node.js ``httpRequestTimeout``)."""

    max_concurrent_requests: int = attrs.field(default=4, validator=_int_at_least(1))
    """HTTP requests on the wire at once. A batch waiting to retry frees its request for
    the others, so one slow or retrying batch does not stall the rest; up to four times
    as many batches may be out of the queue at once."""

    gzip: bool = attrs.field(default=True, validator=_bool)
    """Compress request bodies (``Content-Encoding: gzip``)."""

    disable: bool = attrs.field(default=False, validator=_bool)
    """Validate and encode every event, then drop it without any network (Node.js
    ``disable``); counted under ``dropped["disabled"]``."""

    shutdown_timeout: float = attrs.field(
        default=5.0, converter=_seconds, validator=_seconds_at_least(0.0)
    )
    """Seconds leaving ``async with`` (or ``aclose()`` without a timeout) may take."""

    flush_timeout: float = attrs.field(
        default=10.0, converter=_seconds, validator=_seconds_at_least(0.0)
    )
    """Seconds ``flush()`` waits when called without a timeout."""

    hook_timeout: float = attrs.field(
        default=5.0, converter=_seconds, validator=_seconds_at_least(0.0, strict=True)
    )
    """Seconds an async hook or callback may run before it is cancelled and logged."""

    on_success: OnSuccess | None = attrs.field(default=None, validator=_optional_callable)
    """Called with each delivered :class:`~htevents_async.Batch` (sync or async)."""

    on_failure: OnFailure | None = attrs.field(default=None, validator=_optional_callable)
    """Called with each undeliverable batch and its :class:`~htevents_async.DeliveryError`."""

    on_drop: OnDrop | None = attrs.field(default=None, validator=_optional_callable)
    """Called with events dropped before delivery and the reason: ``"queue_full"``,
    ``"shutdown"`` (still pending at the close deadline), ``"filtered"`` or
    ``"plugin_error"`` (see :attr:`before_send`). Events dropped by design
    (``disable=True``) or inherited across ``os.fork()`` are counted in
    :meth:`Client.statistics` and logged, but not passed here: the first happen by
    choice, the second belong to the parent process."""

    before_send: tuple[BeforeSend, ...] = attrs.field(default=(), converter=plugin_chain)
    """Plugins that see each event before it is encoded: a callable, or a sequence of
    them applied in order (stored as a tuple). Each gets the event as a ``dict`` in
    wire form and returns the dict to send or ``None`` to drop it (counted as
    ``dropped["filtered"]``); one that raises drops it as ``"plugin_error"``. See
    :mod:`htevents_async.plugins` and the Plugins guide (``docs/guides/plugins.md``)."""

    spool: str | None = attrs.field(default=None, converter=_spool_dir, validator=_spool_path)
    """A directory on a local disk where accepted events are kept until delivered (see
    the Durability guide, ``docs/guides/durability.md``): they survive a crash, a
    restart and long outages. ``None`` (the default) keeps events in memory only. An
    unwritable directory raises :class:`~htevents_async.ConfigError` when the client
    starts."""

    spool_max_bytes: int = attrs.field(default=1 << 30, validator=_int_at_least(1 << 16))
    """Most bytes the spool file may hold (used pages, dead letters included, plus what is
    not committed yet) before events the queue has no room for meet ``overflow``. Events
    the queue takes are always written, so a long outage or many dead letters can take
    the file past it."""

    spool_synchronous: Literal["normal", "full"] = attrs.field(
        default="normal", validator=_synchronous
    )
    """SQLite's ``synchronous`` setting for the spool. ``"normal"``: committed events survive
    any end of the process; a power loss may lose the last commits. ``"full"``: one fsync
    per group commit, so committed events also survive a power loss."""

    spool_commit_interval: float = attrs.field(
        default=0.02, converter=_seconds, validator=_seconds_at_least(0.0)
    )
    """Seconds the spool's writer lets a group of accepted events gather before committing
    them in one transaction; an event is committed within about this plus one commit."""

    # -- deletion (see Client.delete); a credential apart from the write key ----------

    regulations_url: str | None = attrs.field(default=None, validator=_optional_http_url)
    """Full URL of the regulations endpoint that :meth:`Client.delete` posts to, e.g.
    ``https://api.segmentapis.com/regulations``; ``None`` (default) disables ``delete``."""

    regulations_token: str | None = attrs.field(default=None, repr=False, validator=_optional_token)
    """Bearer token of the regulations endpoint (a workspace token, not the write key).
    Never shown in reprs."""

    def __attrs_post_init__(self) -> None:
        base = self.host.rstrip("/")
        if base.endswith(self.path.rstrip("/")) and len(self.path) > 1:
            # The events would go to /v1/batch/v1/batch and meet 404s.
            raise ConfigError(
                f"Config.host must not include the endpoint path {self.path!r}, got "
                f"{self.host!r}; pass host={base[: -len(self.path.rstrip('/'))]!r} "
                f"(the path is Config.path, {self.path!r} by default)"
            )
        if self.max_batch_size > self.max_queue_size:
            raise ConfigError(
                f"Config.max_batch_size ({self.max_batch_size}) must not exceed "
                f"Config.max_queue_size ({self.max_queue_size})"
            )
        if self.max_message_bytes + ENVELOPE_BYTES > self.max_batch_bytes:
            raise ConfigError(
                f"Config.max_message_bytes ({self.max_message_bytes}) must leave "
                f"{ENVELOPE_BYTES} bytes of room in Config.max_batch_bytes "
                f"({self.max_batch_bytes})"
            )

    @property
    def url(self) -> str:
        """The full batch endpoint URL."""
        return self.host.rstrip("/") + self.path
