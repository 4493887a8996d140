"""The arq example's worker, with its client pointed at the test's collector.

Run with ``arq sites.arqsite.WorkerSettings``. ``REDIS_URL`` is the broker,
``HT_COLLECTOR`` the collector's URL, ``HT_FLUSH_INTERVAL`` the client's flush interval.
"""

from __future__ import annotations

import os

from examples.arq_worker import WorkerSettings as ExampleSettings

from htevents_async.integrations.arq import startup


class WorkerSettings:
    """The example's settings with the test's client options.

    Spelled out, not inherited: arq reads the settings class's own ``__dict__``.
    """

    functions = ExampleSettings.functions
    redis_settings = ExampleSettings.redis_settings
    on_shutdown = ExampleSettings.on_shutdown
    on_startup = startup(
        "test-write-key",
        host=os.environ["HT_COLLECTOR"],
        flush_interval=float(os.environ["HT_FLUSH_INTERVAL"]),
    )
