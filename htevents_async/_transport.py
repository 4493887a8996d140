"""HTTP delivery of one batch: the request, compression, and the retry loop around them."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import importlib.util
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import final

import anyio
import anyio.to_thread
import attrs
import httpx

from ._batch import body_envelope, build_body, envelope_size
from ._config import Config
from ._errors import DeliveryError, HTTPStatusError, RetriesExhaustedError
from ._retry import RetryPolicy, is_retryable_status, is_success, parse_retry_after
from ._version import __version__

__all__ = ["Attempt", "Outcome", "Transport"]

from ._logging import logger

# Compressing a body this large takes milliseconds; zlib releases the GIL, so a
# worker thread keeps the event loop free meanwhile. Smaller bodies compress
# faster than the hop to a thread costs.
GZIP_THREAD_THRESHOLD = 64 * 1024
# Bytes of a response body kept for an error message; the rest is not read.
ERROR_BODY_LIMIT = 64 * 1024
# Level 6 costs about twice level 1 for a few percent smaller JSON bodies.
GZIP_LEVEL = 1


@final
@attrs.frozen
class Attempt:
    """What one request for a batch did (reported to the observer)."""

    status: int | None
    """The HTTP status, or ``None`` for a network error or timeout."""
    body_bytes: int
    """Request body size (after compression)."""
    retry: bool
    """Whether this attempt was a retry."""
    sent: bool = True
    """Whether the request reached the collector: ``False`` when no connection was made."""
    error: str | None = None
    """Why the attempt did not succeed (redacted), ``None`` for a 2xx."""


@final
@attrs.frozen
class Outcome:
    """The final result of delivering a batch."""

    error: DeliveryError | None
    """``None`` when delivered."""
    attempts: int
    """Requests made."""


def _fail_fast_on_missing_sniffio() -> None:
    """Make httpcore's per-request ``import sniffio`` fail at once when sniffio is absent.

    httpcore tries that import every time it sets up a lock for a request; recent
    anyio and httpx no longer install sniffio, and a failed import searches all of
    sys.path again each time: about 30 % of a request's CPU on this path. A
    ``None`` entry in ``sys.modules`` is how Python spells "not importable", so
    the import fails the same way, only without the search.
    """
    if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
        sys.modules["sniffio"] = None  # type: ignore[assignment]


async def _read_raw(response: httpx.Response) -> bytes:
    """The start of the response body, as sent (not decoded).

    The status alone decides the outcome, so a body whose Content-Encoding lies
    cannot turn a 2xx into an error. Reading to the end lets the connection be
    reused; a body past ``ERROR_BODY_LIMIT`` is cut and its connection closed.
    """
    chunks = []
    size = 0
    if response.is_stream_consumed:
        # Built in memory (a mock or capturing transport): nothing left to stream.
        return response.content[:ERROR_BODY_LIMIT]
    async for chunk in response.aiter_raw():
        chunks.append(chunk)
        size += len(chunk)
        if size >= ERROR_BODY_LIMIT:
            break
    return b"".join(chunks)


def _error_text(response: httpx.Response, raw: bytes) -> str:
    """An error body as text for diagnosis; one that cannot be decoded is described."""
    try:
        return httpx.Response(response.status_code, headers=response.headers, content=raw).text
    except httpx.DecodingError:
        encoding = response.headers.get("content-encoding")
        return f"<{len(raw)} bytes that are not valid {encoding}>"


# Bounds a whole exchange, raising TimeoutError. anyio's fail_after looks up the
# running async library on every use: a tenth of a request's CPU in profiles.
if sys.version_info >= (3, 11):
    _deadline = asyncio.timeout
else:  # pragma: no cover - Python 3.10

    @contextlib.asynccontextmanager
    async def _deadline(delay: float) -> AsyncIterator[None]:
        with anyio.fail_after(delay):
            yield


# Failures that happen before any byte of the request leaves: no connection was made.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def _compress(body: bytes) -> bytes:
    return gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)


class Transport:
    """Posts batches over one shared ``httpx.AsyncClient`` and applies the retry policy."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        config: Config,
        write_key: str,
        *,
        on_attempt: Callable[[Attempt], None],
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        own_client: bool = False,
    ) -> None:
        _fail_fast_on_missing_sniffio()
        self._http = http
        self._own_client = own_client
        # Parsed once: httpx would parse a str URL again for every request.
        self._url = httpx.URL(config.url)
        self._gzip = config.gzip
        self._timeout = config.request_timeout
        self._policy = RetryPolicy(
            max_retries=config.max_retries,
            max_retry_time=config.max_retry_time,
            backoff_initial=config.backoff_initial,
            backoff_max=config.backoff_max,
            retry_after_max=config.retry_after_max,
        )
        self._head, self._tail = body_envelope(write_key)
        self._envelope = envelope_size(write_key)
        token = base64.b64encode(f"{write_key}:".encode()).decode()
        # Collectors may echo credentials in an error body, which becomes part of an
        # exception message and a log line; neither may ever carry the key.
        self._secrets = sorted({write_key, token, json.dumps(write_key)[1:-1]}, key=len)[::-1]
        self._headers = {
            "Content-Type": "application/json",
            "Authorization": f"Basic {token}",
            "User-Agent": f"htevents-async/{__version__}",
        }
        if self._gzip:
            self._headers["Content-Encoding"] = "gzip"
        # Our own client has no base URL, params or extra headers to merge into
        # each request: its requests are built directly, which saves a tenth of
        # a request's CPU, and without httpx's Accept, Accept-Encoding and Connection
        # defaults (HTTP/1.1 keeps the connection open anyway; the answer is unused).
        self._merged_headers = httpx.Headers(self._headers)
        self._timeout_extension = httpx.Timeout(self._timeout).as_dict()
        self._on_attempt = on_attempt
        self._sleep = sleep

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return text

    def _request(self, body: bytes) -> httpx.Request:
        # Cookies a collector set (a load balancer's affinity cookie) go back with
        # every request, as build_request() would send them.
        if self._own_client and not self._http.cookies:
            return httpx.Request(
                "POST",
                self._url,
                content=body,
                headers=self._merged_headers,
                extensions={"timeout": self._timeout_extension},
            )
        return self._http.build_request(
            "POST", self._url, content=body, headers=self._headers, timeout=self._timeout
        )

    @property
    def envelope_bytes(self) -> int:
        """Bytes the body adds around the joined events."""
        return self._envelope

    async def deliver(self, joined: bytes, slots: asyncio.Semaphore) -> Outcome:
        """Send the joined events until success, a final answer, or the retry budget runs out.

        Each request holds one of ``slots`` while it is on the wire.
        """
        policy = self._policy
        loop = asyncio.get_running_loop()
        started = loop.time()
        attempt = 0
        while True:
            attempt += 1
            body = build_body(self._head, joined, self._tail)
            if self._gzip:
                if len(body) >= GZIP_THREAD_THRESHOLD:
                    try:
                        body = await anyio.to_thread.run_sync(_compress, body)
                    except RuntimeError:
                        # No new thread at interpreter exit (Python 3.12+): compress inline.
                        body = _compress(body)
                else:
                    body = _compress(body)
            retry_after: float | None = None
            # The slot bounds requests on the wire, not batches: a batch sleeping
            # before its retry leaves the connection to the others.
            async with slots:
                try:
                    # httpx's timeout bounds each read; this bounds the whole exchange,
                    # so a server that trickles bytes cannot hold the batch forever.
                    async with _deadline(self._timeout):
                        request = self._request(body)
                        response = await self._http.send(request, stream=True)
                        try:
                            raw = await _read_raw(response)
                        except httpx.TransportError:
                            # The status line is the answer; a body cut short changes nothing.
                            raw = b""
                        finally:
                            await response.aclose()
                except (httpx.TransportError, TimeoutError) as exc:
                    reason = self._redact(
                        f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                    )
                    sent = not isinstance(exc, _NOT_SENT)
                    self._on_attempt(Attempt(None, len(body), attempt > 1, sent, reason))
                else:
                    status = response.status_code
                    if is_success(status):
                        self._on_attempt(Attempt(status, len(body), attempt > 1))
                        return Outcome(None, attempt)
                    reason = f"HTTP {status}"
                    self._on_attempt(Attempt(status, len(body), attempt > 1, True, reason))
                    if not is_retryable_status(status):
                        text = self._redact(_error_text(response, raw))
                        return Outcome(HTTPStatusError(status, text), attempt)
                    retry_after = parse_retry_after(response.headers.get("retry-after"))
            if attempt > policy.max_retries:
                return Outcome(RetriesExhaustedError(attempt, reason), attempt)
            remaining = policy.max_retry_time - (loop.time() - started)
            if remaining <= 0:
                return Outcome(RetriesExhaustedError(attempt, reason), attempt)
            # A wait past the budget is cut to what is left of it: one last retry at its
            # end rather than giving up now. With retry_after_max equal to max_retry_time
            # (the defaults), every capped Retry-After would otherwise end the batch.
            delay = min(policy.delay(attempt, retry_after), remaining)
            logger.debug("htevents_async: %s; retry %d in %.2f s", reason, attempt, delay)
            await self._sleep(delay)
