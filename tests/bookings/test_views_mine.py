"""My bookings, a booking's page, and its actions: cancel (late or not), reschedule, check
in and out; who may see what; CSRF; on both databases."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from labbook.bookings.models import Booking
from labbook.extensions import db
from tests import factories
from tests.bookings.view_support import MON_10, NOW, as_user, freeze, post_form, scene, times
from tests.instruments import page


@pytest.fixture
def s(app, client, monkeypatch):
    freeze(monkeypatch, NOW)
    world = scene()
    as_user(client, world.booker)
    world.booking = factories.make_booking(
        world.instrument, world.booker, start=MON_10, purpose="EDS maps"
    )
    db.session.commit()
    return world


def _row_ids(html) -> list[str]:  # type: ignore[no-untyped-def]
    return [tr.attrs["id"] for tr in html.find("tr")
            if tr.attrs.get("id", "").startswith("booking-")]


def test_my_bookings_separates_upcoming_and_past(client, s):
    past = factories.make_booking(s.instrument, s.booker, start=NOW - timedelta(days=1))
    gone = factories.make_booking(s.instrument, s.booker, start=MON_10 + timedelta(hours=3),
                                  state="cancelled")
    theirs = factories.make_booking(s.instrument, s.other, start=MON_10 + timedelta(hours=5))
    db.session.commit()
    upcoming = page(client.get("/bookings"))
    assert _row_ids(upcoming) == [f"booking-{s.booking.id}"]
    row = upcoming.one("tr", id_=f"booking-{s.booking.id}")
    assert "2030-01-07 10:00–11:00 CST" in row.text and "Zeiss SEM" in row.text
    assert "Confirmed" in row.text and "EDS maps" in row.text
    older = page(client.get("/bookings?show=past"))
    assert set(_row_ids(older)) == {f"booking-{past.id}", f"booking-{gone.id}"}
    assert f"booking-{theirs.id}" not in _row_ids(older)


def test_my_bookings_cancel_is_not_late_a_week_ahead(client, s):
    html = page(client.get("/bookings"))
    row = html.one("tr", id_=f"booking-{s.booking.id}")
    assert "Cancel this booking" in row.text and "late cancellation" not in row.text


def test_cancel_with_reason_frees_the_slot(client, s):
    response = post_form(client, f"/bookings/{s.booking.id}/cancel",
                         {"reason": "sample not ready", "next": "/bookings"}, page="/bookings")
    assert response.status_code == 302 and response.headers["Location"] == "/bookings"
    db.session.refresh(s.booking)
    assert s.booking.state == "cancelled" and s.booking.state_reason == "sample not ready"
    assert s.booking.late_cancel is False


def test_cancel_inside_notice_warns_and_flags_late(client, s, monkeypatch):
    freeze(monkeypatch, MON_10 - timedelta(hours=2))
    row = page(client.get("/bookings")).one("tr", id_=f"booking-{s.booking.id}")
    assert "late cancellation" in row.text
    post_form(client, f"/bookings/{s.booking.id}/cancel", {}, page="/bookings")
    db.session.refresh(s.booking)
    assert s.booking.state == "cancelled" and s.booking.late_cancel is True


def test_cancel_next_to_another_site_is_ignored(client, s):
    response = post_form(client, f"/bookings/{s.booking.id}/cancel",
                         {"next": "https://evil.example/"}, page="/bookings")
    assert response.headers["Location"] == f"/bookings/{s.booking.id}"


def test_cancel_too_long_reason_is_422_and_writes_nothing(client, s):
    response = post_form(client, f"/bookings/{s.booking.id}/cancel", {"reason": "x" * 501},
                         page="/bookings")
    assert response.status_code == 422
    db.session.refresh(s.booking)
    assert s.booking.state == "confirmed"


def test_cancel_without_csrf_is_refused(client, s):
    response = client.post(f"/bookings/{s.booking.id}/cancel", data={})
    assert response.status_code == 400
    db.session.refresh(s.booking)
    assert s.booking.state == "confirmed"


def test_cancel_after_start_is_refused_with_reason(client, s, monkeypatch):
    freeze(monkeypatch, MON_10 + timedelta(minutes=5))
    response = post_form(client, f"/bookings/{s.booking.id}/cancel", {},
                         page=f"/bookings/{s.booking.id}")
    assert response.status_code == 422
    assert "has started" in page(response).one(id_="refusal").text
    db.session.refresh(s.booking)
    assert s.booking.state == "confirmed"


def test_booking_page_visible_to_owner_manager_and_admin_only(client, s):
    path = f"/bookings/{s.booking.id}"
    html = page(client.get(path))
    assert "EDS maps" in html.one("dl", id_="booking-details").text
    for user, status in ((s.other, 404), (s.manager, 200),
                         (factories.make_user(roles=("admin",)), 200),
                         (factories.make_user_with_role("facility_manager"), 404)):
        db.session.commit()
        as_user(client, user)
        assert client.get(path).status_code == status, user
    assert client.get("/bookings/999999").status_code == 404


def test_reschedule_moves_the_booking(client, s):
    path = f"/bookings/{s.booking.id}/edit"
    form = page(client.get(path))
    assert form.one("input", id_="start_time").attrs["value"] == "10:00"
    response = post_form(client, path, times(date(2030, 1, 8), "14:00", "15:30"))
    assert response.status_code == 302
    db.session.refresh(s.booking)
    assert s.booking.start_at == MON_10 + timedelta(days=1, hours=4)
    assert s.booking.end_at == MON_10 + timedelta(days=1, hours=5, minutes=30)


def test_reschedule_into_a_taken_time_is_409_with_alternatives(client, s):
    factories.make_booking(s.instrument, s.other, start=MON_10 + timedelta(days=1))
    db.session.commit()
    path = f"/bookings/{s.booking.id}/edit"
    response = post_form(client, path, times(date(2030, 1, 8), "10:00", "11:00"))
    html = page(response)
    assert response.status_code == 409
    assert len(html.find("button", "alternative")) == 3
    assert "Bob Other" not in response.get_data(as_text=True)
    db.session.refresh(s.booking)
    assert s.booking.start_at == MON_10


def test_reschedule_by_stranger_is_404(client, s):
    as_user(client, s.other)
    assert client.get(f"/bookings/{s.booking.id}/edit").status_code == 404


def test_check_in_then_out(client, s, monkeypatch):
    freeze(monkeypatch, MON_10 - timedelta(minutes=5))
    row = page(client.get("/bookings")).one("tr", id_=f"booking-{s.booking.id}")
    assert "Check in" in row.text
    response = post_form(client, f"/bookings/{s.booking.id}/check-in", {"next": "/bookings"},
                         page="/bookings")
    assert response.status_code == 302
    db.session.refresh(s.booking)
    assert s.booking.state == "in_use" and s.booking.checked_in_at == MON_10 - timedelta(minutes=5)
    freeze(monkeypatch, MON_10 + timedelta(minutes=50))
    row = page(client.get("/bookings")).one("tr", id_=f"booking-{s.booking.id}")
    assert "Check out" in row.text and "Check in" not in row.text
    post_form(client, f"/bookings/{s.booking.id}/check-out", {}, page="/bookings")
    db.session.refresh(s.booking)
    assert s.booking.state == "completed"


def test_check_in_too_early_is_refused_and_not_offered(client, s):
    row = page(client.get("/bookings")).one("tr", id_=f"booking-{s.booking.id}")
    assert "Check in" not in row.text
    response = post_form(client, f"/bookings/{s.booking.id}/check-in", {}, page="/bookings")
    assert response.status_code == 422
    assert "Check-in opens" in page(response).one(id_="refusal").text
    db.session.refresh(s.booking)
    assert s.booking.state == "confirmed" and s.booking.checked_in_at is None


def test_check_out_of_a_booking_not_running_is_422(client, s):
    response = post_form(client, f"/bookings/{s.booking.id}/check-out", {}, page="/bookings")
    assert response.status_code == 422
    assert db.session.scalar(sa.select(Booking.state).where(Booking.id == s.booking.id)) == (
        "confirmed"
    )


def test_check_in_by_stranger_is_404(client, s, monkeypatch):
    freeze(monkeypatch, MON_10)
    as_user(client, s.other)
    response = post_form(client, f"/bookings/{s.booking.id}/check-in", {}, page="/bookings")
    assert response.status_code == 404
    db.session.refresh(s.booking)
    assert s.booking.state == "confirmed"


HUGE = "99999999999999999999"  # no INTEGER column holds it; the databases would raise


@pytest.mark.parametrize("path", [
    f"/bookings/{HUGE}", "/bookings/0", f"/bookings/{HUGE}/edit", f"/instruments/{HUGE}/book",
    f"/instruments/{HUGE}/week", f"/instruments/{HUGE}/qualifications",
    f"/manage/facilities/{HUGE}/today",
])
def test_impossible_ids_are_404_not_500(client, s, path):
    admin = factories.make_user(roles=("admin",))
    db.session.commit()
    as_user(client, admin)
    assert client.get(path).status_code == 404


def test_impossible_ids_in_posts_are_404(client, s):
    path = f"/instruments/{s.instrument.id}/qualifications/{HUGE}/revoke"
    as_user(client, s.manager)
    assert post_form(client, path, {}, page="/bookings").status_code == 404
    assert post_form(client, f"/bookings/{HUGE}/cancel", {}, page="/bookings").status_code == 404
