"""The charge of one session, as pure functions (SPEC section 6), in this order:

    duration by basis -> round up to the increment -> minimum -> cap
    -> x the rate in effect at the session's local start -> x fee factor -> round half-up

Nothing here touches the database: ``refresh_period`` (labbook/billing/statements.py),
the spending-limit check and the rate preview all call ``time_charge`` with the facts of
a session, and every result carries its own explanation, stored on the charge line.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import ROUND_CEILING, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from labbook.billing.money import money

MINUTE = Decimal(60)


@dataclass(frozen=True)
class Cap:
    """At most ``max_minutes`` for a session lying inside the daily window from ``start``
    to ``end`` (local; ``end <= start`` means the next day, e.g. 17:00-09:00)."""

    start: time
    end: time
    max_minutes: int


@dataclass(frozen=True)
class Policy:
    basis: str = "booked"
    increment: int = 15
    minimum: int = 0
    cap: Cap | None = None
    late_cancel_fraction: Decimal = Decimal("0.5")
    no_show_fraction: Decimal = Decimal("1")


@dataclass(frozen=True)
class Session:
    booked_start: datetime
    booked_end: datetime
    actual_start: datetime | None = None
    actual_end: datetime | None = None


@dataclass(frozen=True)
class TimeCharge:
    minutes: int
    amount: Decimal
    explanation: dict[str, Any]


def billed_interval(basis: str, session: Session) -> tuple[datetime, datetime, str]:
    """The interval the basis bills and which one it was (``booked`` or ``actual``).
    ``actual`` without check-in/out data falls back to the booked interval; ``max`` takes
    the longer of the two (the booked one on a tie)."""
    booked = (session.booked_start, session.booked_end, "booked")
    if session.actual_start is None or session.actual_end is None or basis == "booked":
        return booked
    actual = (session.actual_start, session.actual_end, "actual")
    if basis == "actual":
        return actual
    return actual if _span(actual) > _span(booked) else booked


def _span(interval: tuple[datetime, datetime, str]) -> timedelta:
    return _elapsed(interval[0], interval[1])


def _elapsed(start: datetime, end: datetime) -> timedelta:
    """Real elapsed time. Python subtracts two datetimes sharing a tzinfo on the wall
    clock, which is an hour off across a DST change; in UTC it is exact."""
    return end.astimezone(timezone.utc) - start.astimezone(timezone.utc)


def raw_minutes(start: datetime, end: datetime) -> Decimal:
    """Exact minutes (fractions kept: seconds count toward the next increment)."""
    return max(Decimal(0), Decimal(int(_elapsed(start, end).total_seconds())) / MINUTE)


def round_up(minutes: Decimal, increment: int) -> int:
    """Minutes rounded **up** to a whole number of increments (0 stays 0)."""
    units = (minutes / increment).to_integral_value(rounding=ROUND_CEILING)
    return int(units) * increment


def cap_applies(cap: Cap, start: datetime, end: datetime, zone: ZoneInfo) -> bool:
    """Does the session lie inside one of the cap's daily windows? The windows opening on
    the local start day and on the day before are tried (a session from 01:00 to 08:00
    lies in the previous evening's 17:00-09:00 window)."""
    local_start = start.astimezone(zone)
    for day in (local_start.date(), local_start.date() - timedelta(days=1)):
        opens, closes = _window(cap, day, zone)
        if opens <= start and end <= closes:
            return True
    return False


def _window(cap: Cap, day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    opens = datetime.combine(day, cap.start, tzinfo=zone)
    close_day = day + timedelta(days=1) if cap.end <= cap.start else day
    return opens, datetime.combine(close_day, cap.end, tzinfo=zone)


def billable_minutes(
    policy: Policy, session: Session, zone: ZoneInfo, basis: str | None = None
) -> tuple[int, dict[str, Any]]:
    """Steps 1-4: basis, increment, minimum, cap. ``basis`` overrides the policy's (fees
    on cancellations and no-shows price the *booked* slot)."""
    start, end, used = billed_interval(basis or policy.basis, session)
    raw = raw_minutes(start, end)
    rounded = round_up(raw, policy.increment)
    minutes = max(rounded, policy.minimum)
    capped = policy.cap is not None and cap_applies(policy.cap, start, end, zone)
    if capped:
        minutes = min(minutes, policy.cap.max_minutes)  # type: ignore[union-attr]
    return minutes, {
        "basis": basis or policy.basis,
        "interval_used": used,
        "raw_minutes": str(raw.quantize(Decimal("0.01"))),
        "increment_minutes": policy.increment,
        "rounded_minutes": rounded,
        "minimum_minutes": policy.minimum,
        "minimum_applied": rounded < policy.minimum,
        "cap_max_minutes": policy.cap.max_minutes if policy.cap else None,
        "cap_applied": bool(capped and minutes < max(rounded, policy.minimum)),
        "billed_minutes": minutes,
    }


def time_charge(
    policy: Policy,
    session: Session,
    zone: ZoneInfo,
    rate: Decimal,
    factor: Decimal = Decimal(1),
    basis: str | None = None,
    currency: str | None = None,
) -> TimeCharge:
    """The whole chain for a time line: minutes, x hourly ``rate``, x ``factor``, rounded
    half-up once at the end."""
    minutes, explanation = billable_minutes(policy, session, zone, basis)
    amount = money(Decimal(minutes) / MINUTE * rate * factor, currency)
    explanation.update(
        booked=_interval(session.booked_start, session.booked_end),
        actual=_interval(session.actual_start, session.actual_end),
        hourly_rate=str(rate),
        fee_factor=str(factor),
    )
    return TimeCharge(minutes, amount, explanation)


def unit_charge(quantity: Decimal, rate: Decimal, currency: str | None = None) -> Decimal:
    """Consumables and samples: quantity x unit rate, half-up."""
    return money(quantity * rate, currency)


def _interval(start: datetime | None, end: datetime | None) -> list[str] | None:
    if start is None or end is None:
        return None
    return [start.isoformat(), end.isoformat()]
