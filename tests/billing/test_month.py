"""A hand-computed month: October 2026 in Asia/Shanghai, three teams of three classes,
priced by refresh_period, shown by statements_for and frozen by close_period. Every
amount below is worked out by hand in the comments; the code must agree line by line."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from labbook.billing.adjustments import approve_adjustment, request_adjustment
from labbook.billing.closing import close_period
from labbook.billing.models import ChargeLine, Statement
from labbook.billing.periods import get_period
from labbook.billing.statements import refresh_period, statements_for
from labbook.bookings.outages import schedule_outage
from labbook.bookings.services import cancel_booking
from labbook.extensions import db
from tests.factories import (
    make_booker, make_booking, make_consumable, make_facility, make_instrument, make_item,
    make_policy, make_rate, make_team, make_user, make_user_with_role,
)

ZONE = ZoneInfo("Asia/Shanghai")
OCTOBER = date(2026, 10, 1)
D = Decimal


def local(day: int, hour: int, minute: int = 0, month: int = 10) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=ZONE)


def _setup_prices() -> dict:
    facility = make_facility(timezone="Asia/Shanghai")
    sem = make_instrument(facility, name="SEM", asset_code="SEM-1")
    # increment 15, minimum 30, overnight cap 17:00-09:00 at 4 h, fees 50 % / 100 %
    make_policy(sem, increment_minutes=15, minimum_minutes=30, cap_from=time(17),
                cap_to=time(9), cap_max_minutes=240)
    xrd = make_instrument(facility, name="XRD", asset_code="XRD-1")  # defaults, session rate
    make_rate(sem, "100.00", customer_class="internal")
    make_rate(sem, "120.00", customer_class="internal", effective_from=date(2026, 10, 16))
    make_rate(sem, "999.00", customer_class="internal", effective_from=date(2026, 10, 20),
              published=False)  # a draft never prices anything
    make_rate(sem, "200.00", customer_class="external_academic")
    make_rate(sem, "300.00", customer_class="industry")
    make_rate(sem, "400.00", customer_class="industry", charge_type="assisted_hour")
    make_rate(sem, "30.00", customer_class="external_academic", charge_type="sample")
    make_rate(xrd, "50.00", customer_class="internal", charge_type="session")
    tips = make_consumable(facility, name="Tips", unit="piece")
    make_rate(customer_class="internal", consumable=tips, amount="10.00")
    make_rate(customer_class="external_academic", consumable=tips, amount="12.50")
    return {"facility": facility, "sem": sem, "xrd": xrd, "tips": tips}


def _done(instrument, user, start: datetime, end: datetime, **kw):  # type: ignore
    return make_booking(instrument, user, start=start, end=end, state="completed",
                        checked_in_at=start, checked_out_at=end, **kw)


def _alpha(s: dict, ua) -> dict:  # type: ignore[no-untyped-def]
    sem, xrd, tips = s["sem"], s["xrd"], s["tips"]
    b = {}
    # Alpha, internal (0 %)
    # 61 min booked -> 75 min -> 1.25 h x 100.00 (rate before the 16th) = 125.00
    b["a_time"] = _done(sem, ua, local(5, 10), local(5, 11, 1))
    # 10 min -> 15 -> minimum 30 -> 0.5 h x 120.00 (new rate from the 16th) = 60.00
    b["a_min"] = _done(sem, ua, local(20, 10), local(20, 10, 10))
    # 18:00 on the 15th to 08:00 on the 16th: 840 min, capped at 240 -> 4 h x 100.00
    # (the rate of the local start day, the 15th) = 400.00
    b["a_night"] = _done(sem, ua, local(15, 18), local(16, 8))
    # XRD has a session rate and no hourly rate: one session line, 50.00
    b["a_xrd"] = _done(xrd, ua, local(7, 14), local(7, 16))
    # 00:30 on 1 November local (16:30 UTC on 31 October) belongs to November: no line
    b["a_nov"] = _done(xrd, ua, local(1, 0, 30, month=11), local(1, 1, 30, month=11))
    # 3 pieces x 10.00 = 30.00
    make_item(ua.memberships[0].team.default_account, "3", consumable=tips,
              occurred_at=local(8, 9))
    return b


def _beta(s: dict, ub) -> dict:  # type: ignore[no-untyped-def]
    sem, tips = s["sem"], s["tips"]
    b = {}
    # Beta, external academic (6 %)
    # late cancellation of 2 h booked: 2 h x 200.00 x 0.5 = 200.00
    b["b_late"] = make_booking(sem, ub, start=local(6, 9), end=local(6, 11), state="cancelled",
                               late_cancel=True)
    # timely cancellation: no line
    b["b_timely"] = make_booking(sem, ub, start=local(9, 9), end=local(9, 10),
                                 state="cancelled", late_cancel=False)
    # cancelled by the facility (outage / manager): never late, no line
    b["b_outage"] = make_booking(sem, ub, start=local(13, 9), end=local(13, 10),
                                 state="cancelled", late_cancel=False,
                                 state_reason="outage: vacuum pump failure")
    # no-show, 90 min booked: 1.5 h x 200.00 x 1 = 300.00
    b["b_noshow"] = make_booking(sem, ub, start=local(12, 9), end=local(12, 10, 30),
                                 state="no_show")
    # 09:00-13:15 = 255 min (a multiple of 15): 4.25 h x 200.00 = 850.00
    b["b_time"] = _done(sem, ub, local(20, 9), local(20, 13, 15))
    beta_account = ub.memberships[0].team.default_account
    # 3 pieces x 12.50 = 37.50; 20 samples x 30.00 = 600.00
    make_item(beta_account, "3", consumable=tips, occurred_at=local(10, 15))
    b["b_samples"] = make_item(beta_account, "20", instrument=sem, occurred_at=local(11, 15))
    return b


@pytest.fixture
def scene(app) -> dict:  # type: ignore[no-untyped-def]
    """The month, refreshed once; returns the objects the assertions need."""
    s = _setup_prices()
    sem = s["sem"]
    alpha = make_team("internal", name="Alpha lab")
    beta = make_team("external_academic", name="Beta group")
    gamma = make_team("industry", name="Gamma Ltd")
    ua, ub, ug = (make_booker(sem, team=t) for t in (alpha, beta, gamma))
    # Gamma, industry (6 %)
    # assisted 90 min: 1.5 h x 400.00 (assisted_hour) = 600.00
    g_assisted = _done(sem, ug, local(21, 14), local(21, 15, 30), assisted=True)
    # 60 min x 300.00 = 300.00
    g_time = _done(sem, ug, local(22, 10), local(22, 11))
    built = {**s, **_alpha(s, ua), **_beta(s, ub), "g_assisted": g_assisted,
             "g_time": g_time, "alpha": alpha, "beta": beta, "gamma": gamma}
    refresh_period(OCTOBER)
    return built


def _line(reservation, kind: str = "time") -> ChargeLine:  # type: ignore
    return db.session.scalar(sa.select(ChargeLine).where(
        ChargeLine.source_key == f"booking:{reservation.id}:{kind}"))


def test_lines_of_the_month(scene) -> None:  # type: ignore[no-untyped-def]
    expected = {
        ("a_time", "time"): "125.00", ("a_min", "time"): "60.00",
        ("a_night", "time"): "400.00", ("a_xrd", "session"): "50.00",
        ("b_late", "late_cancel"): "200.00", ("b_noshow", "no_show"): "300.00",
        ("b_time", "time"): "850.00", ("g_assisted", "time"): "600.00",
        ("g_time", "time"): "300.00",
    }
    for (name, kind), amount in expected.items():
        line = _line(scene[name], kind)
        assert line is not None, name
        assert line.amount == D(amount), name
        assert line.missing_rate is False
    assert _line(scene["a_xrd"], "time") is None  # session rate only
    for name in ("b_timely", "b_outage", "a_nov"):
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ChargeLine).where(
            ChargeLine.reservation_id == scene[name].id)) == 0, name
    night = _line(scene["a_night"]).explanation
    assert night["cap_applied"] is True and night["billed_minutes"] == 240
    assert night["rate"] == "100.0000" and night["rate_effective_from"] == "2020-01-01"
    minimum = _line(scene["a_min"]).explanation
    assert minimum["minimum_applied"] is True and minimum["rate"] == "120.0000"
    assert minimum["rate_effective_from"] == "2026-10-16"
    assert _line(scene["a_time"]).explanation["rounded_minutes"] == 75
    assert D(_line(scene["b_late"], "late_cancel").explanation["fee_factor"]) == D("0.5")
    assert _line(scene["g_assisted"]).charge_type == "assisted_hour"


def _adjust(scene: dict) -> None:
    """An approved credit of -33.75 on Beta's samples (600.00), landing in October."""
    manager = make_user_with_role("facility_manager", facility=scene["facility"])
    finance = make_user(roles=("finance",))
    sample_line = db.session.scalar(sa.select(ChargeLine).where(
        ChargeLine.source_key == f"item:{scene['b_samples'].id}"))
    assert sample_line.amount == D("600.00")
    adjustment = request_adjustment(manager, sample_line, "-33.75", "Two samples failed")
    approve_adjustment(finance, adjustment)
    assert refresh_period(OCTOBER).changed == 0  # approval wrote the line already


def test_statements_of_the_month(scene) -> None:  # type: ignore[no-untyped-def]
    _adjust(scene)
    views = {v.team_name: v for v in statements_for(get_period(OCTOBER))}
    assert list(views) == ["Alpha lab", "Beta group", "Gamma Ltd"]
    # Alpha: 125.00 + 60.00 + 400.00 + 50.00 + 30.00 = 665.00; tax 0 % -> total 665.00
    assert (views["Alpha lab"].subtotal, views["Alpha lab"].tax,
            views["Alpha lab"].total) == (D("665.00"), D("0.00"), D("665.00"))
    assert len(views["Alpha lab"].lines) == 5
    # Beta: 200.00 + 300.00 + 850.00 + 37.50 + 600.00 - 33.75 = 1953.75
    # tax 6 %: 117.225 -> 117.23 (half-up, once on the subtotal); total 2070.98
    assert (views["Beta group"].subtotal, views["Beta group"].tax,
            views["Beta group"].total) == (D("1953.75"), D("117.23"), D("2070.98"))
    assert len(views["Beta group"].lines) == 6
    # Gamma: 600.00 + 300.00 = 900.00; tax 54.00; total 954.00
    assert (views["Gamma Ltd"].subtotal, views["Gamma Ltd"].tax,
            views["Gamma Ltd"].total) == (D("900.00"), D("54.00"), D("954.00"))
    assert views["Beta group"].accounts == {
        scene["beta"].default_account.code: D("1953.75")}


def test_closing_the_month(scene) -> None:  # type: ignore[no-untyped-def]
    _adjust(scene)
    finance = make_user(roles=("finance",))
    before = db.session.scalar(sa.select(sa.func.max(Statement.number))) or 0
    period = close_period(finance, OCTOBER)
    assert period.closed_at is not None and period.close_warnings is None
    statements = db.session.scalars(sa.select(Statement).where(
        Statement.period_id == period.id).order_by(Statement.number)).all()
    assert [(s.number - before, s.team_name) for s in statements] == [
        (1, "Alpha lab"), (2, "Beta group"), (3, "Gamma Ltd")]
    assert [(s.subtotal, s.tax, s.total) for s in statements] == [
        (D("665.00"), D("0.00"), D("665.00")), (D("1953.75"), D("117.23"), D("2070.98")),
        (D("900.00"), D("54.00"), D("954.00"))]
    assert statements[1].tax_rate == D("0.06") and statements[1].currency == "CNY"
    assert statements[0].display_number == f"LB-{before + 1:06d}"
    unlinked = db.session.scalar(sa.select(sa.func.count()).select_from(ChargeLine).where(
        ChargeLine.period_id == period.id, ChargeLine.statement_id.is_(None)))
    assert unlinked == 0
    frozen = {v.team_name: v for v in statements_for(period)}
    assert frozen["Beta group"].number == statements[1].display_number
    assert frozen["Beta group"].total == D("2070.98")


def test_facility_cancellations_are_never_charged(app) -> None:  # type: ignore
    """Through the real services, 2 h before the start (inside the 24 h notice): the
    owner's cancellation is late (2 h x 120.00, the rate since 16 October, x 0.5 =
    120.00); the manager's and the outage's are not, and get no line."""
    s = _setup_prices()
    sem = s["sem"]
    owner = make_booker(sem)
    manager = make_user_with_role("facility_manager", facility=s["facility"])
    start = datetime(2026, 11, 27, 10, tzinfo=ZONE)
    now = start - timedelta(hours=2)
    by_owner, by_manager, by_outage = (
        make_booking(sem, owner, start=start + timedelta(hours=3 * n),
                     end=start + timedelta(hours=3 * n + 2)) for n in range(3))
    cancel_booking(owner, by_owner, now=now)
    cancel_booking(manager, by_manager, now=now)
    schedule_outage(manager, sem, start + timedelta(hours=6), start + timedelta(hours=9),
                    "repair", "pump", now=now, notify=False)
    assert [b.state for b in (by_owner, by_manager, by_outage)] == ["cancelled"] * 3
    assert [b.late_cancel for b in (by_owner, by_manager, by_outage)] == [True, False, False]
    refresh_period(date(2026, 11, 1))
    assert _line(by_owner, "late_cancel").amount == D("120.00")
    for booking in (by_manager, by_outage):
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ChargeLine).where(
            ChargeLine.reservation_id == booking.id)) == 0
