"""The FastAPI integration, through a real uvicorn server on 127.0.0.1 and the local collector."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import BackgroundTasks, FastAPI
from fastapi.responses import StreamingResponse
from integration_support import CLIENT_OPTIONS, WRITE_KEY, context_of
from starlette.requests import HTTPConnection
from uvicornserver import serve_asgi

from htevents_async import Track
from htevents_async._collector import LocalCollector
from htevents_async.integrations.fastapi import (
    EventContextMiddleware,
    Events,
    client_lifespan,
    get_client,
    lifespan,
)

# Three visitors, told apart by every header the middleware reads.
VISITORS = [
    {"User-Agent": "Firefox/128.0", "Referer": "https://ads.example/a", "Accept-Language": "fr-CH"},
    {"User-Agent": "Safari/17.4", "Referer": "https://mail.example/", "Accept-Language": "en-GB"},
    {"User-Agent": "curl/8.5.0"},
]


def make_app(collector: LocalCollector) -> FastAPI:
    """An app with the ready-made lifespan, the middleware, and endpoints that record events."""
    app = FastAPI(lifespan=lifespan(WRITE_KEY, host=collector.url, **CLIENT_OPTIONS))
    app.add_middleware(EventContextMiddleware)

    @app.post("/orders/{n}")
    async def create_order(n: int, events: Events) -> dict[str, str]:
        message_id = await events.track(user_id="u1", event="Order completed", properties={"n": n})
        return {"messageId": message_id}

    @app.post("/sync-orders/{n}")
    def create_order_sync(n: int, events: Events) -> dict[str, str]:
        message = Track(user_id="u1", event="Order exported", properties={"n": n})
        return {"messageId": events.enqueue_threadsafe(message)}

    @app.post("/explicit")
    async def explicit_context(events: Events) -> dict[str, str]:
        context = {"ip": "198.51.100.7", "page": {"url": "app://checkout", "path": "checkout"}}
        await events.track(user_id="u1", event="Checkout viewed", context=context)
        return {}

    @app.get("/stream")
    async def stream(events: Events) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            for n in range(3):
                await events.track(user_id="u1", event="Chunk sent", properties={"n": n})
                yield b"chunk\n"

        return StreamingResponse(body())

    @app.post("/receipt")
    def send_receipt(events: Events, tasks: BackgroundTasks) -> dict[str, str]:
        tasks.add_task(events.enqueue_threadsafe, Track(user_id="u1", event="Receipt sent"))
        return {}

    return app


def request_context(base_url: str, path: str, headers: dict[str, str]) -> dict[str, Any]:
    """The context the middleware should record for a request from httpx to ``path``."""
    page: dict[str, str] = {"url": base_url + path, "path": path.partition("?")[0]}
    if "?" in path:
        page["search"] = "?" + path.partition("?")[2]
    if "Referer" in headers:
        page["referrer"] = headers["Referer"]
    context: dict[str, Any] = {"ip": "127.0.0.1", "userAgent": headers["User-Agent"]}
    if "Accept-Language" in headers:
        context["locale"] = headers["Accept-Language"]
    context["page"] = page
    return context


async def test_async_endpoint_events_carry_their_request_context(
    collector: LocalCollector,
) -> None:
    """Concurrent requests to an async endpoint each record their own ip, agent, locale, page."""
    async with serve_asgi(make_app(collector)) as http:
        base_url = str(http.base_url).rstrip("/")
        responses = await asyncio.gather(
            *(
                http.post(f"/orders/{n}?utm_source=n{n}", headers=headers)
                for n, headers in enumerate(VISITORS)
            )
        )
    assert [response.status_code for response in responses] == [200, 200, 200]

    messages = sorted(collector.messages("track"), key=lambda m: m["properties"]["n"])
    assert [context_of(m) for m in messages] == [
        request_context(base_url, f"/orders/{n}?utm_source=n{n}", headers)
        for n, headers in enumerate(VISITORS)
    ]


async def test_sync_endpoint_events_carry_their_request_context(
    collector: LocalCollector,
) -> None:
    """enqueue_threadsafe events from a def endpoint, run in the thread pool, carry the context."""
    async with serve_asgi(make_app(collector)) as http:
        base_url = str(http.base_url).rstrip("/")
        responses = await asyncio.gather(
            *(http.post(f"/sync-orders/{n}", headers=h) for n, h in enumerate(VISITORS))
        )
    ids = [response.json()["messageId"] for response in responses]

    messages = sorted(collector.messages("track"), key=lambda m: m["properties"]["n"])
    assert [m["messageId"] for m in messages] == ids
    assert [context_of(m) for m in messages] == [
        request_context(base_url, f"/sync-orders/{n}", headers)
        for n, headers in enumerate(VISITORS)
    ]


async def test_explicit_context_wins_over_request_context(collector: LocalCollector) -> None:
    """A call's own context keys replace the request's; the others still come from the request."""
    async with serve_asgi(make_app(collector)) as http:
        await http.post("/explicit", headers=VISITORS[0])

    [message] = collector.messages("track")
    assert context_of(message) == {
        "ip": "198.51.100.7",
        "userAgent": "Firefox/128.0",
        "locale": "fr-CH",
        "page": {"url": "app://checkout", "path": "checkout"},
    }


async def test_streamed_response_events_carry_request_context(collector: LocalCollector) -> None:
    """Events recorded while a StreamingResponse body is being sent carry the request context."""
    async with serve_asgi(make_app(collector)) as http:
        base_url = str(http.base_url).rstrip("/")
        response = await http.get("/stream", headers=VISITORS[1])
    assert response.text == "chunk\n" * 3

    messages = collector.messages("track")
    assert [m["properties"]["n"] for m in messages] == [0, 1, 2]
    expected = request_context(base_url, "/stream", VISITORS[1])
    assert all(context_of(m) == expected for m in messages)


async def test_background_task_events_carry_request_context(collector: LocalCollector) -> None:
    """A sync background task, run after the response, still records with the request context."""
    async with serve_asgi(make_app(collector)) as http:
        base_url = str(http.base_url).rstrip("/")
        await http.post("/receipt", headers=VISITORS[2])

    [message] = collector.messages("track")
    assert message["event"] == "Receipt sent"
    assert context_of(message) == request_context(base_url, "/receipt", VISITORS[2])


async def test_app_shutdown_delivers_pending_events(collector: LocalCollector) -> None:
    """Events still queued when the app stops are delivered by the lifespan's shutdown."""
    async with serve_asgi(make_app(collector)) as http:
        for n in range(5):
            await http.post(f"/orders/{n}")
        assert collector.messages() == []  # the flush interval is an hour: nothing sent yet

    assert sorted(m["properties"]["n"] for m in collector.messages("track")) == [0, 1, 2, 3, 4]


async def test_client_lifespan_composes_with_the_app_lifespan(collector: LocalCollector) -> None:
    """Inside the app's own lifespan, client_lifespan gives a client for startup and handlers."""
    started: list[str] = []

    @contextlib.asynccontextmanager
    async def app_lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with client_lifespan(app, WRITE_KEY, host=collector.url, **CLIENT_OPTIONS) as events:
            started.append(await events.track(anonymous_id="shop", event="Shop started"))
            yield
            await events.track(anonymous_id="shop", event="Shop stopping")

    app = FastAPI(lifespan=app_lifespan)
    app.add_middleware(EventContextMiddleware)

    @app.post("/orders")
    async def create_order(events: Events) -> dict[str, bool]:
        await events.track(user_id="u1", event="Order completed")
        return {"same": events is app.state.events}

    async with serve_asgi(app) as http:
        base_url = str(http.base_url).rstrip("/")
        response = await http.post("/orders", headers=VISITORS[0])
    assert response.json() == {"same": True}

    messages = collector.messages("track")
    assert [m["event"] for m in messages] == ["Shop started", "Order completed", "Shop stopping"]
    assert messages[0]["messageId"] == started[0]
    assert "page" not in messages[0]["context"]  # recorded outside any request
    assert messages[1]["context"]["page"]["url"] == base_url + "/orders"


async def test_events_dependency_without_a_client_is_a_clear_error() -> None:
    """The dependency names the missing lifespan instead of failing with an AttributeError."""
    connection = HTTPConnection({"type": "http", "app": FastAPI(), "headers": []})

    with pytest.raises(RuntimeError, match=r"no htevents_async client on app\.state\.events"):
        await get_client(connection)
