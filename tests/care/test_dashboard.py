"""The facility manager's dashboard: its sections and who may see it; both databases."""
from __future__ import annotations

from datetime import timedelta

import pytest

from labbook.bookings.models import Outage
from labbook.care.dashboard import facility_dashboard
from labbook.care.models import FaultReport
from labbook.extensions import db
from tests import factories
from tests.bookings.view_support import as_user
from tests.care.test_usage_support import NOW, at, usage_scene
from tests.instruments import page


def _outage(instrument, start, end, kind="preventive", **kw):  # type: ignore[no-untyped-def]
    outage = Outage(instrument=instrument, start_at=start, end_at=end, block_end=end,
                    state=kw.pop("state", "scheduled"), outage_kind=kind,
                    title=kw.pop("title", None), **kw)
    db.session.add(outage)
    db.session.flush()
    return outage


def _fault(instrument, status="open", severity="degraded", **kw):  # type: ignore[no-untyped-def]
    fault = FaultReport(instrument=instrument, severity=severity, status=status,
                        description=kw.pop("description", "Stage drifts"),
                        resolved_at=NOW if status == "resolved" else None, **kw)
    db.session.add(fault)
    db.session.flush()
    return fault


@pytest.fixture
def s(app, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr("labbook.care.views_dashboard.now_utc", lambda: NOW)
    s = usage_scene()
    s.nmr = factories.make_instrument(s.facility, name="Agilent NMR", status="down")
    s.pending = factories.make_booking(s.sem, s.booker, start=at(23, 2), end=at(23, 3),
                                       state="pending")
    s.tomorrow = factories.make_booking(s.xrd, s.booker, start=at(21, 2), end=at(21, 3))
    s.fault_open = _fault(s.sem, reporter=s.booker, description="Stage drifts")
    s.fault_parts = _fault(s.xrd, status="waiting_parts", severity="down")
    _fault(s.sem, status="resolved", description="Fixed long ago")
    s.confocal = factories.make_instrument(s.facility, name="Leica confocal")
    s.repair = _outage(s.confocal, NOW - timedelta(hours=1), None, kind="repair", title="Pump")
    s.calibration = _outage(s.sem, NOW + timedelta(days=3), NOW + timedelta(days=3, hours=2),
                            kind="calibration", title="Yearly calibration")
    _outage(s.sem, NOW + timedelta(days=20), NOW + timedelta(days=20, hours=2),
            title="Too far ahead")
    _outage(s.sem, NOW + timedelta(days=4), NOW + timedelta(days=4, hours=2),
            state="cancelled", title="Called off")
    _outage(s.sem, NOW + timedelta(days=5), NOW + timedelta(days=5, hours=2), kind="closure",
            title="Holiday")
    db.session.commit()
    return s


def test_dashboard_sections(s):
    board = facility_dashboard(s.facility, NOW)
    assert board.pending == [s.pending]
    assert board.faults == [s.fault_parts, s.fault_open]  # most severe first
    assert board.maintenance == [s.calibration]
    assert [(i.name, o) for i, o in board.down] == [("Agilent NMR", None),
                                                    ("Leica confocal", s.repair)]
    assert board.open_sessions == [s.running]
    assert board.review == [s.walk_in]
    assert board.counts == {"pending": 1, "faults": 2, "maintenance": 1, "down": 2,
                            "open_sessions": 1, "review": 1}


def test_dashboard_schedule_today_and_tomorrow(s):
    (today, per_today), (tomorrow, per_tomorrow) = facility_dashboard(s.facility, NOW).schedule
    assert (today.isoformat(), tomorrow.isoformat()) == ("2026-03-20", "2026-03-21")
    assert dict((i.name, items) for i, items in per_today)["Zeiss SEM"] == [s.running]
    assert s.tomorrow in dict((i.name, items) for i, items in per_tomorrow)["Bruker XRD"]


def test_dashboard_maintenance_from_a_plan_counts_whatever_its_kind(s):
    from labbook.care.models import MaintenancePlan

    plan = MaintenancePlan(instrument=s.sem, title="Monthly", interval_count=1,
                           interval_unit="months", duration_minutes=60, first_start=NOW)
    db.session.add(plan)
    db.session.flush()
    # A plan's windows are preventive or calibration; a plan_id alone is enough too.
    planned = _outage(s.nmr, NOW + timedelta(days=1), NOW + timedelta(days=1, hours=1),
                      kind="preventive", plan_id=plan.id, title="Monthly")
    assert planned in facility_dashboard(s.facility, NOW).maintenance


def test_dashboard_page_shows_every_section(client, s):
    as_user(client, s.manager)
    html = page(client.get(f"/manage/facilities/{s.facility.id}/dashboard"))
    assert "Agilent NMR" in html.one("section", id_="down").text
    assert "Pump" in html.one("section", id_="down").text
    faults = html.one("section", id_="faults").text
    assert "Stage drifts" in faults and "waiting for parts" in faults
    assert "Fixed long ago" not in faults
    assert "Yearly calibration" in html.one("section", id_="maintenance").text
    assert "Alice Booker" in html.one("section", id_="approvals").text
    assert "Zeiss SEM" in html.one("section", id_="open-sessions").text
    review = html.one("section", id_="review")
    assert "Bruker XRD" in review.text
    assert "Today" in html.texts("h2")[-2] and "Tomorrow" in html.texts("h2")[-1]


def test_dashboard_empty_facility(client, app):
    manager = factories.make_user_with_role("facility_manager")
    db.session.commit()
    as_user(client, manager)
    facility = manager.managed_facilities[0]
    html = page(client.get(f"/manage/facilities/{facility.id}/dashboard"))
    assert "Every instrument is up." in html.one("section", id_="down").text
    assert "No open faults." in html.one("section", id_="faults").text


@pytest.mark.parametrize("role, status", [
    ("manager", 200), ("admin", 200), ("finance", 403), ("other_manager", 403),
    ("researcher", 403),
])
def test_dashboard_access(client, s, role, status):
    user = {
        "manager": lambda: s.manager,
        "other_manager": lambda: factories.make_user_with_role("facility_manager"),
    }.get(role, lambda: factories.make_user_with_role(role))()
    db.session.commit()
    as_user(client, user)
    assert client.get(f"/manage/facilities/{s.facility.id}/dashboard").status_code == status


def test_dashboard_unknown_facility_is_404(client, s):
    as_user(client, s.manager)
    assert client.get("/manage/facilities/999999/dashboard").status_code == 404
