"""The timed rules (labbook/bookings/timed.py) with an injected clock: what is due, what
each unit does, that a second run does nothing more, and catching up after a gap. Both
databases, inside the rolled-back test transaction (the tasks' commits are in
test_tasks.py)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from labbook.bookings import services, timed, waitlist
from labbook.bookings.models import Booking
from labbook.extensions import db
from labbook.notifications.models import Notification, OnceMark, OutboxMessage
from tests import factories
from tests.mail import compose

UTC = timezone.utc
MON_10 = datetime(2030, 1, 7, 2, 0, tzinfo=UTC)  # Monday 10:00 Asia/Shanghai
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
LONG_AGO = MON_10 - 30 * DAY


@pytest.fixture
def scene(app):
    instrument = factories.make_instrument()
    user = factories.make_booker(instrument)
    manager = factories.make_user_with_role("facility_manager", facility=instrument.facility)
    return instrument, user, manager


def booking(scene, state="confirmed", start=MON_10, confirmed_at=LONG_AGO, **kw) -> Booking:
    instrument, user, _ = scene
    return factories.make_booking(instrument, user, start=start, state=state,
                                  state_changed_at=confirmed_at, **kw)


def sent(kind: str, user=None) -> list[Notification]:
    stmt = sa.select(Notification).where(Notification.kind == kind).order_by(Notification.id)
    if user is not None:
        stmt = stmt.where(Notification.user_id == user.id)
    return list(db.session.scalars(stmt))


def marks(kind: str, object_id: int) -> list[str]:
    return sorted(db.session.scalars(sa.select(OnceMark.tag).where(
        OnceMark.kind == kind, OnceMark.object_id == object_id)))


def remind(now: datetime) -> int:
    return sum(timed.send_reminder(i, now) for i in timed.due_reminders(now))


# -- reminders ---------------------------------------------------------------------------------


def test_reminder_24_hours_ahead_is_sent_once(scene):
    b = booking(scene)
    assert remind(MON_10 - DAY - MIN) == 0
    assert remind(MON_10 - DAY) == 1
    [note] = sent("reminder")
    assert note.user_id == b.user_id and note.params["minutes_before"] == 1440
    compose(MON_10 - DAY)
    mail = db.session.scalars(sa.select(OutboxMessage)
                              .where(OutboxMessage.notification_id == note.id)).one()
    assert mail.to_address == b.user.email and b.instrument.name in mail.subject
    assert remind(MON_10 - DAY + 5 * MIN) == 0
    assert len(sent("reminder")) == 1 and marks("reminder", b.id) == ["1440"]


def test_both_offsets_remind_in_turn(scene):
    booking(scene)
    assert remind(MON_10 - DAY) == 1
    assert remind(MON_10 - 2 * HOUR) == 0
    assert remind(MON_10 - HOUR) == 1
    assert [n.params["minutes_before"] for n in sent("reminder")] == [1440, 60]
    assert remind(MON_10 - 30 * MIN) == 0


def test_after_a_gap_only_the_nearest_offset_is_sent(scene):
    b = booking(scene)
    assert timed.due_reminders(MON_10 - 30 * MIN) == [b.id]
    assert remind(MON_10 - 30 * MIN) == 1
    assert [n.params["minutes_before"] for n in sent("reminder")] == [60]
    assert marks("reminder", b.id) == ["1440", "60"]
    assert timed.due_reminders(MON_10 - 10 * MIN) == []


def test_missed_24_hour_reminder_is_caught_up_while_still_ahead(scene):
    booking(scene)
    assert remind(MON_10 - 3 * HOUR) == 1  # the job was down at MON_10 - 24 h
    assert [n.params["minutes_before"] for n in sent("reminder")] == [1440]


def test_no_reminder_once_the_booking_started(scene):
    b = booking(scene)
    assert timed.due_reminders(MON_10) == []
    assert timed.send_reminder(b.id, MON_10 + MIN) is False
    assert sent("reminder") == []


def test_booking_confirmed_after_the_moment_gets_no_stale_reminder(scene):
    b = booking(scene, confirmed_at=MON_10 - 30 * MIN)
    assert remind(MON_10 - 20 * MIN) == 0
    assert sent("reminder") == [] and marks("reminder", b.id) == ["1440", "60"]
    assert timed.due_reminders(MON_10 - 10 * MIN) == []


def test_booking_made_two_hours_ahead_gets_only_the_hour_reminder(scene):
    instrument, user, _ = scene
    b = services.create_booking(user, instrument, MON_10, MON_10 + HOUR, now=MON_10 - 2 * HOUR)
    assert remind(MON_10 - 2 * HOUR + MIN) == 0
    assert remind(MON_10 - HOUR) == 1
    assert [n.params["minutes_before"] for n in sent("reminder")] == [60]
    assert marks("reminder", b.id) == ["1440", "60"]


@pytest.mark.parametrize("state", ["pending", "cancelled", "in_use"])
def test_only_confirmed_bookings_are_reminded(scene, state):
    booking(scene, state=state)
    assert remind(MON_10 - HOUR) == 0 and sent("reminder") == []


def test_reminder_offsets_come_from_the_settings(scene, app, monkeypatch):
    monkeypatch.setitem(app.config, "LABBOOK_REMINDER_OFFSETS", (180,))
    booking(scene)
    assert remind(MON_10 - DAY) == 0
    assert remind(MON_10 - 3 * HOUR) == 1
    assert sent("reminder")[0].params["minutes_before"] == 180


# -- no-shows ----------------------------------------------------------------------------------


def test_no_show_after_the_grace_period_frees_the_rest_of_the_slot(scene):
    instrument, user, _ = scene
    b = booking(scene, end=MON_10 + 2 * HOUR)
    assert timed.due_no_shows(MON_10 + 14 * MIN) == []
    assert timed.due_no_shows(MON_10 + 15 * MIN) == [b.id]
    assert timed.mark_no_show(b.id, MON_10 + 15 * MIN) is True
    assert b.state == "no_show" and b.state_changed_by_id is None
    assert b.state_reason == "not checked in within 15 minutes"
    assert [n.reservation_id for n in sent("no_show", user)] == [b.id]
    other = factories.make_booker(instrument, level="advanced")
    later = services.create_booking(other, instrument, MON_10 + HOUR, MON_10 + 2 * HOUR,
                                    now=MON_10 + 16 * MIN)
    assert later.state == "confirmed"
    assert timed.mark_no_show(b.id, MON_10 + 20 * MIN) is False
    assert len(sent("no_show")) == 1


def test_no_show_grace_is_per_instrument(scene):
    instrument, _, _ = scene
    instrument.no_show_grace_minutes = 45
    b = booking(scene)
    assert timed.mark_no_show(b.id, MON_10 + 30 * MIN) is False
    assert timed.due_no_shows(MON_10 + 45 * MIN) == [b.id]


def test_no_show_catches_up_after_a_gap(scene):
    b = booking(scene)
    now = MON_10 + 3 * HOUR  # long after the booking ended
    assert timed.due_no_shows(now) == [b.id] and timed.mark_no_show(b.id, now)
    assert b.state == "no_show"


def test_checked_in_booking_is_no_no_show(scene):
    b = booking(scene, state="in_use", checked_in_at=MON_10)
    assert timed.due_no_shows(MON_10 + HOUR) == []
    assert timed.mark_no_show(b.id, MON_10 + HOUR) is False and b.state == "in_use"


# -- auto check-out ----------------------------------------------------------------------------


def test_forgotten_session_is_closed_at_its_booked_end_and_flagged(scene):
    _, user, manager = scene
    b = booking(scene, state="in_use", checked_in_at=MON_10)
    end = b.end_at
    assert timed.due_check_outs(end + 29 * MIN) == []
    assert timed.due_check_outs(end + 30 * MIN) == [b.id]
    assert timed.auto_check_out(b.id, end + 3 * HOUR) is True
    assert b.state == "completed" and b.checked_out_at == end and b.needs_review
    assert b.state_reason == "closed automatically" and b.state_changed_by_id is None
    assert len(sent("auto_checkout", user)) == 1 and len(sent("auto_checkout", manager)) == 1
    assert timed.auto_check_out(b.id, end + 4 * HOUR) is False
    assert len(sent("auto_checkout")) == 2


def test_auto_check_out_margin_comes_from_the_settings(scene, app, monkeypatch):
    monkeypatch.setitem(app.config, "LABBOOK_AUTO_CHECKOUT_MARGIN_MINUTES", 120)
    b = booking(scene, state="in_use", checked_in_at=MON_10)
    assert timed.auto_check_out(b.id, b.end_at + HOUR) is False and b.state == "in_use"
    assert timed.due_check_outs(b.end_at + 2 * HOUR) == [b.id]


# -- pending bookings --------------------------------------------------------------------------


def test_pending_booking_expires_at_its_start(scene):
    _, user, _ = scene
    b = booking(scene, state="pending")
    assert timed.due_expiries(MON_10 - MIN) == []
    assert timed.due_expiries(MON_10 + 2 * HOUR) == [b.id]
    assert timed.expire_booking(b.id, MON_10 + 2 * HOUR) is True
    assert b.state == "expired"
    assert [n.kind for n in sent("booking_expired", user)] == ["booking_expired"]
    assert timed.expire_booking(b.id, MON_10 + 3 * HOUR) is False
    assert len(sent("booking_expired")) == 1


def approvals(now: datetime) -> int:
    return sum(timed.remind_approvers(i, now) for i in timed.due_approval_notices(now))


def test_approvers_are_reminded_once_when_the_start_comes_near(scene):
    _, _, manager = scene
    b = booking(scene, state="pending")
    assert approvals(MON_10 - DAY - MIN) == 0
    assert approvals(MON_10 - DAY) == 1
    [note] = sent("approval_needed", manager)
    assert note.params["reminder"] is True and note.reservation_id == b.id
    assert approvals(MON_10 - HOUR) == 0 and len(sent("approval_needed")) == 1


def test_approvers_reminder_catches_up_but_not_after_the_start(scene):
    b = booking(scene, state="pending")
    assert approvals(MON_10 - HOUR) == 1
    late = booking(scene, state="pending", start=MON_10 + DAY)
    assert timed.remind_approvers(late.id, MON_10 + DAY + MIN) is False
    assert marks("approval_notice", b.id) == ["1"] and marks("approval_notice", late.id) == []


def test_booking_pending_since_inside_the_window_is_not_reminded_again(scene):
    b = booking(scene, state="pending", confirmed_at=MON_10 - 2 * HOUR)
    assert approvals(MON_10 - HOUR) == 0
    assert sent("approval_needed") == [] and marks("approval_notice", b.id) == ["1"]


def test_approval_window_comes_from_the_settings(scene, app, monkeypatch):
    monkeypatch.setitem(app.config, "LABBOOK_APPROVAL_NOTICE_HOURS", 2)
    booking(scene, state="pending")
    assert approvals(MON_10 - DAY) == 0
    assert approvals(MON_10 - 2 * HOUR) == 1


# -- waitlists ---------------------------------------------------------------------------------


def test_freed_time_is_offered_and_an_unanswered_offer_passes_on(scene):
    instrument, user, _ = scene
    now = MON_10 - DAY
    held = services.create_booking(user, instrument, MON_10, MON_10 + HOUR, now=now)
    first, second = factories.make_booker(instrument), factories.make_booker(instrument)
    a = waitlist.join_waitlist(first, instrument, MON_10, MON_10 + HOUR, now=now)
    b = waitlist.join_waitlist(second, instrument, MON_10, MON_10 + HOUR, now=now + MIN)
    assert timed.waitlisted_instruments(now) == [instrument.id]
    assert timed.offer_waitlist(instrument.id, now) == 0
    services.cancel_booking(user, held, None, now)
    assert timed.offer_waitlist(instrument.id, now) == 1 and a.state == "offered"
    assert timed.offer_waitlist(instrument.id, now) == 0
    later = now + 3 * HOUR  # nobody ran the job in between: the offer lapsed long ago
    assert timed.expire_waitlist_offers(later) == 1 and a.state == "expired"
    assert timed.offer_waitlist(instrument.id, later) == 1 and b.state == "offered"
    assert [n.kind for n in sent("waitlist_offer")] == ["waitlist_offer"] * 2
    assert [n.user_id for n in sent("waitlist_expired")] == [first.id]


# -- qualifications ----------------------------------------------------------------------------


def qualification(scene, expires_at, granted_at=LONG_AGO - 365 * DAY, **kw):
    instrument, _, _ = scene
    trainee = factories.make_user()
    return factories.make_qualification(trainee, instrument, expires_at=expires_at,
                                        granted_at=granted_at, **kw)


def warn(now: datetime) -> int:
    return sum(timed.warn_expiring(i, now) for i in timed.due_expiry_warnings(now))


def test_expiry_warnings_30_and_7_days_ahead_once_each(scene):
    q = qualification(scene, MON_10)
    assert warn(MON_10 - 31 * DAY) == 0
    assert warn(MON_10 - 30 * DAY) == 1
    assert warn(MON_10 - 20 * DAY) == 0
    assert warn(MON_10 - 7 * DAY) == 1
    assert warn(MON_10 - DAY) == 0
    notes = sent("qualification_expiring", q.user)
    assert [n.params["days_before"] for n in notes] == [30, 7]
    assert notes[0].params["instrument"] == q.instrument.name


def test_expiry_warning_after_a_gap_sends_only_the_nearest(scene):
    q = qualification(scene, MON_10)
    assert warn(MON_10 - 3 * DAY) == 1
    assert [n.params["days_before"] for n in sent("qualification_expiring")] == [7]
    assert marks("qualification_expiring", q.id) == ["30", "7"]


def test_no_warning_for_a_moment_before_the_grant(scene):
    q = qualification(scene, MON_10, granted_at=MON_10 - 10 * DAY)
    assert warn(MON_10 - 9 * DAY) == 0 and marks("qualification_expiring", q.id) == ["30"]
    assert warn(MON_10 - 7 * DAY) == 1


def test_revoked_or_open_ended_qualifications_get_no_warning(scene):
    qualification(scene, MON_10, revoked_at=LONG_AGO)
    qualification(scene, None)
    assert timed.due_expiry_warnings(MON_10 - DAY) == []
    assert timed.due_expired_qualifications(MON_10 + DAY) == []


def test_expired_qualification_is_told_once_with_the_bookings_it_covered(scene):
    instrument, _, _ = scene
    q = qualification(scene, MON_10)
    team = factories.make_team()
    factories.add_member(team, q.user)
    account = factories.make_account(team=team, is_default=True)
    factories.make_booking(instrument, q.user, account=account, start=MON_10 + DAY)
    factories.make_booking(instrument, q.user, account=account, start=MON_10 + 2 * DAY,
                           state="cancelled")
    assert timed.due_expired_qualifications(MON_10 - MIN) == []
    now = MON_10 + 3 * HOUR
    assert timed.due_expired_qualifications(now) == [q.id]
    assert timed.tell_expired(q.id, now) is True
    [note] = sent("qualification_expired", q.user)
    assert note.params["upcoming_bookings"] == 1
    assert timed.tell_expired(q.id, now + HOUR) is False
    assert timed.due_expired_qualifications(now + HOUR) == []
    assert timed.due_expiry_warnings(now) == []  # expired: no more warnings
