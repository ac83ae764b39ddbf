"""The pure charge functions (labbook/billing/charges.py, money.py): no database."""
from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from labbook.billing.charges import (
    Cap, Policy, Session, billable_minutes, billed_interval, cap_applies, raw_minutes,
    round_up, time_charge, unit_charge,
)
from labbook.billing.money import fmt, money, parse_money, tax_on

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
NIGHT = Cap(time(17, 0), time(9, 0), 240)


def at(day: int, hour: int, minute: int = 0, second: int = 0, zone: ZoneInfo = SHANGHAI,
       month: int = 10) -> datetime:
    return datetime(2026, month, day, hour, minute, second, tzinfo=zone)


def test_money_rounds_half_up_not_half_even() -> None:
    assert money(Decimal("117.225")) == Decimal("117.23")
    assert money(Decimal("0.125")) == Decimal("0.13")  # half-even would give 0.12
    assert money(Decimal("-0.125")) == Decimal("-0.13")
    assert money(Decimal("2.5"), "JPY") == Decimal("3")


def test_tax_is_half_up_on_the_subtotal() -> None:
    assert Decimal("1953.75") * Decimal("0.06") == Decimal("117.2250")
    assert tax_on(Decimal("1953.75"), Decimal("0.06")) == Decimal("117.23")
    assert tax_on(Decimal("1953.75"), Decimal("0")) == Decimal("0.00")


def test_fmt_and_parse_money() -> None:
    assert fmt(Decimal("1234.5")) == "1234.50"
    assert fmt(None) is None
    assert parse_money("120.50") == Decimal("120.50")
    assert parse_money("-3", allow_negative=True) == Decimal("-3")
    for bad in ("abc", "NaN", "1.234", "-1", 1.5, True, None):
        with pytest.raises(ValueError):
            parse_money(bad)


@pytest.mark.parametrize(("minutes", "expected"), [
    (Decimal(61), 75), (Decimal(60), 60), (Decimal(0), 0), (Decimal(1), 15),
    (Decimal(45), 45), (Decimal("60.0166"), 75),
])
def test_round_up_to_the_increment(minutes: Decimal, expected: int) -> None:
    assert round_up(minutes, 15) == expected


def test_seconds_count_toward_the_next_increment() -> None:
    raw = raw_minutes(at(1, 10), at(1, 11, 0, 1))
    assert raw > 60
    assert round_up(raw, 15) == 75
    assert raw_minutes(at(1, 11), at(1, 10)) == 0  # never negative


def test_minimum_applies_after_rounding() -> None:
    policy = Policy(increment=15, minimum=60)
    minutes, why = billable_minutes(policy, Session(at(1, 10), at(1, 10, 20)), SHANGHAI)
    assert minutes == 60
    assert why["rounded_minutes"] == 30 and why["minimum_applied"] is True
    minutes, why = billable_minutes(policy, Session(at(1, 10), at(1, 11, 20)), SHANGHAI)
    assert minutes == 90 and why["minimum_applied"] is False


@pytest.mark.parametrize(("start", "end", "capped"), [
    (at(5, 18), at(6, 8), True),        # 18:00-08:00 next day: inside the night window
    (at(6, 1), at(6, 8), True),         # 01:00-08:00: the previous evening's window
    (at(5, 16), at(5, 20), False),      # starts before 17:00
    (at(5, 18), at(6, 10), False),      # ends after 09:00
])
def test_cap_windows(start: datetime, end: datetime, capped: bool) -> None:
    assert cap_applies(NIGHT, start, end, SHANGHAI) is capped
    policy = Policy(cap=NIGHT)
    minutes, why = billable_minutes(policy, Session(start, end), SHANGHAI)
    full = int((end - start).total_seconds() // 60)
    assert minutes == (240 if capped else full)
    assert why["cap_applied"] is capped


def test_cap_in_a_zone_with_dst() -> None:
    # 2026-10-25 Europe/Berlin: clocks go back at 03:00 (CEST -> CET), the night has an
    # extra hour: 18:00-08:00 is 14 h on the wall clock but 15 h of real time.
    start = datetime(2026, 10, 24, 18, 0, tzinfo=BERLIN)
    end = datetime(2026, 10, 25, 8, 0, tzinfo=BERLIN)
    assert end - start == timedelta(hours=14)  # Python's same-tzinfo wall-clock difference
    assert raw_minutes(start, end) == 15 * 60  # real minutes are billed
    short = Session(start, end)
    assert billable_minutes(Policy(), short, BERLIN)[0] == 900
    assert cap_applies(NIGHT, start, end, BERLIN)
    minutes, _why = billable_minutes(Policy(cap=NIGHT), Session(start, end), BERLIN)
    assert minutes == 240
    # the same UTC interval seen from Shanghai is not a night session
    assert not cap_applies(NIGHT, start, end, SHANGHAI)
    # spring forward (2026-03-29): 01:00-08:00 lies in the previous evening's window
    spring = (datetime(2026, 3, 29, 1, 0, tzinfo=BERLIN), datetime(2026, 3, 29, 8, tzinfo=BERLIN))
    assert raw_minutes(*spring) == 6 * 60  # 7 h on the wall clock, 6 h of real time
    assert cap_applies(NIGHT, *spring, BERLIN)


def test_cap_applied_is_false_when_under_the_cap() -> None:
    minutes, why = billable_minutes(Policy(cap=NIGHT), Session(at(5, 20), at(5, 21)), SHANGHAI)
    assert minutes == 60 and why["cap_applied"] is False


def test_basis_booked_actual_max() -> None:
    session = Session(at(1, 10), at(1, 12), at(1, 10, 30), at(1, 13))
    assert billed_interval("booked", session)[2] == "booked"
    assert billed_interval("actual", session)[:2] == (at(1, 10, 30), at(1, 13))
    assert billed_interval("max", session)[2] == "actual"  # 150 min > 120 min
    shorter = Session(at(1, 10), at(1, 12), at(1, 10), at(1, 11))
    assert billed_interval("max", shorter)[2] == "booked"
    tie = Session(at(1, 10), at(1, 12), at(1, 11), at(1, 13))
    assert billed_interval("max", tie)[2] == "booked"


@pytest.mark.parametrize("basis", ["actual", "max"])
def test_actual_without_check_in_falls_back_to_booked(basis: str) -> None:
    for session in (Session(at(1, 10), at(1, 12)), Session(at(1, 10), at(1, 12), at(1, 10))):
        assert billed_interval(basis, session) == (at(1, 10), at(1, 12), "booked")


def test_time_charge_chain_and_fee_factor() -> None:
    policy = Policy(basis="actual", increment=15, minimum=30)
    session = Session(at(1, 10), at(1, 12), at(1, 10, 5), at(1, 11, 6))  # 61 min actual
    charge = time_charge(policy, session, SHANGHAI, Decimal("120.00"))
    assert charge.minutes == 75
    assert charge.amount == Decimal("150.00")  # 1.25 h x 120
    assert charge.explanation["interval_used"] == "actual"
    assert charge.explanation["booked"] == [at(1, 10).isoformat(), at(1, 12).isoformat()]
    # a fee prices the booked slot (basis override) times the factor
    fee = time_charge(policy, session, SHANGHAI, Decimal("120.00"), Decimal("0.5"),
                      basis="booked")
    assert fee.minutes == 120 and fee.amount == Decimal("120.00")
    assert fee.explanation["fee_factor"] == "0.5"


def test_time_charge_rounds_once_half_up() -> None:
    # 25 min @ 5-min increment x 100.11/h = 41.7125 -> 41.71; x 0.5 -> 20.85625 -> 20.86
    policy = Policy(increment=5)
    session = Session(at(1, 10), at(1, 10, 25))
    assert time_charge(policy, session, SHANGHAI, Decimal("100.11")).amount == Decimal("41.71")
    assert time_charge(policy, session, SHANGHAI, Decimal("100.11"),
                       Decimal("0.5")).amount == Decimal("20.86")


def test_unit_charge() -> None:
    assert unit_charge(Decimal("3"), Decimal("12.345")) == Decimal("37.04")  # 37.035
    assert unit_charge(Decimal("0.5"), Decimal("0.01")) == Decimal("0.01")  # 0.005 half-up


def test_utc_inputs_are_handled_in_the_local_zone() -> None:
    start = datetime(2026, 10, 5, 10, 0, tzinfo=timezone.utc)  # 18:00 Shanghai
    end = datetime(2026, 10, 6, 0, 0, tzinfo=timezone.utc)     # 08:00 Shanghai
    assert cap_applies(NIGHT, start, end, SHANGHAI)
