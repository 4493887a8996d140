"""The collector's live event viewer, in a real headless Chromium driven by Playwright."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from htevents_async._collector import LocalCollector

if TYPE_CHECKING:
    from playwright.async_api import Page

# Explicit rather than added by conftest, so that fixtures and parametrized tests agree.
pytestmark = pytest.mark.anyio

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"

HISTORY = [
    {"type": "identify", "userId": "alice", "traits": {"email": "alice@example.com"}},
    {"type": "page", "anonymousId": "anon-7", "name": "Pricing", "category": "Marketing"},
    {"type": "track", "userId": "alice", "event": "Signed up", "properties": {"plan": "pro"}},
    {"type": "track", "userId": "bob", "event": "Order completed", "properties": {"total": 29.99}},
    {"type": "group", "userId": "bob", "groupId": "acme"},
    {"type": "alias", "previousId": "anon-7", "userId": "carol"},
]


async def post(collector: LocalCollector, *messages: Mapping[str, Any]) -> None:
    """Deliver messages as one batch, the way the client does."""
    async with httpx.AsyncClient(base_url=collector.url) as http:
        response = await http.post(
            "/v1/batch", json={"batch": list(messages)}, auth=("viewer-test-key", "")
        )
    assert response.status_code == 200


@pytest.fixture
async def collector() -> AsyncIterator[LocalCollector]:
    """A collector that has already received a small history of every message type."""
    async with LocalCollector() as running:
        await post(running, *HISTORY)
        yield running


@pytest.fixture
async def page() -> AsyncIterator[Page]:
    """A page in headless Chromium, or a skip saying what is missing."""
    async_api = pytest.importorskip(
        "playwright.async_api", reason="Playwright is not installed (it is in the test group)"
    )
    if shutil.which(CHROMIUM) is None:
        pytest.skip(
            f"Chromium not found at {CHROMIUM}: install the Debian package `chromium` "
            "(the nox tests session does this when it runs as root)"
        )
    async with async_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1200, "height": 800})
            yield await context.new_page()
        finally:
            await browser.close()


def rows(page: Page) -> Any:
    """The locator of the event rows."""
    return page.locator("#events .event")


async def test_viewer_page_is_served(collector: LocalCollector) -> None:
    """GET / answers with the viewer's HTML."""
    async with httpx.AsyncClient(base_url=collector.url) as http:
        response = await http.get("/")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert 'id="events"' in response.text


async def test_viewer_lists_events_newest_first(collector: LocalCollector, page: Page) -> None:
    """Every received message is listed, the newest at the top."""
    from playwright.async_api import expect

    await page.goto(collector.url)

    await expect(rows(page)).to_have_count(len(HISTORY))
    types = [message["type"] for message in reversed(HISTORY)]
    await expect(rows(page).locator(".ev-type")).to_have_text(types)
    await expect(page.locator("#stats")).to_contain_text(f"{len(HISTORY)} messages")


async def test_viewer_shows_events_that_arrive_while_open(
    collector: LocalCollector, page: Page
) -> None:
    """A message received after the page loaded appears at the top without a reload."""
    from playwright.async_api import expect

    await page.goto(collector.url)
    await expect(rows(page)).to_have_count(len(HISTORY))

    await post(collector, {"type": "track", "userId": "dave", "event": "Checkout started"})

    await expect(rows(page)).to_have_count(len(HISTORY) + 1)
    await expect(rows(page).first).to_have_attribute("data-event", "Checkout started")


async def test_viewer_filters_by_type(collector: LocalCollector, page: Page) -> None:
    """Choosing a type lists only messages of that type."""
    from playwright.async_api import expect

    await page.goto(collector.url)
    await expect(rows(page)).to_have_count(len(HISTORY))

    await page.select_option("#filter-type", "track")

    await expect(rows(page)).to_have_count(2)
    await expect(rows(page).locator(".ev-type")).to_have_text(["track", "track"])


async def test_viewer_filters_by_event_name(collector: LocalCollector, page: Page) -> None:
    """Typing an event name lists only track messages with that name."""
    from playwright.async_api import expect

    await page.goto(collector.url)
    await expect(rows(page)).to_have_count(len(HISTORY))

    await page.fill("#filter-event", "Order completed")

    await expect(rows(page)).to_have_count(1)
    await expect(rows(page).first).to_have_attribute("data-user", "bob")


async def test_viewer_filters_by_user_or_anonymous_id(
    collector: LocalCollector, page: Page
) -> None:
    """Typing an id lists messages whose userId or anonymousId is that id."""
    from playwright.async_api import expect

    await page.goto(collector.url)
    await expect(rows(page)).to_have_count(len(HISTORY))

    await page.fill("#filter-user", "anon-7")

    await expect(rows(page)).to_have_count(1)
    await expect(rows(page).first).to_have_attribute("data-type", "page")


async def test_viewer_clear_button_removes_filters(collector: LocalCollector, page: Page) -> None:
    """The clear button empties every filter and lists everything again."""
    from playwright.async_api import expect

    await page.goto(f"{collector.url}/?type=alias")
    await expect(rows(page)).to_have_count(1)

    await page.click("#filter-clear")

    await expect(page.locator("#filter-type")).to_have_value("")
    await expect(rows(page)).to_have_count(len(HISTORY))


async def test_viewer_row_expands_to_pretty_json(collector: LocalCollector, page: Page) -> None:
    """Clicking a row shows the full message as indented JSON."""
    from playwright.async_api import expect

    await page.goto(f"{collector.url}/?event=Order%20completed")
    row = rows(page).first
    await expect(row).to_have_attribute("data-event", "Order completed")

    await row.locator("summary").click()

    pretty = row.locator(".event-json")
    await expect(pretty).to_be_visible()
    shown = json.loads(await pretty.text_content() or "")
    assert shown == collector.messages(event="Order completed")[0]
    await expect(pretty).to_contain_text('\n  "properties": {\n    "total": 29.99\n  }')


async def test_viewer_renders_payloads_as_text(collector: LocalCollector, page: Page) -> None:
    """Markup inside an event payload is shown as text, never interpreted."""
    from playwright.async_api import expect

    await post(collector, {"type": "track", "userId": "eve", "event": "<img src=x id=injected>"})
    await page.goto(collector.url)

    await expect(rows(page).first.locator(".ev-label")).to_have_text("<img src=x id=injected>")
    await expect(page.locator("#injected")).to_have_count(0)


async def test_viewer_screenshot(collector: LocalCollector, page: Page) -> None:
    """A screenshot of the viewer with a row expanded is saved to artifacts/viewer.png."""
    from playwright.async_api import expect

    await page.goto(collector.url)
    await expect(rows(page)).to_have_count(len(HISTORY))
    await rows(page).nth(2).locator("summary").click()
    await expect(rows(page).nth(2).locator(".event-json")).to_be_visible()

    ARTIFACTS.mkdir(exist_ok=True)
    target = ARTIFACTS / "viewer.png"
    await page.screenshot(path=str(target), full_page=True)

    assert target.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
