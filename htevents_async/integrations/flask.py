"""Flask integration: an extension holding one :class:`~htevents_async.SyncClient`, and
request context for every event recorded while handling a request.

Needs the ``flask`` extra (``pip install 'htevents-async[flask]'``). A complete app (run
it with ``gunicorn --workers 4 shop:app``)::

    import os

    from flask import Flask

    from htevents_async.integrations.flask import Events, get_client

    app = Flask(__name__)
    app.config["HTEVENTS_WRITE_KEY"] = os.environ["HT_WRITE_KEY"]
    app.config["HTEVENTS_OPTIONS"] = {"flush_interval": 2.0}  # any Client option
    Events(app)  # or: events = Events(); events.init_app(app) in an app factory


    @app.post("/orders")
    def create_order():
        # The event carries context.ip, userAgent, locale and page from the request.
        get_client().track(user_id="123", event="Order completed", properties={"total": 29.99})
        return {"ok": True}

The client lives in ``app.extensions["htevents"]``. It starts its delivery thread in each
worker process on first use (so gunicorn ``--preload`` works) and is closed when the
process exits, delivering what is pending within ``shutdown_timeout``: gunicorn workers
stopped with SIGTERM exit normally. ``HTEVENTS_INCLUDE_IP = False`` leaves the client
address out of the context.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, final

from flask import Flask, current_app, g, request

from .._context import context_scope
from .._sync import SyncClient
from ._request_context import environ_request_context

__all__ = ["Events", "get_client"]

_EXTENSION = "htevents"


@final
class Events:
    """The Flask extension: ``Events(app)``, or ``Events()`` then :meth:`init_app`.

    ``write_key`` and keyword options given here win over the app's
    ``HTEVENTS_WRITE_KEY`` and ``HTEVENTS_OPTIONS`` settings.
    """

    def __init__(
        self, app: Flask | None = None, *, write_key: str | None = None, **options: Any
    ) -> None:
        self._write_key = write_key
        self._options = options
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> SyncClient:
        """Make ``app``'s client (in ``app.extensions["htevents"]``) and hook its requests."""
        write_key = self._write_key or app.config.get("HTEVENTS_WRITE_KEY")
        if not isinstance(write_key, str) or not write_key:
            raise RuntimeError(
                "htevents_async: set app.config['HTEVENTS_WRITE_KEY'] or pass "
                "Events(write_key=...) before init_app()"
            )
        options = {**app.config.get("HTEVENTS_OPTIONS", {}), **self._options}
        client = SyncClient(write_key, **options)
        app.extensions[_EXTENSION] = client
        include_ip = bool(app.config.get("HTEVENTS_INCLUDE_IP", True))

        def enter_scope() -> None:
            scope = context_scope(
                environ_request_context(
                    request.environ, scheme=request.scheme, path=request.path, include_ip=include_ip
                )
            )
            scope.__enter__()
            g._htevents_scope = scope

        def leave_scope(_: BaseException | None) -> None:
            scope: AbstractContextManager[None] | None = g.pop("_htevents_scope", None)
            if scope is not None:
                scope.__exit__(None, None, None)

        app.before_request(enter_scope)
        app.teardown_request(leave_scope)
        return client


def get_client() -> SyncClient:
    """The current app's client (inside a request or an app context)."""
    client: SyncClient = current_app.extensions[_EXTENSION]
    return client
