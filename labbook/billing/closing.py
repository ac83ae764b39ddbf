"""Month end: the pre-close checklist and closing a period (SPEC section 6).

Closing refreshes the period one last time, then freezes it: one ``Statement`` per team
with the next sequential number, its class, tax rate and totals, every line linked to
its statement, and ``closed_at`` set. From then on ``ensure_open`` refuses every change
(labbook/billing/lock.py) and exports of the period are byte-identical.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _

from labbook import audit
from labbook.auth.models import User
from labbook.billing.models import (
    Adjustment, BillingPeriod, ChargeLine, CustomerClass, Statement,
)
from labbook.billing.money import currency, money, tax_on
from labbook.billing.periods import centre_zone, current_month, get_period, month_bounds
from labbook.billing.statements import refresh_period, statements_for
from labbook.bookings.models import Reservation
from labbook.db import now_utc
from labbook.errors import Conflict
from labbook.extensions import db
from labbook.teams.models import Account, Team

STATEMENT_NUMBER_LOCK = 7_261_001  # pg_advisory_xact_lock key: one numberer at a time


@dataclass
class Checklist:
    """What finance should look at before closing. ``unsettled`` sessions (running, or
    not yet completed / marked no-show / expired) block the close: their charge is not
    known. The rest may be overridden (``force``); the close records them."""

    unsettled: list[dict[str, Any]] = field(default_factory=list)
    needs_review: list[dict[str, Any]] = field(default_factory=list)
    missing_rates: list[dict[str, Any]] = field(default_factory=list)
    invalid_accounts: list[dict[str, Any]] = field(default_factory=list)
    pending_adjustments: list[dict[str, Any]] = field(default_factory=list)

    @property
    def blocking(self) -> bool:
        return bool(self.unsettled)

    @property
    def warnings(self) -> bool:
        return bool(self.needs_review or self.missing_rates or self.invalid_accounts
                    or self.pending_adjustments)

    def as_dict(self) -> dict[str, list[dict[str, Any]]]:
        return {
            "unsettled": self.unsettled, "needs_review": self.needs_review,
            "missing_rates": self.missing_rates, "invalid_accounts": self.invalid_accounts,
            "pending_adjustments": self.pending_adjustments,
        }


def checklist(period: BillingPeriod) -> Checklist:
    start, end = month_bounds(period.month)
    sessions = db.session.scalars(sa.select(Reservation).where(
        Reservation.kind == "booking", Reservation.start_at >= start, Reservation.start_at < end,
        sa.or_(Reservation.state.in_(("pending", "confirmed", "in_use")),
               Reservation.needs_review.is_(True)),
    ).order_by(Reservation.start_at))
    result = Checklist()
    for booking in sessions:
        item = {"booking_id": booking.id, "state": booking.state,
                "start": booking.start_at.isoformat(), "instrument_id": booking.instrument_id}
        (result.needs_review if booking.needs_review and booking.state not in (
            "pending", "confirmed", "in_use") else result.unsettled).append(item)
    lines = db.session.scalars(sa.select(ChargeLine).where(ChargeLine.period_id == period.id))
    zone = centre_zone()
    for line in lines:
        item = {"line_id": line.id, "description": line.description}
        if line.missing_rate:
            result.missing_rates.append(item)
        if not _account_ok(line.account, line.occurred_at.astimezone(zone).date()):
            result.invalid_accounts.append({**item, "account": line.account.code})
    pending = db.session.scalars(sa.select(Adjustment).join(Adjustment.line).where(
        Adjustment.state == "pending", ChargeLine.period_id == period.id))
    result.pending_adjustments = [
        {"adjustment_id": a.id, "line_id": a.line_id, "amount": str(a.amount)} for a in pending
    ]
    return result


def _account_ok(account: Account, day: date) -> bool:
    return account.is_valid_on(day)


def close_period(actor: User | None, month: date, *, force: bool = False,
                 now: datetime | None = None) -> BillingPeriod:
    """Close ``month``: refresh, check, number the statements, freeze.

    :raises Conflict: the month has not ended, it is closed already, or the checklist
        lists something (``reason: "checklist"`` with the list; ``force`` overrides all
        but unsettled sessions).
    """
    now = now or now_utc()
    if month >= current_month(now):
        raise Conflict(_("%(month)s has not ended yet; a period closes after its last day.",
                         month=f"{month:%Y-%m}"), reason="not_ended")
    period = get_period(month, lock=True)
    if period.closed_at is not None:
        raise Conflict(_("%(month)s is closed already.", month=f"{month:%Y-%m}"),
                       reason="already_closed")
    refresh_period(month, now)
    found = checklist(period)
    if found.blocking or (found.warnings and not force):
        raise Conflict(_("The pre-close checklist is not clear; see the period's page."),
                       reason="checklist", checklist=found.as_dict(),
                       forceable=not found.blocking)
    _issue_statements(period, now)
    period.closed_at = now
    period.closed_by_id = actor.id if actor else None
    period.close_warnings = found.as_dict() if found.warnings else None
    db.session.flush()
    count = db.session.scalar(
        sa.select(sa.func.count()).select_from(Statement).where(Statement.period_id == period.id)
    )
    audit.record(actor, "billing.close", period, after={
        "month": period.label, "forced": bool(found.warnings), "statements": count,
    })
    return period


def _issue_statements(period: BillingPeriod, now: datetime) -> None:
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(sa.select(sa.func.pg_advisory_xact_lock(STATEMENT_NUMBER_LOCK)))
    number = db.session.scalar(sa.select(sa.func.max(Statement.number))) or 0
    for view in statements_for(period):
        number += 1
        statement = Statement(
            number=number, period_id=period.id, team_id=view.team_id, team_name=view.team_name,
            customer_class_code=view.customer_class, invoice_title=view.invoice_title,
            tax_id=view.tax_id, currency=currency(), tax_rate=view.tax_rate,
            subtotal=view.subtotal, tax=view.tax, total=view.subtotal + view.tax,
            issued_at=now,
        )
        db.session.add(statement)
        db.session.flush()
        db.session.execute(sa.update(ChargeLine).where(
            ChargeLine.period_id == period.id, ChargeLine.team_id == view.team_id,
        ).values(statement_id=statement.id))


def period_totals(period: BillingPeriod) -> dict[str, Decimal]:
    """A period's totals from one grouped query (subtotal per team, tax per team at its
    class's rate, half-up), without loading its lines; a closed period's from its frozen
    statements (a class's tax rate may have changed since)."""
    if period.closed_at is not None:
        frozen = db.session.execute(
            sa.select(Statement.subtotal, Statement.tax).where(Statement.period_id == period.id)
        ).all()
        subtotal = sum((row.subtotal for row in frozen), Decimal(0))
        tax = sum((row.tax for row in frozen), Decimal(0))
        return {"subtotal": subtotal, "tax": tax, "total": subtotal + tax}
    rows = db.session.execute(
        sa.select(sa.func.sum(ChargeLine.amount), CustomerClass.tax_rate)
        .join(Team, Team.id == ChargeLine.team_id)
        .join(CustomerClass, CustomerClass.code == Team.customer_class_code)
        .where(ChargeLine.period_id == period.id)
        .group_by(ChargeLine.team_id, CustomerClass.tax_rate)
    ).all()
    subtotal = tax = Decimal(0)
    for amount, rate in rows:
        team_subtotal = money(Decimal(str(amount)))  # SQLite sums as floating point
        subtotal += team_subtotal
        tax += tax_on(team_subtotal, rate)
    return {"subtotal": subtotal, "tax": tax, "total": subtotal + tax}
