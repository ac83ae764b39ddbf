"""In a real browser (Debian's Chromium): the demo researcher gets a calendar link on an
instrument's page; the copy buttons work under the Content-Security-Policy (no inline
script) and the link serves the calendar.

tests/browser keeps one Playwright (sync API) running for the whole session, and a second
one cannot start in the same thread, so this test drives its own browser from a thread of
its own.
"""
from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any

import pytest

from labbook import demo
from tests.browser.conftest import CHROMIUM_ARGS, NO_CHROMIUM, find_chromium, live_server, log_in

pytestmark = pytest.mark.browser
__all__ = ["live_server"]  # the fixture, imported so that this module can use it


def in_own_thread(work: Callable[[], None], timeout: float = 120) -> None:
    """Run ``work`` in a new thread and re-raise what it raised."""
    failures: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as error:  # noqa: BLE001 - handed back to the test
            failures.append(error)

    thread = threading.Thread(target=run, name="feeds-browser")
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "the browser did not finish in time"
    if failures:
        raise failures[0]


def get_link_and_copy(page: Any) -> None:
    from playwright.sync_api import expect

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
    copy.click()
    expect(copy).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == url
    assert errors == []  # in particular no CSP violation

    response = page.request.get("/feeds/" + url.rsplit("/", 1)[1])
    assert response.status == 200
    assert response.headers["content-type"] == "text/calendar; charset=utf-8"
    assert response.body().startswith(b"BEGIN:VCALENDAR\r\n")


def test_browser_get_a_link_and_copy_it(live_server: str) -> None:  # noqa: F811
    executable = find_chromium()
    if executable is None:
        pytest.skip(NO_CHROMIUM)

    def work() -> None:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable,
                                                 args=CHROMIUM_ARGS, headless=True)
            try:
                context = browser.new_context(base_url=live_server, locale="en-US")
                context.set_default_timeout(15_000)
                context.grant_permissions(["clipboard-read", "clipboard-write"])
                get_link_and_copy(context.new_page())
            finally:
                browser.close()

    in_own_thread(work)
