"""The close lock (SPEC section 6): once a billing period is closed, nothing that would
change its charges may happen, whatever the path (UI, API, CLI, scheduler).

Every service that changes something billable calls ``ensure_open`` with the moments it
touches (a session's old and new start, a usage item's time, a rate's first day). A
month that has not ended cannot be closed, so for the current and future months the
check costs no query. For a past month it takes the period row FOR SHARE on PostgreSQL
(creating it if needed), so a concurrent close waits for this transaction, or this one
sees the close: the change and the close never interleave.
"""
from __future__ import annotations

from datetime import date, datetime

from flask_babel import gettext as _

from labbook.billing.models import BillingPeriod
from labbook.billing.periods import current_month, get_period, month_of
from labbook.db import now_utc
from labbook.errors import Conflict
from labbook.extensions import db


class PeriodClosed(Conflict):
    """409 with ``reason: "period_closed"`` and the ``period`` (YYYY-MM)."""

    def __init__(self, month: date, message: str | None = None) -> None:
        super().__init__(
            message or _(
                "The billing period %(month)s is closed: nothing in it can change any more. "
                "Ask finance for an adjustment in the next open period.",
                month=f"{month:%Y-%m}",
            ),
            reason="period_closed",
            period=f"{month:%Y-%m}",
        )
        self.month = month


def ensure_month_open(month: date, now: datetime | None = None) -> None:
    """:raises PeriodClosed: when ``month``'s period is closed."""
    if month >= current_month(now or now_utc()):
        return
    period = get_period(month)
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.refresh(period, with_for_update={"read": True})
    if period.closed_at is not None:
        raise PeriodClosed(month)


def ensure_open(*moments: datetime | None, now: datetime | None = None) -> None:
    """:raises PeriodClosed: when any of ``moments`` (aware; None ignored) lies in a
    closed period."""
    for month in sorted({month_of(m) for m in moments if m is not None}):
        ensure_month_open(month, now)


def is_period_closed(period: BillingPeriod | None) -> bool:
    return period is not None and period.closed_at is not None
