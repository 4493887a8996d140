"""The exceptions of htevents-async.

Programming errors (bad arguments, bad configuration, misuse of the client) are
raised at the call site. Delivery failures never are: they reach statistics,
logs and the ``on_failure`` hook as :class:`DeliveryError` instances.

The tree, with the standard exception each one also is::

    HteventsError
    ├── ConfigError (ValueError)            a bad Client/Config option value
    ├── MessageError (ValueError)           a message field that breaks the spec
    │   ├── MessageTypeError (TypeError)    a field or value of the wrong type,
    │   │                                   or one JSON cannot represent
    │   └── MessageTooLargeError            over ``max_message_bytes`` once encoded
    ├── ClientStateError (RuntimeError)     the client cannot take this call now
    │   ├── ClientClosedError               used after ``aclose()``
    │   ├── WrongEventLoopError             used from a second event loop
    │   └── ForkedClientError               used in a child after ``os.fork()``
    ├── QueueFullError                      ``overflow="wait"`` ran out of time
    └── DeliveryError                       a batch was not delivered (never raised)
        ├── HTTPStatusError                 a final, non-retryable status
        ├── RetriesExhaustedError           retry budget spent on retryable errors
        ├── TLSVerificationError            the collector's certificate was refused
        └── DroppedError                    dropped before delivery (queue full, fork…)
            └── ShutdownError               the close deadline passed first
"""

from __future__ import annotations

__all__ = [
    "ClientClosedError",
    "ClientStateError",
    "ConfigError",
    "DeliveryError",
    "DroppedError",
    "ForkedClientError",
    "HTTPStatusError",
    "HteventsError",
    "MessageError",
    "MessageTooLargeError",
    "MessageTypeError",
    "QueueFullError",
    "RetriesExhaustedError",
    "ShutdownError",
    "TLSVerificationError",
    "WrongEventLoopError",
]


class HteventsError(Exception):
    """Root of every exception this package defines."""


class ConfigError(HteventsError, ValueError):
    """A client option has a value it cannot take; the message names the option."""


class MessageError(HteventsError, ValueError):
    """A message field breaks the spec; the message names the field and the reason."""


class MessageTypeError(MessageError, TypeError):
    """A field has the wrong type, or a value cannot be represented in JSON.

    For nested values the message names the key path, for example
    ``Track.properties['items'][2]['price']``.
    """


class MessageTooLargeError(MessageError):
    """The encoded message is larger than ``max_message_bytes``."""


class ClientStateError(HteventsError, RuntimeError):
    """The client cannot accept this call in its current state."""


class ClientClosedError(ClientStateError):
    """The client was closed; create a new one."""


class WrongEventLoopError(ClientStateError):
    """The client is bound to another event loop than the running one."""


class ForkedClientError(ClientStateError):
    """The client was created before ``os.fork()`` and is used in the child."""


class QueueFullError(HteventsError):
    """With ``overflow="wait"``, no room came free within ``enqueue_timeout``."""


class DeliveryError(HteventsError):
    """A batch could not be delivered. Passed to hooks and logged, never raised to callers."""


class HTTPStatusError(DeliveryError):
    """The collector answered with a status that retrying cannot fix (e.g. 400, 401, 413)."""

    def __init__(self, status_code: int, body: str, *, url: str | None = None) -> None:
        where = "" if url is None else f" at {url}"
        super().__init__(f"collector answered HTTP {status_code}{where}: {body[:200]}")
        #: The HTTP status the collector answered.
        self.status_code = status_code
        #: The start of the response body, for diagnosis.
        self.body = body
        #: The endpoint that answered (without credentials), when known.
        self.url = url


class RetriesExhaustedError(DeliveryError):
    """Every attempt failed with a retryable error and the retry budget is spent."""

    def __init__(self, attempts: int, last_error: str) -> None:
        super().__init__(f"gave up after {attempts} attempts; last error: {last_error}")
        #: How many requests were made for the batch.
        self.attempts = attempts
        #: A description of the last failure.
        self.last_error = last_error


class TLSVerificationError(DeliveryError):
    """The collector's TLS certificate failed verification: a configuration problem
    (trust store, ``SSL_CERT_FILE``, a proxy that intercepts TLS, or the host name),
    so the batch fails at once instead of spending its retry budget."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"TLS certificate verification failed, not retried: {reason}")
        #: The underlying connect error, as text.
        self.reason = reason


class DroppedError(DeliveryError):
    """Events were dropped before delivery; :attr:`reason` says why."""

    def __init__(self, reason: str, message: str | None = None) -> None:
        super().__init__(message or f"dropped before delivery: {reason}")
        #: ``"queue_full"``, ``"shutdown"``, ``"fork"``, ``"filtered"`` or ``"plugin_error"``.
        self.reason = reason


class ShutdownError(DroppedError):
    """The client closed before the events could be delivered."""

    def __init__(self, message: str = "the client closed before delivery finished") -> None:
        super().__init__("shutdown", message)
