"""Deleting a user: the :class:`Delete` request and its trip to a regulations endpoint.

A delete is not an event: it does not go through the batch queue. It is one API
request, shaped like Segment's public regulations API, which suppresses the user's
later events and deletes what was already collected::

    POST {regulations_url}
    Authorization: Bearer {regulations_token}
    {"regulationType": "SUPPRESS_WITH_DELETE", "subjectType": "USER_ID",
     "subjectIds": ["123"]}

    200 {"data": {"regulateId": "..."}}

``DELETE {regulations_url}/{regulateId}`` cancels the regulation, which lifts the
suppression. The endpoint and its token are options of their own
(:attr:`Config.regulations_url`, :attr:`Config.regulations_token`): a regulations
API takes a workspace token, never a source's write key.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Final, final

import anyio
import attrs
import httpx

from ._config import Config
from ._errors import ConfigError, HTTPStatusError, RetriesExhaustedError
from ._messages import Id, _optional_mapping, _required_id
from ._retry import RetryPolicy, is_retryable_status, is_success, parse_retry_after
from ._version import __version__

__all__ = [
    "REGULATION_TYPE",
    "SUBJECT_TYPE",
    "Delete",
    "check_deletion_config",
    "deletion_deadline",
    "request_deletion",
]

#: Suppress the user's later events and delete the ones already collected.
REGULATION_TYPE: Final = "SUPPRESS_WITH_DELETE"
#: Regulations name users by their ``userId``.
SUBJECT_TYPE: Final = "USER_ID"


@final
@attrs.frozen(kw_only=True)
class Delete:
    """Suppresses, and deletes, all data related to one user (``delete`` call).

    Not a :class:`Message`: it is sent at once to the regulations endpoint with
    :meth:`Client.delete`, not batched with events.
    """

    user_id: Id = attrs.field(validator=_required_id)
    """The user to delete, as sent in ``userId``; ``str`` or ``int``. Required."""

    traits: Mapping[str, Any] | None = attrs.field(default=None, validator=_optional_mapping)
    """What else identifies the user (for example ``email``) for destinations that delete
    by something other than the user id. The regulations request names the user by id
    only, so traits are not sent; they are kept for integrations that need them."""

    def body(self) -> dict[str, Any]:
        """The JSON body of the regulations request."""
        return {
            "regulationType": REGULATION_TYPE,
            "subjectType": SUBJECT_TYPE,
            "subjectIds": [str(self.user_id)],
        }


def _endpoint(config: Config) -> tuple[str, str]:
    if config.regulations_url is None or config.regulations_token is None:
        missing = [
            name
            for name in ("regulations_url", "regulations_token")
            if getattr(config, name) is None
        ]
        raise ConfigError(
            f"delete() needs Config.{' and Config.'.join(missing)}: the URL of the regulations "
            "endpoint (e.g. https://api.segmentapis.com/regulations, or a local collector's "
            "url + '/regulations') and its bearer token, which is not the write key"
        )
    return config.regulations_url, config.regulations_token


def check_deletion_config(config: Config) -> None:
    """Raise :class:`ConfigError` unless ``config`` names a regulations endpoint and token."""
    _endpoint(config)


def deletion_deadline(config: Config) -> float:
    """Seconds a deletion request may take in all, retries included.

    The last attempt starts within ``max_retry_time`` plus the longest wait before a
    retry, and httpx bounds each of its four phases (pool, connect, write, read) by
    ``request_timeout``; a request within those bounds always ends before this deadline.
    Only an answer that never ends (a body trickling in) reaches it.
    """
    return (
        config.max_retry_time
        + max(config.backoff_max, config.retry_after_max)
        + 4 * config.request_timeout
    )


async def request_deletion(
    http: httpx.AsyncClient, config: Config, delete: Delete, *, max_retries: int | None = None
) -> str:
    """Send one deletion request, retrying what is worth retrying; return the regulation id.

    Retries follow the client's policy (``max_retries``, ``max_retry_time``, backoff,
    ``Retry-After``); ``max_retries`` overrides the count, ``0`` for one attempt (when
    something else, such as Temporal, owns the retries). Raises
    :class:`HTTPStatusError` for a final status and :class:`RetriesExhaustedError`
    when every attempt failed with a retryable error, or when the request passes
    :func:`deletion_deadline` (it is then cancelled, and may or may not have been made).
    """
    url, token = _endpoint(config)
    policy = RetryPolicy(
        max_retries=config.max_retries if max_retries is None else max_retries,
        max_retry_time=config.max_retry_time,
        backoff_initial=config.backoff_initial,
        backoff_max=config.backoff_max,
        retry_after_max=config.retry_after_max,
    )
    headers = {
        "Authorization": f"Bearer {token}",
        "User-Agent": f"htevents-async/{__version__}",
    }
    deadline = deletion_deadline(config)
    started = time.monotonic()
    attempt = 0
    error = "no attempt finished"
    # httpx's timeouts apply per phase, so one attempt has no overall limit of its own;
    # the deadline gives the whole request one, which callers waiting on another thread
    # (SyncClient.delete) can wait for.
    with anyio.move_on_after(deadline):
        while True:
            attempt += 1
            retry_after: float | None = None
            try:
                response = await http.post(
                    url, json=delete.body(), headers=headers, timeout=config.request_timeout
                )
            except httpx.HTTPError as exc:
                # The token is in the request headers only, never in the exception text.
                error = f"{type(exc).__name__}: {exc}"
            else:
                if is_success(response.status_code):
                    return _regulation_id(response)
                text = response.text[:200].replace(token, "[redacted]")
                if not is_retryable_status(response.status_code):
                    raise HTTPStatusError(response.status_code, text)
                error = f"HTTP {response.status_code}: {text}"
                retry_after = parse_retry_after(response.headers.get("retry-after"))
            if attempt > policy.max_retries or time.monotonic() - started >= policy.max_retry_time:
                raise RetriesExhaustedError(attempt, error)
            await anyio.sleep(policy.delay(attempt, retry_after))
    raise RetriesExhaustedError(
        attempt,
        f"no answer within the deletion deadline of {deadline:g} s (max_retry_time, the "
        "longest backoff and 4 x request_timeout); the request was cancelled and may or "
        f"may not have reached the endpoint; last error: {error}",
    )


def _regulation_id(response: httpx.Response) -> str:
    try:
        data = response.json().get("data") or {}
        regulate_id = data.get("regulateId")
    except (ValueError, AttributeError):
        return ""
    return regulate_id if isinstance(regulate_id, str) else ""
