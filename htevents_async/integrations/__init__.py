"""Framework integrations, one module per framework, each behind its optional extra.

* :mod:`htevents_async.integrations.fastapi` (extra ``fastapi``): ``lifespan`` /
  ``client_lifespan``, the ``Events`` dependency, ``EventContextMiddleware``.
* :mod:`htevents_async.integrations.starlette` (extra ``starlette``): ``lifespan`` /
  ``client_lifespan``, ``get_client``, ``EventContextMiddleware`` (plain ASGI).
* :mod:`htevents_async.integrations.aiohttp` (extra ``aiohttp``): ``client_cleanup_ctx``,
  ``get_client``, ``event_context_middleware``.
* :mod:`htevents_async.integrations.django` (extra ``django``): the app for
  ``INSTALLED_APPS``, ``get_client``, ``EventContextMiddleware``, ``get_asgi_application``.
* :mod:`htevents_async.integrations.flask` (extra ``flask``): the ``Events`` extension,
  ``get_client``.
* :mod:`htevents_async.integrations.celery` (extra ``celery``): ``install``, ``get_client``.
* :mod:`htevents_async.integrations.arq` (extra ``arq``): the ``startup`` and ``shutdown``
  worker hooks, ``open_client``, ``get_client``.
* :mod:`htevents_async.integrations.taskiq` (extra ``taskiq``): ``install``, the ``Events``
  dependency, ``get_client``.

The sync frameworks use :class:`~htevents_async.SyncClient`, one per process.

:mod:`htevents_async.integrations.opentelemetry` (extra ``otel``) is not a framework: its
``instrument(client)`` reports the client's figures as OpenTelemetry metrics.

Each framework module opens the client when the app or worker starts and closes it,
delivering what is pending, when it stops. The web framework modules also put the
request's ``ip``, ``userAgent``, ``locale`` and ``page`` into the ``context`` of every
event recorded while handling it. This package imports no framework itself: import the
module for yours.
"""

__all__: list[str] = []
