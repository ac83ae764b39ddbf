"""The scheduled job tasks.draft_statements: refreshes last and this month, idempotent,
tells finance once per month, leaves a closed month alone."""
from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from labbook.billing.closing import close_period
from labbook.billing.models import ChargeLine
from labbook.billing.periods import find_period, get_period
from labbook.billing.tasks import draft_statements
from labbook.extensions import db
from labbook.notifications.models import Notification
from tests.factories import make_booker, make_booking, make_instrument, make_rate, make_user

ZONE = ZoneInfo("Asia/Shanghai")
OCTOBER, NOVEMBER = date(2026, 10, 1), date(2026, 11, 1)
NOW = datetime(2026, 11, 24, 4, 0, tzinfo=timezone.utc)


def local(month: int, day: int, hour: int) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=ZONE)


def _scene():  # type: ignore[no-untyped-def]
    instrument = make_instrument()
    make_rate(instrument, "100.00")
    user = make_booker(instrument)
    for month, day in ((9, 10), (10, 10), (11, 10)):
        make_booking(instrument, user, start=local(month, day, 10), end=local(month, day, 11),
                     state="completed")
    finance = [make_user(roles=("finance",)), make_user(roles=("finance",))]
    make_user(roles=("finance",), active=False)
    return finance


def _amounts(month: date) -> list[tuple]:
    period = find_period(month)
    if period is None:
        return []
    return [tuple(r) for r in db.session.execute(sa.select(
        ChargeLine.id, ChargeLine.amount, ChargeLine.explanation, ChargeLine.updated_at).where(
        ChargeLine.period_id == period.id).order_by(ChargeLine.id))]


def _notices() -> list[tuple[int, dict]]:
    return [(n.user_id, n.params) for n in db.session.scalars(sa.select(Notification).where(
        Notification.kind == "statements_ready").order_by(Notification.user_id))]


def test_refreshes_last_and_this_month_once(app) -> None:  # type: ignore[no-untyped-def]
    finance = _scene()
    assert draft_statements(NOW) == 2  # one October line, one November line
    assert [a[1] for a in _amounts(OCTOBER)] == [Decimal("100.00")]
    assert [a[1] for a in _amounts(NOVEMBER)] == [Decimal("100.00")]
    assert find_period(date(2026, 9, 1)) is None  # older months are not touched
    assert get_period(OCTOBER).refreshed_at is not None
    notices = _notices()
    assert [user_id for user_id, _params in notices] == sorted(u.id for u in finance)
    assert notices[0][1]["month"] == "2026-10"
    before = _amounts(OCTOBER) + _amounts(NOVEMBER)
    assert draft_statements(NOW) == 0
    assert _amounts(OCTOBER) + _amounts(NOVEMBER) == before
    assert len(_notices()) == 2  # once per month, whatever the number of runs


def test_next_month_notifies_again(app) -> None:  # type: ignore[no-untyped-def]
    _scene()
    draft_statements(NOW)
    december = datetime(2026, 12, 2, 4, tzinfo=timezone.utc)
    draft_statements(december)
    months = sorted({params["month"] for _user, params in _notices()})
    assert months == ["2026-10", "2026-11"]


def test_skips_a_closed_month(app) -> None:  # type: ignore[no-untyped-def]
    _scene()
    close_period(None, OCTOBER, now=NOW)
    frozen = _amounts(OCTOBER)
    assert len(frozen) == 1
    assert draft_statements(NOW) == 1  # November only
    assert _amounts(OCTOBER) == frozen
    assert _notices() == []  # nothing to review in a closed month
