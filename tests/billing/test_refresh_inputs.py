"""What makes a refresh reprice a session: its stored lines carry a digest of everything
they were computed from, so every input change must show, and nothing else may."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from labbook.billing import items
from labbook.billing.adjustments import approve_adjustment, request_adjustment
from labbook.billing.models import ChargeLine, UsageItem
from labbook.billing.statements import refresh_period
from labbook.extensions import db
from tests.factories import (
    make_booker, make_booking, make_consumable, make_instrument, make_item, make_policy,
    make_rate, make_user, make_user_with_role,
)

ZONE = ZoneInfo("Asia/Shanghai")
OCTOBER = date(2026, 10, 1)
START = datetime(2026, 10, 5, 10, tzinfo=ZONE)


def _session():  # type: ignore[no-untyped-def]
    instrument = make_instrument()
    make_rate(instrument, "100.00")
    user = make_booker(instrument)
    booking = make_booking(instrument, user, start=START, end=START + timedelta(hours=2),
                           state="completed", checked_in_at=START,
                           checked_out_at=START + timedelta(hours=1))
    assert refresh_period(OCTOBER).inserted == 1
    return instrument, user, booking


def _amount(booking) -> Decimal:  # type: ignore[no-untyped-def]
    db.session.expire_all()
    return db.session.scalar(sa.select(ChargeLine.amount).where(
        ChargeLine.reservation_id == booking.id))


def test_refresh_reprices_when_the_policy_changes(app) -> None:  # type: ignore[no-untyped-def]
    instrument, _user, booking = _session()
    assert _amount(booking) == Decimal("200.00")  # booked basis by default: 2 h
    make_policy(instrument, basis="actual")
    assert refresh_period(OCTOBER).updated == 1
    assert _amount(booking) == Decimal("100.00")
    assert refresh_period(OCTOBER).changed == 0


def test_refresh_reprices_when_the_team_changes_class(app) -> None:  # type: ignore
    instrument, user, booking = _session()
    make_rate(instrument, "250.00", customer_class="industry")
    user.memberships[0].team.customer_class_code = "industry"
    db.session.flush()
    assert refresh_period(OCTOBER).updated == 1
    assert _amount(booking) == Decimal("500.00")


def test_refresh_reprices_when_the_usage_is_corrected(app) -> None:  # type: ignore
    instrument, _user, booking = _session()
    make_policy(instrument, basis="max")
    booking.checked_out_at = START + timedelta(hours=3)
    db.session.flush()
    assert refresh_period(OCTOBER).updated == 1
    assert _amount(booking) == Decimal("300.00")


def test_refresh_leaves_unrelated_sessions_alone(app) -> None:  # type: ignore
    instrument, user, booking = _session()
    other = make_booking(instrument, user, start=START + timedelta(days=1),
                         end=START + timedelta(days=1, hours=1), state="completed")
    result = refresh_period(OCTOBER)
    assert (result.inserted, result.updated, result.deleted) == (1, 0, 0)
    assert _amount(other) == Decimal("100.00") and _amount(booking) == Decimal("200.00")


def test_an_approved_adjustment_needs_no_second_write(app) -> None:  # type: ignore
    instrument, _user, booking = _session()
    line = db.session.scalar(sa.select(ChargeLine).where(ChargeLine.reservation_id == booking.id))
    manager = make_user_with_role("facility_manager", facility=instrument.facility)
    adjustment = request_adjustment(manager, line, "-20.00", "Beam current low")
    approve_adjustment(make_user(roles=("finance",)), adjustment)
    db.session.expire_all()
    assert refresh_period(OCTOBER).changed == 0


def test_deleting_a_usage_item_removes_its_draft_line(app) -> None:  # type: ignore
    instrument, user, _booking = _session()
    consumable = make_consumable(instrument.facility)
    make_rate(consumable=consumable, amount="5.00")
    manager = make_user_with_role("facility_manager", facility=instrument.facility)
    item = make_item(user.memberships[0].team.default_account, "3", consumable=consumable,
                     occurred_at=START)
    refresh_period(OCTOBER)
    assert db.session.scalar(sa.select(ChargeLine.amount).where(
        ChargeLine.usage_item_id == item.id)) == Decimal("15.00")
    items.delete_item(manager, item)
    assert db.session.get(UsageItem, item.id) is None
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ChargeLine).where(
        ChargeLine.source_key == f"item:{item.id}")) == 0
    assert refresh_period(OCTOBER).changed == 0


def test_closed_period_totals_keep_the_frozen_tax(app) -> None:  # type: ignore
    from labbook.billing.closing import close_period, period_totals
    from labbook.billing.models import CustomerClass
    from labbook.billing.periods import get_period

    instrument, user, _booking = _session()
    make_rate(instrument, "300.00", customer_class="industry")
    user.memberships[0].team.customer_class_code = "industry"  # 6 %
    db.session.flush()
    close_period(make_user(roles=("finance",)), OCTOBER)
    db.session.get(CustomerClass, "industry").tax_rate = Decimal("0.13")
    db.session.flush()
    totals = period_totals(get_period(OCTOBER))
    assert totals == {"subtotal": Decimal("600.00"), "tax": Decimal("36.00"),
                      "total": Decimal("636.00")}
