"""The booking form's "Repeat" fieldset (series in both modes), cancelling one booking, the
following ones or a whole series, and the "Find a slot" page; both databases."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from labbook.bookings.models import Booking, BookingSeries
from labbook.extensions import db
from tests import factories
from tests.bookings.view_support import (
    MON_10,
    NOW,
    as_user,
    booking_count,
    freeze,
    post_form,
    scene,
    times,
)
from tests.instruments import page

MONDAY = date(2030, 1, 7)
WEEKLY_4 = {"repeat": "weekly", "every": "1", "weekdays": "0", "count": "4"}


@pytest.fixture
def s(app, client, monkeypatch):
    freeze(monkeypatch, NOW)
    world = scene()
    as_user(client, world.booker)
    return world


def _book(client, s, **data):  # type: ignore[no-untyped-def]
    path = f"/instruments/{s.instrument.id}/book"
    return post_form(client, path, {**times(MONDAY, "10:00", "11:00"),
                                    "account_id": str(s.account.id), **data})


def _series_states() -> list[tuple[int | None, str]]:
    db.session.rollback()
    return list(db.session.execute(
        sa.select(Booking.series_id, Booking.state).order_by(Booking.start_at)).tuples())


def _taken_third_monday(s):  # type: ignore[no-untyped-def]
    taken = factories.make_booking(s.instrument, s.other, start=MON_10 + timedelta(weeks=2))
    db.session.commit()
    return taken


def test_booking_form_offers_the_repeat_fieldset(client, s):
    html = page(client.get(f"/instruments/{s.instrument.id}/book"))
    assert html.one("details", id_="repeat")
    assert [o.attrs["value"] for o in html.find("option") if o.attrs["value"] in
            ("none", "daily", "weekly")] == ["none", "daily", "weekly"]
    assert len(html.find("input", type="checkbox", name="weekdays")) == 7
    assert {i.attrs["value"] for i in html.find("input", type="radio", name="mode")} == {
        "all_or_nothing", "fit"}


def test_booking_form_with_repeat_books_the_series(client, s):
    response = _book(client, s, purpose="weekly imaging", **WEEKLY_4)
    assert response.status_code == 200
    html = page(response)
    assert "4 of 4 dates were booked." in html.one(id_="series-summary").text
    booked = html.one("ul", id_="booked-occurrences").text
    for day in ("2030-01-07", "2030-01-14", "2030-01-21", "2030-01-28"):
        assert f"{day} 10:00–11:00 CST" in booked
    rows = db.session.scalars(sa.select(Booking).order_by(Booking.start_at)).all()
    assert [b.start_at for b in rows] == [MON_10 + timedelta(weeks=k) for k in range(4)]
    assert len({b.series_id for b in rows}) == 1 and rows[0].series_id is not None
    assert {b.purpose for b in rows} == {"weekly imaging"}


def test_booking_form_daily_until_date(client, s):
    response = _book(client, s, repeat="daily", until="2030-01-09")
    assert response.status_code == 200
    assert [st for _, st in _series_states()] == ["confirmed"] * 3


def test_booking_form_fit_mode_lists_the_failed_date_and_why(client, s):
    _taken_third_monday(s)
    response = _book(client, s, mode="fit", **WEEKLY_4)
    assert response.status_code == 200
    html = page(response)
    assert "3 of 4 dates were booked." in html.one(id_="series-summary").text
    failed = html.one("ul", id_="failed-occurrences").text
    assert "2030-01-21 10:00–11:00 CST" in failed and "not booked" in failed
    assert "2030-01-21" not in html.one("ul", id_="booked-occurrences").text
    assert booking_count() == 4  # three of the series and the one in the way


def test_booking_form_all_or_nothing_rerenders_and_writes_nothing(client, s):
    _taken_third_monday(s)
    series_before = db.session.scalar(sa.select(sa.func.count(BookingSeries.id)))
    response = _book(client, s, mode="all_or_nothing", **WEEKLY_4)
    assert response.status_code == 409
    html = page(response)
    items = html.find("li", cls="occurrence-failed")
    assert len(items) == 1 and "2030-01-21 10:00–11:00 CST" in items[0].text
    assert len(html.find("li", cls="occurrence-bookable")) == 3
    assert "none was booked" in html.one(id_="refusal").text
    assert html.one("select", id_="repeat").tag == "select"  # the form is shown again
    assert booking_count() == 1
    assert db.session.scalar(sa.select(sa.func.count(BookingSeries.id))) == series_before


@pytest.mark.parametrize(("data", "field"), [
    ({"repeat": "weekly"}, "count"),  # neither count nor until
    ({"repeat": "weekly", "count": "2", "until": "2030-02-01"}, "count"),
    ({"repeat": "weekly", "count": "2", "weekdays": "3"}, "weekdays"),  # not the first day
    ({"repeat": "daily", "count": "0"}, "count"),
    ({"repeat": "daily", "count": "2", "every": "99"}, "every"),
    ({"repeat": "hourly", "count": "2"}, "repeat"),
    ({"repeat": "daily", "count": "2", "mode": "maybe"}, "mode"),
    ({"repeat": "weekly", "until": "2029-01-01"}, "until"),
])
def test_booking_form_bad_repeat_is_422_with_field_message(client, s, data, field):
    response = _book(client, s, **data)
    assert response.status_code == 422
    html = page(response)
    assert html.find("p", cls="error", id_=f"{field}-error") or html.find(
        "fieldset", cls="has-error")
    assert booking_count() == 0


def test_booking_form_series_without_csrf_is_refused_and_writes_nothing(client, s):
    response = client.post(f"/instruments/{s.instrument.id}/book",
                           data={**times(MONDAY, "10:00", "11:00"),
                                 "account_id": str(s.account.id), **WEEKLY_4})
    assert response.status_code in (400, 422)
    assert booking_count() == 0


# -- cancelling a series ------------------------------------------------------------------------


@pytest.fixture
def series(client, s):  # type: ignore[no-untyped-def]
    assert _book(client, s, **WEEKLY_4).status_code == 200
    return db.session.scalars(sa.select(Booking).order_by(Booking.start_at)).all()


def test_series_booking_offers_three_cancel_choices(client, s, series):
    html = page(client.get(f"/bookings/{series[1].id}"))
    radios = html.find("input", type="radio", name="scope")
    assert [r.attrs["value"] for r in radios] == ["occurrence", "following", "series"]
    assert "checked" in radios[0].attrs
    assert html.one(id_="series-note")
    mine = page(client.get("/bookings"))
    assert len(mine.find("input", type="radio", name="scope")) == 3 * 4


def test_single_booking_offers_no_cancel_choice(client, s):
    booking = factories.make_booking(s.instrument, s.booker, start=MON_10)
    db.session.commit()
    html = page(client.get(f"/bookings/{booking.id}"))
    assert html.find("input", name="scope") == []


@pytest.mark.parametrize(("scope", "states"), [
    ("occurrence", ["confirmed", "cancelled", "confirmed", "confirmed"]),
    ("following", ["confirmed", "cancelled", "cancelled", "cancelled"]),
    ("series", ["cancelled"] * 4),
])
def test_cancel_series_choice(client, s, series, scope, states):
    response = post_form(client, f"/bookings/{series[1].id}/cancel", {"scope": scope},
                         page=f"/bookings/{series[1].id}")
    assert response.status_code == 302
    assert [state for _, state in _series_states()] == states


def test_cancel_series_choice_on_a_single_booking_is_422(client, s):
    booking = factories.make_booking(s.instrument, s.booker, start=MON_10)
    db.session.commit()
    response = post_form(client, f"/bookings/{booking.id}/cancel", {"scope": "series"},
                         page=f"/bookings/{booking.id}")
    assert response.status_code == 422
    assert "not part of a series" in page(response).one(id_="refusal").text
    assert _series_states() == [(None, "confirmed")]


def test_cancel_series_without_csrf_writes_nothing(client, s, series):
    response = client.post(f"/bookings/{series[0].id}/cancel", data={"scope": "series"})
    assert response.status_code in (400, 422)
    assert {state for _, state in _series_states()} == {"confirmed"}


# -- find a slot --------------------------------------------------------------------------------


def test_find_slot_page_without_search_shows_the_form(client, s):
    response = client.get("/slots")
    assert response.status_code == 200
    html = page(response)
    assert html.one("form", id_="slot-search")
    assert html.one("input", id_="minutes").attrs["value"] == "60"
    assert html.find("table", id_="slots") == []


def test_find_slot_lists_the_earliest_free_interval_with_a_book_link(client, s):
    factories.make_booking(s.instrument, s.other, start=MON_10 - timedelta(minutes=90),
                           end=MON_10 - timedelta(minutes=30))  # 08:30–09:30 local
    db.session.commit()
    response = client.get("/slots", query_string={"minutes": "60", "from_date": "2030-01-07",
                                                  "days": "3"})
    assert response.status_code == 200
    html = page(response)
    row = html.one("tr", id_=f"slot-{s.instrument.id}")
    assert "2030-01-07 09:30–10:30 CST" in row.text
    assert "Zeiss SEM" in row.text and "Electron Microscopy Core" in row.text
    link = html.one("a", cls="button", href=(
        f"/instruments/{s.instrument.id}/book?start=2030-01-07T01:30:00Z"
        "&end=2030-01-07T02:30:00Z"))
    form = page(client.get(link.attrs["href"]))
    assert form.one("input", id_="start_time").attrs["value"] == "09:30"
    assert form.one("input", id_="end_time").attrs["value"] == "10:30"


def test_find_slot_filters_by_facility(client, s):
    other = factories.make_facility()
    db.session.commit()
    html = page(client.get("/slots", query_string={"minutes": "60", "facility": other.id}))
    assert html.find("table", id_="slots") == [] and html.one(id_="no-slots")


@pytest.mark.parametrize(("args", "field"), [
    ({"minutes": "0"}, "minutes"),
    ({"minutes": "abc"}, "minutes"),
    ({"minutes": ""}, "minutes"),
    ({"minutes": "60", "days": "100"}, "days"),
    ({"minutes": "60", "from_date": "2030-02-31"}, "from_date"),
    ({"minutes": "60", "field": "abc"}, "field"),
    ({"minutes": "60", "facility": "99999999999999999999"}, "facility"),
])
def test_find_slot_bad_input_is_422_with_field_message(client, s, args, field):
    response = client.get("/slots", query_string=args)
    assert response.status_code == 422
    html = page(response)
    assert html.find("p", cls="error", id_=f"{field}-error")
    assert html.find("table", id_="slots") == []
