"""Facility rules: create/update with validation, managers, opening hours, admins only."""
from __future__ import annotations

from datetime import time

import pytest
import sqlalchemy as sa

from labbook.audit import AuditEntry
from labbook.errors import Forbidden, NotFound, ValidationError
from labbook.extensions import db
from labbook.instruments import facilities as svc
from labbook.instruments.models import Facility, OpeningHours
from tests import factories


def _values(platform, **overrides):
    return {"platform_id": platform.id, "code": "nano", "name": "Nanofabrication Core",
            "name_zh": "微纳加工平台", "location": "Building 3", "description": "Clean room",
            **overrides}


def _audit(action):
    return db.session.scalars(sa.select(AuditEntry).where(AuditEntry.action == action)).all()


def test_create_facility_defaults_timezone_and_audits(app):
    admin = factories.make_user(roles=("admin",))
    facility = svc.create_facility(admin, _values(factories.make_platform()))
    assert facility.id is not None
    assert facility.timezone == "Asia/Shanghai"
    entry, = _audit("facility.create")
    assert entry.actor_id == admin.id and entry.after["code"] == "nano"


def test_create_facility_strips_text_and_blank_chinese_name_is_none(app):
    facility = svc.create_facility(None, _values(factories.make_platform(), name="  Core  ",
                                                 name_zh=""))
    assert facility.name == "Core"
    assert facility.name_zh is None


@pytest.mark.parametrize("overrides, field", [
    ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
    ({"timezone": "localtime"}, "timezone"),
    ({"timezone": ""}, "timezone"),
    ({"code": ""}, "code"),
    ({"name": "x" * 161}, "name"),
    ({"location": "x" * 201}, "location"),
    ({"platform_id": 999999}, "platform_id"),
    ({"platform_id": True}, "platform_id"),
    ({"colour": "red"}, "colour"),
])
def test_create_facility_rejects_bad_values(app, overrides, field):
    platform = factories.make_platform()
    with pytest.raises(ValidationError) as info:
        svc.create_facility(None, _values(platform, **overrides))
    assert field in info.value.fields
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Facility).where(
        Facility.code == overrides.get("code", "nano"))) == 0


def test_create_facility_requires_platform(app):
    values = _values(factories.make_platform())
    del values["platform_id"]
    with pytest.raises(ValidationError) as info:
        svc.create_facility(None, values)
    assert "platform_id" in info.value.fields


def test_create_facility_rejects_duplicate_code_and_name(app):
    existing = factories.make_facility()
    with pytest.raises(ValidationError) as info:
        svc.create_facility(None, _values(existing.platform, code=existing.code,
                                          name=existing.name))
    assert set(info.value.fields) == {"code", "name"}


def test_facility_changes_are_admin_only(app):
    manager = factories.make_user_with_role("facility_manager")
    facility = manager.managed_facilities[0]
    with pytest.raises(Forbidden):
        svc.create_facility(manager, _values(facility.platform))
    with pytest.raises(Forbidden):
        svc.update_facility(manager, facility, {"location": "elsewhere"})
    with pytest.raises(Forbidden):
        svc.set_opening_hours(manager, facility, [])
    with pytest.raises(Forbidden):
        svc.add_manager(manager, facility, factories.make_user())


def test_update_facility_keeps_own_code_and_audits_only_changes(app):
    admin = factories.make_user(roles=("admin",))
    facility = factories.make_facility(location="Old")
    svc.update_facility(admin, facility, {"code": facility.code, "location": "New",
                                          "timezone": "Europe/Berlin"})
    assert facility.location == "New" and facility.timezone == "Europe/Berlin"
    entry, = _audit("facility.update")
    assert entry.before == {"location": "Old", "timezone": "Asia/Shanghai"}
    assert entry.after == {"location": "New", "timezone": "Europe/Berlin"}


def test_update_facility_rejects_another_facilitys_code(app):
    one, two = factories.make_facility(), factories.make_facility()
    with pytest.raises(ValidationError) as info:
        svc.update_facility(None, two, {"code": one.code})
    assert "code" in info.value.fields


def test_add_manager_grants_role_and_audits(app):
    admin = factories.make_user(roles=("admin",))
    facility = factories.make_facility()
    user = factories.make_user(roles=("researcher",))
    svc.add_manager(admin, facility, user)
    assert user in facility.managers
    assert user.roles == {"researcher", "facility_manager"}
    assert user.manages_facility(facility)
    entry, = _audit("facility.managers")
    assert entry.before == {"user_ids": []} and entry.after == {"user_ids": [user.id]}


def test_add_existing_manager_changes_nothing(app):
    facility = factories.make_facility()
    user = factories.make_user()
    svc.add_manager(None, facility, user)
    svc.add_manager(None, facility, user)
    assert facility.managers == [user]
    assert len(_audit("facility.managers")) == 1


def test_remove_manager_ends_scope_but_keeps_role(app):
    manager = factories.make_user_with_role("facility_manager")
    facility = manager.managed_facilities[0]
    svc.remove_manager(None, facility, manager)
    assert facility.managers == []
    assert not manager.manages_facility(facility)
    assert "facility_manager" in manager.roles


def test_remove_manager_refuses_a_non_manager(app):
    with pytest.raises(NotFound):
        svc.remove_manager(None, factories.make_facility(), factories.make_user())


def test_set_opening_hours_replaces_week_and_audits(app):
    facility = factories.make_facility()  # Mon-Fri 08:30-17:30
    svc.set_opening_hours(None, facility, [
        (0, time(13, 0), time(17, 30)), (0, time(8, 30), time(12, 0)), (5, time(9), time(12)),
    ])
    db.session.expire_all()
    rows = db.session.scalars(
        sa.select(OpeningHours).where(OpeningHours.facility_id == facility.id)
        .order_by(OpeningHours.weekday, OpeningHours.opens)).all()
    assert [(r.weekday, r.opens, r.closes) for r in rows] == [
        (0, time(8, 30), time(12)), (0, time(13), time(17, 30)), (5, time(9), time(12))]
    entry, = _audit("facility.hours")
    assert len(entry.before["hours"]) == 5
    assert entry.after["hours"][0] == [0, "08:30", "12:00"]


def test_set_opening_hours_allows_touching_intervals(app):
    facility = factories.make_facility()
    svc.set_opening_hours(None, facility, [(2, time(8), time(12)), (2, time(12), time(13))])
    assert len(facility.opening_hours) == 2


def test_set_opening_hours_empty_closes_every_day(app):
    facility = factories.make_facility()
    svc.set_opening_hours(None, facility, [])
    assert svc.hours_by_day(facility) == {d: [] for d in range(7)}


@pytest.mark.parametrize("intervals, key", [
    ([(1, time(12), time(12))], "day_1"),
    ([(1, time(17), time(9))], "day_1"),
    ([(3, time(8), time(12)), (3, time(11, 59), time(14))], "day_3"),
    ([(7, time(8), time(9))], "opening_hours"),
    ([(-1, time(8), time(9))], "opening_hours"),
    ([(0, "08:00", time(9))], "day_0"),
])
def test_set_opening_hours_rejects_bad_intervals_and_writes_nothing(app, intervals, key):
    facility = factories.make_facility()
    with pytest.raises(ValidationError) as info:
        svc.set_opening_hours(None, facility, intervals)
    assert key in info.value.fields
    assert len(facility.opening_hours) == 5
    assert _audit("facility.hours") == []


def test_hours_by_day_groups_in_order(app):
    facility = factories.make_facility()
    svc.set_opening_hours(None, facility, [(4, time(14), time(18)), (4, time(8), time(12))])
    assert svc.hours_by_day(facility)[4] == [(time(8), time(12)), (time(14), time(18))]


def test_is_timezone_accepts_iana_names_only(app):
    assert svc.is_timezone("Asia/Shanghai") and svc.is_timezone("UTC")
    assert not svc.is_timezone("Asia/Beijing")
    assert not svc.is_timezone(None)
    assert not svc.is_timezone("../etc/passwd")
