"""The Flask extension under gunicorn with two sync workers."""

from __future__ import annotations

import pytest
from integration_support import REQUESTS, VISITORS, by_number, context_of, expected_context
from servers import free_port, serve

from htevents_async._collector import LocalCollector

pytest.importorskip("flask")
pytest.importorskip("gunicorn")


async def test_gunicorn_workers_deliver_with_request_context(collector: LocalCollector) -> None:
    """Every event arrives with its request's context once gunicorn stops with SIGTERM."""
    port = free_port()
    argv = ["gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{port}", "sites.flasksite:app"]
    async with serve(argv, port, {"HT_COLLECTOR": collector.url}) as http:
        for n in range(REQUESTS):
            response = await http.get(
                f"/orders/{n}", params={"src": f"t{n}"}, headers=VISITORS[n % len(VISITORS)]
            )
            assert response.status_code == 200, response.text
        assert collector.messages() == []
    messages = by_number(await collector.wait_for(REQUESTS))
    assert [m["properties"]["n"] for m in messages] == list(range(REQUESTS))
    for n, message in enumerate(messages):
        assert context_of(message) == expected_context(n, port)
