"""Recurring bookings (series): creation in both modes, DST, cancellation; both databases."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from labbook.audit import AuditEntry
from labbook.bookings import series as series_service
from labbook.bookings.errors import NotAllowed
from labbook.bookings.models import Booking, BookingSeries
from labbook.bookings.series import SeriesNotBooked
from labbook.errors import ValidationError, handle_labbook_error
from labbook.extensions import db
from tests import factories

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
# Monday 2030-01-07, 10:00 Asia/Shanghai = 02:00 UTC; "now" is a week earlier.
MON_10 = datetime(2030, 1, 7, 2, 0, tzinfo=UTC)
NOW = MON_10 - timedelta(days=7)
WEEKLY_4 = {"freq": "weekly", "count": 4}


def _count(model) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def _audits(action: str) -> int:
    return db.session.scalar(
        sa.select(sa.func.count()).select_from(AuditEntry).where(AuditEntry.action == action)
    )


def _series(user, instrument, rule=WEEKLY_4, start=MON_10, minutes=60, **kw):
    return series_service.create_series(
        user,
        instrument,
        start,
        start + timedelta(minutes=minutes),
        rule,
        now=kw.pop("now", NOW),
        **kw,
    )


@pytest.fixture
def scene(app):
    instrument = factories.make_instrument()
    user = factories.make_booker(instrument)
    db.session.commit()
    return instrument, user


@pytest.fixture
def blocked(scene):
    """The third Monday is taken by someone else."""
    instrument, user = scene
    other = factories.make_booker(instrument)
    taken = factories.make_booking(instrument, other, start=MON_10 + timedelta(weeks=2))
    return instrument, user, taken


def test_create_series_books_every_occurrence(scene):
    instrument, user = scene
    result = _series(user, instrument, purpose="weekly imaging")
    bookings = db.session.scalars(sa.select(Booking).order_by(Booking.start_at)).all()
    assert result.booked == [b.id for b in bookings] and result.failed == []
    assert [b.start_at for b in bookings] == [MON_10 + timedelta(weeks=k) for k in range(4)]
    assert {b.series_id for b in bookings} == {result.series_id}
    assert {b.state for b in bookings} == {"confirmed"}
    assert {b.purpose for b in bookings} == {"weekly imaging"}
    stored = db.session.get(BookingSeries, result.series_id)
    assert stored.rule == {"freq": "weekly", "interval": 1, "byweekday": [0], "count": 4}
    assert stored.timezone == "Asia/Shanghai"
    assert [o["outcome"] for o in result.to_dict()["occurrences"]] == ["booked"] * 4
    assert _audits("series.create") == 1 and _audits("booking.create") == 4


def test_create_series_pending_when_approval_required(scene):
    instrument, user = scene
    instrument.requires_approval = True
    result = _series(user, instrument)
    assert {b.state for b in result.bookings} == {"pending"}


def test_all_or_nothing_with_one_conflict_writes_nothing(blocked):
    instrument, user, taken = blocked
    with pytest.raises(SeriesNotBooked) as info:
        _series(user, instrument, mode="all_or_nothing")
    error = info.value
    assert error.status == 409 and error.code == "conflict"
    outcomes = [o["outcome"] for o in error.occurrences]
    assert outcomes == ["bookable", "bookable", "failed", "bookable"]
    failure = error.failed[0]
    assert failure["rule"] == "overlap" and failure["index"] == 2
    assert failure["start"] == (MON_10 + timedelta(weeks=2)).isoformat()
    assert datetime.fromisoformat(failure["conflicts"][0]["start"]) == taken.start_at
    assert "user" not in failure["conflicts"][0] and failure["alternatives"]
    assert error.to_dict()["occurrences"] == error.occurrences
    assert _count(Booking) == 1 and _count(BookingSeries) == 0
    assert _audits("booking.create") == 0 and _audits("series.create") == 0


def test_fit_books_the_rest_and_lists_the_failure(blocked):
    instrument, user, taken = blocked
    result = _series(user, instrument, mode="fit")
    assert len(result.booked) == 3 and len(result.failed) == 1
    assert result.failed[0]["rule"] == "overlap" and result.failed[0]["conflicts"]
    mine = db.session.scalars(sa.select(Booking).where(Booking.user_id == user.id)).all()
    assert sorted(b.id for b in mine) == sorted(result.booked)
    assert taken.start_at not in {b.start_at for b in mine}
    assert result.to_dict()["mode"] == "fit" and _count(BookingSeries) == 1


def test_all_or_nothing_with_mixed_failures_is_422(blocked):
    instrument, user, _taken = blocked
    instrument.horizon_days = 25  # the fourth Monday is beyond the horizon
    with pytest.raises(SeriesNotBooked) as info:
        _series(user, instrument)
    assert info.value.status == 422 and info.value.code == "validation"
    assert [f["rule"] for f in info.value.failed] == ["overlap", "horizon"]
    assert "recurrence" in info.value.to_dict()["fields"]
    assert _count(Booking) == 1 and _count(BookingSeries) == 0


def test_fit_with_nothing_fitting_writes_nothing(scene):
    instrument, user = scene
    other = factories.make_booker(instrument)
    for k in range(2):
        factories.make_booking(instrument, other, start=MON_10 + timedelta(days=k))
    with pytest.raises(SeriesNotBooked) as info:
        _series(user, instrument, {"freq": "daily", "count": 2}, mode="fit")
    assert info.value.status == 409 and len(info.value.failed) == 2
    assert _count(BookingSeries) == 0 and _count(Booking) == 2


def test_shared_reason_is_raised_as_itself(scene):
    instrument, _user = scene
    stranger = factories.make_user_with_role("researcher")
    factories.make_account(team=stranger.memberships[0].team, is_default=True)
    with pytest.raises(NotAllowed) as info:
        _series(stranger, instrument, mode="fit")
    assert info.value.rule == "qualification"
    assert _count(Booking) == 0 and _count(BookingSeries) == 0


def test_quota_counts_earlier_occurrences_of_the_series(scene):
    instrument, user = scene
    instrument.user_weekly_quota_minutes = 120
    result = _series(user, instrument, {"freq": "daily", "count": 3}, mode="fit")
    assert len(result.booked) == 2
    assert result.failed[0]["rule"] == "user_quota" and result.failed[0]["index"] == 2


def test_bad_rule_is_refused_before_anything_is_written(scene):
    instrument, user = scene
    with pytest.raises(ValidationError) as info:
        _series(user, instrument, {"freq": "weekly", "interval": 0, "count": 4})
    assert list(info.value.fields) == ["recurrence.interval"]
    assert _count(BookingSeries) == 0 and _count(Booking) == 0


def test_bad_mode_is_refused(scene):
    instrument, user = scene
    with pytest.raises(ValidationError) as info:
        _series(user, instrument, mode="some")
    assert list(info.value.fields) == ["mode"]
    assert _count(BookingSeries) == 0


# -- DST --------------------------------------------------------------------------------------


@pytest.fixture
def berlin(app):
    facility = factories.make_facility(timezone="Europe/Berlin")
    instrument = factories.make_instrument(facility, horizon_days=3660)
    user = factories.make_booker(instrument, level="advanced")
    db.session.commit()
    return instrument, user


def test_series_across_spring_forward_keeps_local_time(berlin):
    instrument, user = berlin
    start = datetime(2030, 3, 18, 9, 0, tzinfo=BERLIN)
    result = _series(user, instrument, {"freq": "weekly", "count": 3}, start=start, minutes=120)
    local = [b.start_at.astimezone(BERLIN) for b in result.bookings]
    assert [t.strftime("%m-%d %H:%M") for t in local] == [
        "03-18 09:00", "03-25 09:00", "04-01 09:00"
    ]
    assert [t.utcoffset() for t in local] == [timedelta(hours=h) for h in (1, 1, 2)]
    assert [b.end_at.astimezone(BERLIN).hour for b in result.bookings] == [11, 11, 11]


def test_series_across_fall_back_keeps_local_time(berlin):
    instrument, user = berlin
    start = datetime(2030, 10, 21, 9, 0, tzinfo=BERLIN)
    result = _series(user, instrument, {"freq": "weekly", "count": 2}, start=start, minutes=120)
    assert [b.start_at for b in result.bookings] == [
        datetime(2030, 10, 21, 7, 0, tzinfo=UTC),
        datetime(2030, 10, 28, 8, 0, tzinfo=UTC),
    ]


def test_series_nonexistent_time_fails_with_reason(berlin):
    instrument, user = berlin
    start = datetime(2030, 3, 30, 2, 30, tzinfo=BERLIN)
    result = _series(user, instrument, {"freq": "daily", "count": 3}, start=start, mode="fit")
    assert len(result.booked) == 2
    failure = result.failed[0]
    assert failure["rule"] == "nonexistent_time" and failure["start"] is None
    assert failure["local_start"] == "2030-03-31T02:30" and "02:30" in failure["message"]
    assert [b.start_at.astimezone(BERLIN).hour for b in result.bookings] == [2, 2]


def test_series_nonexistent_time_all_or_nothing_is_422(berlin):
    instrument, user = berlin
    start = datetime(2030, 3, 30, 2, 30, tzinfo=BERLIN)
    with pytest.raises(SeriesNotBooked) as info:
        _series(user, instrument, {"freq": "daily", "count": 3}, start=start)
    assert info.value.status == 422
    assert [f["rule"] for f in info.value.failed] == ["nonexistent_time"]
    assert _count(Booking) == 0 and _count(BookingSeries) == 0


# -- cancel -----------------------------------------------------------------------------------


@pytest.fixture
def booked(scene):
    instrument, user = scene
    result = _series(user, instrument)
    return instrument, user, result


def _states(result) -> list[str]:
    return [db.session.get(Booking, i).state for i in result.booked]


def test_cancel_occurrence_leaves_the_others(booked):
    _instrument, user, result = booked
    cancelled = series_service.cancel_occurrence(user, result.bookings[1], now=NOW)
    assert cancelled == [result.bookings[1]]
    assert _states(result) == ["confirmed", "cancelled", "confirmed", "confirmed"]


def test_cancel_following_cancels_this_and_later(booked):
    _instrument, user, result = booked
    cancelled = series_service.cancel_following(user, result.bookings[1], now=NOW)
    assert [b.id for b in cancelled] == result.booked[1:]
    assert _states(result) == ["confirmed", "cancelled", "cancelled", "cancelled"]
    assert series_service.cancel_following(user, result.bookings[1], now=NOW) == []
    assert _audits("series.cancel_following") == 2


def test_cancel_series_skips_past_and_running(booked):
    _instrument, user, result = booked
    result.bookings[0].state = "completed"
    later = MON_10 + timedelta(days=3)
    cancelled = series_service.cancel_series(user, result.series, now=later)
    assert [b.id for b in cancelled] == result.booked[1:]
    assert _states(result) == ["completed", "cancelled", "cancelled", "cancelled"]
    assert series_service.cancel_series(user, result.series, now=later) == []


def test_cancel_series_by_manager(booked):
    instrument, _user, result = booked
    manager = factories.make_user_with_role("facility_manager", facility=instrument.facility)
    cancelled = series_service.cancel_series(manager, result.series, now=NOW, reason="closure")
    assert len(cancelled) == 4 and {b.state_reason for b in cancelled} == {"closure"}
    assert not any(b.late_cancel for b in cancelled)


def test_cancel_series_by_stranger_is_refused(booked):
    instrument, _user, result = booked
    stranger = factories.make_booker(instrument)
    with pytest.raises(NotAllowed):
        series_service.cancel_series(stranger, result.series, now=NOW)
    with pytest.raises(NotAllowed):
        series_service.cancel_following(stranger, result.bookings[0], now=NOW)
    assert _states(result) == ["confirmed"] * 4


def test_cancel_following_needs_a_series(scene):
    instrument, user = scene
    single = factories.make_booking(instrument, user)
    with pytest.raises(ValidationError):
        series_service.cancel_following(user, single, now=NOW)
    assert single.state == "confirmed"


def test_series_refusal_renders_as_api_json(app, blocked):
    instrument, user, _taken = blocked
    with pytest.raises(SeriesNotBooked) as info:
        _series(user, instrument)
    with app.test_request_context("/api/v1/bookings", method="POST"):
        response = handle_labbook_error(info.value)
    body = response.get_json()["error"]
    assert response.status_code == 409 and body["code"] == "conflict"
    assert body["mode"] == "all_or_nothing" and len(body["occurrences"]) == 4
    assert body["failed"][0]["rule"] == "overlap"
