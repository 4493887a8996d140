"""The collector's live event viewer, in a real headless Chromium driven by Playwright."""

from __future__ import annotations

import datetime as dt
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
# Screenshots land here (git-ignored) for a person to look at after a run.
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def _stamp(seconds_ago: float) -> str:
    when = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=seconds_ago)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _context(path: str, ip: str, locale: str) -> dict[str, Any]:
    return {"page": {"path": path}, "ip": ip, "locale": locale}


HISTORY = [
    {
        "type": "identify",
        "userId": "alice",
        "traits": {"email": "alice@example.com"},
        "timestamp": _stamp(9),
        "context": _context("/signup", "203.0.113.7", "en-GB"),
    },
    {
        "type": "page",
        "anonymousId": "anon-7",
        "name": "Pricing",
        "category": "Marketing",
        "timestamp": _stamp(8),
        "context": _context("/pricing", "198.51.100.23", "fr-FR"),
    },
    {
        "type": "track",
        "userId": "alice",
        "event": "Signed up",
        "properties": {"plan": "pro"},
        "timestamp": _stamp(6),
        "context": _context("/signup", "203.0.113.7", "en-GB"),
    },
    {
        "type": "track",
        "userId": "bob",
        "event": "Order completed",
        "properties": {"total": 29.99},
        "timestamp": _stamp(4),
        "context": _context("/checkout/confirm", "192.0.2.44", "de-DE"),
    },
    {"type": "group", "userId": "bob", "groupId": "acme", "timestamp": _stamp(3)},
    {"type": "alias", "previousId": "anon-7", "userId": "carol", "timestamp": _stamp(1)},
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


async def shoot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """Save a screenshot to tests/artifacts/NAME.png and check it is a PNG."""
    ARTIFACTS.mkdir(exist_ok=True)
    target = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(target), full_page=full_page)
    assert target.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    return target


async def test_viewer_screenshot(collector: LocalCollector, page: Page) -> None:
    """A screenshot of the viewer with a row expanded is saved to tests/artifacts/viewer.png."""
    from playwright.async_api import expect

    await page.goto(collector.url)
    await expect(rows(page)).to_have_count(len(HISTORY))
    await post(
        collector,
        *(
            {"type": "track", "userId": f"user-{n}", "event": "Item viewed", "timestamp": _stamp(0)}
            for n in range(12)
        ),
    )
    await expect(page.locator("#chart rect.bar").first).to_be_attached()
    await rows(page).nth(2).locator("summary").click()
    await expect(rows(page).nth(2).locator(".event-json")).to_be_visible()

    await shoot(page, "viewer")


# --- columns, times, context -----------------------------------------------------------------


async def test_viewer_has_column_headers(collector: LocalCollector, page: Page) -> None:
    """The list has a header row naming each column."""
    from playwright.async_api import expect

    await page.goto(collector.url)

    await expect(page.locator(".cols > span")).to_have_text(
        ["Time (UTC)", "Type", "Event / name", "User", "Context", "Received"]
    )


async def test_viewer_shows_the_event_timestamp_with_its_date(
    collector: LocalCollector, page: Page
) -> None:
    """A backfilled event shows its own date and time, and how much later it arrived."""
    from playwright.async_api import expect

    await post(
        collector,
        {
            "type": "track",
            "userId": "old",
            "event": "Imported order",
            "timestamp": "2024-02-29T10:11:12.345+01:00",
        },
    )
    await page.goto(collector.url)
    row = rows(page).first

    await expect(row.locator(".ev-time")).to_have_text("2024-02-29 09:11:12.345")
    await expect(row.locator(".ev-received")).to_have_class("ev-received late")
    await expect(row.locator(".ev-received")).to_contain_text(" d later")
    received = collector.messages()[-1]["receivedAt"]
    await expect(row.locator(".ev-time")).to_have_attribute(
        "title", f"timestamp 2024-02-29T10:11:12.345+01:00\nreceived {received}"
    )
    await shoot(page, "viewer-backfill", full_page=False)


async def test_viewer_shows_request_context_without_expanding(
    collector: LocalCollector, page: Page
) -> None:
    """Page path, ip and locale are visible on the collapsed row."""
    from playwright.async_api import expect

    await page.goto(f"{collector.url}/?event=Order%20completed")
    context = rows(page).first.locator(".ev-context")

    await expect(context).to_be_visible()
    await expect(context.locator("span")).to_have_text(["/checkout/confirm", "192.0.2.44", "de-DE"])


# --- filters ---------------------------------------------------------------------------------


async def test_viewer_filters_are_case_insensitive_substrings(
    collector: LocalCollector, page: Page
) -> None:
    """Part of a name in any case matches, and the placeholders say so."""
    from playwright.async_api import expect

    await page.goto(collector.url)
    await expect(rows(page)).to_have_count(len(HISTORY))
    await expect(page.locator("#filter-event")).to_have_attribute(
        "placeholder", "event name contains (any case)"
    )

    await page.fill("#filter-event", "ORDER")
    await expect(rows(page)).to_have_count(1)
    await expect(rows(page).first).to_have_attribute("data-event", "Order completed")

    await page.fill("#filter-event", "")
    await page.fill("#filter-user", "ANON")
    await expect(rows(page)).to_have_count(1)
    await expect(rows(page).first).to_have_attribute("data-user", "anon-7")


# --- paging ----------------------------------------------------------------------------------


async def test_viewer_pages_past_500_rows(collector: LocalCollector, page: Page) -> None:
    """With more than a page of events, older pages load on demand until none are left."""
    from playwright.async_api import expect

    await post(
        collector, *({"type": "track", "userId": "u", "event": f"E{n}"} for n in range(1_200))
    )
    total = len(HISTORY) + 1_200
    await page.goto(collector.url)
    await expect(rows(page)).to_have_count(500)
    await expect(rows(page).first).to_have_attribute("data-event", "E1199")
    await page.locator("#older").scroll_into_view_if_needed()
    await shoot(page, "viewer-paging", full_page=False)

    await page.click("#older")
    await expect(rows(page)).to_have_count(1_000)
    await page.click("#older")
    await expect(rows(page)).to_have_count(total)

    await expect(rows(page).last).to_have_attribute("data-type", "identify")
    await expect(page.locator("#older")).to_be_hidden()
    seqs = await rows(page).evaluate_all("rows => rows.map(r => Number(r.dataset.seq))")
    assert seqs == list(range(total, 0, -1))


# --- layout ----------------------------------------------------------------------------------


async def test_viewer_uses_the_full_width(collector: LocalCollector, page: Page) -> None:
    """On a wide screen the table spans the window, less the page's padding."""
    from playwright.async_api import expect

    await page.set_viewport_size({"width": 1800, "height": 900})
    await page.goto(collector.url)
    await expect(rows(page)).to_have_count(len(HISTORY))

    box = await page.locator("#table").bounding_box()
    assert box is not None
    assert box["width"] > 1700


async def test_viewer_keeps_event_names_visible_on_narrow_screens(
    collector: LocalCollector, page: Page
) -> None:
    """On a phone-sized screen each row still shows its event name, inside the window."""
    from playwright.async_api import expect

    await page.set_viewport_size({"width": 390, "height": 844})
    await page.goto(collector.url)
    await expect(rows(page)).to_have_count(len(HISTORY))

    label = page.locator('#events .event[data-event="Order completed"] .ev-label')
    await expect(label).to_be_visible()
    await expect(label).to_have_text("Order completed")
    box = await label.bounding_box()
    assert box is not None
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= 390
    assert box["width"] >= 120
    await expect(page.locator(".cols")).to_be_hidden()
    page_width = await page.evaluate("document.documentElement.scrollWidth")
    assert page_width <= 390

    await shoot(page, "viewer-narrow")


# --- chart, counts, retention, icon ----------------------------------------------------------


async def test_viewer_charts_events_per_second_by_type(
    collector: LocalCollector, page: Page
) -> None:
    """Events arriving while the page is open draw bars, coloured by type, in the chart."""
    from playwright.async_api import expect

    await page.goto(collector.url)
    await expect(page.locator('#legend li[data-type="track"]')).to_have_attribute("data-count", "2")

    await post(collector, *({"type": "page", "userId": "u", "name": "Home"} for _ in range(5)))

    await expect(page.locator('#chart rect.bar[data-type="page"]').first).to_be_attached()
    await expect(page.locator('#legend li[data-type="page"]')).to_have_attribute("data-count", "6")
    await expect(page.locator("#chart rect.bar[data-type=track]")).to_have_count(0)


async def test_viewer_shows_limits_evictions_and_duplicates(page: Page) -> None:
    """The header shows the retention limits, what left memory, and duplicates dropped."""
    from playwright.async_api import expect

    async with LocalCollector(max_messages=4) as small:
        message = {"type": "track", "userId": "u", "event": "Again", "messageId": "same"}
        await post(small, *HISTORY)
        await post(small, message, message)
        await page.goto(small.url)

        await expect(rows(page)).to_have_count(4)
        await expect(page.locator("#retention")).to_contain_text("4 of max 4 messages")
        await expect(page.locator("#retention")).to_contain_text("3 older ones left memory")
        await expect(page.locator("#retention")).to_contain_text("of max 64.0 MiB")
        await expect(page.locator("#stats")).to_contain_text("1 duplicate dropped")
        await shoot(page, "viewer-limits", full_page=False)


async def test_viewer_has_a_favicon(collector: LocalCollector, page: Page) -> None:
    """The page links an icon that the browser loads."""
    from playwright.async_api import expect

    await page.goto(collector.url)

    await expect(page.locator('link[rel="icon"]')).to_have_attribute("href", "/favicon.svg")
    loaded = await page.evaluate(
        "() => new Promise(resolve => { const img = new Image();"
        " img.onload = () => resolve(img.naturalWidth); img.onerror = () => resolve(0);"
        " img.src = '/favicon.svg'; })"
    )
    assert loaded > 0
