"""The database layer of the guarantee: on PostgreSQL the exclusion constraint refuses an
overlapping slot holder even when written behind the services' back."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from labbook.bookings import slots
from labbook.bookings.models import Outage
from labbook.extensions import db
from tests import factories

START = datetime(2030, 1, 7, 2, 0, tzinfo=timezone.utc)


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
