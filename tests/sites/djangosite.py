"""A one-module Django site: settings, URLs, a view, and the WSGI and ASGI applications.

Served by gunicorn (``sites.djangosite:application``) or uvicorn
(``sites.djangosite:asgi_application``) with ``DJANGO_SETTINGS_MODULE=sites.djangosite``;
``HT_COLLECTOR`` is the local collector's URL.
"""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application
from django.http import HttpRequest, JsonResponse
from django.urls import path

from htevents_async.integrations.django import get_asgi_application, get_client

SECRET_KEY = "test-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = __name__
INSTALLED_APPS = ["htevents_async.integrations.django"]
MIDDLEWARE = ["htevents_async.integrations.django.EventContextMiddleware"]
HTEVENTS = {
    "WRITE_KEY": "test-write-key",
    # Nothing is sent while the site runs: every event arrives through the exit close.
    "OPTIONS": {"host": os.environ.get("HT_COLLECTOR", ""), "flush_interval": 3600},
}


def order(request: HttpRequest, n: int) -> JsonResponse:
    """A sync view recording one event numbered by the path."""
    get_client().track(user_id="u1", event="Order completed", properties={"n": n})
    return JsonResponse({"pid": os.getpid()})


urlpatterns = [path("orders/<int:n>", order)]

application = get_wsgi_application()
asgi_application = get_asgi_application()
