"""In a real browser (Debian's Chromium): the demo researcher gets a calendar link on an
instrument's page; the copy buttons work under the Content-Security-Policy (no inline
script) and the link serves the calendar."""
from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from labbook import demo
from tests.browser.conftest import browser, live_server, log_in, page  # noqa: F401

pytestmark = pytest.mark.browser


def test_browser_get_a_link_and_copy_it(page: Any) -> None:  # noqa: F811
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text)
            if message.type == "error" else None)
    log_in(page, "researcher@example.org", demo.DEMO_PASSWORD)
    page.goto("/")
    page.locator("a.instrument-link").first.click()
    page.wait_for_url(re.compile(r"/instruments/\d+$"))
    panel = page.locator("#calendar-feeds")
    expect(panel).to_be_visible()
    panel.locator("[id^=feed-instrument-] button[type=submit]").click()

    url_field = page.locator("#feed-url")
    expect(url_field).to_be_visible()
    url = url_field.input_value()
    assert re.fullmatch(r"https?://[^/]+/feeds/[A-Za-z0-9_-]{43}\.ics", url)
    assert page.locator("#feed-webcal").input_value() == "webcal://" + url.split("://", 1)[1]
    copy = page.locator("button[data-copy=feed-url]")
    expect(copy).to_be_visible()  # shown by labbook/static/js/feeds.js
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    copy.click()
    expect(copy).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == url
    assert errors == []  # in particular no CSP violation

    response = page.request.get("/feeds/" + url.rsplit("/", 1)[1])
    assert response.status == 200
    assert response.headers["content-type"] == "text/calendar; charset=utf-8"
    assert response.body().startswith(b"BEGIN:VCALENDAR\r\n")
