"""Outages and maintenance windows (labbook/bookings/outages.py): they hold the slot like
bookings, displace the bookings inside their window (cancelled as "instrument unavailable",
never late, owners notified with alternatives), refuse to overlap each other, and only a
facility's managers (and admins) may schedule them. Both databases."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from labbook.audit import AuditEntry
from labbook.auth.models import User
from labbook.bookings import outages, services, slots
from labbook.bookings.errors import BookingConflict, NotAllowed
from labbook.bookings.models import ACTIVE_STATES, Booking, Outage, Reservation
from labbook.errors import ValidationError
from labbook.extensions import db
from labbook.instruments.models import Instrument
from labbook.notifications.models import Notification, OutboxMessage
from tests import factories
from tests.mail import compose
from tests.bookings import test_races as races
from tests.bookings.conftest import build_scene

UTC = timezone.utc
# Monday 2030-01-07 10:00 Asia/Shanghai = 02:00 UTC; "now" is a week earlier.
MON_10 = datetime(2030, 1, 7, 2, 0, tzinfo=UTC)
NOW = MON_10 - timedelta(days=7)
HOUR = timedelta(hours=1)


@pytest.fixture
def scene(app):
    facility = factories.make_facility()
    instrument = factories.make_instrument(facility)
    manager = factories.make_user_with_role("facility_manager", facility=facility)
    db.session.commit()
    return instrument, manager


def _count(model, *where) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


def _schedule(actor, instrument, start=MON_10 - HOUR, end=MON_10 + 2 * HOUR, **kw):
    return outages.schedule_outage(actor, instrument, start, end, kw.pop("kind", "repair"),
                                   kw.pop("title", "Column bake-out"), now=NOW, **kw)


def test_outage_holds_the_slot_against_bookings(scene):
    instrument, manager = scene
    result = _schedule(manager, instrument)
    assert result.outage.state == "scheduled" and result.outage.block_end == MON_10 + 2 * HOUR
    user = factories.make_booker(instrument)
    with pytest.raises(BookingConflict) as info:
        services.create_booking(user, instrument, MON_10, MON_10 + HOUR, now=NOW)
    assert info.value.status == 409
    assert info.value.conflicts[0]["kind"] == "outage"
    assert info.value.conflicts[0]["title"] == "Column bake-out"


def test_database_refuses_a_raw_booking_over_an_outage(scene, backend_name):
    instrument, manager = scene
    _schedule(manager, instrument)
    if backend_name == "postgresql":
        with pytest.raises(sa.exc.IntegrityError) as info:
            with db.session.begin_nested():
                factories.make_booking(instrument, start=MON_10)
        assert info.value.orig.sqlstate == "23P01"
    else:  # SQLite: the check under BEGIN IMMEDIATE is the guarantee
        clash = slots.overlapping(instrument.id, MON_10, MON_10 + HOUR)
        assert [r.kind for r in clash] == ["outage"]


def test_affected_bookings_are_cancelled_never_late(scene):
    instrument, manager = scene
    inside = factories.make_booking(instrument, start=MON_10)
    edge = factories.make_booking(instrument, start=MON_10 + HOUR + 30 * timedelta(minutes=1))
    outside = factories.make_booking(instrument, start=MON_10 + 5 * HOUR)
    result = _schedule(manager, instrument)
    assert sorted(b.id for b in result.affected) == sorted([inside.id, edge.id])
    for booking in (inside, edge):
        assert booking.state == "cancelled"
        assert booking.state_reason == "instrument unavailable"
        assert booking.late_cancel is False
        assert booking.state_changed_by_id == manager.id
    assert outside.state == "confirmed"
    actions = db.session.scalars(sa.select(AuditEntry.action)).all()
    assert actions.count("booking.cancelled") == 2 and "outage.create" in actions


def test_owners_are_notified_with_alternatives_outside_the_outage(scene):
    instrument, manager = scene
    booking = factories.make_booking(instrument, start=MON_10)
    result = _schedule(manager, instrument, title="真空泵维修")
    note = db.session.scalar(sa.select(Notification).where(
        Notification.user_id == booking.user_id))
    assert note.kind == "outage_affects_booking" and note.reservation_id == booking.id
    assert note.params["outage_title"] == "真空泵维修"
    assert note.params["outage_id"] == result.outage.id
    assert note.params["reason"] == "instrument unavailable"
    offers = note.params["alternatives"]
    assert 1 <= len(offers) <= 3
    for offer in offers:
        start, end = (datetime.fromisoformat(offer[k]) for k in ("start", "end"))
        assert end - start == HOUR
        assert end <= result.outage.start_at or start >= result.outage.end_at
    compose()
    mail = db.session.scalar(sa.select(OutboxMessage).where(
        OutboxMessage.notification_id == note.id))
    assert mail.state == "pending" and mail.to_address == booking.user.email
    # One message per displaced booking: no second "booking cancelled" notice.
    assert _count(Notification, Notification.user_id == booking.user_id) == 1


def test_dry_run_lists_affected_and_writes_nothing(scene):
    instrument, manager = scene
    booking = factories.make_booking(instrument, start=MON_10)
    db.session.commit()
    before = (_count(Reservation), _count(Notification), _count(AuditEntry))
    result = _schedule(manager, instrument, dry_run=True)
    assert result.dry_run and result.outage is None
    assert [b.id for b in result.affected] == [booking.id]
    db.session.expire_all()
    assert (_count(Reservation), _count(Notification), _count(AuditEntry)) == before
    assert db.session.get(Booking, booking.id).state == "confirmed"


@pytest.mark.parametrize("role", ["researcher", "team_lead", "finance", "facility_manager"])
def test_others_may_not_schedule_outages(scene, role):
    instrument, _manager = scene
    stranger = factories.make_user_with_role(role)  # a manager of another facility
    with pytest.raises(NotAllowed):
        _schedule(stranger, instrument)
    with pytest.raises(NotAllowed):
        _schedule(stranger, instrument, dry_run=True)
    assert _count(Outage) == 0


def test_admin_may_schedule_outages(scene):
    instrument, _manager = scene
    admin = factories.make_user_with_role("admin")
    assert _schedule(admin, instrument).outage.created_by_id == admin.id


def test_overlapping_outages_are_refused_and_nothing_is_cancelled(scene):
    instrument, manager = scene
    _schedule(manager, instrument)
    booking = factories.make_booking(instrument, start=MON_10 + 4 * HOUR)
    with pytest.raises(BookingConflict) as info:
        _schedule(manager, instrument, start=MON_10 + HOUR, end=MON_10 + 6 * HOUR)
    assert info.value.status == 409
    assert [c["kind"] for c in info.value.conflicts] == ["outage"]
    assert booking.state == "confirmed"
    assert _count(Outage) == 1


def test_open_ended_outage_blocks_everything_after_its_start(scene):
    instrument, manager = scene
    later = factories.make_booking(instrument, start=MON_10 + timedelta(days=60))
    earlier = factories.make_booking(instrument, start=MON_10 - 3 * HOUR)
    result = _schedule(manager, instrument, start=MON_10, end=None, kind="repair")
    assert result.outage.end_at is None and result.outage.block_end is None
    assert later.state == "cancelled" and earlier.state == "confirmed"
    user = factories.make_booker(instrument)
    far = MON_10 + timedelta(days=80)
    with pytest.raises(BookingConflict):
        services.create_booking(user, instrument, far, far + HOUR, now=NOW)
    with pytest.raises(BookingConflict):
        _schedule(manager, instrument, start=MON_10 + timedelta(days=300),
                  end=MON_10 + timedelta(days=301))


def test_buffer_reaching_into_the_outage_is_trimmed_not_cancelled(scene):
    instrument, manager = scene
    instrument.buffer_minutes = 30
    booking = factories.make_booking(instrument, start=MON_10 - 2 * HOUR)  # ends at 09:00
    result = _schedule(manager, instrument, start=MON_10 - HOUR)  # from 09:00
    assert booking.state == "confirmed" and result.affected == []
    assert booking.block_end == MON_10 - HOUR and result.trimmed == [booking]


def test_running_session_must_be_checked_out_first(scene):
    instrument, manager = scene
    booking = factories.make_booking(instrument, start=MON_10, state="in_use")
    with pytest.raises(BookingConflict) as info:
        _schedule(manager, instrument)
    assert info.value.conflicts[0]["booking_id"] == booking.id
    assert booking.state == "in_use" and _count(Outage) == 0


@pytest.mark.parametrize("start, end, kind, field", [
    (MON_10, MON_10, "repair", "end"),
    (MON_10, MON_10 - HOUR, "repair", "end"),
    (MON_10, MON_10 + HOUR, "holiday", "kind"),
    (MON_10.replace(tzinfo=None), None, "repair", "start"),
])
def test_bad_outages_are_refused_with_field_messages(scene, start, end, kind, field):
    instrument, manager = scene
    with pytest.raises(ValidationError) as info:
        outages.schedule_outage(manager, instrument, start, end, kind, None, now=NOW)
    assert field in info.value.fields
    assert _count(Outage) == 0


def test_update_outage_moves_it_and_displaces_bookings_there(scene):
    instrument, manager = scene
    outage = _schedule(manager, instrument).outage
    booking = factories.make_booking(instrument, start=MON_10 + timedelta(days=1))
    sequence = outage.sequence
    result = outages.update_outage(manager, outage, MON_10 + timedelta(days=1) - HOUR,
                                   MON_10 + timedelta(days=1) + HOUR, title="Moved", now=NOW)
    assert result.outage is outage and result.affected == [booking]
    assert outage.start_at == MON_10 + timedelta(days=1) - HOUR and outage.title == "Moved"
    assert outage.sequence == sequence + 1 and booking.state == "cancelled"
    unchanged = outages.update_outage(manager, outage, outage.start_at, outage.end_at,
                                      title="Moved", now=NOW)
    assert unchanged.affected == [] and outage.sequence == sequence + 1


def test_cancel_outage_frees_the_slot(scene):
    instrument, manager = scene
    outage = _schedule(manager, instrument).outage
    outages.cancel_outage(manager, outage, now=NOW)
    outages.cancel_outage(manager, outage, now=NOW)  # twice: no change
    assert outage.state == "cancelled"
    assert _count(AuditEntry, AuditEntry.action == "outage.cancel") == 1
    user = factories.make_booker(instrument)
    booking = services.create_booking(user, instrument, MON_10, MON_10 + HOUR, now=NOW)
    assert booking.state == "confirmed"


# -- racing an outage against bookings (real commits, one connection per thread) -------------


def test_outage_racing_bookings_never_overlaps(committed):
    """Eight bookings (two per hour, 10:00 to 14:00) and an outage over 11:00-13:00 start
    together: the outage always gets its window (bookings there that came first are
    cancelled), one booking per free hour wins, and no two slot holders overlap."""
    scene = build_scene(committed, bookers=8)
    day = MON_10 + timedelta(days=14)

    def outage() -> bool:
        manager = db.session.get(User, scene.manager_id)
        instrument = db.session.get(Instrument, scene.instrument_id)
        outages.schedule_outage(manager, instrument, day + HOUR, day + 3 * HOUR,
                                "calibration", "Race", now=NOW)
        return True

    jobs = [races.book(scene, i, (day + (i % 4) * HOUR, day + (i % 4 + 1) * HOUR))
            for i in range(8)]
    won = races.race(committed, jobs + [races.Job(outage, (day + HOUR, day + 3 * HOUR))])
    assert won[-1] is True
    races.assert_no_overlap(committed, scene.instrument_id)

    def holders() -> list[tuple[str, datetime]]:
        rows = db.session.scalars(sa.select(Reservation).where(
            Reservation.instrument_id == scene.instrument_id,
            Reservation.state.in_(ACTIVE_STATES)).order_by(Reservation.start_at))
        return [(row.kind, row.start_at) for row in rows]

    assert committed.run(holders) == [
        ("booking", day), ("outage", day + HOUR), ("booking", day + 3 * HOUR)]
