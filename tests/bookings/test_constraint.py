"""The database layer of the guarantee: on PostgreSQL the exclusion constraint refuses an
overlapping slot holder even when written behind the services' back."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from labbook.auth.models import User
from labbook.bookings import services, slots
from labbook.bookings.errors import BookingConflict
from labbook.bookings.models import Booking, Outage
from labbook.db import run_with_retry
from labbook.extensions import db
from labbook.instruments.models import Instrument
from tests import factories

START = datetime(2030, 1, 7, 2, 0, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)


def _raw_overlap(instrument, **kw):
    with db.session.begin_nested():
        db.session.add(Outage(instrument=instrument, start_at=START + timedelta(minutes=30),
                              end_at=START + timedelta(hours=2),
                              block_end=START + timedelta(hours=2), state="scheduled",
                              outage_kind="repair", **kw))
        db.session.flush()


def test_overlapping_slot_holders_are_impossible(app, backend_name):
    instrument = factories.make_instrument(buffer_minutes=15)
    factories.make_booking(instrument, start=START)
    if backend_name == "postgresql":
        with pytest.raises(sa.exc.IntegrityError) as info:
            _raw_overlap(instrument)
        assert info.value.orig.sqlstate == "23P01"
    else:  # SQLite has no exclusion constraints; the check under BEGIN IMMEDIATE finds it
        assert len(slots.overlapping(instrument.id, START + timedelta(minutes=30),
                                     START + timedelta(hours=2))) == 1


def test_buffer_is_part_of_the_blocked_range(app, backend_name):
    instrument = factories.make_instrument(buffer_minutes=15)
    factories.make_booking(instrument, start=START)  # blocked until 03:15
    after_buffer = START + timedelta(minutes=75)
    within_buffer = START + timedelta(minutes=70)
    assert slots.overlapping(instrument.id, after_buffer, after_buffer + timedelta(hours=1)) == []
    assert slots.overlapping(instrument.id, within_buffer, after_buffer) != []


def test_cancelled_rows_do_not_hold_the_slot(app):
    instrument = factories.make_instrument()
    factories.make_booking(instrument, start=START, state="cancelled")
    _raw_overlap(instrument)  # no error on either database
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Outage)) == 1


def test_open_ended_outage_blocks_everything_after(app, backend_name):
    instrument = factories.make_instrument()
    db.session.add(Outage(instrument=instrument, start_at=START, state="scheduled",
                          outage_kind="repair"))
    db.session.flush()
    far = START + timedelta(days=3650)
    assert slots.overlapping(instrument.id, far, far + timedelta(hours=1)) != []
    if backend_name == "postgresql":
        with pytest.raises(sa.exc.IntegrityError):
            with db.session.begin_nested():
                factories.make_booking(instrument, start=far)


def test_a_clash_only_the_database_saw_runs_again_and_is_refused(app, backend_name, monkeypatch):
    """The booking path flushes without a SAVEPOINT: when a writer that skipped the lock got
    in after the check (simulated: the first check is blind), PostgreSQL's constraint
    aborts the transaction with 23P01 and ``run_with_retry`` runs the unit again, whose
    check now sees the row and refuses with a proper conflict. SQLite has no constraint:
    there the check under ``BEGIN IMMEDIATE`` is the whole guarantee, and a blind check
    would double-book, which is why it is never skipped."""
    instrument = factories.make_instrument()
    user = factories.make_booker(instrument)
    db.session.add(Outage(instrument=instrument, start_at=START, end_at=START + HOUR,
                          block_end=START + HOUR, state="scheduled", outage_kind="repair"))
    db.session.commit()
    instrument_id, user_id = instrument.id, user.id
    real, calls = slots.overlapping, []

    def blind_once(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(args)
        return [] if len(calls) == 1 else real(*args, **kwargs)

    monkeypatch.setattr(slots, "overlapping", blind_once)

    def unit() -> Booking:
        return services.create_booking(db.session.get(User, user_id),
                                       db.session.get(Instrument, instrument_id),
                                       START, START + HOUR, now=START - timedelta(days=7))

    if backend_name == "postgresql":
        with pytest.raises(BookingConflict) as info:
            run_with_retry(unit)
        db.session.rollback()
        assert len(calls) >= 2
        assert [c["kind"] for c in info.value.conflicts] == ["outage"]
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Booking)) == 0
    else:
        run_with_retry(unit)
        assert len(real(instrument_id, START, START + HOUR)) == 2
