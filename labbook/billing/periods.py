"""Billing periods: a calendar month in the centre's zone (``LABBOOK_TIMEZONE``). Once a
period is closed nothing may change its charges; services that change usage ask
``is_closed`` first. (Closing, with its checklist, arrives with the billing issue.)"""
from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import current_app

from labbook.billing.models import BillingPeriod
from labbook.extensions import db


def month_of(moment: datetime) -> date:
    """The first day of the centre's month that ``moment`` (aware) falls in."""
    local = moment.astimezone(ZoneInfo(current_app.config["LABBOOK_TIMEZONE"]))
    return local.date().replace(day=1)


def is_closed(moment: datetime) -> bool:
    """Is the billing period containing ``moment`` closed?"""
    return db.session.scalar(
        sa.select(BillingPeriod.closed_at).where(BillingPeriod.month == month_of(moment))
    ) is not None
