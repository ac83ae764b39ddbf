"""Who is told what when a booking changes (issue 4, item 3): the in-app rows and the
queued mail, written in the service's transaction; both databases."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from labbook.bookings import qualifications, series, services, usage, waitlist
from labbook.bookings.errors import BookingConflict
from labbook.extensions import db
from labbook.notifications.models import Notification, OnceMark, OutboxMessage
from tests import factories
from tests.mail import compose

UTC = timezone.utc
# Monday 2030-01-07, 10:00 Asia/Shanghai = 02:00 UTC; "now" is a week earlier.
MON_10 = datetime(2030, 1, 7, 2, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
NOW = MON_10 - timedelta(days=7)
WEEKLY_4 = {"freq": "weekly", "count": 4}


@pytest.fixture
def scene(app):
    """An instrument, a qualified researcher, the facility's manager and an admin."""
    instrument = factories.make_instrument()
    user = factories.make_booker(instrument)
    manager = factories.make_user_with_role("facility_manager", facility=instrument.facility)
    factories.make_user_with_role("admin")
    db.session.commit()
    return instrument, user, manager


def notes(user=None, kind=None) -> list[Notification]:
    stmt = sa.select(Notification).order_by(Notification.id)
    if user is not None:
        stmt = stmt.where(Notification.user_id == user.id)
    if kind is not None:
        stmt = stmt.where(Notification.kind == kind)
    return list(db.session.scalars(stmt))


def kinds(user) -> list[str]:
    return [n.kind for n in notes(user)]


def mail_for(note: Notification) -> OutboxMessage:
    compose()
    return db.session.scalars(
        sa.select(OutboxMessage).where(OutboxMessage.notification_id == note.id)
    ).one()


def _book(user, instrument, start=MON_10, hours=1, **kw):
    return services.create_booking(user, instrument, start, start + hours * HOUR,
                                   now=kw.pop("now", NOW), **kw)


# -- single bookings ---------------------------------------------------------------------------


def test_created_confirmed_booking_sends_the_owner_a_receipt(scene):
    instrument, user, manager = scene
    booking = _book(user, instrument)
    [note] = notes(user)
    assert note.kind == "booking_confirmed" and note.reservation_id == booking.id
    assert note.params["start"] == "2030-01-07 10:00"
    assert note.params["instrument"] == instrument.name
    mail = mail_for(note)
    assert mail.to_address == user.email and instrument.name in mail.subject
    assert mail.ics and "BEGIN:VEVENT" in mail.ics
    assert notes(manager) == []


def test_created_pending_booking_asks_the_facility_managers(scene):
    instrument, user, manager = scene
    other_facility_manager = factories.make_user_with_role("facility_manager")
    instrument.requires_approval = True
    booking = _book(user, instrument)
    assert kinds(user) == ["booking_pending"]
    [ask] = notes(manager)
    assert ask.kind == "approval_needed" and ask.reservation_id == booking.id
    assert ask.params["user"] == user.name
    assert mail_for(ask).to_address == manager.email
    assert notes(other_facility_manager) == []
    assert len(notes(kind="approval_needed")) == 1  # admins are not asked: a manager exists


def test_pending_booking_without_managers_asks_the_admins(app):
    instrument = factories.make_instrument(requires_approval=True)
    user = factories.make_booker(instrument)
    admin = factories.make_user_with_role("admin")
    _book(user, instrument)
    assert kinds(admin) == ["approval_needed"]


def _with_account(user):
    team = factories.make_team()
    factories.add_member(team, user)
    factories.make_account(team=team, is_default=True)
    db.session.expire(user, ["memberships"])
    return user


def test_manager_booking_their_own_facility_is_told_nothing(scene):
    instrument, _user, manager = scene
    _with_account(manager)
    instrument.requires_approval = True
    booking = _book(manager, instrument)
    assert booking.state == "confirmed"
    assert notes() == []


def test_refused_booking_notifies_nobody(scene):
    instrument, user, _manager = scene
    _book(user, instrument)
    other = factories.make_booker(instrument)
    with pytest.raises(BookingConflict):
        _book(other, instrument)
    assert notes(other) == []


def test_approval_confirms_to_the_owner_only(scene):
    instrument, user, manager = scene
    instrument.requires_approval = True
    booking = _book(user, instrument)
    services.approve_booking(manager, booking, NOW)
    assert kinds(user) == ["booking_pending", "booking_confirmed"]
    assert kinds(manager) == ["approval_needed"]


def test_rejection_tells_the_owner_why(scene):
    instrument, user, manager = scene
    instrument.requires_approval = True
    booking = _book(user, instrument)
    services.reject_booking(manager, booking, "sample prep missing", NOW)
    [note] = notes(user, "booking_rejected")
    assert note.params["reason"] == "sample prep missing"
    assert "sample prep missing" not in mail_for(note).to_address


def test_owner_cancelling_is_told_nothing(scene):
    instrument, user, manager = scene
    booking = _book(user, instrument)
    services.cancel_booking(user, booking, "plans changed", NOW)
    assert kinds(user) == ["booking_confirmed"]
    assert notes(manager) == []


def test_manager_cancelling_tells_the_owner_with_the_reason(scene):
    instrument, user, manager = scene
    booking = _book(user, instrument)
    services.cancel_booking(manager, booking, "vacuum leak", NOW)
    [note] = notes(user, "booking_cancelled")
    assert note.params["reason"] == "vacuum leak" and note.params["state"] == "cancelled"
    assert notes(manager) == []


def test_manager_acting_on_their_own_booking_gets_nothing(scene):
    instrument, _user, manager = scene
    booking = factories.make_booking(instrument, _with_account(manager))
    services.reschedule_booking(manager, booking, MON_10 + HOUR, MON_10 + 2 * HOUR, NOW)
    services.cancel_booking(manager, booking, "not needed", NOW)
    assert notes(manager) == []


def test_manager_rescheduling_tells_the_owner_the_old_and_new_time(scene):
    instrument, user, manager = scene
    booking = _book(user, instrument)
    services.reschedule_booking(manager, booking, MON_10 + 2 * HOUR, MON_10 + 3 * HOUR, NOW)
    [note] = notes(user, "booking_rescheduled")
    assert note.params["old_start"] == "2030-01-07 10:00"
    assert note.params["start"] == "2030-01-07 12:00"


def test_owner_rescheduling_is_told_nothing(scene):
    instrument, user, manager = scene
    booking = _book(user, instrument)
    services.reschedule_booking(user, booking, MON_10 + HOUR, MON_10 + 2 * HOUR, NOW)
    assert kinds(user) == ["booking_confirmed"] and notes(manager) == []


def test_owner_change_back_to_pending_asks_the_managers_again(scene):
    instrument, user, manager = scene
    instrument.requires_approval = True
    booking = _book(user, instrument)
    services.approve_booking(manager, booking, NOW)
    services.reschedule_booking(user, booking, MON_10 + HOUR, MON_10 + 2 * HOUR, NOW)
    assert booking.state == "pending"
    assert kinds(manager) == ["approval_needed", "approval_needed"]
    assert kinds(user) == ["booking_pending", "booking_confirmed"]


def test_moving_a_booking_rearms_its_reminders(scene):
    instrument, user, manager = scene
    booking = _book(user, instrument)
    db.session.add(OnceMark(kind="reminder", object_id=booking.id, tag="1440"))
    db.session.flush()
    later = MON_10 + timedelta(days=2)
    services.reschedule_booking(user, booking, later, later + HOUR, NOW)
    assert db.session.scalars(sa.select(OnceMark.tag).where(
        OnceMark.kind == "reminder", OnceMark.object_id == booking.id)).all() == []


def test_moving_a_booking_close_marks_past_reminder_moments_done(scene):
    instrument, user, manager = scene
    booking = _book(user, instrument)
    now = MON_10 - timedelta(hours=3)  # the new start is 5 h away: the 24-hour moment passed
    services.reschedule_booking(user, booking, MON_10 + 2 * HOUR, MON_10 + 3 * HOUR, now)
    tags = db.session.scalars(sa.select(OnceMark.tag).where(
        OnceMark.kind == "reminder", OnceMark.object_id == booking.id)).all()
    assert tags == ["1440"]


def test_expiry_tells_the_owner(scene):
    instrument, user, manager = scene
    instrument.requires_approval = True
    booking = _book(user, instrument)
    assert usage.expire_pending(MON_10) == [booking]
    [note] = notes(user, "booking_expired")
    assert note.params["state"] == "expired"


# -- series ------------------------------------------------------------------------------------


def _series(user, instrument, **kw):
    return series.create_series(user, instrument, MON_10, MON_10 + HOUR, WEEKLY_4,
                                mode="fit", now=NOW, **kw)


def test_series_sends_one_receipt_with_count_and_first_start(scene):
    instrument, user, manager = scene
    result = _series(user, instrument)
    assert len(result.bookings) == 4
    [note] = notes(user)
    assert note.kind == "booking_confirmed"
    assert note.params["count"] == 4 and note.params["series_id"] == result.series_id
    assert note.params["first_start"] == "2030-01-07 10:00"
    assert note.params["last_start"] == "2030-01-28 10:00"
    assert mail_for(note).ics is None
    assert db.session.scalar(sa.select(sa.func.count(OutboxMessage.id))) == 1


def test_pending_series_asks_each_manager_once(scene):
    instrument, user, manager = scene
    instrument.requires_approval = True
    _series(user, instrument)
    assert kinds(user) == ["booking_pending"]
    [ask] = notes(manager)
    assert ask.kind == "approval_needed" and ask.params["count"] == 4


def test_bulk_approval_sends_one_message_per_series_and_per_single_booking(scene, monkeypatch):
    from labbook.bookings import manage

    instrument, user, manager = scene
    instrument.requires_approval = True
    result = _series(user, instrument)
    single = _book(user, instrument, start=MON_10 + timedelta(hours=3))
    monkeypatch.setattr(manage, "now_utc", lambda: NOW)
    done, problems = manage.approve_many(manager, [*result.booked, single.id])
    assert problems == [] and len(done) == 5
    confirmed = notes(user, "booking_confirmed")
    assert [n.params.get("count") for n in confirmed] == [4, None]
    assert confirmed[1].reservation_id == single.id
    assert mail_for(confirmed[0]).ics is None and mail_for(confirmed[1]).ics is not None


def test_refused_series_notifies_nobody(scene):
    instrument, user, manager = scene
    factories.make_booking(instrument, start=MON_10 + timedelta(days=7))
    with pytest.raises(series.SeriesNotBooked):
        series.create_series(user, instrument, MON_10, MON_10 + HOUR, WEEKLY_4,
                             mode="all_or_nothing", now=NOW)
    assert notes() == []


def test_manager_cancelling_a_series_sends_one_notice(scene):
    instrument, user, manager = scene
    result = _series(user, instrument)
    cancelled = series.cancel_series(manager, result.series, now=NOW, reason="renovation")
    assert len(cancelled) == 4
    [note] = notes(user, "booking_cancelled")
    assert note.params["count"] == 4 and note.params["reason"] == "renovation"


def test_manager_cancelling_this_and_following_sends_one_notice(scene):
    instrument, user, manager = scene
    result = _series(user, instrument)
    series.cancel_following(manager, result.bookings[1], now=NOW)
    [note] = notes(user, "booking_cancelled")
    assert note.params["count"] == 3 and note.params["first_start"] == "2030-01-14 10:00"


def test_owner_cancelling_their_series_is_told_nothing(scene):
    instrument, user, manager = scene
    result = _series(user, instrument)
    series.cancel_series(user, result.series, now=NOW)
    assert kinds(user) == ["booking_confirmed"] and notes(manager) == []


def test_manager_cancelling_one_occurrence_sends_a_single_notice(scene):
    instrument, user, manager = scene
    result = _series(user, instrument)
    series.cancel_in_scope(manager, result.bookings[2], "occurrence", "service visit", NOW)
    [note] = notes(user, "booking_cancelled")
    assert note.reservation_id == result.bookings[2].id and "count" not in note.params


# -- waitlist and qualifications ---------------------------------------------------------------


def test_waitlist_offer_and_its_expiry_are_told(scene):
    instrument, user, manager = scene
    booking = _book(user, instrument)
    waiter = factories.make_booker(instrument)
    entry = waitlist.join_waitlist(waiter, instrument, MON_10, MON_10 + HOUR, now=NOW)
    services.cancel_booking(user, booking, "plans changed", NOW)
    assert waitlist.offer_freed_slots(instrument, NOW) == [entry]
    [offer] = notes(waiter)
    assert offer.kind == "waitlist_offer" and offer.params["entry_id"] == entry.id
    assert offer.params["start"] == "2030-01-07 10:00"
    assert offer.params["offer_expires"] == "2029-12-31 10:30"
    assert mail_for(offer).to_address == waiter.email
    waitlist.expire_offers(NOW + timedelta(minutes=31))
    assert kinds(waiter) == ["waitlist_offer", "waitlist_expired"]


def test_accepting_an_offer_sends_the_booking_receipt(scene):
    instrument, user, manager = scene
    booking = _book(user, instrument)
    waiter = factories.make_booker(instrument)
    entry = waitlist.join_waitlist(waiter, instrument, MON_10, MON_10 + HOUR, now=NOW)
    services.cancel_booking(user, booking, None, NOW)
    waitlist.offer_freed_slots(instrument, NOW)
    waitlist.accept_offer(waiter, entry, NOW)
    assert kinds(waiter) == ["waitlist_offer", "booking_confirmed"]


def test_granting_a_qualification_tells_the_user(scene):
    instrument, _user, manager = scene
    trainee = factories.make_user()
    expiry = NOW + timedelta(days=365)
    qualifications.grant_qualification(manager, trainee, instrument=instrument,
                                       level="advanced", expires_at=expiry, now=NOW)
    [note] = notes(trainee)
    assert note.kind == "qualification_granted"
    assert note.params["instrument"] == instrument.name and note.params["level"] == "advanced"
    assert note.params["expires"] == "2030-12-31 10:00"
    assert instrument.name in mail_for(note).subject


def test_regranting_forgets_old_expiry_warnings(scene):
    instrument, _user, manager = scene
    trainee = factories.make_user()
    q = qualifications.grant_qualification(manager, trainee, instrument=instrument,
                                           expires_at=NOW + timedelta(days=20), now=NOW)
    db.session.add(OnceMark(kind="qualification_expiring", object_id=q.id, tag="30"))
    db.session.flush()
    qualifications.grant_qualification(manager, trainee, instrument=instrument,
                                       expires_at=NOW + timedelta(days=400), now=NOW)
    assert db.session.scalar(sa.select(sa.func.count(OnceMark.id))) == 0
    assert kinds(trainee) == ["qualification_granted", "qualification_granted"]


def test_mail_turned_off_keeps_the_in_app_notice(scene):
    from labbook.notifications.models import NotificationPreference

    instrument, user, _manager = scene
    db.session.add(NotificationPreference(user_id=user.id, kind="booking_confirmed",
                                          by_email=False))
    db.session.flush()
    _book(user, instrument)
    assert kinds(user) == ["booking_confirmed"]
    assert compose() == 0
    assert db.session.scalar(sa.select(sa.func.count(OutboxMessage.id))) == 0
