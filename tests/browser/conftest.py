"""Browser fixtures: the real application, migrated and seeded with the demo data on a temp
SQLite file, served on a loopback port, driven by Debian's Chromium through Playwright.

Never a downloaded browser: Playwright is pointed at the system Chromium with
``executable_path``; where none is installed the browser tests skip with a message saying
how to get one.
"""
from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask_migrate import upgrade
from werkzeug.serving import make_server

from config import TestConfig
from labbook import create_app
from labbook.demo import seed_demo
from labbook.extensions import db

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]
NO_CHROMIUM = "no Chromium: install Debian's chromium package (apt-get install chromium)"


def find_chromium() -> str | None:
    """The system Chromium, if there is one."""
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of the seeded app, served by werkzeug in a thread for the whole session."""
    path: Path = tmp_path_factory.mktemp("browser") / "labbook.sqlite3"

    class BrowserConfig(TestConfig):
        SQLALCHEMY_DATABASE_URI = f"sqlite:///{path}"

    app = create_app(BrowserConfig)
    with app.app_context():
        upgrade()
        seed_demo()
        db.session.commit()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        with app.app_context():
            db.engine.dispose()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    executable = find_chromium()
    if executable is None:
        pytest.skip(NO_CHROMIUM)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, live_server: str) -> Iterator[Any]:
    """A fresh browser context (no cookies) in English, on the live server."""
    context = browser.new_context(base_url=live_server, locale="en-US")
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def log_in(page: Any, email: str, password: str) -> None:
    """Fill in the login form like a user and wait for the catalog."""
    page.goto("/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    # The header's language switch is a submit button too: use the login form's own.
    page.click("form:has(input[name=password]) button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)
