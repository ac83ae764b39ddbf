"""The ``instrument_status`` job: planned windows that start or end with the clock change
the stored instrument status; twice changes nothing; retired instruments stay retired."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from labbook.bookings.models import Outage
from labbook.care.tasks import sync_instrument_statuses
from labbook.extensions import db
from tests import factories

START = datetime(2030, 3, 4, 2, 0, tzinfo=timezone.utc)


def _window(instrument, start=START, hours=2):
    outage = Outage(instrument=instrument, start_at=start, end_at=start + timedelta(hours=hours),
                    block_end=start + timedelta(hours=hours), state="scheduled",
                    outage_kind="preventive", title="Bake-out")
    db.session.add(outage)
    db.session.commit()
    return outage


def test_window_start_and_end_move_the_stored_status(app):
    instrument = factories.make_instrument()
    retired = factories.make_instrument(status="retired")
    _window(instrument)
    _window(retired)
    assert sync_instrument_statuses(START - timedelta(minutes=1)) == 0
    assert instrument.status == "available"
    assert sync_instrument_statuses(START + timedelta(minutes=1)) == 1
    db.session.refresh(instrument)
    assert instrument.status == "down"
    assert sync_instrument_statuses(START + timedelta(minutes=2)) == 0  # twice: nothing
    assert sync_instrument_statuses(START + timedelta(hours=5)) == 1  # caught up after a gap
    db.session.refresh(instrument)
    db.session.refresh(retired)
    assert (instrument.status, retired.status) == ("available", "retired")
