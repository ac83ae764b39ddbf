"""Instrument status, service log and downtime statistics (labbook/care/status.py)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from labbook.audit import AuditEntry
from labbook.bookings.models import Outage
from labbook.care import faults, status
from labbook.extensions import db
from tests import factories
from tests.care.test_faults import NOW, scene

H = timedelta(hours=1)
UTC = timezone.utc


@pytest.fixture
def s(app):  # type: ignore[no-untyped-def]
    return scene()


def outage(instrument, start, end, kind="preventive", title="PM", **kw):  # type: ignore
    row = Outage(instrument=instrument, state=kw.pop("state", "scheduled"), outage_kind=kind,
                 title=title, start_at=start, end_at=end, block_end=end, **kw)
    db.session.add(row)
    db.session.flush()
    return row


def test_status_available_without_faults_or_outages(s) -> None:  # type: ignore
    assert status.derived_status(s.instrument, NOW) == "available"


@pytest.mark.parametrize("start, end, expected", [
    (NOW - H, NOW + H, "down"),      # running
    (NOW, NOW + H, "down"),          # starts right now
    (NOW - H, None, "down"),         # open end
    (NOW + H, NOW + 2 * H, "available"),  # not yet
    (NOW - 2 * H, NOW, "available"),      # over (half-open)
])
def test_status_follows_running_outages(s, start, end, expected) -> None:  # type: ignore
    outage(s.instrument, start, end)
    assert status.derived_status(s.instrument, NOW) == expected


def test_cancelled_outage_does_not_count(s) -> None:  # type: ignore
    outage(s.instrument, NOW - H, NOW + H, state="cancelled")
    assert status.derived_status(s.instrument, NOW) == "available"


def test_status_from_open_faults(s) -> None:  # type: ignore
    faults.report_fault(s.reporter, s.instrument, "cosmetic", "Dent", now=NOW)
    assert status.derived_status(s.instrument, NOW) == "available"
    degraded = faults.report_fault(s.reporter, s.instrument, "degraded", "Drift", now=NOW)
    assert status.derived_status(s.instrument, NOW) == "limited"
    faults.triage_fault(s.manager, degraded, "resolved", "", now=NOW)
    assert status.derived_status(s.instrument, NOW) == "available"


def test_down_fault_beats_degraded_and_retired_stays(s) -> None:  # type: ignore
    faults.report_fault(s.reporter, s.instrument, "degraded", "Drift", now=NOW)
    faults.report_fault(s.reporter, s.instrument, "down", "Dead", now=NOW)
    assert status.derived_status(s.instrument, NOW) == "down"
    s.instrument.status = "retired"
    assert status.derived_status(s.instrument, NOW) == "retired"
    assert status.sync_status(s.instrument, NOW) == "retired"


def test_sync_status_audits_changes_only(s) -> None:  # type: ignore
    outage(s.instrument, NOW - H, NOW + H)
    assert status.sync_status(s.instrument, NOW) == "down"
    assert status.sync_status(s.instrument, NOW) == "down"
    assert status.sync_status(s.instrument, NOW + 2 * H) == "available"
    rows = db.session.execute(sa.select(AuditEntry.at, AuditEntry.after).where(
        AuditEntry.action == "instrument.status",
        AuditEntry.object_id == str(s.instrument.id)).order_by(AuditEntry.id)).all()
    assert [(at, after["status"]) for at, after in rows] == [
        (NOW, "down"), (NOW + 2 * H, "available")]


# -- service log ---------------------------------------------------------------------------


def _log_scene(s):  # type: ignore[no-untyped-def]
    pm = outage(s.instrument, NOW - 48 * H, NOW - 46 * H, title="Quarterly PM",
                created_by_id=s.manager.id)
    pm.completed_at, pm.completed_by_id = NOW - 46 * H, s.manager.id
    pm.completion_notes = "All checks passed"
    outage(s.instrument, NOW - 30 * H, NOW - 29 * H, kind="calibration", title="Cal")
    outage(s.instrument, NOW + 30 * H, NOW + 31 * H, title="Future PM")  # not happened yet
    outage(s.instrument, NOW - 20 * H, NOW - 19 * H, title="Dropped", state="cancelled")
    fault = faults.report_fault(s.reporter, s.instrument, "down", "No vacuum", now=NOW - 10 * H)
    faults.triage_fault(s.manager, fault, "resolved", "Pump swapped", now=NOW - 5 * H)
    return fault


def test_service_log_lists_everything_newest_first(s) -> None:  # type: ignore
    _log_scene(s)
    log = status.service_log(s.instrument, s.manager, NOW)
    assert [(e.kind, e.at) for e in log] == [
        ("status", NOW - 5 * H),
        ("fault_note", NOW - 5 * H),
        ("status", NOW - 10 * H),
        ("fault", NOW - 10 * H),
        ("repair", NOW - 10 * H),
        ("calibration", NOW - 30 * H),
        ("completed", NOW - 46 * H),
        ("preventive", NOW - 48 * H),
    ]
    by_kind = {e.kind: e for e in log}
    assert by_kind["completed"].detail == "All checks passed"
    assert by_kind["completed"].person == s.manager.name
    assert by_kind["fault"].person == s.reporter.name
    assert by_kind["fault_note"].detail == "Pump swapped"
    assert by_kind["repair"].end == NOW - 5 * H
    assert by_kind["repair"].person == "the system"


def test_service_log_hides_people_from_non_managers(s) -> None:  # type: ignore
    _log_scene(s)
    log = status.service_log(s.instrument, s.other, NOW)
    assert len(log) == 8 and {e.person for e in log} == {None}
    assert None not in {e.person for e in status.service_log(s.instrument, s.admin, NOW)}


# -- downtime ------------------------------------------------------------------------------


def test_downtime_clips_to_the_facility_month(s) -> None:  # type: ignore
    # Shanghai is UTC+8: January 2030 is [2029-12-31 16:00Z, 2030-01-31 16:00Z).
    outage(s.instrument, datetime(2029, 12, 31, 10, tzinfo=UTC),
           datetime(2029, 12, 31, 20, tzinfo=UTC))  # 4 h inside January
    outage(s.instrument, datetime(2030, 1, 31, 14, tzinfo=UTC),
           datetime(2030, 1, 31, 22, tzinfo=UTC), kind="closure")  # 2 h inside
    outage(s.instrument, datetime(2030, 1, 10, 1, tzinfo=UTC),
           datetime(2030, 1, 10, 2, 30, tzinfo=UTC), kind="repair")
    result = status.downtime(s.instrument, 2030, 1, datetime(2030, 3, 1, tzinfo=UTC))
    assert (result["planned_hours"], result["unplanned_hours"], result["total_hours"]) == (
        "6.00", "1.50", "7.50")
    december = status.downtime(s.instrument, 2029, 12, datetime(2030, 3, 1, tzinfo=UTC))
    assert december["planned_hours"] == "6.00"  # 10:00Z to 16:00Z on Dec 31


def test_downtime_counts_open_outages_up_to_now(s) -> None:  # type: ignore
    outage(s.instrument, NOW - 5 * H, None, kind="repair")
    result = status.downtime(s.instrument, 2030, 1, NOW)
    assert (result["planned_hours"], result["unplanned_hours"]) == ("0.00", "5.00")
    second = factories.make_instrument(s.facility)
    outage(second, NOW - H, NOW + 3 * H)  # running: only its past hour counts
    outage(second, NOW + 5 * H, NOW + 6 * H)  # later this month: not yet
    assert status.downtime(second, 2030, 1, NOW)["planned_hours"] == "1.00"


def test_downtime_uses_real_hours_across_daylight_saving(app) -> None:  # type: ignore
    s = scene(timezone="Europe/Berlin")
    # March 2030 in Berlin has 743 hours (clocks go forward on the 31st).
    outage(s.instrument, datetime(2030, 2, 20, tzinfo=UTC), datetime(2030, 4, 5, tzinfo=UTC),
           kind="closure")
    result = status.downtime(s.instrument, 2030, 3, datetime(2030, 5, 1, tzinfo=UTC))
    assert result["planned_hours"] == "743.00"
    october = status.downtime(s.instrument, 2030, 10, datetime(2031, 1, 1, tzinfo=UTC))
    assert october["planned_hours"] == "0.00"


def test_mean_time_to_repair_of_faults_resolved_in_the_month(s) -> None:  # type: ignore
    first = faults.report_fault(s.reporter, s.instrument, "degraded", "A", now=NOW)
    second = faults.report_fault(s.reporter, s.instrument, "cosmetic", "B", now=NOW + H)
    faults.report_fault(s.reporter, s.instrument, "cosmetic", "open one", now=NOW)
    faults.triage_fault(s.manager, first, "resolved", "", now=NOW + 2 * H)
    faults.triage_fault(s.manager, second, "resolved", "", now=NOW + 6 * H)
    result = status.downtime(s.instrument, 2030, 1, NOW + 24 * H)
    assert result["mean_time_to_repair_hours"] == "3.50"
    assert (result["faults_reported"], result["faults_resolved"]) == (3, 2)
    assert status.downtime(s.instrument, 2030, 2, NOW)["mean_time_to_repair_hours"] is None


def test_month_bounds_in_the_facility_zone(s) -> None:  # type: ignore
    start, end = status.month_bounds(s.instrument, 2030, 12)
    assert (start, end) == (datetime(2030, 11, 30, 16, tzinfo=UTC),
                            datetime(2030, 12, 31, 16, tzinfo=UTC))
