"""The week grid of an instrument: each cell's state read from the rendered table, links
of free cells into the booking form, navigation, privacy and clock changes; on both
databases."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from labbook.bookings.models import Outage
from labbook.extensions import db
from tests import factories
from tests.bookings.view_support import MON_10, NOW, UTC, as_user, freeze, scene
from tests.instruments import page


@pytest.fixture
def s(app, client, monkeypatch):
    freeze(monkeypatch, MON_10 - timedelta(hours=1))  # Monday 09:00 local
    world = scene(buffer_minutes=15)
    as_user(client, world.booker)
    return world


def _cells(response) -> dict[str, dict[str, str]]:  # type: ignore[no-untyped-def]
    """Cells by their UTC start: state, title and the link (if any)."""
    html = page(response)
    cells, elements = {}, html.elements
    for index, element in enumerate(elements):
        if element.tag == "td" and "data-start" in element.attrs:
            after = elements[index + 1] if index + 1 < len(elements) else None
            href = after.attrs.get("href", "") if after is not None and after.tag == "a" else ""
            cells[element.attrs["data-start"]] = {
                "state": element.attrs["data-state"],
                "title": element.attrs.get("title", ""),
                "href": href,
                "text": element.text,
            }
    return cells


def _at(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _week(client, s, **args):  # type: ignore[no-untyped-def]
    return client.get(f"/instruments/{s.instrument.id}/week", query_string=args)


def test_week_grid_marks_each_kind_of_cell(client, s):
    mine = factories.make_booking(s.instrument, s.booker, start=MON_10 + timedelta(hours=1))
    factories.make_booking(s.instrument, s.other, start=MON_10 + timedelta(hours=4),  # 14:00
                           purpose="secret")
    factories.make_booking(s.instrument, s.other, start=MON_10 + timedelta(days=1),
                           state="pending")  # Tuesday 10:00
    factories.make_booking(s.instrument, s.other, start=MON_10 + timedelta(days=1, hours=3),
                           state="cancelled")  # Tuesday 13:00: does not hold the slot
    db.session.add(Outage(instrument=s.instrument, start_at=MON_10 + timedelta(days=2),
                          end_at=MON_10 + timedelta(days=2, hours=2),
                          block_end=MON_10 + timedelta(days=2, hours=2),
                          state="scheduled", outage_kind="calibration", title="Beam alignment"))
    db.session.commit()
    response = _week(client, s)
    assert response.status_code == 200
    cells = _cells(response)
    assert len(cells) == 7 * 60  # 07:00–22:00 in 15-minute slots
    state = {k: v["state"] for k, v in cells.items()}
    assert state[_at(MON_10 - timedelta(hours=2))] == "past"  # Monday 08:00
    assert state[_at(MON_10)] == "free"  # Monday 10:00
    assert state[_at(MON_10 + timedelta(hours=1))] == "yours"
    assert state[_at(MON_10 + timedelta(hours=2))] == "yours"  # the 15-minute buffer
    assert state[_at(MON_10 + timedelta(hours=2, minutes=15))] == "free"
    assert state[_at(MON_10 + timedelta(hours=4))] == "busy"
    assert state[_at(MON_10 + timedelta(days=1))] == "pending"
    assert state[_at(MON_10 + timedelta(days=1, hours=3))] == "free"
    assert state[_at(MON_10 + timedelta(days=2, hours=1, minutes=45))] == "maintenance"
    assert state[_at(MON_10 + timedelta(hours=8))] == "closed"  # Monday 18:00, unstaffed
    assert state[_at(MON_10 + timedelta(days=5))] == "closed"  # Saturday
    assert cells[_at(MON_10 + timedelta(days=2))]["title"] == "Maintenance: Beam alignment"
    assert cells[_at(MON_10 + timedelta(hours=1))]["href"] == f"/bookings/{mine.id}"
    assert cells[_at(MON_10 + timedelta(hours=4))]["href"] == ""  # not the viewer's to open


def test_week_grid_hides_other_users_but_shows_them_to_managers(client, s):
    factories.make_booking(s.instrument, s.other, start=MON_10, purpose="secret")
    db.session.commit()
    body = _week(client, s).get_data(as_text=True)
    assert "Bob Other" not in body and "secret" not in body
    as_user(client, s.manager)
    cells = _cells(_week(client, s))
    assert cells[_at(MON_10)]["title"] == "Busy: Bob Other"
    assert cells[_at(MON_10)]["href"].startswith("/bookings/")


def test_week_free_cell_links_to_prefilled_booking_form(client, s):
    cell = _cells(_week(client, s))[_at(MON_10)]
    assert cell["href"] == f"/instruments/{s.instrument.id}/book?start=2030-01-07T02:00:00Z"
    form = page(client.get(cell["href"]))
    assert form.one("input", id_="start_time").attrs["value"] == "10:00"
    assert form.one("input", id_="date").attrs["value"] == "2030-01-07"


def test_week_only_free_future_cells_link_to_the_form(client, s):
    factories.make_booking(s.instrument, s.booker, start=MON_10 + timedelta(hours=1))
    db.session.commit()
    cells = _cells(_week(client, s)).values()
    booking_links = [c for c in cells if "/book?" in c["href"]]
    assert booking_links and all(c["state"] == "free" for c in booking_links)
    assert all("/book?" in c["href"] for c in cells if c["state"] == "free")


def test_week_navigation_snaps_to_monday_and_links_neighbours(client, s):
    html = page(_week(client, s, start="2030-01-10"))  # a Thursday
    heads = [th.attrs["data-date"] for th in html.find("th") if "data-date" in th.attrs]
    assert heads[0] == "2030-01-07" and heads[-1] == "2030-01-13"
    assert "start=2029-12-31" in html.one("a", rel="prev").attrs["href"]
    assert "start=2030-01-14" in html.one("a", rel="next").attrs["href"]


@pytest.mark.parametrize("start", ["garbage", "2030-02-30", "x" * 500])
def test_week_bad_start_shows_this_week(client, s, start):
    response = _week(client, s, start=start)
    html = page(response)
    assert response.status_code == 200
    assert html.one("th", "today").attrs["data-date"] == "2030-01-07"


def test_week_whole_day_on_request_and_for_advanced_users(client, s):
    assert len(_cells(_week(client, s, hours="all"))) == 7 * 96
    advanced = factories.make_booker(s.instrument, level="advanced")
    db.session.commit()
    as_user(client, advanced)
    cells = _cells(_week(client, s))
    assert len(cells) == 7 * 96
    assert cells[_at(MON_10 + timedelta(hours=10))]["state"] == "free"  # 20:00 is bookable
    assert len(_cells(_week(client, s, hours="day"))) == 7 * 60


def test_week_unknown_instrument_is_404(client, s):
    assert client.get("/instruments/999999/week").status_code == 404


def test_week_marks_the_hour_skipped_by_dst(client, s, monkeypatch):
    facility = factories.make_facility(timezone="Europe/Berlin")
    instrument = factories.make_instrument(
        facility, slot_minutes=60, min_minutes=60, requires_qualification=False
    )
    db.session.commit()
    freeze(monkeypatch, NOW)
    response = client.get(f"/instruments/{instrument.id}/week?start=2030-03-25&hours=all")
    html = page(response)
    sunday = [td for td in html.find("td", "cell-none")]
    assert len(sunday) == 1  # 02:00 on Sunday 2030-03-31 does not exist
    cells = _cells(response)
    assert len(cells) == 7 * 24 - 1
    assert cells["2030-03-31T01:00:00Z"]["state"] in ("free", "closed")  # 03:00 CEST
