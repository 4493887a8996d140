"""Test helpers: run code that records events with no network, then assert on what it sent.

The client is real; only the HTTP exchange is replaced, by a
:class:`CapturingTransport` that decodes each request body (gzip or not),
records it, and answers 200, or the statuses you script. Delays are zero, so a
retried batch costs no time. A pytest example::

    import htevents_async.testing

    async def checkout(events, user_id, total):   # the code under test
        await events.track(user_id=user_id, event="Order completed",
                           properties={"total": total})

    async def test_checkout_tracks_the_order():
        async with htevents_async.testing.capture() as (client, captured):
            await checkout(client, "123", 29.99)
        # Leaving the block flushed every event.
        captured.assert_tracked("Order completed", user_id="123",
                                properties={"total": 29.99})

Inside the block, ``await client.flush()`` before asserting: events are
recorded once delivered. For an application that builds its own client,
:func:`capture_client` returns one to put in its place (a pytest fixture)::

    @pytest.fixture
    async def events():
        client, captured = htevents_async.testing.capture_client()
        async with client:
            app.state.events = client
            yield captured

Scripted answers test your handling of failures: ``capture(statuses=[503,
200])`` fails the first request and accepts the retry;
``capture(statuses=[400])`` makes the first batch fail for good (it reaches
``on_failure``, ``statistics().failed`` and per-call callbacks); an exception
such as ``httpx.ConnectError("refused")`` in the list is raised as a network
error.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import gzip
import json
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final, final

import attrs
import httpx

from ._client import Client
from ._encoding import _normalise, _plain_encode, _splice_decimals, format_datetime
from ._messages import Id
from ._protocols import resolve
from ._seams import WireProtocol

__all__ = [
    "ZERO_DELAYS",
    "CapturedEvents",
    "CapturedRequest",
    "CapturingTransport",
    "capture",
    "capture_client",
]

#: Client options that remove every wait: batches leave as soon as the queue
#: runs empty, and retries happen at once.
ZERO_DELAYS: Final[Mapping[str, float]] = {
    "flush_interval": 0.0,
    "backoff_initial": 0.0,
    "backoff_max": 0.0,
    "retry_after_max": 0.0,
}

# Fields compared by inclusion: the message may carry more keys (the library's
# own context, for one) than the test cares about.
_MAPPING_FIELDS: Final = frozenset({"properties", "traits", "context", "integrations"})
# Shown for every candidate in a failure message, besides the fields asked about.
_IDENTIFYING_KEYS: Final = ("type", "event", "name", "userId", "anonymousId", "groupId")
_CLOSEST_SHOWN: Final = 3


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


@final
@attrs.frozen(kw_only=True)
class CapturedRequest:
    """One HTTP request the client made, decoded, and the answer it got."""

    url: str
    """The URL posted to."""
    headers: Mapping[str, str]
    """Request headers, names in lower case."""
    gzip: bool
    """Whether the body was gzip-compressed on the wire."""
    body: Any
    """The decoded JSON body: for the Segment spec ``batch``, ``sentAt``, ``writeKey``; for
    PostHog ``api_key``, ``batch``, ``sent_at``; for ODP the array of events."""
    status: int | None
    """The status answered, or ``None`` when a scripted exception was raised instead."""
    error: str | None = None
    """The scripted exception raised for this request, as text."""
    events: Sequence[dict[str, Any]] = ()
    """The events of the body as the client's protocol reads them, in order."""

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The messages of the batch, in order."""
        return list(self.events)

    @property
    def delivered(self) -> bool:
        """Whether the answer was a 2xx, so that the batch counts as delivered."""
        return self.status is not None and 200 <= self.status < 300

    def __repr__(self) -> str:
        # Headers and body carry the write key; reprs end up in test reports.
        return (
            f"<CapturedRequest status={self.status} gzip={self.gzip} messages={len(self.messages)}>"
        )


_ID_FIELDS = frozenset({"user_id", "anonymous_id", "group_id", "previous_id"})


def _wire_value(name: str, value: Any, path: str) -> Any:
    """``value`` as a collector decodes it: ids as strings, every value rule applied."""
    if name in _ID_FIELDS and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return json.loads(_splice_decimals(_plain_encode(_normalise(value, path, set()))))


@final
class CapturedEvents:
    """What a :class:`CapturingTransport` recorded, with queries and assertions.

    :meth:`messages` and the ``assert_*`` methods look at delivered messages:
    those of requests answered with a 2xx, each once even if its batch was
    retried. :attr:`requests` has every request, refused ones included.
    Messages are dicts in wire form (``userId``, ``messageId``…); the
    assertions take the client's keyword names (``user_id=``) and values as
    you would pass them to the client (``Decimal``, ``datetime``…).
    """

    def __init__(self) -> None:
        self._requests: list[CapturedRequest] = []
        self._messages: list[dict[str, Any]] = []
        self._client: Client | None = None

    def __repr__(self) -> str:
        return f"<CapturedEvents {len(self._messages)} messages, {len(self._requests)} requests>"

    def __len__(self) -> int:
        """The number of delivered messages."""
        return len(self._messages)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """The delivered messages, in delivery order."""
        return iter(list(self._messages))

    def record(self, request: CapturedRequest) -> None:
        """Add a request (the transport calls this)."""
        self._requests.append(request)
        if request.delivered:
            self._messages.extend(request.messages)

    def clear(self) -> None:
        """Forget everything recorded so far."""
        self._requests.clear()
        self._messages.clear()

    @property
    def requests(self) -> list[CapturedRequest]:
        """Every request made, in order, whatever its answer."""
        return list(self._requests)

    def messages(
        self,
        type: str | None = None,
        *,
        event: str | None = None,
        user_id: Id | None = None,
        anonymous_id: Id | None = None,
    ) -> list[dict[str, Any]]:
        """Delivered messages in delivery order, filtered by type, event name and ids."""
        found = []
        for message in self._messages:
            if type is not None and message.get("type") != type:
                continue
            if event is not None and message.get("event") != event:
                continue
            if user_id is not None and message.get("userId") != str(user_id):
                continue
            if anonymous_id is not None and message.get("anonymousId") != str(anonymous_id):
                continue
            found.append(message)
        return found

    def event_names(self, *, user_id: Id | None = None) -> list[str]:
        """The names of the delivered track events, in order: ``["Signed up", ...]``."""
        return [message["event"] for message in self.messages("track", user_id=user_id)]

    def assert_sent(
        self, type: str, *, count: int | None = None, **fields: Any
    ) -> list[dict[str, Any]]:
        """Assert that a delivered message of ``type`` has every given field; return the matches.

        ``fields`` use the client's keyword names (``user_id``, ``group_id``,
        ``properties``…). ``properties``, ``traits``, ``context`` and
        ``integrations`` match when each key given has an equal value (other
        keys may be present); every other field must be equal. Values follow
        the wire rules, so ``Decimal("29.99")`` matches ``29.99`` and a
        ``datetime`` matches its ISO string. With ``count``, exactly that many
        messages must match. The :class:`AssertionError` shows the closest
        messages and how each one differs.
        """
        expected = self._expected(type, fields)
        matches = [m for m in self.messages(type) if not _differences(m, expected)]
        if (count is None and matches) or (count is not None and len(matches) == count):
            return matches
        raise AssertionError(self._explain(type, expected, matches, count))

    def assert_tracked(
        self, event: str, *, count: int | None = None, **fields: Any
    ) -> list[dict[str, Any]]:
        """Assert that a track ``event`` was delivered with these fields (see :meth:`assert_sent`).

        >>> captured.assert_tracked("Order completed", user_id="123",
        ...                         properties={"total": 29.99})  # doctest: +SKIP
        """
        return self.assert_sent("track", count=count, event=event, **fields)

    def assert_identified(
        self, user_id: Id | None = None, *, count: int | None = None, **fields: Any
    ) -> list[dict[str, Any]]:
        """Assert that an identify for ``user_id`` was delivered with the given fields."""
        if user_id is not None:
            fields["user_id"] = user_id
        return self.assert_sent("identify", count=count, **fields)

    def assert_not_sent(self, type: str, **fields: Any) -> None:
        """Assert that no delivered message of ``type`` has every given field."""
        expected = self._expected(type, fields)
        matches = [m for m in self.messages(type) if not _differences(m, expected)]
        if matches:
            lines = [
                f"expected no {type} message with {_describe(expected)}, found {len(matches)}:"
            ]
            lines += [f"  {_json(_excerpt(message, expected))}" for message in matches[:5]]
            raise AssertionError("\n".join(lines))

    # -- failure messages -------------------------------------------------------------------

    @staticmethod
    def _expected(type: str, fields: Mapping[str, Any]) -> list[tuple[str, str, Any]]:
        """``(name as given, wire key, value in wire form)`` for each field."""
        return [
            (
                name,
                _camel(name),
                # A message's own timestamp is written with milliseconds, as on the wire.
                format_datetime(value, "milliseconds")
                if name == "timestamp" and isinstance(value, dt.datetime)
                else _wire_value(name, value, f"expected {type}.{name}"),
            )
            for name, value in fields.items()
        ]

    def _explain(
        self,
        type: str,
        expected: list[tuple[str, str, Any]],
        matches: list[dict[str, Any]],
        count: int | None,
    ) -> str:
        wanted = f"a {type} message" if count is None else f"{count} {type} message(s)"
        lines = [f"expected {wanted} with {_describe(expected)}"]
        if count is not None and matches:
            lines.append(f"{len(matches)} matched:")
            lines += [f"  {_json(_excerpt(message, expected))}" for message in matches[:5]]
        candidates = self.messages(type)
        if count is None or not matches:
            if candidates:
                lines.append(f"{len(candidates)} {type} message(s) delivered; the closest:")
                ranked = sorted(candidates, key=lambda m: len(_differences(m, expected)))
                for message in ranked[:_CLOSEST_SHOWN]:
                    lines.append(f"  {_json(_excerpt(message, expected))}")
                    lines += [f"      {diff}" for diff in _differences(message, expected)]
                if len(ranked) > _CLOSEST_SHOWN:
                    lines.append(f"  ... and {len(ranked) - _CLOSEST_SHOWN} more")
            else:
                lines.append(f"no {type} message was delivered")
        by_type = collections.Counter(str(m.get("type")) for m in self._messages)
        summary = ", ".join(f"{kind} {n}" for kind, n in sorted(by_type.items())) or "nothing"
        lines.append(f"delivered in all: {summary}")
        failed = [r for r in self._requests if not r.delivered]
        if failed:
            lines.append(f"{len(failed)} request(s) were not answered with a 2xx")
        if self._client is not None:
            pending = self._client.statistics().pending
            if pending:
                lines.append(
                    f"note: {pending} event(s) are still pending in the client; "
                    "`await client.flush()` before asserting"
                )
        return "\n".join(lines)


def _differences(message: Mapping[str, Any], expected: list[tuple[str, str, Any]]) -> list[str]:
    """How ``message`` differs from the expected fields, one line each (none: it matches)."""
    found = []
    for name, key, want in expected:
        if key not in message:
            found.append(f"{name}: missing, expected {want!r}")
            continue
        got = message[key]
        if key in _MAPPING_FIELDS and isinstance(want, dict):
            if not isinstance(got, dict):
                found.append(f"{name}: expected an object including {want!r}, got {got!r}")
                continue
            for item, value in want.items():
                if item not in got:
                    found.append(f"{name}[{item!r}]: missing, expected {value!r}")
                elif not _equal(got[item], value):
                    found.append(f"{name}[{item!r}]: expected {value!r}, got {got[item]!r}")
        elif not _equal(got, want):
            found.append(f"{name}: expected {want!r}, got {got!r}")
    return found


def _equal(got: Any, want: Any) -> bool:
    # JSON keeps true and 1 apart; Python's == does not.
    if isinstance(got, bool) or isinstance(want, bool):
        return type(got) is type(want) and got == want
    return bool(got == want)


def _describe(expected: list[tuple[str, str, Any]]) -> str:
    if not expected:
        return "any fields"
    parts = []
    for name, key, value in expected:
        if key in _MAPPING_FIELDS and isinstance(value, dict):
            parts.append(f"{name} including {value!r}")
        else:
            parts.append(f"{name}={value!r}")
    return ", ".join(parts)


def _excerpt(message: Mapping[str, Any], expected: list[tuple[str, str, Any]]) -> dict[str, Any]:
    keys = [*_IDENTIFYING_KEYS, *(key for _, key, _ in expected)]
    return {key: message[key] for key in dict.fromkeys(keys) if key in message}


def _json(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 240 else text[:237] + "..."


@final
class CapturingTransport(httpx.AsyncBaseTransport):
    """An ``httpx`` transport that records each batch request and answers it in memory.

    Answers are taken in order from ``statuses`` (ints, or exceptions to
    raise as network errors), then ``default_status`` for every later request.
    The record is :attr:`captured`::

        transport = CapturingTransport(statuses=[503])
        client = htevents_async.Client(
            "test-write-key", http_client=httpx.AsyncClient(transport=transport),
            **htevents_async.testing.ZERO_DELAYS)
    """

    def __init__(
        self,
        statuses: Iterable[int | BaseException] = (),
        *,
        default_status: int = 200,
        captured: CapturedEvents | None = None,
        protocol: str | WireProtocol = "segment",
    ) -> None:
        # Bodies are read through the protocol the client speaks (pass the same one).
        self._protocol = resolve(protocol)
        self._script: collections.deque[int | BaseException] = collections.deque(statuses)
        self._default_status = default_status
        #: What was recorded.
        self.captured: CapturedEvents = captured if captured is not None else CapturedEvents()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Decode and record ``request``; answer it with the next scripted status."""
        raw = await request.aread()
        compressed = request.headers.get("content-encoding", "").lower() == "gzip"
        plain = gzip.decompress(raw) if compressed else raw
        body = json.loads(plain)
        answer = self._script.popleft() if self._script else self._default_status
        headers = {name.lower(): value for name, value in request.headers.items()}
        common = {
            "url": str(request.url),
            "headers": headers,
            "gzip": compressed,
            "body": body,
            "events": self._protocol.decode_body(plain),
        }
        if isinstance(answer, BaseException):
            self.captured.record(CapturedRequest(**common, status=None, error=repr(answer)))
            raise answer
        self.captured.record(CapturedRequest(**common, status=answer))
        return httpx.Response(answer, json={"success": 200 <= answer < 300}, request=request)


def _build(
    write_key: str, statuses: Sequence[int | BaseException], options: Mapping[str, Any]
) -> tuple[Client, CapturedEvents, httpx.AsyncClient]:
    config = options.get("config")
    protocol = options.get("protocol", "segment" if config is None else config.protocol)
    transport = CapturingTransport(statuses, protocol=protocol)
    http = httpx.AsyncClient(transport=transport)
    client = Client(write_key, http_client=http, **{**ZERO_DELAYS, **options})
    transport.captured._client = client
    return client, transport.captured, http


def capture_client(
    write_key: str = "test-write-key",
    *,
    statuses: Sequence[int | BaseException] = (),
    **options: Any,
) -> tuple[Client, CapturedEvents]:
    """A real :class:`~htevents_async.Client` wired to a :class:`CapturingTransport`.

    ``options`` are :class:`~htevents_async.Config` options; :data:`ZERO_DELAYS`
    apply unless overridden. Use the client as usual (``async with client``);
    assertion failures mention events still pending in it. The in-memory
    transport holds no sockets, so nothing leaks when it is never closed.
    """
    client, captured, _ = _build(write_key, statuses, options)
    return client, captured


@contextlib.asynccontextmanager
async def capture(
    write_key: str = "test-write-key",
    *,
    statuses: Sequence[int | BaseException] = (),
    **options: Any,
) -> AsyncIterator[tuple[Client, CapturedEvents]]:
    """``async with capture() as (client, captured)``: a client whose events are captured.

    Leaving the block closes the client, which delivers every pending event
    first; assert on ``captured`` after it, or after ``await client.flush()``
    inside it. Arguments are those of :func:`capture_client`.
    """
    client, captured, http = _build(write_key, statuses, options)
    try:
        async with client:
            yield client, captured
    finally:
        await http.aclose()
