"""A local Segment-spec collector with a live event viewer, for tests, demos and development.

Optional: needs the ``collector`` extra (Starlette and uvicorn). Nothing in the core package
imports it, so ``import htevents_async`` works without those dependencies.

* :class:`LocalCollector`: an async context manager serving on 127.0.0.1 in the running
  event loop; read what arrived with ``messages()``, ``requests``, ``stats()`` and
  ``wait_for()``.
* :func:`serve`: the same collector in the foreground, for ``htevents-async collect``.
* :func:`create_app`: the Starlette application, to mount or serve some other way.
"""

from ._app import create_app as create_app
from ._server import LocalCollector as LocalCollector
from ._server import serve as serve
from ._store import CollectorStats as CollectorStats
from ._store import EventStore as EventStore
from ._store import RequestRecord as RequestRecord
from ._store import StoredEvent as StoredEvent

__all__ = [
    "CollectorStats",
    "EventStore",
    "LocalCollector",
    "RequestRecord",
    "StoredEvent",
    "create_app",
    "serve",
]
