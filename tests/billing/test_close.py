"""Closing a month: the checklist, numbering, and the close lock on every service path."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from labbook.billing import items, rates, tasks
from labbook.billing.adjustments import approve_adjustment, request_adjustment
from labbook.billing.closing import checklist, close_period
from labbook.billing.lock import PeriodClosed
from labbook.billing.models import Adjustment, ChargeLine, Rate, Statement, UsageItem
from labbook.billing.periods import get_period
from labbook.billing.statements import refresh_period
from labbook.bookings import services, usage
from labbook.bookings.timed import mark_no_show
from labbook.care.usage import correct_times
from labbook.errors import Conflict
from labbook.extensions import db
from tests.factories import (
    make_booker, make_booking, make_consumable, make_instrument, make_item, make_rate,
    make_user, make_user_with_role,
)

ZONE = ZoneInfo("Asia/Shanghai")
SEPTEMBER, OCTOBER, NOVEMBER = date(2026, 9, 1), date(2026, 10, 1), date(2026, 11, 1)
NOW = datetime(2026, 11, 24, 4, 0, tzinfo=timezone.utc)


def local(month: int, day: int, hour: int) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=ZONE)


@pytest.fixture
def scene(app):  # type: ignore[no-untyped-def]
    instrument = make_instrument()
    make_rate(instrument, "100.00")
    tips = make_consumable(instrument.facility)
    make_rate(consumable=tips, amount="10.00")
    user = make_booker(instrument)
    account = user.memberships[0].team.default_account
    done = make_booking(instrument, user, start=local(10, 5, 10), end=local(10, 5, 12),
                        state="completed", checked_in_at=local(10, 5, 10),
                        checked_out_at=local(10, 5, 12))
    item = make_item(account, "2", consumable=tips, occurred_at=local(10, 6, 9))
    return {"instrument": instrument, "user": user, "account": account, "done": done,
            "item": item, "tips": tips, "finance": make_user(roles=("finance",)),
            "manager": make_user_with_role("facility_manager", facility=instrument.facility)}


def _count(model) -> int:  # type: ignore[no-untyped-def]
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def test_unsettled_sessions_block_even_with_force(scene) -> None:  # type: ignore
    running = make_booking(scene["instrument"], scene["user"], start=local(10, 9, 10),
                           end=local(10, 9, 11), state="confirmed")
    found = checklist(get_period(OCTOBER))
    assert [u["booking_id"] for u in found.unsettled] == [running.id] and found.blocking
    with pytest.raises(Conflict) as raised:
        close_period(scene["finance"], OCTOBER, force=True, now=NOW)
    assert raised.value.extra["reason"] == "checklist"
    assert raised.value.extra["forceable"] is False
    assert get_period(OCTOBER).closed_at is None and _count(Statement) == 0


def test_warnings_need_force_and_are_recorded(scene) -> None:  # type: ignore
    other = make_instrument(scene["instrument"].facility)  # no rate at all
    make_booking(other, scene["user"], start=local(10, 7, 10), end=local(10, 7, 11),
                 state="completed")
    expired = make_booker(scene["instrument"])
    expired_account = expired.memberships[0].team.default_account
    expired_account.valid_until = date(2026, 9, 30)
    make_booking(scene["instrument"], expired, start=local(10, 8, 10), end=local(10, 8, 11),
                 state="completed")
    refresh_period(OCTOBER)
    line = db.session.scalar(sa.select(ChargeLine).where(
        ChargeLine.reservation_id == scene["done"].id))
    request_adjustment(scene["manager"], line, "-10.00", "late start")
    found = checklist(get_period(OCTOBER))
    assert not found.blocking and found.warnings
    assert len(found.missing_rates) == 1 and len(found.invalid_accounts) == 1
    assert len(found.pending_adjustments) == 1
    with pytest.raises(Conflict) as raised:
        close_period(scene["finance"], OCTOBER, now=NOW)
    assert raised.value.extra["forceable"] is True
    assert get_period(OCTOBER).closed_at is None and _count(Statement) == 0
    period = close_period(scene["finance"], OCTOBER, force=True, now=NOW)
    assert period.closed_at == NOW and period.closed_by_id == scene["finance"].id
    assert set(period.close_warnings) >= {"missing_rates", "invalid_accounts",
                                          "pending_adjustments"}
    assert len(period.close_warnings["missing_rates"]) == 1


def test_cannot_close_the_current_month_or_twice(scene) -> None:  # type: ignore
    with pytest.raises(Conflict) as raised:
        close_period(scene["finance"], NOVEMBER, now=NOW)
    assert raised.value.extra["reason"] == "not_ended"
    close_period(scene["finance"], OCTOBER, now=NOW)
    with pytest.raises(Conflict) as raised:
        close_period(scene["finance"], OCTOBER, now=NOW)
    assert raised.value.extra["reason"] == "already_closed"


def test_numbering_is_sequential_across_periods(scene) -> None:  # type: ignore
    second = make_booker(scene["instrument"])
    for month in (9, 10):
        make_booking(scene["instrument"], second, start=local(month, 20, 10),
                     end=local(month, 20, 11), state="completed")
    make_booking(scene["instrument"], scene["user"], start=local(9, 21, 10),
                 end=local(9, 21, 11), state="completed")
    close_period(scene["finance"], SEPTEMBER, now=NOW)
    close_period(scene["finance"], OCTOBER, now=NOW)
    numbers = db.session.scalars(sa.select(Statement.number).order_by(
        Statement.issued_at, Statement.number)).all()
    assert numbers == list(range(numbers[0], numbers[0] + 4))
    september = get_period(SEPTEMBER)
    first_two = db.session.scalars(sa.select(Statement.number).where(
        Statement.period_id == september.id)).all()
    assert sorted(first_two) == numbers[:2]  # September's come first, never reused


def _snapshot(period_id: int) -> list[tuple]:
    rows = db.session.execute(sa.select(
        ChargeLine.id, ChargeLine.source_key, ChargeLine.amount, ChargeLine.quantity,
        ChargeLine.description, ChargeLine.explanation, ChargeLine.statement_id,
        ChargeLine.updated_at).where(ChargeLine.period_id == period_id)
        .order_by(ChargeLine.id)).all()
    statements = db.session.execute(sa.select(
        Statement.id, Statement.number, Statement.subtotal, Statement.tax, Statement.total)
        .where(Statement.period_id == period_id).order_by(Statement.id)).all()
    return [tuple(r) for r in rows] + [tuple(s) for s in statements]


def _attempts_on_bookings(scene) -> None:  # type: ignore[no-untyped-def]
    instrument, user, manager = scene["instrument"], scene["user"], scene["manager"]
    stale = make_booking(instrument, user, start=local(10, 20, 10), end=local(10, 20, 11),
                         state="confirmed")  # as if left behind in the closed month
    running = make_booking(instrument, user, start=local(10, 21, 10), end=local(10, 21, 11),
                           state="in_use", checked_in_at=local(10, 21, 10))
    later = make_booking(instrument, user, start=local(12, 2, 10), end=local(12, 2, 11),
                         state="confirmed")
    attempts = [
        lambda: usage.check_in(user, running, now=NOW),
        lambda: usage.check_out(user, running, now=NOW),
        lambda: services.cancel_booking(manager, stale, now=NOW),
        lambda: mark_no_show(stale.id, NOW),
        lambda: services.reschedule_booking(manager, stale, local(12, 3, 10),
                                            local(12, 3, 11), now=NOW),
    ]
    for attempt in attempts:
        with pytest.raises(PeriodClosed):
            attempt()
    with pytest.raises(PeriodClosed):  # a manager moving a booking into the closed month
        services.reschedule_booking(manager, later, local(10, 22, 10), local(10, 22, 11),
                                    now=NOW)
    assert (stale.state, running.state, later.start_at) == (
        "confirmed", "in_use", local(12, 2, 10))
    with pytest.raises(PeriodClosed) as raised:
        correct_times(manager, scene["done"], local(10, 5, 11), local(10, 5, 12), "typo", NOW)
    assert raised.value.month == date(2026, 10, 1)
    assert scene["done"].checked_in_at == local(10, 5, 10)


def _attempts_on_billing(scene) -> None:  # type: ignore[no-untyped-def]
    manager, finance, instrument = scene["manager"], scene["finance"], scene["instrument"]
    before_items = _count(UsageItem)
    with pytest.raises(PeriodClosed):
        items.record_item(manager, {"consumable_id": scene["tips"].id, "quantity": "1",
                                    "account_id": scene["account"].id,
                                    "occurred_at": local(10, 30, 9)})
    with pytest.raises(PeriodClosed):
        items.delete_item(manager, scene["item"])
    assert _count(UsageItem) == before_items
    before_rates = _count(Rate)
    for day in (date(2026, 10, 16), date(2026, 9, 1)):
        with pytest.raises(PeriodClosed):
            rates.create_rate(finance, {"instrument_id": instrument.id, "amount": "1.00",
                                        "customer_class": "internal",
                                        "charge_type": "instrument_hour",
                                        "effective_from": day}, publish=True)
    assert _count(Rate) == before_rates
    draft = make_rate(instrument, "5.00", effective_from=date(2026, 10, 1), published=False)
    with pytest.raises(PeriodClosed):
        rates.publish_rate(finance, draft)
    assert draft.published_at is None
    with pytest.raises(PeriodClosed):
        refresh_period(OCTOBER)


def test_the_close_lock_on_every_path(scene) -> None:  # type: ignore[no-untyped-def]
    period = close_period(scene["finance"], OCTOBER, now=NOW)
    db.session.expire_all()
    snapshot = _snapshot(period.id)
    assert len(snapshot) == 3  # two lines, one statement
    _attempts_on_bookings(scene)
    _attempts_on_billing(scene)
    # the scheduled job skips the closed month and refreshes November only
    tasks.draft_statements(NOW)
    # an adjustment of a closed line lands in November, linked to the original
    line = db.session.scalar(sa.select(ChargeLine).where(
        ChargeLine.reservation_id == scene["done"].id))
    adjustment = request_adjustment(scene["manager"], line, "-20.00", "vacuum slow")
    approve_adjustment(scene["finance"], adjustment)
    assert adjustment.period.month == NOVEMBER
    landed = db.session.scalar(sa.select(ChargeLine).where(
        ChargeLine.adjustment_id == adjustment.id))
    assert landed.period_id == get_period(NOVEMBER).id and landed.amount == Decimal("-20.00")
    assert landed.explanation["corrects_line_id"] == line.id
    assert landed.explanation["original_period_closed"] is True
    assert refresh_period(NOVEMBER).changed == 0
    db.session.expire_all()
    assert _snapshot(period.id) == snapshot
    assert db.session.get(Adjustment, adjustment.id).line_id == line.id


def test_rates_may_start_after_the_closed_month(scene) -> None:  # type: ignore
    close_period(scene["finance"], OCTOBER, now=NOW)
    rate = rates.create_rate(scene["finance"], {
        "instrument_id": scene["instrument"].id, "amount": "1.00",
        "customer_class": "internal", "charge_type": "instrument_hour",
        "effective_from": date(2026, 11, 1)}, publish=True)
    assert rate.published_at is not None
    assert timedelta(0) == rate.effective_from - date(2026, 11, 1)
