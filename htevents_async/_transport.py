"""HTTP delivery of one batch: the request, compression, and the retry loop around them."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import final

import anyio
import anyio.to_thread
import attrs
import httpx

from ._batch import body_envelope, build_body, envelope_size
from ._config import Config
from ._errors import (
    DeliveryError,
    HTTPStatusError,
    RetriesExhaustedError,
    TLSVerificationError,
)
from ._retry import RetryPolicy, is_retryable_status, is_success, parse_retry_after
from ._timeouts import deadline
from ._version import __version__

__all__ = ["Attempt", "Outcome", "RequestSlots", "Transport", "default_http_client"]

from ._logging import logger

# Compressing a body this large takes milliseconds; zlib releases the GIL, so a
# worker thread keeps the event loop free meanwhile. Smaller bodies compress
# faster than the hop to a thread costs.
GZIP_THREAD_THRESHOLD = 64 * 1024
# Shorter strings are not redacted from error text (see Transport.__init__).
_MIN_SECRET_LENGTH = 6
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
    duration: float = 0.0
    """Seconds from sending the request to its answer (or its failure)."""


@final
@attrs.frozen
class Outcome:
    """The final result of delivering a batch."""

    error: DeliveryError | None
    """``None`` when delivered."""
    attempts: int
    """Requests made."""


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


class RequestSlots:
    """Requests allowed on the wire at once, shared by every batch of one client.

    A semaphore that also says when a slot frees, so the flusher can keep filling a
    batch while all of them are busy and send it the moment one frees.
    """

    __slots__ = ("_on_release", "_semaphore")

    def __init__(self, count: int, on_release: Callable[[], None]) -> None:
        self._semaphore = asyncio.Semaphore(count)
        self._on_release = on_release

    @property
    def free(self) -> bool:
        """Whether a request could start now without waiting."""
        return not self._semaphore.locked()

    async def acquire(self) -> None:
        """Wait for a free slot and take it."""
        await self._semaphore.acquire()

    def release(self) -> None:
        """Give a slot back."""
        self._semaphore.release()
        self._on_release()


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _certificate_failure(exc: BaseException) -> bool:
    """Whether a connect error comes from a certificate the trust store refused."""
    seen: BaseException | None = exc
    for _ in range(8):  # a cause chain is short; the bound guards against a cycle
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


# Failures that happen before any byte of the request leaves: no connection was made.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def default_http_client(timeout: float, max_connections: int) -> httpx.AsyncClient:
    """The client's own ``httpx.AsyncClient``: httpx's defaults (environment proxies,
    ``SSL_CERT_FILE``, happy eyeballs), with one kept-alive connection per request slot."""
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    return httpx.AsyncClient(timeout=timeout, limits=limits)


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
        self._http = http
        self._own_client = own_client
        # Parsed once: httpx would parse a str URL again for every request.
        self._url = httpx.URL(config.url)
        # For messages: never credentials, which a URL's user part may hold.
        self._display_url = str(self._url.copy_with(username=None, password=None))
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
        # A key of a few characters would blank out ordinary words of every message
        # while hiding nothing: such a key is no secret worth the name.
        secrets = {write_key, token, json.dumps(write_key)[1:-1]}
        self._secrets = sorted(
            (s for s in secrets if len(s) >= _MIN_SECRET_LENGTH), key=len, reverse=True
        )
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

    async def _read_body(self, response: httpx.Response) -> bytes:
        """The start of the body, within its own deadline; empty if it stalls or breaks."""
        try:
            async with deadline(self._timeout):
                return await _read_raw(response)
        except (httpx.TransportError, TimeoutError):
            return b""
        finally:
            await response.aclose()

    @property
    def envelope_bytes(self) -> int:
        """Bytes the body adds around the joined events."""
        return self._envelope

    async def deliver(
        self, joined: bytes, slots: RequestSlots, *, holding: bool = False
    ) -> Outcome:
        """Send the joined events until success, a final answer, or the retry budget runs out.

        Each request holds one of ``slots`` while it is on the wire; with ``holding``
        the caller already holds one for the first attempt, and it is released here.
        """
        policy = self._policy
        loop = asyncio.get_running_loop()
        started = loop.time()
        attempt = 0
        held = holding
        try:
            while True:
                attempt += 1
                body = build_body(self._head, joined, self._tail)
                if self._gzip:
                    if len(body) >= GZIP_THREAD_THRESHOLD:
                        try:
                            body = await anyio.to_thread.run_sync(_compress, body)
                        except RuntimeError:
                            # No new thread at interpreter exit (Python 3.12+): inline.
                            body = _compress(body)
                    else:
                        body = _compress(body)
                # The slot bounds requests on the wire, not batches: a batch sleeping
                # before its retry leaves the connection to the others.
                if not held:
                    await slots.acquire()
                held = False
                try:
                    outcome, reason, retry_after = await self._exchange(body, attempt)
                finally:
                    slots.release()
                if outcome is not None:
                    return outcome
                if attempt > policy.max_retries:
                    return Outcome(RetriesExhaustedError(attempt, reason), attempt)
                remaining = policy.max_retry_time - (loop.time() - started)
                if remaining <= 0:
                    return Outcome(RetriesExhaustedError(attempt, reason), attempt)
                # A wait past the budget is cut to what is left of it: one last retry at
                # its end rather than giving up now. With retry_after_max equal to
                # max_retry_time (the defaults), every capped Retry-After would otherwise
                # end the batch.
                delay = min(policy.delay(attempt, retry_after), remaining)
                logger.debug("htevents_async: %s; retry %d in %.2f s", reason, attempt, delay)
                await self._sleep(delay)
        finally:
            if held:  # cancelled before the first attempt used the caller's slot
                slots.release()

    async def _exchange(
        self, body: bytes, attempt: int
    ) -> tuple[Outcome | None, str, float | None]:
        """One request: a final outcome, or ``None`` with the reason to retry and the
        server's ``Retry-After``."""
        retry = attempt > 1
        started = time.perf_counter()
        try:
            # httpx's timeout bounds each read; this bounds the exchange up to the
            # status line, so a server that trickles bytes cannot hold the batch forever.
            async with deadline(self._timeout):
                response = await self._http.send(self._request(body), stream=True)
        except (httpx.TransportError, TimeoutError) as exc:
            reason = self._redact(_describe(exc))
            sent = not isinstance(exc, _NOT_SENT)
            elapsed = time.perf_counter() - started
            self._on_attempt(Attempt(None, len(body), retry, sent, reason, elapsed))
            if _certificate_failure(exc):
                # Sending again cannot fix the trust store or the host name.
                return Outcome(TLSVerificationError(reason), attempt), reason, None
            return None, reason, None
        # The status line is the answer: a body that stalls or breaks after it changes
        # nothing, and a 2xx is never sent again because of it.
        raw = await self._read_body(response)
        status = response.status_code
        elapsed = time.perf_counter() - started
        if is_success(status):
            self._on_attempt(Attempt(status, len(body), retry, duration=elapsed))
            return Outcome(None, attempt), "", None
        reason = f"HTTP {status}"
        self._on_attempt(Attempt(status, len(body), retry, True, reason, elapsed))
        if not is_retryable_status(status):
            text = self._redact(_error_text(response, raw))
            error = HTTPStatusError(status, text, url=self._display_url)
            return Outcome(error, attempt), reason, None
        return None, reason, parse_retry_after(response.headers.get("retry-after"))
