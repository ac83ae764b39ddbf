"""Walk-ins (labbook/care/walkin.py): a session started now without a booking, under the
same no-overlap guarantee as bookings."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from labbook.bookings.errors import BookingConflict, BookingRefused, NotAllowed
from labbook.bookings.models import Outage
from labbook.care import walkin
from labbook.extensions import db
from tests import factories

UTC = timezone.utc
# Monday 2030-01-07 10:07:30.25 in Asia/Shanghai, inside the factories' staffed hours.
NOW = datetime(2030, 1, 7, 2, 7, 30, 250000, tzinfo=UTC)
START = datetime(2030, 1, 7, 2, 7, 31, tzinfo=UTC)


def at(hh: int, mm: int) -> datetime:
    """A UTC moment on 2030-01-07."""
    return datetime(2030, 1, 7, hh, mm, tzinfo=UTC)


@pytest.fixture
def instrument(app):  # type: ignore[no-untyped-def]
    return factories.make_instrument(slot_minutes=15, min_minutes=15, max_minutes=120)


def test_grid_end_rounds_up_to_the_slot_within_min_and_max(instrument) -> None:  # type: ignore
    assert walkin.grid_end(instrument, START, None) == at(2, 30)  # min 15 → 02:22:31 → 02:30
    assert walkin.grid_end(instrument, START, 60) == at(3, 15)
    assert walkin.grid_end(instrument, START, 5) == at(2, 30)  # below min: the min
    assert walkin.grid_end(instrument, START, 600) == at(4, 0)  # never past max (120)
    assert walkin.start_of(NOW) == START
    assert walkin.start_of(START) == START


def test_walk_in_starts_now_and_is_checked_in(instrument) -> None:  # type: ignore
    user = factories.make_booker(instrument)
    booking = walkin.start_walk_in(user, instrument, minutes=60, now=NOW)
    assert booking.walk_in and booking.state == "in_use"
    assert booking.start_at == START and booking.end_at == at(3, 15)
    assert booking.checked_in_at == START and booking.user is user
    assert booking.account == user.memberships[0].team.default_account
    assert booking.purpose == "Walk-in"


def test_walk_in_ignores_the_lead_time(app) -> None:  # type: ignore[no-untyped-def]
    instrument = factories.make_instrument(lead_minutes=24 * 60)
    user = factories.make_booker(instrument)
    assert walkin.start_walk_in(user, instrument, now=NOW).state == "in_use"


def test_walk_in_ends_before_the_next_booking_and_its_buffer(app) -> None:  # type: ignore
    instrument = factories.make_instrument(buffer_minutes=15, max_minutes=240)
    user = factories.make_booker(instrument)
    factories.make_booking(instrument, start=at(3, 30), end=at(4, 30))
    booking = walkin.start_walk_in(user, instrument, minutes=240, now=NOW)
    assert booking.end_at == at(3, 15)  # then 15 min buffer, then the booking at 03:30
    assert booking.block_end == at(3, 30)


def test_walk_in_refused_when_too_little_time_is_free(instrument) -> None:  # type: ignore
    user = factories.make_booker(instrument)
    factories.make_booking(instrument, start=at(2, 15), end=at(3, 15))
    with pytest.raises(BookingConflict) as caught:
        walkin.start_walk_in(user, instrument, now=NOW)
    assert caught.value.conflicts and caught.value.conflicts[0]["kind"] == "booking"


def test_walk_in_refused_during_a_booking_or_an_outage(instrument) -> None:  # type: ignore
    user = factories.make_booker(instrument)
    booked = factories.make_booking(instrument, start=at(2, 0), end=at(3, 0))
    with pytest.raises(BookingConflict):
        walkin.start_walk_in(user, instrument, now=NOW)
    booked.state = "cancelled"
    db.session.add(Outage(instrument=instrument, start_at=at(1, 0), end_at=None, block_end=None,
                          state="scheduled", outage_kind="repair", title="Pump"))
    db.session.flush()
    with pytest.raises(BookingConflict):
        walkin.start_walk_in(user, instrument, now=NOW)


def test_walk_in_refused_while_a_session_runs_past_its_end(instrument) -> None:  # type: ignore
    user = factories.make_booker(instrument)
    factories.make_booking(instrument, start=at(1, 0), end=at(2, 0), state="in_use")
    with pytest.raises(BookingRefused) as caught:
        walkin.start_walk_in(user, instrument, now=NOW)
    assert caught.value.rule == "in_use"


def test_walk_in_refused_when_not_qualified(instrument) -> None:  # type: ignore
    user = factories.make_user_with_role("researcher")
    factories.make_account(team=user.memberships[0].team, is_default=True)
    with pytest.raises(NotAllowed) as caught:
        walkin.start_walk_in(user, instrument, now=NOW)
    assert caught.value.rule == "qualification"


def test_walk_in_refused_outside_staffed_hours_for_basic_level(instrument) -> None:  # type: ignore
    user = factories.make_booker(instrument)
    night = datetime(2030, 1, 7, 14, 3, tzinfo=UTC)  # 22:03 in Shanghai
    with pytest.raises(BookingRefused) as caught:
        walkin.start_walk_in(user, instrument, now=night)
    assert caught.value.rule == "staffed_hours"
    advanced = factories.make_booker(instrument, level="advanced")
    assert walkin.start_walk_in(advanced, instrument, now=night).state == "in_use"


def test_walk_in_refused_when_approval_is_required(app) -> None:  # type: ignore
    instrument = factories.make_instrument(requires_approval=True)
    user = factories.make_booker(instrument)
    with pytest.raises(BookingRefused) as caught:
        walkin.start_walk_in(user, instrument, now=NOW)
    assert caught.value.rule == "approval"
    manager = factories.make_user_with_role("facility_manager", facility=instrument.facility)
    team = factories.make_team()
    factories.add_member(team, manager)
    factories.make_account(team=team, is_default=True)
    assert walkin.start_walk_in(manager, instrument, now=NOW).state == "in_use"


def test_walk_in_refused_on_a_down_instrument(app) -> None:  # type: ignore
    instrument = factories.make_instrument(status="down")
    user = factories.make_booker(instrument)
    with pytest.raises(BookingRefused) as caught:
        walkin.start_walk_in(user, instrument, now=NOW)
    assert caught.value.rule == "instrument_unavailable"
