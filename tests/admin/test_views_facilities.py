"""Facility administration pages (labbook/admin/views.py): creating and editing facilities
(time zone, code, platform), adding managers by email (which grants the role) and removing
them, and opening hours with several intervals a day; bad input is refused with 422 and
writes nothing, a refused edit re-renders every section; every change is audited."""
from __future__ import annotations

from datetime import time

import pytest
import sqlalchemy as sa

from labbook.auth.models import User
from labbook.extensions import db
from labbook.instruments.models import Facility, OpeningHours
from tests import factories
from tests.admin.view_support import _audits, _count, _post


def _facility(platform, **overrides):
    return {"platform_id": platform, "code": "bio", "name": "Bio Imaging Core",
            "name_zh": "生物成像平台", "location": "B2", "timezone": "Asia/Shanghai",
            "description": "Confocal and flow", **overrides}


def test_facility_create_writes_facility_and_audit(client, admin):
    platform = factories.make_platform()
    db.session.commit()
    response = _post(client, "/admin/facilities/new", _facility(platform.id),
                     "/admin/facilities/new")
    assert response.status_code == 302
    facility = db.session.scalar(sa.select(Facility).where(Facility.code == "bio"))
    assert facility.name_zh == "生物成像平台" and facility.platform_id == platform.id
    assert response.headers["Location"] == f"/admin/facilities/{facility.id}"
    assert _audits("facility.create")[0].actor_id == admin.id


@pytest.mark.parametrize("overrides, message", [
    ({"timezone": "Asia/Beijing"}, "Unknown time zone"),
    ({"code": "dup"}, "already has this code"),
    ({"name": "x" * 161}, "160"),
    ({"platform_id": "abc"}, "Invalid Choice"),
    ({"platform_id": "999999"}, "Not a valid choice"),
    ({"code": ""}, "required"),
])
def test_facility_create_bad_input_is_422_and_writes_nothing(client, admin, overrides, message):
    factories.make_facility(code="dup")
    platform = factories.make_platform()
    db.session.commit()
    before = _count(Facility)
    response = _post(client, "/admin/facilities/new",
                     {**_facility(platform.id), **overrides}, "/admin/facilities/new")
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert _count(Facility) == before
    assert _audits("facility.create") == []


def test_facility_edit_updates_and_audits(client, admin):
    facility = factories.make_facility(location="Old wing")
    db.session.commit()
    path = f"/admin/facilities/{facility.id}"
    response = _post(client, path, _facility(facility.platform_id, code=facility.code,
                                             name=facility.name, location="New wing",
                                             timezone="Europe/Berlin"), path)
    assert response.status_code == 302
    db.session.expire_all()
    facility = db.session.get(Facility, facility.id)
    assert (facility.location, facility.timezone) == ("New wing", "Europe/Berlin")
    assert _audits("facility.update")[0].after["location"] == "New wing"


def test_facility_edit_bad_timezone_rerenders_all_sections(client, admin):
    facility = factories.make_facility()
    db.session.commit()
    path = f"/admin/facilities/{facility.id}"
    response = _post(client, path, _facility(facility.platform_id, code=facility.code,
                                             timezone="Nowhere/Special"), path)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Unknown time zone" in page and "08:30-17:30" in page and "Add a manager" in page
    assert db.session.get(Facility, facility.id).timezone == "Asia/Shanghai"


def test_facility_add_manager_grants_role(client, admin):
    facility = factories.make_facility()
    user = factories.make_user(email="tech@example.org", roles=("researcher",))
    db.session.commit()
    response = _post(client, f"/admin/facilities/{facility.id}/managers",
                     {"email": "tech@example.org"})
    assert response.status_code == 302
    db.session.expire_all()
    user = db.session.get(User, user.id)
    assert user.manages_facility(facility.id)
    assert "facility_manager" in user.roles
    assert _audits("facility.managers")[0].after == {"user_ids": [user.id]}


def test_facility_add_manager_unknown_email_is_422(client, admin):
    facility = factories.make_facility()
    db.session.commit()
    response = _post(client, f"/admin/facilities/{facility.id}/managers", {"email": "no@one.org"})
    assert response.status_code == 422
    assert "No user has this email address" in response.get_data(as_text=True)
    assert _audits("facility.managers") == []


def test_facility_remove_manager(client, admin):
    manager = factories.make_user_with_role("facility_manager")
    facility = manager.managed_facilities[0]
    db.session.commit()
    response = _post(client, f"/admin/facilities/{facility.id}/managers/{manager.id}/remove", {})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Facility, facility.id).managers == []


def _hours(**days):
    return {f"day_{d}": days.get(f"d{d}", "") for d in range(7)}


def test_facility_hours_saves_multiple_intervals(client, admin):
    facility = factories.make_facility()
    db.session.commit()
    response = _post(client, f"/admin/facilities/{facility.id}/hours",
                     _hours(d0="08:30-12:00, 13:00-17:30", d5="9:00 – 12:00"))
    assert response.status_code == 302
    rows = db.session.scalars(sa.select(OpeningHours).where(
        OpeningHours.facility_id == facility.id).order_by(OpeningHours.weekday, OpeningHours.opens))
    assert [(r.weekday, r.opens, r.closes) for r in rows] == [
        (0, time(8, 30), time(12)), (0, time(13), time(17, 30)), (5, time(9), time(12))]
    assert len(_audits("facility.hours")) == 1


@pytest.mark.parametrize("text, message", [
    ("17:00-09:00", "must be before the closing time"),
    ("09:00-09:00", "must be before the closing time"),
    ("08:00-12:00, 11:00-14:00", "must not overlap"),
    ("8am to noon", "is not one"),
    ("25:00-26:00", "is not one"),
    ("08:00-12:00," * 20, "At most 200"),
])
def test_facility_hours_bad_input_is_422_and_writes_nothing(client, admin, text, message):
    facility = factories.make_facility()
    db.session.commit()
    response = _post(client, f"/admin/facilities/{facility.id}/hours", _hours(d2=text))
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert _count(OpeningHours, OpeningHours.facility_id == facility.id) == 5
    assert _audits("facility.hours") == []


def test_facility_unknown_id_is_404(client, admin):
    assert client.get("/admin/facilities/999999").status_code == 404
