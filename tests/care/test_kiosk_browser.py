"""The kiosk flow in a real browser (Debian's Chromium through Playwright): on the tablet's
kiosk link a researcher walks in with email + PIN, the screen shows the instrument in use
under their first name, then they check out and the screen is free again.

The app runs on its own migrated SQLite file with its own small scene (a facility without
opening hours, so the walk-in works whatever the time of day), served on a loopback port.
Playwright's sync API allows one instance per thread, and tests/browser keeps its Chromium
open for the whole session, so this test drives its own Chromium from a thread of its own."""
from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask_migrate import upgrade
from playwright.sync_api import expect
from werkzeug.serving import make_server

from config import TestConfig
from labbook import create_app
from labbook.care import kiosk
from labbook.extensions import db
from tests import factories
from tests.browser.conftest import CHROMIUM_ARGS, NO_CHROMIUM, find_chromium

pytestmark = pytest.mark.browser
PIN = "4725"


@pytest.fixture(scope="module")
def kiosk_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    path: Path = tmp_path_factory.mktemp("kiosk") / "labbook.sqlite3"

    class KioskConfig(TestConfig):
        SQLALCHEMY_DATABASE_URI = f"sqlite:///{path}"

    app = create_app(KioskConfig)
    with app.app_context():
        upgrade()
        facility = factories.make_facility()
        facility.opening_hours = []
        instrument = factories.make_instrument(facility, name="Bruker D8", min_minutes=30)
        manager = factories.make_user_with_role("facility_manager", facility=facility)
        user = factories.make_booker(instrument, name="Grace Hopper")
        kiosk.set_pin(user, PIN, PIN)
        _, secret = kiosk.create_link(manager, instrument, "Tablet")
        email = user.email
        db.session.commit()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="kiosk-server", daemon=True)
    thread.start()
    try:
        yield {"base": f"http://127.0.0.1:{server.server_port}", "secret": secret,
               "email": email}
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        with app.app_context():
            db.engine.dispose()


def identify(page: Any, email: str, pin: str) -> None:
    page.fill("input[name=email]", email)
    page.fill("input[name=pin]", pin)


def in_own_thread(work: Callable[[], None], timeout: float = 180) -> None:
    """Run ``work`` in a new thread (its own Playwright) and re-raise what it raised."""
    failures: list[BaseException] = []

    def runner() -> None:
        try:
            work()
        except BaseException as error:  # noqa: BLE001 - re-raised in the test's thread
            failures.append(error)

    thread = threading.Thread(target=runner, name="kiosk-browser")
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "the browser scenario did not finish"
    if failures:
        raise failures[0]


def test_kiosk_walk_in_and_check_out(kiosk_server: dict[str, str]) -> None:
    executable = find_chromium()
    if executable is None:
        pytest.skip(NO_CHROMIUM)

    def scenario() -> None:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable,
                                                 args=CHROMIUM_ARGS, headless=True)
            try:
                walk_in_and_check_out(browser, kiosk_server)
            finally:
                browser.close()

    in_own_thread(scenario)


def walk_in_and_check_out(browser: Any, kiosk_server: dict[str, str]) -> None:
    context = browser.new_context(base_url=kiosk_server["base"], locale="en-US",
                                  viewport={"width": 1024, "height": 768}, has_touch=True)
    context.set_default_timeout(20_000)
    page = context.new_page()
    idle = f"/kiosk/{kiosk_server['secret']}"
    try:
        page.goto(idle)
        expect(page.locator("h1")).to_have_text("Bruker D8")
        expect(page.locator("#kiosk-state")).to_have_text("Free")

        page.click("#kiosk-walk-in")
        identify(page, kiosk_server["email"], "0000")
        page.click("#kiosk-submit")
        expect(page.locator("#kiosk-error")).to_contain_text("Email or PIN not recognised.")

        identify(page, kiosk_server["email"], PIN)
        page.select_option("select[name=minutes]", "60")
        page.click("#kiosk-submit")
        expect(page.locator("#kiosk-done")).to_contain_text("Walk-in started")

        # The confirmation returns to the idle screen by itself (Refresh header).
        page.wait_for_url(re.compile(re.escape(idle) + "$"))
        expect(page.locator("#kiosk-state")).to_have_text("In use")
        expect(page.locator("#kiosk-who")).to_contain_text("Grace")
        assert "Hopper" not in page.inner_text("#kiosk-now")
        expect(page.locator("#kiosk-walk-in")).to_have_count(0)

        page.click("#kiosk-check-out")
        identify(page, kiosk_server["email"], PIN)
        page.click("#kiosk-submit")
        expect(page.locator("#kiosk-done")).to_contain_text("Checked out")
        page.click("#kiosk-back")
        expect(page.locator("#kiosk-state")).to_have_text("Free")
    finally:
        context.close()
