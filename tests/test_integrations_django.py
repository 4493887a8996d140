"""The Django integration under real servers: gunicorn (WSGI, two workers) and uvicorn (ASGI)."""

from __future__ import annotations

import pytest
from integration_support import REQUESTS, VISITORS, by_number, context_of, expected_context
from servers import free_port, serve

from htevents_async._collector import LocalCollector

pytest.importorskip("django")
pytest.importorskip("gunicorn")


async def _exercise(collector: LocalCollector, argv: list[str], port: int) -> set[int]:
    env = {"DJANGO_SETTINGS_MODULE": "sites.djangosite", "HT_COLLECTOR": collector.url}
    pids = set()
    async with serve(argv, port, env) as http:
        for n in range(REQUESTS):
            response = await http.get(
                f"/orders/{n}", params={"src": f"t{n}"}, headers=VISITORS[n % len(VISITORS)]
            )
            assert response.status_code == 200, response.text
            pids.add(response.json()["pid"])
        # Nothing is sent while the server runs (flush_interval is an hour).
        assert collector.messages() == []
    # The server stopped with SIGTERM: each worker delivered its events as it exited.
    messages = by_number(await collector.wait_for(REQUESTS))
    assert [m["properties"]["n"] for m in messages] == list(range(REQUESTS))
    for n, message in enumerate(messages):
        assert context_of(message) == expected_context(n, port)
    return pids


async def test_gunicorn_workers_deliver_with_request_context(collector: LocalCollector) -> None:
    """gunicorn, two sync workers forked from a master that loaded the site (--preload):
    every event arrives with its request's context."""
    port = free_port()
    argv = ["gunicorn", "--workers", "2", "--preload", "--bind", f"127.0.0.1:{port}"]
    await _exercise(collector, [*argv, "sites.djangosite:application"], port)


async def test_uvicorn_asgi_delivers_with_request_context(collector: LocalCollector) -> None:
    """uvicorn serving the ASGI app with its lifespan: sync views see the context; SIGTERM
    (whose re-raise skips atexit) still delivers, through the lifespan shutdown."""
    port = free_port()
    argv = ["uvicorn", "--port", str(port), "--lifespan", "on", "--log-level", "warning"]
    await _exercise(collector, [*argv, "sites.djangosite:asgi_application"], port)
