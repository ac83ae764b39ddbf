"""A month of sessions in one Shanghai facility, shared by the usage and dashboard tests.

March 2026 in Asia/Shanghai (UTC+8). ``NOW`` is 2026-03-20 12:00 UTC, during the running
session; every other time is in the past.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace

import sqlalchemy as sa

from labbook.billing.models import BillingPeriod
from labbook.extensions import db
from tests import factories

UTC = timezone.utc
NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
MARCH = date(2026, 3, 1)


def at(day: int, hour: int, minute: int = 0, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def usage_scene() -> SimpleNamespace:
    """Sessions: completed with an overrun, running, no-show, walk-in closed by the
    system, one starting at 00:30 on 1 March local time (still February in UTC); and
    bookings that are not sessions of this facility's March (cancelled, April, elsewhere)."""
    s = SimpleNamespace()
    s.facility = factories.make_facility(name="Imaging Core", timezone="Asia/Shanghai")
    s.sem = factories.make_instrument(s.facility, name="Zeiss SEM")
    s.xrd = factories.make_instrument(s.facility, name="Bruker XRD")
    s.manager = factories.make_user_with_role("facility_manager", facility=s.facility)
    s.booker = factories.make_booker(s.sem, name="Alice Booker")
    factories.make_qualification(s.booker, s.xrd)
    s.done = factories.make_booking(
        s.sem, s.booker, start=at(2, 2), end=at(2, 3), state="completed",
        checked_in_at=at(2, 2, 5), checked_out_at=at(2, 3, 20), sequence=3)
    s.running = factories.make_booking(
        s.sem, s.booker, start=at(20, 10), end=at(20, 13), state="in_use",
        checked_in_at=at(20, 10, 2))
    s.no_show = factories.make_booking(s.sem, s.booker, start=at(5, 2), end=at(5, 3),
                                       state="no_show")
    s.walk_in = factories.make_booking(
        s.xrd, s.booker, start=at(6, 6), end=at(6, 7), state="completed", walk_in=True,
        checked_in_at=at(6, 6), checked_out_at=at(6, 7), needs_review=True)
    s.first_local = factories.make_booking(
        s.xrd, s.booker, start=at(28, 16, 30, month=2), end=at(28, 17, 30, month=2),
        state="completed", checked_in_at=at(28, 16, 30, month=2),
        checked_out_at=at(28, 17, 0, month=2))
    factories.make_booking(s.sem, s.booker, start=at(10, 2), end=at(10, 3), state="cancelled")
    factories.make_booking(s.sem, s.booker, start=at(2, 2, month=4), end=at(2, 3, month=4),
                           state="completed", checked_in_at=at(2, 2, month=4),
                           checked_out_at=at(2, 3, month=4))
    elsewhere = factories.make_instrument(name="Elsewhere NMR")
    factories.make_booking(elsewhere, start=at(3, 2), end=at(3, 3), state="completed",
                           checked_in_at=at(3, 2), checked_out_at=at(3, 3))
    db.session.commit()
    return s


def close_period(month: date) -> BillingPeriod:
    period = db.session.scalar(sa.select(BillingPeriod).where(BillingPeriod.month == month))
    if period is None:
        period = BillingPeriod(month=month)
        db.session.add(period)
    period.closed_at = NOW - timedelta(days=1)
    db.session.commit()
    return period
