"""Scheduled billing job ``monthly_statements``: keep the draft statements of the open
periods fresh (the previous month, until it is closed, and the current one), and once
per month tell finance that last month's drafts are ready for review and closing.
Idempotent: refreshing twice writes nothing the second time, and the monthly notice is
claimed once (``once_marks``), whichever scheduler process runs it."""
from __future__ import annotations

import logging
from datetime import date, datetime

import sqlalchemy as sa

from labbook.auth.models import Role, User, UserRole
from labbook.billing.periods import current_month, find_period, previous_month
from labbook.billing.statements import refresh_period
from labbook.bookings.notices import claim_once
from labbook.db import now_utc
from labbook.extensions import db
from labbook.notifications.services import notify_all

log = logging.getLogger(__name__)
NOTICE_KIND = "billing_drafts"


def draft_statements(now: datetime | None = None) -> int:
    """Refresh the open periods among last month and this month, committing each; returns
    how many lines changed."""
    now = now or now_utc()
    month = current_month(now)
    changed = 0
    for target in (previous_month(month), month):
        period = find_period(target)
        if period is not None and period.closed_at is not None:
            continue
        try:
            changed += refresh_period(target, now).changed
            if target != month:
                _tell_finance(target, now)
            db.session.commit()
        except Exception:  # noqa: BLE001 - one month failing must not hide the other
            db.session.rollback()
            log.exception("draft statements of %s could not be refreshed", f"{target:%Y-%m}")
    return changed


def _tell_finance(month: date, now: datetime) -> None:
    label = f"{month:%Y-%m}"
    if not claim_once(NOTICE_KIND, int(label.replace("-", "")), label, now):
        return
    finance = db.session.scalars(
        sa.select(User).join(UserRole, UserRole.user_id == User.id)
        .where(UserRole.role == Role.FINANCE.value, User.active.is_(True))
    ).all()
    notify_all(finance, "statements_ready", params={
        "month": label, "path": f"/billing/periods/{label}"}, now=now)
