"""Usage service: sessions derived from reservations, corrections (validated, audited,
refused in closed billing periods) and confirming auto-closed sessions; both databases."""
from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from labbook.audit import AuditEntry
from labbook.billing.lock import PeriodClosed
from labbook.bookings.errors import NotAllowed
from labbook.care import usage
from labbook.errors import ValidationError
from labbook.extensions import db
from tests import factories
from tests.care.test_usage_support import MARCH, NOW, at, close_period, usage_scene


@pytest.fixture
def s(app):  # type: ignore[no-untyped-def]
    return usage_scene()


def _rows(s) -> dict[int, usage.UsageRow]:  # type: ignore[no-untyped-def]
    return {r.booking.id: r for r in usage.usage_rows(s.facility, MARCH)}


def _audits(action: str) -> list[AuditEntry]:
    return list(db.session.scalars(sa.select(AuditEntry).where(AuditEntry.action == action)))


# -- derivation ---------------------------------------------------------------------------------


def test_usage_rows_are_this_facilitys_sessions_of_the_local_month(s):
    rows = usage.usage_rows(s.facility, MARCH)
    assert [r.booking.id for r in rows] == [
        s.first_local.id, s.done.id, s.no_show.id, s.walk_in.id, s.running.id]


def test_usage_row_completed_with_overrun(s):
    row = _rows(s)[s.done.id]
    assert (row.booked_minutes, row.actual_minutes, row.difference) == (60, 75, 15)
    assert row.overrun and not row.is_open and not row.no_show and not row.needs_review


def test_usage_row_running_session_is_open_without_actual_minutes(s):
    row = _rows(s)[s.running.id]
    assert row.is_open and row.actual_minutes is None and row.difference is None
    assert not row.overrun


def test_usage_row_no_show_has_booked_minutes_only(s):
    row = _rows(s)[s.no_show.id]
    assert row.no_show and row.booked_minutes == 60 and row.actual_minutes is None


def test_usage_row_walk_in_closed_by_the_system_needs_review(s):
    row = _rows(s)[s.walk_in.id]
    assert row.walk_in and row.needs_review and row.actual_minutes == 60
    assert row.difference == 0 and not row.overrun


def test_usage_totals_per_instrument(s):
    totals = {t.instrument.name: t for t in usage.totals(usage.usage_rows(s.facility, MARCH))}
    assert list(totals) == ["Bruker XRD", "Zeiss SEM"]
    sem = totals["Zeiss SEM"]
    assert (sem.sessions, sem.booked_minutes, sem.actual_minutes) == (2, 60 + 180 + 60, 75)
    assert (sem.no_shows, sem.overruns, sem.open, sem.needs_review) == (1, 1, 1, 0)
    xrd = totals["Bruker XRD"]
    assert (xrd.sessions, xrd.actual_minutes, xrd.needs_review) == (2, 90, 1)


def _statements_to_read(s) -> int:  # type: ignore[no-untyped-def]
    from tests.api.conftest import count_statements

    db.session.expire_all()
    facility = s.facility
    facility.timezone  # noqa: B018 - loaded before counting
    with count_statements() as statements:
        for row in usage.usage_rows(facility, MARCH):
            (row.booking.user.name, row.booking.team.name, row.booking.account.code,
             row.booking.instrument.facility.timezone)
    return len(statements)


def test_usage_rows_query_count_does_not_grow_with_sessions(s):
    before = _statements_to_read(s)
    for day in range(11, 16):
        user = factories.make_booker(s.xrd)
        factories.make_booking(s.xrd, user, start=at(day, 2), end=at(day, 3), state="completed",
                               checked_in_at=at(day, 2), checked_out_at=at(day, 3))
    db.session.commit()
    assert _statements_to_read(s) == before


def test_parse_month_refuses_malformed():
    assert usage.parse_month("2026-03") == MARCH
    for bad in (None, "", "2026-13", "2026-00", "2026-3", "march", "2026-03-01"):
        assert usage.parse_month(bad) is None


# -- corrections ----------------------------------------------------------------------------------


def test_correct_times_sets_actual_times_and_audits(s):
    usage.correct_times(s.manager, s.done, at(2, 2), at(2, 3), "Forgot to check out", NOW)
    db.session.commit()
    db.session.refresh(s.done)
    assert (s.done.checked_in_at, s.done.checked_out_at) == (at(2, 2), at(2, 3))
    assert s.done.sequence == 3 and (s.done.start_at, s.done.end_at) == (at(2, 2), at(2, 3))
    [entry] = _audits("usage.correct")
    assert entry.actor_id == s.manager.id and entry.object_id == str(s.done.id)
    assert entry.before["checked_out_at"].startswith("2026-03-02T03:20")
    assert entry.after["checked_out_at"].startswith("2026-03-02T03:00")
    assert entry.after["reason"] == "Forgot to check out"


def test_correct_times_clears_needs_review(s):
    usage.correct_times(s.manager, s.walk_in, at(6, 6), at(6, 6, 45), "Left early", NOW)
    assert s.walk_in.needs_review is False
    assert _audits("usage.correct")[0].before["needs_review"] is True


def test_correct_times_running_session_corrects_its_start_only(s):
    usage.correct_times(s.manager, s.running, at(20, 9, 55), None, "Started early", NOW)
    assert s.running.checked_in_at == at(20, 9, 55) and s.running.state == "in_use"
    with pytest.raises(ValidationError) as error:
        usage.correct_times(s.manager, s.running, at(20, 10), at(20, 11), "Ended", NOW)
    assert "checked_out_at" in error.value.fields


def test_correct_times_refused_when_the_old_period_is_closed(s):
    february = factories.make_booking(
        s.sem, s.booker, start=at(27, 2, month=2), end=at(27, 3, month=2), state="completed",
        checked_in_at=at(27, 2, month=2), checked_out_at=at(27, 3, month=2))
    close_period(MARCH.replace(month=2))
    with pytest.raises(PeriodClosed) as error:
        usage.correct_times(s.manager, february, at(2, 4), at(2, 5), "Wrong month", NOW)
    assert error.value.status == 409 and error.value.month == MARCH.replace(month=2)
    db.session.rollback()
    db.session.refresh(february)
    assert february.checked_in_at == at(27, 2, month=2)
    assert _audits("usage.correct") == []


def test_correct_times_closed_period_follows_the_centres_zone(s):
    # 2026-02-28 16:30 UTC is 1 March 00:30 in Shanghai: a session of March.
    close_period(MARCH.replace(month=2))
    usage.correct_times(s.manager, s.first_local, at(28, 16, 45, month=2),
                        at(28, 17, 0, month=2), "Late start", NOW)
    close_period(MARCH)
    with pytest.raises(PeriodClosed):
        usage.correct_times(s.manager, s.first_local, at(28, 16, 30, month=2),
                            at(28, 17, 0, month=2), "Back", NOW)


def test_correct_times_refused_when_the_new_period_is_closed(s):
    close_period(MARCH.replace(month=2))
    with pytest.raises(PeriodClosed) as error:
        usage.correct_times(s.manager, s.done, at(27, 2, month=2), at(27, 3, month=2),
                            "Typo", NOW)
    assert error.value.month == MARCH.replace(month=2)
    assert s.done.checked_in_at == at(2, 2, 5)


def test_correct_times_allowed_when_the_period_is_open(s):
    close_period(MARCH.replace(month=1))
    usage.correct_times(s.manager, s.done, at(2, 2), at(2, 3), "Fix", NOW)
    assert s.done.checked_out_at == at(2, 3)


@pytest.mark.parametrize("start, end, field", [
    (at(2, 3), at(2, 2), "checked_out_at"),
    (at(2, 3), at(2, 3), "checked_out_at"),
    (NOW + timedelta(minutes=1), NOW + timedelta(hours=1), "checked_in_at"),
    (at(2, 2), NOW + timedelta(minutes=1), "checked_out_at"),
    (None, at(2, 3), "checked_in_at"),
    (at(2, 2), None, "checked_out_at"),
])
def test_correct_times_validates_times(s, start, end, field):
    with pytest.raises(ValidationError) as error:
        usage.correct_times(s.manager, s.done, start, end, "Fix", NOW)
    assert field in error.value.fields
    assert s.done.checked_in_at == at(2, 2, 5) and _audits("usage.correct") == []


@pytest.mark.parametrize("reason", ["", "   ", None, "x" * 501])
def test_correct_times_requires_a_reason(s, reason):
    with pytest.raises(ValidationError) as error:
        usage.correct_times(s.manager, s.done, at(2, 2), at(2, 3), reason, NOW)
    assert "reason" in error.value.fields


def test_correct_times_refuses_overlap_with_another_session(s):
    other = factories.make_booker(s.sem)
    factories.make_booking(s.sem, other, start=at(2, 4), end=at(2, 5), state="completed",
                           checked_in_at=at(2, 4), checked_out_at=at(2, 5))
    with pytest.raises(ValidationError) as error:
        usage.correct_times(s.manager, s.done, at(2, 2), at(2, 4, 30), "Overran", NOW)
    assert "checked_in_at" in error.value.fields
    usage.correct_times(s.manager, s.done, at(2, 2), at(2, 4), "Overran", NOW)  # touching


def test_correct_times_refuses_a_no_show(s):
    with pytest.raises(ValidationError) as error:
        usage.correct_times(s.manager, s.no_show, at(5, 2), at(5, 3), "Came after all", NOW)
    assert "state" in error.value.fields


@pytest.mark.parametrize("who", ["owner", "other_manager", "finance"])
def test_correct_times_only_by_managers_of_the_facility(s, who):
    actor = {
        "owner": lambda: s.booker,
        "other_manager": lambda: factories.make_user_with_role("facility_manager"),
        "finance": lambda: factories.make_user_with_role("finance"),
    }[who]()
    with pytest.raises(NotAllowed):
        usage.correct_times(actor, s.done, at(2, 2), at(2, 3), "Fix", NOW)


def test_correct_times_by_admin(s):
    admin = factories.make_user(roles=("admin",))
    usage.correct_times(admin, s.done, at(2, 2), at(2, 3), "Fix", NOW)
    assert s.done.checked_out_at == at(2, 3)


# -- confirming -----------------------------------------------------------------------------------


def test_confirm_session_clears_needs_review_and_audits(s):
    usage.confirm_session(s.manager, s.walk_in, NOW)
    assert s.walk_in.needs_review is False
    [entry] = _audits("usage.confirm")
    assert entry.before == {"needs_review": True} and entry.after == {"needs_review": False}


def test_confirm_session_refused_in_a_closed_period(s):
    close_period(MARCH)
    with pytest.raises(PeriodClosed):
        usage.confirm_session(s.manager, s.walk_in, NOW)
    assert s.walk_in.needs_review is True


def test_confirm_session_twice_audits_once(s):
    usage.confirm_session(s.manager, s.walk_in, NOW)
    usage.confirm_session(s.manager, s.walk_in, NOW)
    assert len(_audits("usage.confirm")) == 1
