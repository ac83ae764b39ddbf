"""End to end in a real browser: the demo researcher logs in, filters the catalog by a
research field, opens an instrument; and the language switch turns the interface Chinese."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from labbook import demo, demo_catalog
from tests.browser.conftest import log_in

pytestmark = pytest.mark.browser

FIELD_CODE = "synbio"
FIELD_NAME = dict((code, name) for code, name, _ in demo_catalog.FIELDS)[FIELD_CODE]
EXPECTED = sum(FIELD_CODE in spec.fields.split() for spec in demo_catalog.INSTRUMENTS)


def test_catalog_filter_by_field_then_open_instrument(page: Any, tmp_path: Path) -> None:
    log_in(page, "researcher@example.org", demo.DEMO_PASSWORD)
    page.goto("/")
    page.select_option("#catalog-filters select[name=field]", label=FIELD_NAME)
    page.click("#catalog-filters button[type=submit]")
    page.wait_for_url(re.compile(r"[?&]field=\d+"))

    cards = page.locator("article.instrument-card")
    assert 0 < EXPECTED <= 50  # one page of results
    assert cards.count() == EXPECTED
    assert re.search(rf"\b{EXPECTED} instruments\b", page.inner_text("main"))
    for text in cards.all_inner_texts():
        assert FIELD_NAME in text

    link = page.locator("a.instrument-link").first
    name = link.inner_text().strip()
    link.click()
    page.wait_for_url(re.compile(r"/instruments/\d+$"))
    assert page.locator("h1").inner_text().strip() == name

    shot = tmp_path / "instrument.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.exists() and shot.stat().st_size > 0


def test_language_switch_shows_chinese_and_back(page: Any) -> None:
    # Another demo user than above: the switch is saved on the user's profile.
    log_in(page, "finance@example.org", demo.DEMO_PASSWORD)
    page.goto("/")
    nav = page.locator("nav.mainnav")
    assert "Instruments" in nav.inner_text()

    page.click("form.langswitch button[type=submit]")
    expect(page.locator("html")).to_have_attribute("lang", "zh-Hans")
    expect(nav).to_contain_text("仪器")

    page.click("form.langswitch button[type=submit]")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(nav).to_contain_text("Instruments")
