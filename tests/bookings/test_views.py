"""The booking form: local times, prefill, success, each kind of refusal (rule, not
qualified, conflict with alternatives), bad input and CSRF; on both databases."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
import sqlalchemy as sa

from labbook.bookings.models import Booking, QualificationRequest
from labbook.extensions import db
from labbook.instruments.models import Facility
from tests import factories
from tests.bookings.view_support import (
    MON_10,
    NOW,
    UTC,
    as_user,
    booking_count,
    freeze,
    post_form,
    scene,
    times,
)
from tests.instruments import page

MONDAY = date(2030, 1, 7)


@pytest.fixture
def s(app, client, monkeypatch):
    freeze(monkeypatch, NOW)
    world = scene()
    as_user(client, world.booker)
    return world


def _book(client, s, data):  # type: ignore[no-untyped-def]
    path = f"/instruments/{s.instrument.id}/book"
    return post_form(client, path, {"account_id": s.account.id, **data})


def test_booking_form_shows_zone_and_preselects_default_account(client, s):
    response = client.get(f"/instruments/{s.instrument.id}/book")
    html = page(response)
    assert response.status_code == 200
    assert "Asia/Shanghai" in html.one(cls="zone-note").text
    selected = [o.attrs["value"] for o in html.find("option", selected="")]
    assert selected == [str(s.account.id), "none"]  # the account; "Repeat: does not repeat"
    assert html.one("input", id_="date").attrs["value"] == "2029-12-31"  # today, local


def test_booking_form_prefills_from_start_link(client, s):
    response = client.get(f"/instruments/{s.instrument.id}/book?start=2030-01-07T02:00:00Z")
    html = page(response)
    assert html.one("input", id_="date").attrs["value"] == "2030-01-07"
    assert html.one("input", id_="start_time").attrs["value"] == "10:00"
    assert html.one("input", id_="end_time").attrs["value"] == "11:00"


@pytest.mark.parametrize("start", ["2030-01-07T10:00", "garbage", "2030-13-07T10:00:00Z"])
def test_booking_form_ignores_naive_or_bad_start_link(client, s, start):
    response = client.get(f"/instruments/{s.instrument.id}/book", query_string={"start": start})
    assert response.status_code == 200
    assert page(response).one("input", id_="start_time").attrs.get("value", "") == ""


def test_booking_form_stores_local_time_as_utc_and_confirms(client, s):
    response = _book(client, s, times(MONDAY, "10:00", "11:30", purpose="EDS maps"))
    assert response.status_code == 302 and response.headers["Location"].endswith("/bookings")
    booking = db.session.scalar(sa.select(Booking))
    assert booking.start_at == MON_10 == datetime(2030, 1, 7, 2, 0, tzinfo=UTC)
    assert booking.end_at == MON_10 + timedelta(minutes=90)
    assert booking.state == "confirmed" and booking.purpose == "EDS maps"
    assert booking.account_id == s.account.id and booking.user_id == s.booker.id
    flash = page(client.get("/bookings")).one("p", "flash-success").text
    assert "Zeiss SEM" in flash and "2030-01-07 10:00–11:30 CST" in flash and "confirmed" in flash


def test_booking_form_flash_says_awaiting_approval(client, s):
    s.instrument.requires_approval = True
    db.session.commit()
    response = _book(client, s, times(MONDAY, "10:00", "11:00", assisted="y"))
    assert response.status_code == 302
    booking = db.session.scalar(sa.select(Booking))
    assert booking.state == "pending" and booking.assisted is True
    assert "awaits approval" in page(client.get("/bookings")).one("p", "flash-success").text


def test_booking_form_rule_refusal_marks_the_field(client, s):
    response = _book(client, s, times(MONDAY, "10:00", "19:00"))  # 9 h > 8 h maximum
    html = page(response)
    assert response.status_code == 422
    assert "at most 480 minutes" in html.one("p", "error", id_="end_time-error").text
    assert booking_count() == 0


def test_booking_form_past_start_is_refused_on_start(client, s):
    response = _book(client, s, times(date(2029, 12, 30), "10:00", "11:00"))
    assert response.status_code == 422
    assert "in the past" in page(response).one("p", "error", id_="start_time-error").text
    assert booking_count() == 0


def test_booking_form_not_qualified_offers_request(client, s):
    stranger = factories.make_user_with_role("researcher")
    factories.make_account(team=stranger.memberships[0].team, is_default=True)
    db.session.commit()
    as_user(client, stranger)
    account = stranger.memberships[0].team.default_account
    path = f"/instruments/{s.instrument.id}/book"
    data = {"account_id": account.id, **times(MONDAY, "10:00", "11:00")}
    response = post_form(client, path, data)
    html = page(response)
    assert response.status_code == 403
    assert "not qualified" in html.one(id_="refusal").text
    button = html.one("button", id_="request-qualification")
    assert button.text == "Request qualification"
    assert booking_count() == 0


def test_booking_form_conflict_shows_alternatives_and_no_foreign_details(client, s):
    factories.make_booking(s.instrument, s.other, start=MON_10, purpose="secret sample")
    db.session.commit()
    response = _book(client, s, times(MONDAY, "10:30", "11:30", purpose="mine"))
    html = page(response)
    assert response.status_code == 409
    clash = html.one("section", "clash").text
    assert "2030-01-07 10:00–11:00 CST" in clash and "booked" in clash
    assert "Bob Other" not in response.get_data(as_text=True)
    assert "secret sample" not in response.get_data(as_text=True)
    buttons = html.texts("button", "alternative")
    assert len(buttons) == 3
    assert "Book 2030-01-07 11:00–12:00 CST" in buttons
    assert booking_count() == 1


def test_booking_form_alternative_button_books_that_time(client, s):
    factories.make_booking(s.instrument, s.other, start=MON_10)
    db.session.commit()
    html = page(_book(client, s, times(MONDAY, "10:00", "11:00", purpose="mine")))
    hidden = _alternative_fields(html, "Book 2030-01-07 11:00–12:00 CST")
    assert hidden["csrf_token"] and hidden["account_id"] == str(s.account.id)
    response = client.post(f"/instruments/{s.instrument.id}/book", data=hidden)
    assert response.status_code == 302
    booking = db.session.scalar(sa.select(Booking).where(Booking.user_id == s.booker.id))
    assert booking.start_at == MON_10 + timedelta(hours=1) and booking.purpose == "mine"
    assert booking.account_id == s.account.id


def _alternative_fields(html, label: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The hidden inputs of the alternative form whose button reads ``label``."""
    elements = html.elements
    button = next(e for e in elements if e.tag == "button" and e.text == label)
    index = elements.index(button)
    start = max(i for i in range(index) if elements[i].tag == "form")
    return {e.attrs["name"]: e.attrs["value"] for e in elements[start:index]
            if e.tag == "input" and e.attrs.get("type") == "hidden"}


BAD_INPUT = [
    ({"date": "2030-02-30"}, "date"),
    ({"date": ""}, "date"),
    ({"start_time": "25:00"}, "start_time"),
    ({"end_time": ""}, "end_time"),
    ({"end_time": "10:00"}, "end_time"),  # equal to the start
    ({"end_date": "tomorrow"}, "end_date"),
    ({"purpose": "x" * 501}, "purpose"),
    ({"account_id": "abc"}, "account_id"),
    ({"account_id": "999999"}, "account_id"),
]


@pytest.mark.parametrize("change,field", BAD_INPUT)
def test_booking_form_bad_input_is_422_and_writes_nothing(client, s, change, field):
    data = {**times(MONDAY, "10:00", "11:00"), **change}
    response = _book(client, s, data)
    assert response.status_code == 422
    assert page(response).find("p", "error", id_=f"{field}-error")
    assert booking_count() == 0


def test_booking_form_foreign_account_is_not_offered_nor_accepted(client, s):
    foreign = s.other.memberships[0].team.default_account
    html = page(client.get(f"/instruments/{s.instrument.id}/book"))
    assert str(foreign.id) not in [o.attrs["value"] for o in html.find("option")]
    response = _book(client, s, {**times(MONDAY, "10:00", "11:00"), "account_id": foreign.id})
    assert response.status_code == 422 and booking_count() == 0


def test_booking_form_without_csrf_is_refused(client, s):
    response = client.post(
        f"/instruments/{s.instrument.id}/book",
        data={"account_id": s.account.id, **times(MONDAY, "10:00", "11:00")},
    )
    assert response.status_code == 400 and booking_count() == 0


def test_booking_form_unknown_instrument_404(client, s):
    assert client.get("/instruments/999999/book").status_code == 404


def _berlin_instrument() -> Facility:
    facility = factories.make_facility(timezone="Europe/Berlin")
    facility.opening_hours = []  # staffed around the clock
    return factories.make_instrument(facility, requires_qualification=False)


def test_booking_form_refuses_local_time_skipped_by_dst(client, s):
    instrument = _berlin_instrument()
    db.session.commit()
    path = f"/instruments/{instrument.id}/book"
    # 2030-03-31: clocks in Berlin jump from 02:00 to 03:00.
    data = {"account_id": s.account.id, **times(date(2030, 3, 31), "02:30", "04:00")}
    response = post_form(client, path, data)
    html = page(response)
    assert response.status_code == 422
    assert "does not exist" in html.one("p", "error", id_="start_time-error").text
    assert booking_count() == 0


def test_booking_form_berlin_summer_time_converts_to_utc(client, s):
    instrument = _berlin_instrument()
    db.session.commit()
    path = f"/instruments/{instrument.id}/book"
    data = {"account_id": s.account.id, **times(date(2030, 3, 31), "03:00", "04:00")}
    assert post_form(client, path, data).status_code == 302
    booking = db.session.scalar(sa.select(Booking))
    assert booking.start_at == datetime(2030, 3, 31, 1, 0, tzinfo=UTC)  # CEST = UTC+2


def test_booking_form_end_before_start_means_next_day(client, s):
    instrument = _berlin_instrument()
    db.session.commit()
    path = f"/instruments/{instrument.id}/book"
    data = {"account_id": s.account.id, **times(date(2030, 1, 7), "22:00", "02:00")}
    assert post_form(client, path, data).status_code == 302
    booking = db.session.scalar(sa.select(Booking))
    assert booking.start_at == datetime(2030, 1, 7, 21, 0, tzinfo=UTC)
    assert booking.end_at == datetime(2030, 1, 8, 1, 0, tzinfo=UTC)


def test_booking_form_end_date_allows_multi_day_bookings(client, s):
    instrument = _berlin_instrument()
    instrument.max_minutes = 3 * 1440
    db.session.commit()
    path = f"/instruments/{instrument.id}/book"
    data = {"account_id": s.account.id, "end_date": "2030-01-09",
            **times(date(2030, 1, 7), "09:00", "09:00")}
    assert post_form(client, path, data).status_code == 302
    booking = db.session.scalar(sa.select(Booking))
    assert booking.end_at - booking.start_at == timedelta(days=2)


def test_request_qualification_records_request_and_updates_instrument_page(client, s):
    stranger = factories.make_user_with_role("researcher")
    db.session.commit()
    as_user(client, stranger)
    detail = f"/instruments/{s.instrument.id}"
    assert page(client.get(detail)).one("button", id_="request-qualification")
    response = post_form(client, f"{detail}/request-qualification", {"message": "trained at PKU"},
                         page=detail)
    assert response.status_code == 302 and response.headers["Location"].endswith(detail)
    request = db.session.scalar(sa.select(QualificationRequest))
    assert request.user_id == stranger.id and request.message == "trained at PKU"
    html = page(client.get(detail))
    assert html.find("button", id_="request-qualification") == []
    assert html.one(id_="qualification-requested").text == "Qualification requested"


def test_request_qualification_too_long_message_is_422(client, s):
    detail = f"/instruments/{s.instrument.id}"
    response = post_form(client, f"{detail}/request-qualification", {"message": "x" * 1001},
                         page=detail)
    assert response.status_code == 422
    assert db.session.scalar(sa.select(sa.func.count(QualificationRequest.id))) == 0


def test_instrument_page_offers_book_and_week_but_no_request_when_qualified(client, s):
    html = page(client.get(f"/instruments/{s.instrument.id}"))
    assert html.one("a", id_="book-instrument").attrs["href"].endswith(
        f"/instruments/{s.instrument.id}/book")
    assert html.one("a", id_="week-view").attrs["href"].endswith(
        f"/instruments/{s.instrument.id}/week")
    assert html.find("button", id_="request-qualification") == []
    assert html.find("a", id_="manage-qualifications") == []


def test_nav_links_my_bookings_for_all_and_approvals_for_managers(client, s):
    nav = page(client.get("/bookings")).one("nav", "mainnav")
    assert "My bookings" in nav.text and "Approvals" not in nav.text
    as_user(client, s.manager)
    assert "Approvals" in page(client.get("/bookings")).one("nav", "mainnav").text
