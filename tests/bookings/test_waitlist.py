"""The waitlist service: join, offers, accept/decline, expiry and the cascade; both databases."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from labbook.audit import AuditEntry
from labbook.bookings import services, waitlist
from labbook.bookings.errors import BookingConflict, BookingRefused, NotAllowed
from labbook.bookings.models import Booking, WaitlistEntry
from labbook.extensions import db
from tests import factories

UTC = timezone.utc
# Monday 2030-01-07, 10:00 Asia/Shanghai = 02:00 UTC; "now" is a week earlier.
MON_10 = datetime(2030, 1, 7, 2, 0, tzinfo=UTC)
MON_11 = MON_10 + timedelta(hours=1)
NOW = MON_10 - timedelta(days=7)
HOLD = timedelta(minutes=30)


@pytest.fixture
def scene(app):
    """An instrument whose Monday 10-11 is booked by ``holder``; two would-be waiters."""
    instrument = factories.make_instrument()
    holder = factories.make_booker(instrument)
    first, second = factories.make_booker(instrument), factories.make_booker(instrument)
    booking = services.create_booking(holder, instrument, MON_10, MON_11, now=NOW)
    db.session.commit()
    return instrument, booking, first, second


def _join(user, instrument, start=MON_10, end=MON_11, now=NOW, **kw):
    return waitlist.join_waitlist(user, instrument, start, end, now=now, **kw)


def _free(booking, now=NOW):
    services.cancel_booking(booking.user, booking, "plans changed", now)


def _count(model) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def test_join_waitlist_for_a_taken_interval(scene):
    instrument, _booking, first, _second = scene
    entry = _join(first, instrument, purpose="XRD")
    assert entry.state == "waiting" and entry.purpose == "XRD"
    assert entry.account_id == first.memberships[0].team.default_account.id
    audit = db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "waitlist.join"))
    assert audit.object_id == str(entry.id)


def test_join_refused_when_the_time_is_free(scene):
    instrument, _booking, first, _second = scene
    with pytest.raises(BookingRefused) as info:
        _join(first, instrument, MON_10 + timedelta(hours=2), MON_10 + timedelta(hours=3))
    assert info.value.rule == "waitlist_free"
    assert _count(WaitlistEntry) == 0


def test_join_refused_for_own_booking(scene):
    instrument, booking, _first, _second = scene
    with pytest.raises(BookingRefused) as info:
        _join(booking.user, instrument)
    assert info.value.rule == "waitlist_own"


def test_join_refused_twice_for_the_same_interval(scene):
    instrument, _booking, first, _second = scene
    _join(first, instrument)
    with pytest.raises(BookingRefused) as info:
        _join(first, instrument)
    assert info.value.rule == "waitlist_duplicate"
    assert _count(WaitlistEntry) == 1


@pytest.mark.parametrize(
    "start, end, rule",
    [
        (NOW - timedelta(hours=2), NOW - timedelta(hours=1), "past"),
        (MON_10 + timedelta(minutes=5), MON_11, "granularity"),
        (MON_10, MON_10 + timedelta(hours=10), "max_duration"),
    ],
)
def test_join_checks_the_booking_rules(scene, start, end, rule):
    instrument, _booking, first, _second = scene
    with pytest.raises(BookingRefused) as info:
        _join(first, instrument, start, end)
    assert info.value.rule == rule
    assert _count(WaitlistEntry) == 0


def test_join_refused_without_qualification(scene):
    instrument, _booking, _first, _second = scene
    stranger = factories.make_user_with_role("researcher")
    factories.make_account(team=stranger.memberships[0].team, is_default=True)
    with pytest.raises(NotAllowed):
        _join(stranger, instrument)
    assert _count(WaitlistEntry) == 0


def test_no_offer_while_the_time_is_taken(scene):
    instrument, _booking, first, _second = scene
    entry = _join(first, instrument)
    assert waitlist.offer_freed_slots(instrument, NOW) == []
    assert entry.state == "waiting"


def test_flow_join_free_offer_accept_books(scene):
    instrument, booking, first, _second = scene
    entry = _join(first, instrument, purpose="XRD")
    _free(booking)
    now = NOW + timedelta(minutes=5)
    assert waitlist.offer_freed_slots(instrument, now) == [entry]
    assert entry.state == "offered" and entry.offered_at == now
    assert entry.offer_expires_at == now + HOLD
    assert waitlist.offer_freed_slots(instrument, now) == []  # idempotent
    mine = waitlist.accept_offer(first, entry, now + timedelta(minutes=10))
    assert (mine.user_id, mine.start_at, mine.end_at) == (first.id, MON_10, MON_11)
    assert mine.state == "confirmed" and mine.purpose == "XRD"
    assert entry.state == "accepted" and entry.booking_id == mine.id
    assert waitlist.accept_offer(first, entry, now + timedelta(minutes=11)) is mine
    assert _count(Booking) == 2


def test_only_the_oldest_overlapping_waiter_is_offered(scene):
    instrument, booking, first, second = scene
    older = _join(first, instrument)
    younger = _join(second, instrument, MON_10, MON_10 + timedelta(minutes=30))
    _free(booking)
    assert waitlist.offer_freed_slots(instrument, NOW) == [older]
    assert younger.state == "waiting"


def test_disjoint_waiters_are_offered_together(scene):
    instrument, booking, first, second = scene
    other = factories.make_booking(
        instrument, booking.user, start=MON_10 + timedelta(hours=2), end=MON_10 + timedelta(hours=3)
    )
    a = _join(first, instrument)
    b = _join(second, instrument, other.start_at, other.end_at)
    _free(booking)
    _free(other)
    assert waitlist.offer_freed_slots(instrument, NOW) == [a, b]


def test_expiry_cascades_to_the_next_waiter(scene):
    instrument, booking, first, second = scene
    a, b = _join(first, instrument), _join(second, instrument)
    _free(booking)
    waitlist.offer_freed_slots(instrument, NOW)
    assert waitlist.expire_offers(NOW + HOLD - timedelta(seconds=1)) == []
    later = NOW + HOLD
    assert waitlist.expire_offers(later) == [a]
    assert a.state == "expired" and waitlist.expire_offers(later) == []
    assert waitlist.offer_freed_slots(instrument, later) == [b]
    assert b.offer_expires_at == later + HOLD
    with pytest.raises(BookingRefused) as info:
        waitlist.accept_offer(first, a, later)
    assert info.value.rule == "waitlist_state"


def test_decline_cascades_to_the_next_waiter(scene):
    instrument, booking, first, second = scene
    a, b = _join(first, instrument), _join(second, instrument)
    _free(booking)
    waitlist.offer_freed_slots(instrument, NOW)
    assert waitlist.decline_offer(first, a, NOW) is a
    assert a.state == "declined" and b.state == "offered"
    assert waitlist.decline_offer(first, a, NOW) is a  # twice: nothing more
    assert b.state == "offered"


def test_accept_after_the_time_was_taken_again_is_refused(scene):
    instrument, booking, first, second = scene
    entry = _join(first, instrument)
    _free(booking)
    waitlist.offer_freed_slots(instrument, NOW)
    services.create_booking(second, instrument, MON_10, MON_11, now=NOW)  # offers do not hold
    with pytest.raises(BookingConflict):
        waitlist.accept_offer(first, entry, NOW + timedelta(minutes=1))
    assert entry.state == "offered" and entry.booking_id is None
    assert db.session.scalar(
        sa.select(sa.func.count()).select_from(Booking).where(Booking.user_id == first.id)
    ) == 0


def test_accept_after_expiry_is_refused(scene):
    instrument, booking, first, _second = scene
    entry = _join(first, instrument)
    _free(booking)
    waitlist.offer_freed_slots(instrument, NOW)
    with pytest.raises(BookingRefused) as info:
        waitlist.accept_offer(first, entry, NOW + HOLD)
    assert info.value.rule == "offer_expired" and entry.state == "offered"


def test_accept_by_someone_else_is_refused(scene):
    instrument, booking, first, second = scene
    entry = _join(first, instrument)
    _free(booking)
    waitlist.offer_freed_slots(instrument, NOW)
    with pytest.raises(NotAllowed):
        waitlist.accept_offer(second, entry, NOW)
    with pytest.raises(NotAllowed):
        waitlist.decline_offer(second, entry, NOW)
    assert entry.state == "offered"


def test_accept_without_offer_is_refused(scene):
    instrument, _booking, first, _second = scene
    entry = _join(first, instrument)
    with pytest.raises(BookingRefused) as info:
        waitlist.accept_offer(first, entry, NOW)
    assert info.value.rule == "waitlist_state"
    with pytest.raises(BookingRefused):
        waitlist.decline_offer(first, entry, NOW)


def test_hold_never_runs_past_the_start(scene):
    instrument, booking, first, _second = scene
    entry = _join(first, instrument)
    _free(booking)
    now = MON_10 - timedelta(minutes=10)
    waitlist.offer_freed_slots(instrument, now)
    assert entry.offer_expires_at == MON_10


def test_leave_waitlist(scene):
    instrument, _booking, first, second = scene
    entry = _join(first, instrument)
    with pytest.raises(NotAllowed):
        waitlist.leave_waitlist(second, entry, NOW)
    assert waitlist.leave_waitlist(first, entry, NOW).state == "cancelled"
    assert waitlist.leave_waitlist(first, entry, NOW).state == "cancelled"
    _join(first, instrument)  # a cancelled entry no longer counts as a duplicate


def test_leaving_an_offer_passes_it_on(scene):
    instrument, booking, first, second = scene
    a, b = _join(first, instrument), _join(second, instrument)
    _free(booking)
    waitlist.offer_freed_slots(instrument, NOW)
    waitlist.leave_waitlist(first, a, NOW)
    assert a.state == "cancelled" and b.state == "offered"


def test_manager_may_remove_a_waiter(scene):
    instrument, _booking, first, _second = scene
    entry = _join(first, instrument)
    manager = factories.make_user_with_role("facility_manager", facility=instrument.facility)
    assert waitlist.leave_waitlist(manager, entry, NOW).state == "cancelled"


def test_expire_offers_ends_entries_whose_time_began(scene):
    instrument, _booking, first, _second = scene
    entry = _join(first, instrument)
    assert waitlist.expire_offers(MON_10 - timedelta(minutes=1)) == []
    assert waitlist.expire_offers(MON_10) == [entry] and entry.state == "expired"


def test_process_waitlists_expires_then_offers(scene):
    instrument, booking, first, second = scene
    a, b = _join(first, instrument), _join(second, instrument)
    _free(booking)
    assert waitlist.process_waitlists(NOW) == [a]
    assert waitlist.process_waitlists(NOW + timedelta(minutes=1)) == []
    assert waitlist.process_waitlists(NOW + HOLD) == [b]
    assert a.state == "expired" and b.state == "offered"
    actions = db.session.scalars(
        sa.select(AuditEntry.action).where(AuditEntry.object_type == "WaitlistEntry")
    ).all()
    assert sorted(set(actions)) == ["waitlist.expire", "waitlist.join", "waitlist.offer"]
