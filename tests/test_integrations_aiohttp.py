"""The aiohttp integration, through a real aiohttp server on 127.0.0.1 and the local collector."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from integration_support import CLIENT_OPTIONS, WRITE_KEY, by_number, context_of

from htevents_async import Client, Track
from htevents_async._collector import LocalCollector
from htevents_async.integrations.aiohttp import (
    CLIENT_KEY,
    client_cleanup_ctx,
    event_context_middleware,
    get_client,
)

VISITORS = [
    {"User-Agent": "Firefox/128.0", "Referer": "https://ads.example/a", "Accept-Language": "fr-CH"},
    {"User-Agent": "Safari/17.4", "Accept-Language": "en-GB;q=0.9, ja"},
    {"User-Agent": "curl/8.5.0", "Referer": "https://mail.example/"},
]


@contextlib.asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[httpx.AsyncClient]:
    """Run ``app`` on a free port until the block ends; yields an HTTP client for it.

    Leaving the block closes the HTTP client, then cleans the app up (cleanup_ctx included).
    """
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as http:
            yield http
    finally:
        await runner.cleanup()


async def create_order(request: web.Request) -> web.Response:
    """An async handler recording one track event numbered by the path."""
    n = int(request.match_info["n"])
    await get_client(request).track(user_id="u1", event="Order completed", properties={"n": n})
    return web.json_response({})


def export_blocking(events: Client, n: int) -> str:
    """Blocking code run in a worker thread, recording through enqueue_threadsafe."""
    return events.enqueue_threadsafe(
        Track(user_id="u1", event="Orders exported", properties={"n": n})
    )


async def export_orders(request: web.Request) -> web.Response:
    """A handler that hands blocking work to a thread with asyncio.to_thread."""
    n = int(request.match_info["n"])
    message_id = await asyncio.to_thread(export_blocking, get_client(request), n)
    return web.json_response({"messageId": message_id})


async def explicit_context(request: web.Request) -> web.Response:
    """A handler that passes its own context, overriding ip and page."""
    context = {"ip": "198.51.100.7", "page": {"url": "app://checkout", "path": "checkout"}}
    await get_client(request).track(user_id="u1", event="Checkout viewed", context=context)
    return web.json_response({})


async def stream(request: web.Request) -> web.StreamResponse:
    """A handler that records an event before writing each chunk of a streamed body."""
    response = web.StreamResponse()
    await response.prepare(request)
    for n in range(3):
        await get_client(request).track(user_id="u1", event="Chunk sent", properties={"n": n})
        await response.write(b"chunk\n")
    await response.write_eof()
    return response


def make_app(collector: LocalCollector, **middleware_options: Any) -> web.Application:
    """An app with the client's cleanup context, the middleware, and a sub-application."""
    app = web.Application(middlewares=[event_context_middleware(**middleware_options)])
    app.cleanup_ctx.append(client_cleanup_ctx(WRITE_KEY, host=collector.url, **CLIENT_OPTIONS))
    app.router.add_post("/orders/{n}", create_order)
    app.router.add_post("/exports/{n}", export_orders)
    app.router.add_post("/explicit", explicit_context)
    app.router.add_get("/stream", stream)
    admin = web.Application()
    admin.router.add_post("/orders/{n}", create_order)
    app.add_subapp("/admin/", admin)
    return app


async def test_handler_events_carry_their_request_context(collector: LocalCollector) -> None:
    """Concurrent requests each record their own ip, user agent, locale and page."""
    async with serve(make_app(collector)) as http:
        base_url = str(http.base_url).rstrip("/")
        await asyncio.gather(
            *(http.post(f"/orders/{n}?q=shoes", headers=h) for n, h in enumerate(VISITORS))
        )

    contexts = [context_of(m) for m in by_number(collector.messages("track"))]
    assert contexts == [
        {
            "ip": "127.0.0.1",
            "userAgent": "Firefox/128.0",
            "locale": "fr-CH",
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
            "locale": "ja",
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


async def test_to_thread_sync_code_carries_request_context(collector: LocalCollector) -> None:
    """Blocking code started with asyncio.to_thread records with its request's context."""
    async with serve(make_app(collector)) as http:
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


async def test_explicit_context_wins_over_request_context(collector: LocalCollector) -> None:
    """A call's own context keys replace the request's; the others still come from the request."""
    async with serve(make_app(collector)) as http:
        await http.post("/explicit", headers=VISITORS[0])

    [message] = collector.messages("track")
    assert context_of(message) == {
        "ip": "198.51.100.7",
        "userAgent": "Firefox/128.0",
        "locale": "fr-CH",
        "page": {"url": "app://checkout", "path": "checkout"},
    }


async def test_streamed_response_events_carry_request_context(collector: LocalCollector) -> None:
    """Events recorded between the writes of a StreamResponse carry the request context."""
    async with serve(make_app(collector)) as http:
        response = await http.get("/stream", headers=VISITORS[1])
    assert response.text == "chunk\n" * 3

    messages = collector.messages("track")
    assert [m["properties"]["n"] for m in messages] == [0, 1, 2]
    assert {context_of(m)["userAgent"] for m in messages} == {"Safari/17.4"}
    assert {context_of(m)["page"]["path"] for m in messages} == {"/stream"}


async def test_subapp_handlers_reach_the_parent_client(collector: LocalCollector) -> None:
    """A handler of a sub-application gets the parent's client and the request context."""
    async with serve(make_app(collector)) as http:
        response = await http.post("/admin/orders/7", headers=VISITORS[2])
    assert response.status_code == 200

    [message] = collector.messages("track")
    assert message["properties"] == {"n": 7}
    assert context_of(message)["page"]["path"] == "/admin/orders/7"


async def test_include_ip_false_leaves_the_address_out(collector: LocalCollector) -> None:
    """With include_ip=False the context has everything but the client address."""
    async with serve(make_app(collector, include_ip=False)) as http:
        await http.post("/orders/0", headers=VISITORS[2])

    [message] = collector.messages("track")
    assert "ip" not in message["context"]
    assert context_of(message)["userAgent"] == "curl/8.5.0"


async def test_cleanup_delivers_pending_events(collector: LocalCollector) -> None:
    """Events still queued when the app is cleaned up are delivered by the cleanup context."""
    async with serve(make_app(collector)) as http:
        for n in range(5):
            await http.post(f"/orders/{n}")
        assert collector.messages() == []  # the flush interval is an hour: nothing sent yet

    assert [m["properties"]["n"] for m in by_number(collector.messages("track"))] == [0, 1, 2, 3, 4]


async def test_later_cleanup_contexts_record_at_startup_and_cleanup(
    collector: LocalCollector,
) -> None:
    """A cleanup context appended after the client's can record events on both of its sides."""

    async def announce(app: web.Application) -> AsyncIterator[None]:
        await app[CLIENT_KEY].track(anonymous_id="shop", event="Shop started")
        yield
        await app[CLIENT_KEY].track(anonymous_id="shop", event="Shop stopping")

    app = make_app(collector)
    app.cleanup_ctx.append(announce)
    async with serve(app) as http:
        await http.post("/orders/0")

    messages = collector.messages("track")
    assert [m["event"] for m in messages] == ["Shop started", "Order completed", "Shop stopping"]
    assert "page" not in messages[0]["context"]  # recorded outside any request


async def test_get_client_without_cleanup_ctx_is_a_clear_error() -> None:
    """get_client names the missing cleanup context instead of raising a bare KeyError."""
    request = make_mocked_request("GET", "/", app=web.Application())

    with pytest.raises(RuntimeError, match="client_cleanup_ctx"):
        get_client(request)
