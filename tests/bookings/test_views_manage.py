"""Manager pages: the approval queue (approve, reject with a reason, bulk approve), today's
schedule per facility, and an instrument's qualifications; on both databases."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from labbook.bookings.models import Booking, Outage, Qualification, QualificationRequest
from labbook.extensions import db
from tests import factories
from tests.bookings.view_support import (
    MON_10,
    NOW,
    UTC,
    as_user,
    freeze,
    post_form,
    scene,
    token_of,
)
from tests.instruments import page


@pytest.fixture
def s(app, client, monkeypatch):
    freeze(monkeypatch, NOW)
    world = scene(requires_approval=True)
    world.pending = factories.make_booking(world.instrument, world.booker, start=MON_10,
                                           state="pending", purpose="EDS maps")
    elsewhere = factories.make_instrument(name="Other lab's XRD")
    world.foreign = factories.make_booking(elsewhere, state="pending")
    db.session.commit()
    as_user(client, world.manager)
    return world


def _state(booking: Booking) -> str:
    db.session.refresh(booking)
    return booking.state


# -- approvals --------------------------------------------------------------------------------


def test_approvals_lists_pending_of_managed_facilities_only(client, s):
    html = page(client.get("/manage/approvals"))
    rows = [tr.attrs["id"] for tr in html.find("tr") if tr.attrs.get("id")]
    assert rows == [f"booking-{s.pending.id}"]
    row = html.one("tr", id_=f"booking-{s.pending.id}")
    assert "Alice Booker" in row.text and "EDS maps" in row.text and "10:00–11:00" in row.text
    link = html.one("nav", "schedule-links")
    assert "Electron Microscopy Core" in link.text


def test_approvals_admin_sees_every_facility(client, s):
    admin = factories.make_user(roles=("admin",))
    db.session.commit()
    as_user(client, admin)
    html = page(client.get("/manage/approvals"))
    ids = {tr.attrs["id"] for tr in html.find("tr") if tr.attrs.get("id")}
    assert ids == {f"booking-{s.pending.id}", f"booking-{s.foreign.id}"}


@pytest.mark.parametrize("role", ["researcher", "team_lead", "finance"])
def test_approvals_forbidden_for_non_managers(client, s, login_as, role):
    login_as(role)
    assert client.get("/manage/approvals").status_code == 403
    token = token_of(client.get("/bookings").get_data(as_text=True))
    response = client.post("/manage/approvals",
                           data={"csrf_token": token, "booking_ids": s.pending.id})
    assert response.status_code == 403 and _state(s.pending) == "pending"


def test_approvals_show_warnings(client, s):
    s.booker.memberships[0].team.default_account.active = False
    db.session.commit()
    row = page(client.get("/manage/approvals")).one("tr", id_=f"booking-{s.pending.id}")
    assert "is not active" in row.text


def test_approve_confirms(client, s):
    response = post_form(client, f"/bookings/{s.pending.id}/approve",
                         {"next": "/manage/approvals"}, page="/manage/approvals")
    assert response.status_code == 302 and response.headers["Location"] == "/manage/approvals"
    assert _state(s.pending) == "confirmed"
    assert "approved" in page(client.get("/manage/approvals")).one("p", "flash-success").text


def test_approve_by_owner_is_403_and_by_other_manager_404(client, s):
    as_user(client, s.booker)
    response = post_form(client, f"/bookings/{s.pending.id}/approve", {}, page="/bookings")
    assert response.status_code == 403
    as_user(client, factories.make_user_with_role("facility_manager"))
    db.session.commit()
    response = post_form(client, f"/bookings/{s.pending.id}/approve", {}, page="/bookings")
    assert response.status_code == 404 and _state(s.pending) == "pending"


def test_approve_after_start_is_refused(client, s, monkeypatch):
    freeze(monkeypatch, MON_10 + timedelta(minutes=1))
    response = post_form(client, f"/bookings/{s.pending.id}/approve", {},
                         page="/manage/approvals")
    assert response.status_code == 422
    assert "has passed" in page(response).one(id_="refusal").text
    assert _state(s.pending) == "pending"  # nothing written; the scheduler expires it


def test_reject_needs_a_reason(client, s):
    response = post_form(client, f"/bookings/{s.pending.id}/reject", {"reason": ""},
                         page="/manage/approvals")
    html = page(response)
    assert response.status_code == 422
    assert html.one("details", "confirm", open="") is not None
    assert html.find("p", "error")
    assert _state(s.pending) == "pending"


def test_reject_with_reason(client, s):
    response = post_form(client, f"/bookings/{s.pending.id}/reject",
                         {"reason": "instrument reserved for training"}, page="/manage/approvals")
    assert response.status_code == 302
    assert _state(s.pending) == "rejected"
    assert s.pending.state_reason == "instrument reserved for training"


def test_reject_without_csrf_is_refused(client, s):
    response = client.post(f"/bookings/{s.pending.id}/reject", data={"reason": "no"})
    assert response.status_code == 400 and _state(s.pending) == "pending"


def test_bulk_approve_reports_each_booking(client, s):
    second = factories.make_booking(s.instrument, s.other, start=MON_10 + timedelta(hours=2),
                                    state="pending")
    late = factories.make_booking(s.instrument, s.other, start=NOW - timedelta(hours=1),
                                  state="pending")
    db.session.commit()
    ids = [s.pending.id, second.id, late.id, s.foreign.id]
    response = post_form(client, "/manage/approvals", {"booking_ids": ids})
    assert response.status_code == 302
    assert [_state(b) for b in (s.pending, second, late, s.foreign)] == [
        "confirmed", "confirmed", "pending", "pending"]
    html = page(client.get("/manage/approvals"))
    assert "2 booking(s) approved." in html.one("p", "flash-success").text
    errors = html.texts("p", "flash-error")
    assert any(f"#{late.id}" in e and "has passed" in e for e in errors)
    assert any(f"#{s.foreign.id}" in e and "not found" in e for e in errors)


@pytest.mark.parametrize("ids", [[], ["x"], ["99999999999999999999"], ["-5"]])
def test_bulk_approve_bad_selection_is_422(client, s, ids):
    response = post_form(client, "/manage/approvals", {"booking_ids": ids})
    assert response.status_code == 422 and _state(s.pending) == "pending"
    assert page(response).one(id_="bulk-errors")


# -- today's schedule -------------------------------------------------------------------------


def test_today_shows_today_and_tomorrow_per_instrument(client, s, monkeypatch):
    freeze(monkeypatch, MON_10 - timedelta(hours=2))  # Monday 08:00 local
    tomorrow = factories.make_booking(s.instrument, s.other, start=MON_10 + timedelta(days=1))
    later = factories.make_booking(s.instrument, s.other, start=MON_10 + timedelta(days=2))
    gone = factories.make_booking(s.instrument, s.other, start=MON_10 + timedelta(hours=3),
                                  state="cancelled")
    db.session.add(Outage(instrument=s.instrument, start_at=MON_10 + timedelta(hours=5),
                          end_at=MON_10 + timedelta(hours=6), block_end=MON_10 + timedelta(hours=6),
                          state="scheduled", outage_kind="calibration", title="Beam alignment"))
    db.session.commit()
    response = client.get(f"/manage/facilities/{s.facility.id}/today")
    html = page(response)
    assert response.status_code == 200
    today, tomorrow_card = html.find("section", "schedule-day")
    assert "Alice Booker" in today.text and "EDS maps" in today.text
    assert "Beam alignment" in today.text
    assert "Bob Other" in tomorrow_card.text and "2030-01-08 10:00–11:00" in tomorrow_card.text
    text = response.get_data(as_text=True)
    assert f"/bookings/{later.id}\"" not in text and f"/bookings/{gone.id}\"" not in text
    assert f"/bookings/{tomorrow.id}\"" in text


def test_today_offers_check_in_to_the_manager(client, s, monkeypatch):
    s.pending.state = "confirmed"
    db.session.commit()
    freeze(monkeypatch, MON_10 - timedelta(minutes=5))
    path = f"/manage/facilities/{s.facility.id}/today"
    assert "Check in" in page(client.get(path)).find("section", "schedule-day")[0].text
    response = post_form(client, f"/bookings/{s.pending.id}/check-in", {"next": path}, page=path)
    assert response.headers["Location"] == path and _state(s.pending) == "in_use"


def test_today_forbidden_for_other_facility_manager(client, s):
    as_user(client, factories.make_user_with_role("facility_manager"))
    db.session.commit()
    assert client.get(f"/manage/facilities/{s.facility.id}/today").status_code == 403
    assert client.get("/manage/facilities/999999/today").status_code == 404


# -- qualifications ---------------------------------------------------------------------------


def test_qualifications_page_lists_and_grants(client, s):
    path = f"/instruments/{s.instrument.id}/qualifications"
    html = page(client.get(path))
    assert "Alice Booker" in html.one("table", id_="qualified").text
    newcomer = factories.make_user_with_role("researcher", email="new@example.org")
    db.session.commit()
    response = post_form(client, path, {"email": "NEW@example.org", "level": "advanced",
                                        "expires_on": "2030-06-30"})
    assert response.status_code == 302
    q = db.session.scalar(sa.select(Qualification).where(Qualification.user_id == newcomer.id))
    assert q.level == "advanced" and q.instrument_id == s.instrument.id
    # Valid through 30 June, local time: lapses at midnight Shanghai = 16:00 UTC.
    assert q.expires_at == datetime(2030, 6, 30, 16, 0, tzinfo=UTC)


@pytest.mark.parametrize("data,field", [
    ({"email": "nobody@example.org", "level": "basic"}, "email"),
    ({"email": "", "level": "basic"}, "email"),
    ({"email": "new@example.org", "level": "expert"}, "level"),
    ({"email": "new@example.org", "level": "basic", "expires_on": "2029-01-01"}, "expires_on"),
])
def test_grant_bad_input_is_422(client, s, data, field):
    factories.make_user_with_role("researcher", email="new@example.org")
    db.session.commit()
    before = db.session.scalar(sa.select(sa.func.count(Qualification.id)))
    response = post_form(client, f"/instruments/{s.instrument.id}/qualifications", data)
    assert response.status_code == 422
    assert page(response).find("p", "error", id_=f"{field}-error")
    assert db.session.scalar(sa.select(sa.func.count(Qualification.id))) == before


def test_revoke_qualification(client, s):
    q = db.session.scalar(sa.select(Qualification).where(Qualification.user_id == s.booker.id))
    path = f"/instruments/{s.instrument.id}/qualifications"
    response = post_form(client, f"{path}/{q.id}/revoke", {}, page=path)
    assert response.status_code == 302
    db.session.refresh(q)
    assert q.revoked_at == NOW
    assert page(client.get(path)).find("tr", id_=f"qualification-{q.id}") == []


def test_open_request_can_be_granted_or_declined(client, s):
    asker = factories.make_user_with_role("researcher", name="Carol Asker")
    shy = factories.make_user_with_role("researcher", name="Dan Shy")
    for user in (asker, shy):
        db.session.add(QualificationRequest(user=user, instrument=s.instrument, message="pls"))
    db.session.commit()
    path = f"/instruments/{s.instrument.id}/qualifications"
    html = page(client.get(path))
    assert "Carol Asker" in html.one("table", id_="qualification-requests").text
    post_form(client, path, {"email": asker.email, "level": "basic"})
    request = db.session.scalar(sa.select(QualificationRequest).where(
        QualificationRequest.user_id == shy.id))
    post_form(client, f"/instruments/{s.instrument.id}/qualification-requests/{request.id}/decline",
              {}, page=path)
    states = dict(db.session.execute(sa.select(QualificationRequest.user_id,
                                               QualificationRequest.state)).tuples().all())
    assert states == {asker.id: "granted", shy.id: "declined"}


def test_qualifications_forbidden_for_others(client, s):
    path = f"/instruments/{s.instrument.id}/qualifications"
    as_user(client, s.booker)
    assert client.get(path).status_code == 403
    as_user(client, factories.make_user_with_role("facility_manager"))
    db.session.commit()
    assert client.get(path).status_code == 403


def test_revoke_of_another_instruments_qualification_is_404(client, s):
    elsewhere = factories.make_instrument(s.facility)
    q = factories.make_qualification(s.other, elsewhere)
    db.session.commit()
    path = f"/instruments/{s.instrument.id}/qualifications"
    response = post_form(client, f"{path}/{q.id}/revoke", {}, page=path)
    assert response.status_code == 404
    db.session.refresh(q)
    assert q.revoked_at is None
