"""Preventive-maintenance plans (labbook/care/maintenance.py, labbook/care/tasks.py):
materialisation with a frozen clock (idempotent, catches up, DST-safe, monthly clamping,
usage hours), displaced bookings, collisions, completion records. Both databases."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from labbook.bookings import outages
from labbook.bookings.models import Booking, Outage
from labbook.care import maintenance, tasks
from labbook.care.models import MaintenancePlan
from labbook.errors import ValidationError
from labbook.extensions import db
from labbook.notifications.models import Notification
from tests import factories

UTC = timezone.utc
NOW = datetime(2030, 1, 1, 0, 0, tzinfo=UTC)


@pytest.fixture
def scene(app):
    facility = factories.make_facility()
    instrument = factories.make_instrument(facility)
    manager = factories.make_user_with_role("facility_manager", facility=facility)
    db.session.commit()
    return instrument, manager


def _plan(manager, instrument, **kw):
    values = dict(title="Vacuum service", outage_kind="preventive", interval_count=1,
                  interval_unit="weeks", duration_minutes=120,
                  first_start=datetime(2030, 1, 7, 1, 0, tzinfo=UTC), checklist=["Pump oil"])
    values.update(kw)
    return maintenance.create_plan(manager, instrument, **values)


def _windows(plan):
    return list(db.session.scalars(sa.select(Outage).where(Outage.plan_id == plan.id)
                                   .order_by(Outage.start_at)))


def test_materialise_writes_windows_up_to_the_horizon(scene):
    instrument, manager = scene
    plan = _plan(manager, instrument)
    written = maintenance.materialise_plan(plan, NOW)
    windows = _windows(plan)
    assert written == len(windows) == 8  # 8 weeks ahead, first on 2030-01-07
    assert windows[0].start_at == datetime(2030, 1, 7, 1, 0, tzinfo=UTC)
    assert windows[0].end_at == windows[0].start_at + timedelta(hours=2)
    assert all(w.outage_kind == "preventive" and w.title == "Vacuum service" for w in windows)
    assert windows[0].external_uid == "plan-%d-2030-01-07T01:00:00+00:00" % plan.id


def test_materialise_twice_writes_nothing_new(scene):
    instrument, manager = scene
    plan = _plan(manager, instrument)
    maintenance.materialise_plan(plan, NOW)
    before = [(w.id, w.start_at) for w in _windows(plan)]
    assert maintenance.materialise_plan(plan, NOW) == 0
    assert maintenance.materialise_plan(plan, NOW + timedelta(minutes=5)) == 0
    assert [(w.id, w.start_at) for w in _windows(plan)] == before


def test_task_catches_up_after_a_gap_and_skips_past_windows(scene):
    instrument, manager = scene
    plan = _plan(manager, instrument, interval_unit="days", interval_count=2)
    db.session.commit()
    assert tasks.materialise_maintenance(NOW) == 25  # 2030-01-07 .. 2030-02-24 every 2 days
    later = NOW + timedelta(days=60)  # the scheduler was down for two months
    written = tasks.materialise_maintenance(later)
    starts = [w.start_at for w in _windows(plan)]
    assert written > 0 and len(starts) == len(set(starts)) == 25 + written
    assert all(s >= later - timedelta(hours=2) for s in starts[25:])  # the gap is not back-filled
    assert max(starts) < later + maintenance.horizon()
    assert tasks.materialise_maintenance(later) == 0


def test_weekly_windows_keep_local_time_across_dst(app):
    facility = factories.make_facility(timezone="Europe/Berlin")
    instrument = factories.make_instrument(facility)
    manager = factories.make_user_with_role("facility_manager", facility=facility)
    berlin = ZoneInfo("Europe/Berlin")
    plan = _plan(manager, instrument, first_start=datetime(2030, 3, 18, 9, 0, tzinfo=berlin))
    maintenance.materialise_plan(plan, datetime(2030, 3, 10, tzinfo=UTC))
    windows = _windows(plan)
    local = [w.start_at.astimezone(berlin) for w in windows]
    assert all((t.hour, t.minute) == (9, 0) for t in local)
    offsets = [w.start_at.astimezone(UTC).hour for w in windows]
    assert offsets[:2] == [8, 8] and offsets[2] == 7  # clocks went forward on 2030-03-31


def test_monthly_windows_clamp_to_the_last_day(app):
    facility = factories.make_facility(timezone="Asia/Shanghai")
    instrument = factories.make_instrument(facility)
    manager = factories.make_user_with_role("facility_manager", facility=facility)
    shanghai = ZoneInfo("Asia/Shanghai")
    plan = _plan(manager, instrument, interval_unit="months",
                 first_start=datetime(2030, 1, 31, 9, 0, tzinfo=shanghai))
    app.config["LABBOOK_MAINTENANCE_HORIZON_DAYS"] = 150
    try:
        maintenance.materialise_plan(plan, datetime(2030, 1, 20, tzinfo=UTC))
    finally:
        del app.config["LABBOOK_MAINTENANCE_HORIZON_DAYS"]
    days = [w.start_at.astimezone(shanghai).date().isoformat() for w in _windows(plan)]
    assert days == ["2030-01-31", "2030-02-28", "2030-03-31", "2030-04-30", "2030-05-31"]


def _used(instrument, start, hours):
    booking = factories.make_booking(instrument, start=start, end=start + timedelta(hours=hours),
                                     state="completed")
    booking.checked_in_at, booking.checked_out_at = start, start + timedelta(hours=hours)
    db.session.flush()
    return booking


def test_usage_hours_plan_schedules_at_the_first_free_slot(scene):
    instrument, manager = scene
    plan = _plan(manager, instrument, interval_unit="usage_hours", interval_count=5,
                 first_start=NOW - timedelta(days=10))
    _used(instrument, NOW - timedelta(days=5), 3)
    assert maintenance.materialise_plan(plan, NOW) == 0  # 3 of 5 hours
    _used(instrument, NOW - timedelta(days=3), 3)
    busy = factories.make_booking(instrument, start=NOW + timedelta(minutes=30),
                                  end=NOW + timedelta(hours=3))
    assert maintenance.materialise_plan(plan, NOW) == 1
    (window,) = _windows(plan)
    assert window.start_at == busy.end_at  # the first 2 h free after the booking
    assert busy.state == "confirmed"
    assert maintenance.materialise_plan(plan, NOW + timedelta(minutes=10)) == 0


def test_usage_hours_count_restarts_after_a_completed_window(scene):
    instrument, manager = scene
    plan = _plan(manager, instrument, interval_unit="usage_hours", interval_count=2,
                 first_start=NOW - timedelta(days=10))
    _used(instrument, NOW - timedelta(days=5), 3)
    maintenance.materialise_plan(plan, NOW)
    (window,) = _windows(plan)
    after = window.end_at + timedelta(hours=1)
    maintenance.complete_window(manager, window, "done", [], window.start_at + timedelta(hours=1))
    assert maintenance.materialise_plan(plan, after) == 0  # the old hours no longer count
    _used(instrument, after, 2)
    assert maintenance.materialise_plan(plan, after + timedelta(hours=3)) == 1


def test_window_over_a_booking_cancels_it_and_tells_the_owner(scene):
    instrument, manager = scene
    booking = factories.make_booking(instrument, start=datetime(2030, 1, 7, 2, 0, tzinfo=UTC))
    plan = _plan(manager, instrument)
    maintenance.materialise_plan(plan, NOW)
    assert booking.state == "cancelled"
    assert booking.state_reason == outages.UNAVAILABLE and booking.late_cancel is False
    kinds = db.session.scalars(sa.select(Notification.kind).where(
        Notification.user_id == booking.user_id)).all()
    assert "outage_affects_booking" in kinds


def test_window_colliding_with_another_outage_is_skipped(scene):
    instrument, manager = scene
    outages.schedule_outage(manager, instrument, datetime(2030, 1, 14, 0, 0, tzinfo=UTC),
                            datetime(2030, 1, 14, 6, 0, tzinfo=UTC), "repair", "Leak", now=NOW)
    plan = _plan(manager, instrument)
    assert maintenance.materialise_plan(plan, NOW) == 7
    starts = [w.start_at.date().isoformat() for w in _windows(plan)]
    assert "2030-01-14" not in starts and "2030-01-21" in starts


def test_inactive_plan_writes_nothing_and_stopping_cancels_future_windows(scene):
    instrument, manager = scene
    plan = _plan(manager, instrument)
    maintenance.materialise_plan(plan, NOW)
    assert maintenance.delete_plan(manager, plan, NOW) == 8
    assert all(w.state == "cancelled" for w in _windows(plan))
    assert maintenance.materialise_plan(plan, NOW) == 0


def test_create_plan_refuses_bad_values_and_writes_nothing(scene):
    instrument, manager = scene
    with pytest.raises(ValidationError) as info:
        _plan(manager, instrument, interval_count=0, duration_minutes=-5, title=" ",
              interval_unit="years", first_start=datetime(2030, 1, 1))
    assert set(info.value.fields) == {"interval_count", "duration_minutes", "title",
                                      "interval_unit", "first_start"}
    assert db.session.scalar(sa.select(sa.func.count()).select_from(MaintenancePlan)) == 0


def test_only_managers_create_plans(scene):
    instrument, _manager = scene
    other = factories.make_user_with_role("facility_manager")
    with pytest.raises(outages.NotAllowed):
        _plan(other, instrument)


def test_complete_window_records_who_when_notes_and_checklist(scene):
    instrument, manager = scene
    plan = _plan(manager, instrument, checklist=["Pump oil", "Filters"])
    maintenance.materialise_plan(plan, NOW)
    window = _windows(plan)[0]
    at = window.start_at + timedelta(minutes=30)
    maintenance.complete_window(manager, window, " Oil changed ", ["Pump oil"], at)
    assert window.completed_at == at and window.completed_by_id == manager.id
    assert window.completion_notes == "Oil changed" and window.checklist_done == ["Pump oil"]
    assert window.end_at == at  # still running: ends now, the instrument is free again


def test_complete_window_refuses_unknown_items_and_future_windows(scene):
    instrument, manager = scene
    plan = _plan(manager, instrument)
    maintenance.materialise_plan(plan, NOW)
    first, second = _windows(plan)[:2]
    with pytest.raises(ValidationError) as info:
        maintenance.complete_window(manager, first, "", ["Invented"], first.end_at)
    assert "checklist_done" in info.value.fields
    with pytest.raises(ValidationError):
        maintenance.complete_window(manager, second, "", [], NOW)
    assert second.completed_at is None and first.completed_at is None


def test_occurrences_skip_the_far_past_quickly(scene):
    instrument, manager = scene
    plan = _plan(manager, instrument, interval_unit="days",
                 first_start=datetime(2000, 1, 1, 1, 0, tzinfo=UTC))
    got = list(maintenance.occurrences(plan, NOW, NOW + timedelta(days=3)))
    assert [s for s, _e in got] == [NOW + timedelta(hours=1) + timedelta(days=d) for d in range(3)]


def test_first_free_returns_none_when_an_open_outage_blocks(scene):
    instrument, manager = scene
    outages.schedule_outage(manager, instrument, NOW, None, "repair", "Down", now=NOW)
    assert maintenance.first_free(instrument, NOW, timedelta(hours=1)) is None
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Booking)) == 0
