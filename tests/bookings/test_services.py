"""Booking rules and transitions (service level), on both databases."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone

import pytest
import sqlalchemy as sa

from labbook.audit import AuditEntry
from labbook.bookings import rules, services, usage
from labbook.bookings.errors import BookingConflict, BookingRefused, NotAllowed
from labbook.bookings.models import Booking, Outage
from labbook.errors import NotFound
from labbook.extensions import db
from tests import factories

UTC = timezone.utc
# Monday 2030-01-07, 10:00 Asia/Shanghai = 02:00 UTC; "now" is a week earlier.
MON_10 = datetime(2030, 1, 7, 2, 0, tzinfo=UTC)
NOW = MON_10 - timedelta(days=7)


def _book(user, instrument, start=MON_10, minutes=60, **kw):
    return services.create_booking(
        user, instrument, start, start + timedelta(minutes=minutes), now=kw.pop("now", NOW), **kw
    )


@pytest.fixture
def scene(app):
    instrument = factories.make_instrument()
    user = factories.make_booker(instrument)
    db.session.commit()
    return instrument, user


def test_create_booking_confirms_and_audits(scene):
    instrument, user = scene
    booking = _book(user, instrument, purpose="EDS maps")
    assert booking.state == "confirmed" and booking.team_id == user.memberships[0].team_id
    assert booking.block_end == booking.end_at
    entry = db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "booking.create"))
    assert entry.object_id == str(booking.id)


def test_create_booking_pending_when_approval_required(scene):
    instrument, user = scene
    instrument.requires_approval = True
    assert _book(user, instrument).state == "pending"


def test_overlap_refused_with_conflicts_and_alternatives(scene):
    instrument, user = scene
    _book(user, instrument)
    other = factories.make_booker(instrument)
    with pytest.raises(BookingConflict) as info:
        _book(other, instrument, start=MON_10 + timedelta(minutes=30))
    conflict = info.value
    assert len(conflict.conflicts) == 1 and "user" not in conflict.conflicts[0]
    starts = [datetime.fromisoformat(a["start"]) for a in conflict.alternatives]
    assert len(starts) == 3
    for s in starts:
        assert s >= MON_10 + timedelta(hours=1) or s + timedelta(hours=1) <= MON_10


def test_owner_sees_own_details_in_conflict(scene):
    instrument, user = scene
    _book(user, instrument, purpose="mine")
    with pytest.raises(BookingConflict) as info:
        _book(user, instrument)
    assert info.value.conflicts[0]["purpose"] == "mine"


def test_buffer_blocks_the_turnaround(scene):
    instrument, user = scene
    instrument.buffer_minutes = 15
    _book(user, instrument)
    with pytest.raises(BookingConflict):
        _book(user, instrument, start=MON_10 + timedelta(hours=1))
    assert _book(user, instrument, start=MON_10 + timedelta(minutes=75)).state == "confirmed"
    with pytest.raises(BookingConflict):  # a booking before must leave its own buffer free
        _book(user, instrument, start=MON_10 - timedelta(hours=1))


def test_outage_blocks_bookings(scene):
    instrument, user = scene
    db.session.add(
        Outage(
            instrument=instrument,
            start_at=MON_10,
            end_at=None,
            block_end=None,
            state="scheduled",
            outage_kind="repair",
            title="Broken gun",
        )
    )
    db.session.flush()
    with pytest.raises(BookingConflict) as info:
        _book(user, instrument, start=MON_10 + timedelta(days=3))
    assert info.value.conflicts[0]["kind"] == "outage"


@pytest.mark.parametrize(
    "start, minutes, rule",
    [
        (MON_10 + timedelta(minutes=5), 60, "granularity"),
        (MON_10, 10, "granularity"),
        (MON_10, 600, "max_duration"),
        (NOW - timedelta(hours=1), 60, "past"),
        (NOW + timedelta(days=120), 60, "horizon"),
    ],
)
def test_shape_and_window_rules(scene, start, minutes, rule):
    instrument, user = scene
    with pytest.raises(BookingRefused) as info:
        _book(user, instrument, start=start, minutes=minutes)
    assert info.value.rule == rule
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Booking)) == 0


def test_lead_time(scene):
    instrument, user = scene
    instrument.lead_minutes = 24 * 60
    with pytest.raises(BookingRefused) as info:
        _book(user, instrument, now=MON_10 - timedelta(hours=2))
    assert info.value.rule == "lead_time"


def test_unqualified_user_is_forbidden(scene):
    instrument, _ = scene
    stranger = factories.make_user_with_role("researcher")
    factories.make_account(team=stranger.memberships[0].team, is_default=True)
    with pytest.raises(NotAllowed) as info:
        _book(stranger, instrument)
    assert info.value.rule == "qualification"


def test_category_qualification_counts(scene):
    instrument, _ = scene
    user = factories.make_user_with_role("researcher")
    factories.make_account(team=user.memberships[0].team, is_default=True)
    factories.make_qualification(user, category=instrument.category)
    assert _book(user, instrument).state == "confirmed"


def test_expired_qualification_stops_booking(scene):
    instrument, user = scene
    from labbook.bookings.models import Qualification

    q = db.session.scalar(sa.select(Qualification).where(Qualification.user_id == user.id))
    q.expires_at = NOW - timedelta(days=1)
    with pytest.raises(NotAllowed):
        _book(user, instrument)


def test_staffed_hours_need_advanced(scene):
    instrument, user = scene
    evening = datetime.combine(MON_10.date(), time(12, 0), tzinfo=UTC)  # 20:00 Shanghai
    with pytest.raises(BookingRefused) as info:
        _book(user, instrument, start=evening)
    assert info.value.rule == "staffed_hours"
    advanced = factories.make_booker(instrument, level="advanced")
    assert _book(advanced, instrument, start=evening).state == "confirmed"


def test_weekly_user_quota(scene):
    instrument, user = scene
    instrument.user_weekly_quota_minutes = 120
    _book(user, instrument, minutes=120)
    with pytest.raises(BookingRefused) as info:
        _book(user, instrument, start=MON_10 + timedelta(days=1), minutes=15)
    assert info.value.rule == "user_quota"
    assert _book(user, instrument, start=MON_10 + timedelta(days=7)).state == "confirmed"


def test_account_rules(scene):
    instrument, user = scene
    account = user.memberships[0].team.default_account
    account.active = False
    with pytest.raises(BookingRefused) as info:
        _book(user, instrument)
    assert info.value.rule == "account"
    account.active, account.valid_until = True, MON_10.date() - timedelta(days=1)
    with pytest.raises(BookingRefused):
        _book(user, instrument)
    foreign = factories.make_account()
    with pytest.raises(BookingRefused):
        _book(user, instrument, account_id=foreign.id)


def test_down_instrument_cannot_be_booked(scene):
    instrument, user = scene
    instrument.status = "down"
    with pytest.raises(BookingRefused) as info:
        _book(user, instrument)
    assert info.value.rule == "instrument_unavailable"


def test_manager_bypasses_policy_but_not_overlap(scene):
    instrument, user = scene
    manager = factories.make_user_with_role("facility_manager", facility=instrument.facility)
    team = factories.make_team()
    factories.add_member(team, manager)
    factories.make_account(team=team, is_default=True)
    instrument.requires_approval = True
    evening = datetime.combine(MON_10.date(), time(12, 0), tzinfo=UTC)
    assert _book(manager, instrument, start=evening).state == "confirmed"
    _book(user, instrument)
    with pytest.raises(BookingConflict):
        _book(manager, instrument)


def test_cancel_late_flag_for_owner(scene):
    instrument, user = scene
    early = _book(user, instrument)
    services.cancel_booking(user, early, now=MON_10 - timedelta(days=2))
    assert early.state == "cancelled" and not early.late_cancel
    late = _book(user, instrument)
    services.cancel_booking(user, late, now=MON_10 - timedelta(hours=2))
    assert late.late_cancel and late.sequence == 1


def test_cancel_frees_the_slot(scene):
    instrument, user = scene
    booking = _book(user, instrument)
    services.cancel_booking(user, booking, now=NOW)
    assert _book(user, instrument).state == "confirmed"


def test_cancel_by_stranger_refused_and_after_start_refused(scene):
    instrument, user = scene
    booking = _book(user, instrument)
    with pytest.raises(NotAllowed):
        services.cancel_booking(factories.make_user(), booking, now=NOW)
    with pytest.raises(BookingRefused):
        services.cancel_booking(user, booking, now=MON_10 + timedelta(minutes=1))


def test_approve_and_reject(scene):
    instrument, user = scene
    instrument.requires_approval = True
    manager = factories.make_user_with_role("facility_manager", facility=instrument.facility)
    outsider = factories.make_user_with_role("facility_manager")
    first = _book(user, instrument)
    with pytest.raises(NotAllowed):
        services.approve_booking(outsider, first, now=NOW)
    services.approve_booking(manager, first, now=NOW)
    assert first.state == "confirmed"
    second = _book(user, instrument, start=MON_10 + timedelta(days=1))
    with pytest.raises(Exception):
        services.reject_booking(manager, second, "")
    services.reject_booking(manager, second, "Instrument reserved for a course", now=NOW)
    assert second.state == "rejected" and second.state_reason.startswith("Instrument")


def test_approving_after_start_is_refused(scene):
    instrument, user = scene
    instrument.requires_approval = True
    manager = factories.make_user_with_role("facility_manager", facility=instrument.facility)
    booking = _book(user, instrument)
    with pytest.raises(BookingRefused) as info:
        services.approve_booking(manager, booking, now=MON_10 + timedelta(minutes=1))
    assert info.value.rule == "expired"
    assert booking.state == "pending"  # refused without writing; the expiry job marks it


def test_reschedule_moves_and_bumps_sequence(scene):
    instrument, user = scene
    booking = _book(user, instrument)
    other = _book(user, instrument, start=MON_10 + timedelta(hours=3))
    with pytest.raises(BookingConflict):
        services.reschedule_booking(user, booking, other.start_at, other.end_at, now=NOW)
    assert (booking.start_at, booking.sequence) == (MON_10, 0)  # refused: nothing changed
    services.reschedule_booking(
        user, booking, MON_10 + timedelta(hours=1), MON_10 + timedelta(hours=3), now=NOW
    )
    assert (booking.start_at, booking.sequence) == (MON_10 + timedelta(hours=1), 1)


def test_reschedule_needs_reapproval(scene):
    instrument, user = scene
    instrument.requires_approval = True
    manager = factories.make_user_with_role("facility_manager", facility=instrument.facility)
    booking = _book(user, instrument)
    services.approve_booking(manager, booking, now=NOW)
    services.reschedule_booking(user, booking, MON_10, MON_10 + timedelta(hours=2), now=NOW)
    assert booking.state == "pending"


def test_check_in_window_and_check_out(scene, app):
    instrument, user = scene
    booking = _book(user, instrument)
    with pytest.raises(BookingRefused):
        usage.check_in(user, booking, now=MON_10 - timedelta(minutes=30))
    usage.check_in(user, booking, now=MON_10 - timedelta(minutes=5))
    assert booking.state == "in_use"
    usage.check_out(user, booking, now=MON_10 + timedelta(minutes=20))
    assert booking.state == "completed" and booking.checked_out_at is not None
    # the rest of the slot is free again
    assert (
        _book(
            user,
            instrument,
            start=MON_10 + timedelta(minutes=30),
            minutes=30,
            now=MON_10 + timedelta(minutes=21),
        ).state
        == "confirmed"
    )


def test_expire_pending_is_idempotent(scene):
    instrument, user = scene
    instrument.requires_approval = True
    booking = _book(user, instrument)
    assert usage.expire_pending(now=MON_10) == [booking]
    assert usage.expire_pending(now=MON_10) == []
    assert booking.state == "expired"


def test_manager_must_use_an_account_they_may_charge(scene):
    instrument, user = scene
    manager = factories.make_user_with_role("facility_manager", facility=instrument.facility)
    foreign = user.memberships[0].team.default_account
    with pytest.raises(BookingRefused) as info:
        _book(manager, instrument, account_id=foreign.id)
    assert info.value.message == "Unknown account."


def test_other_teams_account_state_is_not_revealed(scene):
    instrument, user = scene
    foreign = factories.make_account(active=False)
    with pytest.raises(BookingRefused) as info:
        _book(user, instrument, account_id=foreign.id)
    assert info.value.message == "Unknown account." and foreign.code not in info.value.message


def test_team_lead_sees_team_bookings(scene):
    instrument, user = scene
    booking = _book(user, instrument)
    lead = factories.make_user(roles=("team_lead",))
    factories.add_member(booking.team, lead, is_lead=True)
    assert booking.can_see_details(lead)
    assert not booking.can_see_details(factories.make_user_with_role("team_lead"))


# -- the instrument and the booker's qualifications in one round trip --------------------------


def _statements(action):  # type: ignore[no-untyped-def]
    seen: list[str] = []

    def record(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        seen.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", record)
    try:
        return action(), [s for s in seen if "qualifications" in s]
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", record)


def test_instrument_for_booking_reads_the_qualifications_with_the_instrument(scene):
    instrument, user = scene
    other = factories.make_instrument(instrument.facility, category=instrument.category)
    factories.make_qualification(user, category=instrument.category, level="advanced")
    db.session.commit()
    loaded, queries = _statements(lambda: services.instrument_for_booking(instrument.id, user))
    assert loaded is instrument and len(queries) == 1  # joined into the instrument query
    best, queries = _statements(lambda: rules.live_qualification(user, instrument, NOW))
    assert best.level == "advanced" and queries == []  # remembered: no query of its own
    _, queries = _statements(lambda: rules.live_qualification(user, other, NOW))
    assert len(queries) == 1  # another instrument was not read with it


def test_a_grant_or_revocation_after_the_read_is_never_missed(scene):
    instrument, user = scene
    stranger = factories.make_user()
    db.session.commit()
    services.instrument_for_booking(instrument.id, stranger)
    granted = factories.make_qualification(stranger, instrument)  # flushes
    assert rules.live_qualification(stranger, instrument, NOW) == granted
    services.instrument_for_booking(instrument.id, stranger)
    granted.revoked_at = NOW
    db.session.flush()
    assert rules.live_qualification(stranger, instrument, NOW) is None
    db.session.rollback()
    services.instrument_for_booking(instrument.id, user)
    db.session.commit()  # a transaction's end forgets too
    assert rules.PREFETCHED not in db.session.info


def test_instrument_for_booking_unknown_or_impossible_id_is_404(scene):
    for ident in (0, -1, 2**31, 2**31 - 1):
        with pytest.raises(NotFound):
            services.instrument_for_booking(ident, scene[1])
