"""Billing periods: a calendar month in the centre's zone (``LABBOOK_TIMEZONE``). Once a
period is closed nothing may change its charges (labbook/billing/lock.py)."""
from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _
from sqlalchemy.dialects.postgresql import insert as pg_insert

from labbook.billing.models import BillingPeriod, ChargeLine
from labbook.db import now_utc
from labbook.errors import NotFound
from labbook.extensions import db

MONTH_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def centre_zone() -> ZoneInfo:
    return ZoneInfo(current_app.config["LABBOOK_TIMEZONE"])


def month_of(moment: datetime) -> date:
    """The first day of the centre's month that ``moment`` (aware) falls in."""
    return moment.astimezone(centre_zone()).date().replace(day=1)


def next_month(month: date) -> date:
    return (month.replace(day=28) + timedelta(days=4)).replace(day=1)


def previous_month(month: date) -> date:
    return (month - timedelta(days=1)).replace(day=1)


def month_bounds(month: date) -> tuple[datetime, datetime]:
    """The month as a half-open UTC-comparable interval of aware datetimes."""
    zone = centre_zone()
    start = datetime.combine(month, time(0), tzinfo=zone)
    return start, datetime.combine(next_month(month), time(0), tzinfo=zone)


def parse_month(raw: str) -> date:
    """``"2026-11"`` → ``date(2026, 11, 1)``.

    :raises NotFound: for anything else (it is a path segment)."""
    match = MONTH_RE.match(raw or "")
    if not match:
        raise NotFound(_("No billing period %(month)s: write it as YYYY-MM.", month=raw))
    return date(int(match.group(1)), int(match.group(2)), 1)


def current_month(now: datetime | None = None) -> date:
    return month_of(now or now_utc())


def find_period(month: date) -> BillingPeriod | None:
    return db.session.scalar(sa.select(BillingPeriod).where(BillingPeriod.month == month))


def get_period(month: date, *, lock: bool = False) -> BillingPeriod:
    """The period row of ``month``, created on first use. ``lock`` takes the row FOR
    UPDATE on PostgreSQL (closing and the lock check serialize on it); SQLite
    transactions already hold the database's write lock."""
    postgres = db.session.get_bind().dialect.name == "postgresql"
    period = find_period(month)
    if period is None:
        if postgres:
            db.session.execute(
                pg_insert(BillingPeriod)
                .values(month=month).on_conflict_do_nothing(index_elements=["month"])
            )
        else:
            db.session.add(BillingPeriod(month=month))
            db.session.flush()
        period = find_period(month)
    assert period is not None
    if lock and postgres:
        db.session.refresh(period, with_for_update=True)
    return period


def listed_periods(now: datetime | None = None) -> list[BillingPeriod]:
    """The periods worth listing, newest first: closed ones, those with lines, and the
    current and previous month. A row made empty by a lock check (the first month of a
    draft rate, say) is not."""
    recent = previous_month(current_month(now))
    has_lines = sa.exists().where(ChargeLine.period_id == BillingPeriod.id)
    return list(db.session.scalars(
        sa.select(BillingPeriod)
        .where(sa.or_(BillingPeriod.closed_at.is_not(None), has_lines,
                      BillingPeriod.month >= recent))
        .order_by(BillingPeriod.month.desc())
    ))


def first_open_month(after: date) -> date:
    """The first month from ``after`` on whose period is not closed."""
    closed = set(db.session.scalars(
        sa.select(BillingPeriod.month).where(
            BillingPeriod.month >= after, BillingPeriod.closed_at.is_not(None)
        )
    ))
    month = after
    while month in closed:
        month = next_month(month)
    return month
