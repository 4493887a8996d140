"""The Starlette integration, through a real uvicorn server on 127.0.0.1 and the local collector."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from integration_support import CLIENT_OPTIONS, WRITE_KEY, by_number, context_of
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send
from uvicornserver import serve_asgi

from htevents_async import Track
from htevents_async._collector import LocalCollector
from htevents_async._context import current_context
from htevents_async.integrations.starlette import (
    EventContextMiddleware,
    client_lifespan,
    get_client,
    lifespan,
)

VISITORS = [
    {"User-Agent": "Firefox/128.0", "Referer": "https://ads.example/a", "Accept-Language": "de"},
    {"User-Agent": "Safari/17.4", "Accept-Language": "pt-BR, pt;q=0.8"},
    {"User-Agent": "curl/8.5.0", "Referer": "https://mail.example/"},
]


async def create_order(request: Request) -> JSONResponse:
    """An async endpoint recording one track event numbered by the path."""
    n = int(request.path_params["n"])
    await get_client(request).track(user_id="u1", event="Order completed", properties={"n": n})
    return JSONResponse({})


def export_orders(request: Request) -> JSONResponse:
    """A sync endpoint (run in the thread pool) recording through enqueue_threadsafe."""
    n = int(request.path_params["n"])
    message = Track(user_id="u1", event="Orders exported", properties={"n": n})
    return JSONResponse({"messageId": get_client(request).enqueue_threadsafe(message)})


def make_app(collector: LocalCollector, **middleware_options: Any) -> Starlette:
    """An app with the ready-made lifespan and the middleware."""
    return Starlette(
        routes=[
            Route("/orders/{n}", create_order, methods=["POST"]),
            Route("/exports/{n}", export_orders, methods=["POST"]),
        ],
        middleware=[Middleware(EventContextMiddleware, **middleware_options)],
        lifespan=lifespan(WRITE_KEY, host=collector.url, **CLIENT_OPTIONS),
    )


async def test_async_endpoint_events_carry_their_request_context(
    collector: LocalCollector,
) -> None:
    """Concurrent requests each record their own ip, user agent, locale and page."""
    async with serve_asgi(make_app(collector)) as http:
        base_url = str(http.base_url).rstrip("/")
        await asyncio.gather(
            *(http.post(f"/orders/{n}?q=shoes", headers=h) for n, h in enumerate(VISITORS))
        )

    contexts = [context_of(m) for m in by_number(collector.messages("track"))]
    assert contexts == [
        {
            "ip": "127.0.0.1",
            "userAgent": "Firefox/128.0",
            "locale": "de",
            "page": {
                "url": f"{base_url}/orders/0?q=shoes",
                "path": "/orders/0",
                "search": "?q=shoes",
                "referrer": "https://ads.example/a",
            },
        },
        {
            "ip": "127.0.0.1",
            "userAgent": "Safari/17.4",
            "locale": "pt-BR",
            "page": {
                "url": f"{base_url}/orders/1?q=shoes",
                "path": "/orders/1",
                "search": "?q=shoes",
            },
        },
        {
            "ip": "127.0.0.1",
            "userAgent": "curl/8.5.0",
            "page": {
                "url": f"{base_url}/orders/2?q=shoes",
                "path": "/orders/2",
                "search": "?q=shoes",
                "referrer": "https://mail.example/",
            },
        },
    ]


async def test_sync_endpoint_events_carry_their_request_context(
    collector: LocalCollector,
) -> None:
    """A def endpoint, run in Starlette's thread pool, records with its request's context."""
    async with serve_asgi(make_app(collector)) as http:
        responses = await asyncio.gather(
            *(http.post(f"/exports/{n}", headers=h) for n, h in enumerate(VISITORS))
        )

    messages = by_number(collector.messages("track"))
    assert [m["messageId"] for m in messages] == [r.json()["messageId"] for r in responses]
    assert [context_of(m)["userAgent"] for m in messages] == [h["User-Agent"] for h in VISITORS]
    assert [context_of(m)["page"]["path"] for m in messages] == [
        "/exports/0",
        "/exports/1",
        "/exports/2",
    ]


async def test_include_ip_false_leaves_the_address_out(collector: LocalCollector) -> None:
    """With include_ip=False the context has everything but the client address."""
    async with serve_asgi(make_app(collector, include_ip=False)) as http:
        await http.post("/orders/0", headers=VISITORS[2])

    [message] = collector.messages("track")
    assert "ip" not in message["context"]
    assert context_of(message)["userAgent"] == "curl/8.5.0"


async def test_oversized_headers_cannot_make_recording_fail(collector: LocalCollector) -> None:
    """Huge user agent and referrer headers are cut, so track() succeeds and the event arrives."""
    # Latin-1 bytes decode to non-ASCII characters, which JSON escapes to six bytes each.
    headers = {b"User-Agent": b"A" * 6000, b"Referer": b"https://x.example/" + b"\xe9" * 8000}
    async with serve_asgi(make_app(collector)) as http:
        response = await http.post("/orders/0", headers=headers)
    assert response.status_code == 200

    [message] = collector.messages("track")
    context = context_of(message)
    assert context["userAgent"] == "A" * 512
    assert context["page"]["referrer"].startswith("https://x.example/é")
    assert len(context["page"]["referrer"]) <= 2048 // 6


async def test_same_app_started_twice_gets_a_fresh_client(collector: LocalCollector) -> None:
    """lifespan() opens a new client on each start, since a closed client cannot reopen."""
    app = make_app(collector)
    for n in range(2):
        async with serve_asgi(app) as http:
            response = await http.post(f"/orders/{n}")
            assert response.status_code == 200

    assert [m["properties"]["n"] for m in collector.messages("track")] == [0, 1]


async def test_client_lifespan_refuses_a_second_client_on_one_app() -> None:
    """Opening client_lifespan twice on one app raises instead of replacing the first client."""
    app = Starlette()
    async with client_lifespan(app, WRITE_KEY, disable=True) as events:
        with pytest.raises(RuntimeError, match="already set"):
            async with client_lifespan(app, WRITE_KEY, disable=True):
                pass
        assert app.state.events is events


async def test_client_lifespan_removes_the_client_when_it_ends() -> None:
    """After the block, app.state.events is gone and get_client raises a clear error."""
    app = Starlette()
    async with client_lifespan(app, WRITE_KEY, disable=True):
        pass

    connection = HTTPConnection({"type": "http", "app": app, "headers": []})
    with pytest.raises(RuntimeError, match="no htevents_async client"):
        get_client(connection)


async def test_non_http_connections_pass_through_without_a_context_scope() -> None:
    """Lifespan and websocket scopes reach the app unchanged and record no request context."""
    seen: list[tuple[str, object]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((scope["type"], current_context()))

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        pass

    middleware = EventContextMiddleware(app)
    for kind in ("lifespan", "websocket"):
        await middleware({"type": kind, "headers": [], "path": "/"}, receive, send)

    assert seen == [("lifespan", None), ("websocket", None)]
