"""Catalog pages: the filtered instrument list, the instrument page and the facility pages."""
from __future__ import annotations

from datetime import datetime, time, timezone
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from labbook.extensions import db
from labbook.instruments.models import OpeningHours
from tests import factories
from tests.instruments import page


@pytest.fixture
def catalog(app):
    """Two platforms, two facilities, two fields and four instruments that differ in every
    filterable attribute."""
    p1 = factories.make_platform(name="Center of Excellence")
    p2 = factories.make_platform(name="Industry Center")
    f1 = factories.make_facility(p1, name="Electron Microscopy Core")
    f2 = factories.make_facility(p2, name="Bio Core")
    materials = factories.make_field(name="Functional Materials", name_zh="功能材料")
    biology = factories.make_field(name="Synthetic Biology")
    items = SimpleNamespace(p1=p1, p2=p2, f1=f1, f2=f2, materials=materials, biology=biology)
    items.sem = factories.make_instrument(f1, name="Zeiss Sigma SEM", category="SEM", make="Zeiss",
                                          asset_code="EM-001", fields=[materials])
    items.tem = factories.make_instrument(f1, name="JEOL TEM", category="TEM", make="JEOL",
                                          status="down", fields=[materials, biology])
    items.flow = factories.make_instrument(f2, name="BD Flow Cytometer", category="Flow cytometer",
                                           make="BD", description="Sorts cells", fields=[biology])
    items.seq = factories.make_instrument(f2, name="Illumina Sequencer", category="Sequencer",
                                          make="Illumina", status="limited", fields=[biology])
    db.session.commit()
    return items


def _names(response) -> list[str]:
    return page(response).texts("a", "instrument-link")


def test_catalog_lists_every_instrument_in_cards(client, login_as, catalog):
    login_as("researcher")
    response = client.get("/")
    html = page(response)
    assert response.status_code == 200
    assert sorted(_names(response)) == sorted(["Zeiss Sigma SEM", "JEOL TEM", "BD Flow Cytometer",
                                               "Illumina Sequencer"])
    card = next(c for c in html.find("article", "instrument-card") if "JEOL TEM" in c.text)
    assert "TEM" in card.text and "Electron Microscopy Core" in card.text
    assert "Functional Materials" in card.text and "Synthetic Biology" in card.text
    assert html.one("span", "status-down").text == "Down"
    assert html.one(cls="result-count").text.startswith("4 instruments")
    assert html.find(id_="ignored-filters") == [] and html.find("p", "error") == []


def test_catalog_filter_form_keeps_the_browser_test_contract(client, login_as, catalog):
    login_as("researcher")
    html = page(client.get("/"))
    form = html.one("form", id_="catalog-filters")
    assert form.attrs["method"] == "get"
    for name in ("field", "platform", "facility", "category", "status"):
        assert len(html.find("select", name=name)) == 1, name
    assert html.find("input", name="q")
    assert html.find("button", type="submit")
    options = html.texts("option")
    assert "Functional Materials" in options and "All" in options
    link = html.find("a", "instrument-link")[0]
    assert link.attrs["href"].startswith("/instruments/")


FILTERS = {
    "field": (lambda c: {"field": c.materials.id}, ["JEOL TEM", "Zeiss Sigma SEM"]),
    "platform": (lambda c: {"platform": c.p2.id}, ["BD Flow Cytometer", "Illumina Sequencer"]),
    "facility": (lambda c: {"facility": c.f1.id}, ["JEOL TEM", "Zeiss Sigma SEM"]),
    "category": (lambda c: {"category": "Sequencer"}, ["Illumina Sequencer"]),
    "status": (lambda c: {"status": "down"}, ["JEOL TEM"]),
    "q_name": (lambda c: {"q": "sigma"}, ["Zeiss Sigma SEM"]),
    "q_asset_code": (lambda c: {"q": "em-001"}, ["Zeiss Sigma SEM"]),
    "q_make": (lambda c: {"q": "ILLUMINA"}, ["Illumina Sequencer"]),
    "q_description": (lambda c: {"q": "cells"}, ["BD Flow Cytometer"]),
    "combined": (lambda c: {"field": c.biology.id, "platform": c.p1.id, "status": "down"},
                 ["JEOL TEM"]),
    "combined_empty": (lambda c: {"field": c.materials.id, "platform": c.p2.id}, []),
}


@pytest.mark.parametrize("name", FILTERS)
def test_catalog_filter_narrows_results(client, login_as, catalog, name):
    login_as("researcher")
    build, expected = FILTERS[name]
    response = client.get("/", query_string=build(catalog))
    assert response.status_code == 200
    assert sorted(_names(response)) == expected
    assert page(response).find(id_="ignored-filters") == []


def test_catalog_selected_filters_stay_selected(client, login_as, catalog):
    login_as("researcher")
    html = page(client.get("/", query_string={"field": catalog.biology.id, "q": "illu"}))
    selected = [o for o in html.find("option") if "selected" in o.attrs]
    chosen = [o.text for o in selected if o.attrs["value"] == str(catalog.biology.id)]
    assert chosen == ["Synthetic Biology"]
    assert html.one("input", name="q").attrs["value"] == "illu"


def test_catalog_shows_empty_state_when_nothing_matches(client, login_as, catalog):
    login_as("researcher")
    html = page(client.get("/", query_string={"q": "no such instrument"}))
    assert html.find("article", "instrument-card") == []
    assert "No instruments match" in html.one(id_="no-results").text


@pytest.mark.parametrize("args", [
    {"field": "abc"}, {"field": "999999"}, {"platform": "-1"}, {"facility": "1.5"},
    {"status": "broken"}, {"category": "Time machine"}, {"q": "x" * 201},
])
def test_catalog_ignores_bad_filter_values_with_a_message(client, login_as, catalog, args):
    login_as("researcher")
    response = client.get("/", query_string=args)
    html = page(response)
    assert response.status_code == 200
    assert html.one(id_="ignored-filters").text.startswith("Some filters were not understood")
    assert len(_names(response)) == 4


def test_catalog_ignores_only_the_bad_filter(client, login_as, catalog):
    login_as("researcher")
    response = client.get("/", query_string={"status": "broken", "facility": catalog.f2.id})
    assert page(response).one(id_="ignored-filters").text == (
        "Some filters were not understood and have been ignored: Status: Not a valid choice.")
    assert sorted(_names(response)) == ["BD Flow Cytometer", "Illumina Sequencer"]


def test_catalog_paginates_and_keeps_filters(client, login_as, app, monkeypatch):
    monkeypatch.setitem(app.config, "LABBOOK_PAGE_SIZE", 2)
    facility, other = factories.make_facility(), factories.make_facility()
    for n in range(5):
        factories.make_instrument(facility, name=f"Kept {n}")
    factories.make_instrument(other, name="Elsewhere")
    db.session.commit()
    login_as("researcher")
    first = client.get("/", query_string={"facility": facility.id})
    assert _names(first) == ["Kept 0", "Kept 1"]
    next_href = page(first).one("a", rel="next").attrs["href"]
    assert f"facility={facility.id}" in next_href and "page=2" in next_href
    last = client.get("/", query_string={"facility": facility.id, "page": 3})
    assert _names(last) == ["Kept 4"]
    assert page(last).find("a", rel="next") == []
    assert page(last).one("a", rel="prev").attrs["href"].count(f"facility={facility.id}") == 1


@pytest.mark.parametrize("value", ["abc", "-3", "0", "99999999999999999999999"])
def test_catalog_odd_page_numbers_do_not_fail(client, login_as, catalog, value):
    login_as("researcher")
    response = client.get("/", query_string={"page": value})
    assert response.status_code == 200
    assert page(response).one(cls="result-count").text.startswith("4 instruments")


def test_catalog_page_past_the_end_offers_the_first_page(client, login_as, catalog):
    login_as("researcher")
    html = page(client.get("/", query_string={"page": 7}))
    assert html.find("article", "instrument-card") == []
    assert html.find("a", href="/")


def test_catalog_query_count_does_not_grow_with_results(client, login_as, app):
    login_as("researcher")
    facility = factories.make_facility()
    counts = []
    for batch in (2, 12):
        for _ in range(batch - (counts and 2 or 0)):
            fields = [factories.make_field(), factories.make_field()]
            factories.make_instrument(facility, fields=fields)
        db.session.commit()
        statements: list[str] = []
        listener = lambda *args: statements.append(args[2])  # noqa: E731
        sa.event.listen(db.engine, "before_cursor_execute", listener)
        try:
            assert len(_names(client.get("/"))) == batch
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", listener)
        counts.append(len(statements))
    assert counts[0] == counts[1]


@pytest.mark.parametrize("role, shown", [
    ("researcher", False), ("finance", False), ("facility_manager", True), ("admin", True),
])
def test_catalog_new_instrument_button_only_for_managers(client, login_as, role, shown):
    login_as(role)
    assert bool(page(client.get("/")).find("a", href="/instruments/new")) is shown


@pytest.mark.parametrize("path", ["/", "/instruments/1", "/facilities", "/facilities/1",
                                  "/instruments/new", "/instruments/1/edit"])
def test_catalog_pages_send_anonymous_visitors_to_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


# -- instrument page ------------------------------------------------------------------------

def test_detail_shows_the_instrument_and_its_policy_in_words(client, login_as, catalog):
    sem = catalog.sem
    sem.requires_approval, sem.lead_minutes, sem.buffer_minutes = True, 1440, 30
    sem.slot_minutes, sem.min_minutes, sem.max_minutes = 30, 60, 240
    sem.user_weekly_quota_minutes, sem.location = 600, "Room 101"
    db.session.commit()
    login_as("researcher")
    response = client.get(f"/instruments/{sem.id}")
    html = page(response)
    assert response.status_code == 200
    assert html.one("h1").text == "Zeiss Sigma SEM"
    details = html.one(id_="instrument-details").text
    for expected in ("EM-001", "SEM", "Zeiss", "Electron Microscopy Core", "Center of Excellence",
                     "Room 101", "Functional Materials"):
        assert expected in details
    policy = html.one(id_="booking-policy").text
    for expected in ("30 min steps", "From 1 h to 4 h", "At least 1 day before the start",
                     "at most 90 days ahead", "30 min kept free", "Required: a facility manager",
                     "Required: only users qualified", "Free up to 1 day before the start",
                     "15 min after the start", "Per user: 10 h; per team: none"):
        assert expected in policy, expected
    assert html.one("span", "status-available").text == "Available"


def test_detail_without_quotas_says_none(client, login_as, catalog):
    login_as("researcher")
    html = page(client.get(f"/instruments/{catalog.tem.id}"))
    assert "Weekly quota None" in html.one(id_="booking-policy").text
    assert "Not required: bookings are confirmed at once" in html.one(id_="booking-policy").text


def test_detail_shows_times_in_the_facility_zone(client, login_as, app):
    facility = factories.make_facility(timezone="Europe/Berlin")
    facility.opening_hours = [OpeningHours(weekday=0, opens=time(7, 0), closes=time(12, 0)),
                              OpeningHours(weekday=0, opens=time(13, 0), closes=time(19, 45))]
    instrument = factories.make_instrument(facility)
    instrument.updated_at = datetime(2026, 1, 15, 9, 30, tzinfo=timezone.utc)
    db.session.commit()
    login_as("researcher")
    html = page(client.get(f"/instruments/{instrument.id}"))
    assert "2026-01-15 10:30 CET" in html.one(id_="instrument-details").text
    table = html.one("table", "hours")
    assert "Europe/Berlin" in table.text
    rows = dict(zip(html.texts("th", scope="row"), html.texts("td")))
    assert rows["Monday"] == "07:00–12:00, 13:00–19:45"
    assert "Closed" in rows["Sunday"]


def test_detail_edit_link_only_for_those_who_may_edit(client, login_as, catalog):
    login_as("facility_manager", facility=catalog.f2)
    assert page(client.get(f"/instruments/{catalog.flow.id}")).find(id_="edit-instrument")
    assert not page(client.get(f"/instruments/{catalog.sem.id}")).find(id_="edit-instrument")


def test_detail_researcher_sees_no_edit_link(client, login_as, catalog):
    login_as("researcher")
    assert not page(client.get(f"/instruments/{catalog.sem.id}")).find(id_="edit-instrument")


def test_detail_unknown_instrument_is_404(client, login_as, app):
    login_as("researcher")
    response = client.get("/instruments/987654")
    assert response.status_code == 404
    assert "No such instrument" in response.get_data(as_text=True)


# -- facility pages ---------------------------------------------------------------------------

def test_facilities_are_grouped_by_platform_with_counts(client, login_as, catalog):
    factories.make_facility(catalog.p1, name="Empty Lab")
    db.session.commit()
    login_as("researcher")
    html = page(client.get("/facilities"))
    sections = {s.attrs["aria-labelledby"]: s.text for s in html.find("section", "platform")}
    first = sections[f"platform-{catalog.p1.id}"]
    assert "Center of Excellence" in first and "Electron Microscopy Core" in first
    assert "2 instruments" in first and "Empty Lab" in first and "0 instruments" in first
    assert "Bio Core" in sections[f"platform-{catalog.p2.id}"]
    assert "Bio Core" not in first


def test_facilities_use_localized_names(client, login_as, app):
    platform = factories.make_platform(name="R&D Center", name_zh="研发中心")
    factories.make_facility(platform, name="Clean Room", name_zh="洁净室")
    db.session.commit()
    login_as("researcher", locale="zh_Hans")
    html = page(client.get("/facilities"))
    assert "研发中心" in html.texts("h2") and "洁净室" in html.texts("a", "facility-link")


def test_facility_page_shows_managers_hours_zone_and_instruments(client, login_as, catalog):
    manager = factories.make_user_with_role("facility_manager", facility=catalog.f1,
                                            name="Dr. Li Wei")
    db.session.commit()
    login_as("researcher")
    response = client.get(f"/facilities/{catalog.f1.id}")
    html = page(response)
    assert response.status_code == 200
    assert html.one("h1").text == "Electron Microscopy Core"
    about = html.one(id_="facility-details").text
    assert manager.name in about and "Asia/Shanghai (CST, UTC+08:00)" in about
    assert html.one(id_="local-time").text.endswith("CST")
    assert "08:30–17:30" in html.one("table", "hours").text
    assert html.texts("a", "instrument-link") == ["JEOL TEM", "Zeiss Sigma SEM"]


def test_facility_page_localizes_weekday_names(client, login_as, catalog):
    login_as("researcher", locale="zh_Hans")
    rows = page(client.get(f"/facilities/{catalog.f1.id}")).texts("th", scope="row")
    assert rows[0] == "星期一" and len(rows) == 7


def test_facility_unknown_is_404(client, login_as, app):
    login_as("researcher")
    assert client.get("/facilities/987654").status_code == 404
