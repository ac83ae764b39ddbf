"""Managers' outage and maintenance pages (labbook/care/views_outages.py): preview then
confirm (bookings cancelled and notified), 403 for others, bad input re-rendered with
nothing written, end now, cancel, completion and plan pages. Both databases."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from labbook.bookings import outages
from labbook.bookings.models import Outage
from labbook.care import maintenance
from labbook.care.models import MaintenancePlan
from labbook.db import now_utc
from labbook.extensions import db
from labbook.notifications.models import Notification
from tests import factories
from tests.conftest import csrf_token

UTC = timezone.utc
START = datetime(2030, 1, 7, 1, 0, tzinfo=UTC)  # Monday 09:00 in Shanghai


@pytest.fixture
def scene(app, login_as):
    facility = factories.make_facility()
    instrument = factories.make_instrument(facility, name="Beta XRD")
    booking = factories.make_booking(instrument, start=START + timedelta(hours=1))
    db.session.commit()
    manager = login_as("facility_manager", facility=facility)
    return dict(facility=facility, instrument=instrument, booking=booking, manager=manager)


def _form(client, scene, **kw):
    path = f"/manage/facilities/{scene['facility'].id}/outages/new"
    data = {"csrf_token": csrf_token(client, path), "instrument": scene["instrument"].id,
            "kind": "calibration", "title": "Yearly calibration", "date": "2030-01-07",
            "start_time": "09:00", "end_time": "13:00", "action": "preview"}
    data.update(kw)
    return client.post(path, data=data)


def _count():
    return db.session.scalar(sa.select(sa.func.count()).select_from(Outage))


def test_preview_lists_affected_bookings_and_writes_nothing(client, scene):
    response = _form(client, scene)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert f"#{scene['booking'].id}" in html and scene["booking"].user.name in html
    assert 'value="confirm"' in html
    db.session.expire_all()
    assert _count() == 0 and scene["booking"].state == "confirmed"


def test_confirm_schedules_cancels_and_notifies(client, scene):
    response = _form(client, scene, action="confirm")
    assert response.status_code == 302
    db.session.expire_all()
    (outage,) = db.session.scalars(sa.select(Outage)).all()
    assert (outage.start_at, outage.end_at) == (START, START + timedelta(hours=4))
    assert outage.outage_kind == "calibration"
    assert scene["booking"].state == "cancelled"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Notification).where(
        Notification.kind == "outage_affects_booking")) == 1
    listing = client.get(f"/manage/instruments/{scene['instrument'].id}/outages")
    assert "Yearly calibration" in listing.get_data(as_text=True)


def test_all_instruments_of_the_facility(client, scene):
    factories.make_instrument(scene["facility"])
    db.session.commit()
    assert _form(client, scene, instrument=0, action="confirm").status_code == 302
    assert _count() == 2


@pytest.mark.parametrize("bad, field", [
    ({"end_time": "08:00"}, "end_time"),
    ({"start_time": ""}, "start_time"),
    ({"kind": "party"}, "kind"),
    ({"instrument": "999999"}, "instrument"),
])
def test_bad_input_re_renders_with_errors(client, scene, bad, field):
    response = _form(client, scene, action="confirm", **bad)
    assert response.status_code == 422
    assert re.search(rf'id="{field}-error"|class="field [^"]*has-error', response.get_data(
        as_text=True))
    assert _count() == 0


def test_overlap_with_another_outage_is_refused(client, scene):
    outages.schedule_outage(None, scene["instrument"], START, START + timedelta(hours=2),
                            "repair", "Leak", now=now_utc())
    db.session.commit()
    response = _form(client, scene, action="confirm")
    assert response.status_code == 409 and "another outage" in response.get_data(as_text=True)
    assert _count() == 1


def test_unplanned_then_fixed(client, scene):
    assert _form(client, scene, unplanned="y", kind="repair", action="confirm",
                 date="", start_time="", end_time="").status_code == 302
    outage = db.session.scalars(sa.select(Outage)).one()
    assert outage.end_at is None
    path = f"/manage/instruments/{scene['instrument'].id}/outages"
    response = client.post(f"/manage/outages/{outage.id}/end",
                           data={"csrf_token": csrf_token(client, path)})
    assert response.status_code == 302
    db.session.expire_all()
    assert outage.end_at is not None and outage.end_at <= now_utc()


def test_cancel_a_scheduled_outage(client, scene):
    _form(client, scene, action="confirm")
    outage = db.session.scalars(sa.select(Outage)).one()
    path = f"/manage/instruments/{scene['instrument'].id}/outages"
    client.post(f"/manage/outages/{outage.id}/cancel",
                data={"csrf_token": csrf_token(client, path)})
    db.session.expire_all()
    assert outage.state == "cancelled"


@pytest.mark.parametrize("role", ["researcher", "other_manager", "finance"])
def test_pages_are_forbidden_to_others(app, client, role):
    facility = factories.make_facility()
    instrument = factories.make_instrument(facility)
    outage = outages.schedule_outage(None, instrument, START, START + timedelta(hours=1),
                                     "repair", None, now=now_utc()).outage
    db.session.commit()
    from tests.conftest import login
    user = factories.make_user_with_role("facility_manager" if role == "other_manager" else role)
    db.session.commit()
    login(client, user.email)
    for path in (f"/manage/facilities/{facility.id}/outages",
                 f"/manage/instruments/{instrument.id}/outages",
                 f"/manage/facilities/{facility.id}/outages/new",
                 f"/manage/outages/{outage.id}/complete",
                 f"/instruments/{instrument.id}/maintenance",
                 f"/instruments/{instrument.id}/maintenance/new"):
        assert client.get(path).status_code == 403, path
    token = csrf_token(client, "/")
    for action in ("end", "cancel"):
        assert client.post(f"/manage/outages/{outage.id}/{action}",
                           data={"csrf_token": token}).status_code == 403
    assert client.get("/manage/facilities/999999/outages").status_code == 404


def test_completion_page_records_the_work(client, scene):
    plan = maintenance.create_plan(
        scene["manager"], scene["instrument"], title="Service", interval_count=1,
        interval_unit="weeks", duration_minutes=60, checklist=["Oil", "Filter"],
        first_start=now_utc() - timedelta(minutes=30))
    maintenance.materialise_plan(plan, now_utc() - timedelta(minutes=40))
    db.session.commit()
    window = db.session.scalars(sa.select(Outage).where(Outage.plan_id == plan.id)
                                .order_by(Outage.start_at)).first()
    path = f"/manage/outages/{window.id}/complete"
    page = client.get(path).get_data(as_text=True)
    assert 'value="Oil"' in page and 'value="Filter"' in page
    token = csrf_token(client, path)
    bad = client.post(path, data={"csrf_token": token, "checklist_done": "Invented"})
    assert bad.status_code == 422
    response = client.post(path, data={"csrf_token": token, "checklist_done": ["Oil"],
                                       "notes": "Changed the oil"})
    assert response.status_code == 302
    db.session.expire_all()
    assert window.completed_by_id == scene["manager"].id
    assert window.checklist_done == ["Oil"] and window.completion_notes == "Changed the oil"


def test_plan_pages_create_edit_and_stop(client, scene):
    path = f"/instruments/{scene['instrument'].id}/maintenance/new"
    data = {"csrf_token": csrf_token(client, path), "title": "Bake-out", "outage_kind":
            "preventive", "interval_count": "2", "interval_unit": "weeks",
            "duration_minutes": "90", "first_date": "2030-01-08", "first_time": "08:00",
            "checklist": "Vent\n\nPump down\n", "active": "y"}
    bad = client.post(path, data={**data, "interval_count": "0"})
    assert bad.status_code == 422
    assert db.session.scalar(sa.select(sa.func.count()).select_from(MaintenancePlan)) == 0
    assert client.post(path, data=data).status_code == 302
    plan = db.session.scalars(sa.select(MaintenancePlan)).one()
    assert plan.checklist == ["Vent", "Pump down"]
    assert plan.first_start == datetime(2030, 1, 8, 0, 0, tzinfo=UTC)
    edit = f"/maintenance/{plan.id}/edit"
    assert "Pump down" in client.get(edit).get_data(as_text=True)
    assert client.post(edit, data={**data, "csrf_token": csrf_token(client, edit),
                                   "title": "Bake-out v2"}).status_code == 302
    listing = client.get(f"/instruments/{scene['instrument'].id}/maintenance")
    assert "Bake-out v2" in listing.get_data(as_text=True)
    client.post(f"/maintenance/{plan.id}/delete",
                data={"csrf_token": csrf_token(client, edit)})
    db.session.expire_all()
    assert plan.active is False
