"""refresh_period: idempotent, lines keep their ids when their sources move, stale lines
go (unless an adjustment refers to them), a missing rate is a flagged 0.00 line."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from labbook.billing.adjustments import request_adjustment
from labbook.billing.models import ChargeLine
from labbook.billing.periods import get_period
from labbook.billing.statements import refresh_period, statements_for
from labbook.extensions import db
from tests.factories import (
    make_booker, make_booking, make_consumable, make_instrument, make_item, make_rate,
    make_user,
)

ZONE = ZoneInfo("Asia/Shanghai")
OCTOBER, NOVEMBER = date(2026, 10, 1), date(2026, 11, 1)


def local(month: int, day: int, hour: int) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=ZONE)


def _scene():  # type: ignore[no-untyped-def]
    instrument = make_instrument()
    make_rate(instrument, "100.00")
    user = make_booker(instrument)
    bookings = [
        make_booking(instrument, user, start=local(10, d, 10), end=local(10, d, 12),
                     state="completed") for d in (5, 6, 7)
    ]
    return instrument, user, bookings


def _lines(month: date) -> dict[str, tuple[int, Decimal]]:
    period = get_period(month)
    return {line.source_key: (line.id, line.amount) for line in db.session.scalars(
        sa.select(ChargeLine).where(ChargeLine.period_id == period.id))}


def test_refresh_is_idempotent(app) -> None:  # type: ignore[no-untyped-def]
    instrument, user, _bookings = _scene()
    tips = make_consumable(instrument.facility)
    make_rate(consumable=tips, amount="12.5")  # typed amount, read back as 12.5000
    make_item(user.memberships[0].team.default_account, "1.5", consumable=tips,
              occurred_at=local(10, 8, 9))
    first = refresh_period(OCTOBER)
    assert first.inserted == 4 and first.changed == 4
    before = _lines(OCTOBER)
    again = refresh_period(OCTOBER)
    assert again.changed == 0
    assert _lines(OCTOBER) == before
    db.session.expire_all()  # values read back from the database compare equal too
    assert refresh_period(OCTOBER).changed == 0
    assert sum(amount for _id, amount in before.values()) == Decimal("618.75")  # 3x200+18.75


def _move(booking, start: datetime, end: datetime) -> None:  # type: ignore[no-untyped-def]
    booking.start_at, booking.end_at, booking.block_end = start, end, end
    db.session.flush()


def test_moved_booking_keeps_its_line(app) -> None:  # type: ignore[no-untyped-def]
    _instrument, _user, bookings = _scene()
    refresh_period(OCTOBER)
    refresh_period(NOVEMBER)
    key = f"booking:{bookings[0].id}:time"
    line_id = _lines(OCTOBER)[key][0]
    _move(bookings[0], local(11, 3, 10), local(11, 3, 13))
    moved = refresh_period(OCTOBER)  # the old month first, as the scheduled job does
    assert moved.changed == 1 and moved.deleted == 0
    assert key not in _lines(OCTOBER)
    refresh_period(NOVEMBER)
    assert _lines(NOVEMBER)[key] == (line_id, Decimal("300.00"))  # 3 h now
    # and back again, the new month refreshed first this time
    _move(bookings[0], local(10, 4, 10), local(10, 4, 11))
    refresh_period(OCTOBER)
    assert _lines(OCTOBER)[key] == (line_id, Decimal("100.00"))
    assert key not in _lines(NOVEMBER)
    assert refresh_period(NOVEMBER).changed == 0
    assert refresh_period(OCTOBER).changed == 0


def test_line_of_a_source_no_longer_charged(app) -> None:  # type: ignore[no-untyped-def]
    _instrument, _user, bookings = _scene()
    refresh_period(OCTOBER)
    keys = [f"booking:{b.id}:time" for b in bookings]
    finance = make_user(roles=("finance",))
    referenced = db.session.scalar(sa.select(ChargeLine).where(ChargeLine.source_key == keys[1]))
    request_adjustment(finance, referenced, "-50.00", "slow stage")
    bookings[0].state = "cancelled"  # a timely cancellation: no charge
    bookings[1].state = "cancelled"
    db.session.flush()
    result = refresh_period(OCTOBER)
    assert result.deleted == 2
    lines = _lines(OCTOBER)
    assert keys[0] not in lines
    assert lines[keys[1]] == (referenced.id, Decimal("0.00"))  # kept for the adjustment
    kept = db.session.get(ChargeLine, referenced.id)
    assert kept.explanation["no_longer_charged"] is True
    assert lines[keys[2]][1] == Decimal("200.00")
    assert refresh_period(OCTOBER).changed == 0  # settles
    view = statements_for(get_period(OCTOBER))[0]
    assert view.subtotal == Decimal("200.00")


def test_missing_rate_gives_a_flagged_zero_line(app) -> None:  # type: ignore[no-untyped-def]
    instrument = make_instrument()
    make_rate(instrument, "100.00", customer_class="industry")  # not the booker's class
    make_rate(instrument, "80.00", effective_from=date(2026, 10, 20))  # after the session
    user = make_booker(instrument)
    booking = make_booking(instrument, user, start=local(10, 5, 10),
                           end=local(10, 5, 11), state="completed")
    refresh_period(OCTOBER)
    line = db.session.scalar(sa.select(ChargeLine).where(
        ChargeLine.reservation_id == booking.id))
    assert line.amount == Decimal("0.00") and line.missing_rate is True
    assert line.rate_id is None and line.explanation["rate"] is None


def test_rate_change_reprices_open_month(app) -> None:  # type: ignore[no-untyped-def]
    instrument, _user, bookings = _scene()
    refresh_period(OCTOBER)
    make_rate(instrument, "150.00", effective_from=date(2026, 10, 6))
    result = refresh_period(OCTOBER)
    assert result.updated == 2 and result.inserted == 0 and result.deleted == 0
    amounts = {k: a for k, (_i, a) in _lines(OCTOBER).items()}
    assert amounts[f"booking:{bookings[0].id}:time"] == Decimal("200.00")
    assert amounts[f"booking:{bookings[2].id}:time"] == Decimal("300.00")
