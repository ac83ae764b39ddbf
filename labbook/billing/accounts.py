"""Spending limits (SPEC section 6): an account with a limit may not commit more than it,
tax included. Committed = the frozen charges of closed periods + every charge of the open
periods (sessions done, fees, usage items, approved adjustments) + the estimated price of
every booking still holding a slot (its booked time at today's rules). A new or changed
booking is refused when its estimate would push the account over its limit."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from types import SimpleNamespace

import sqlalchemy as sa
from flask_babel import gettext as _

from labbook.billing import ratebook
from labbook.billing.lines import (
    CHARGED_STATES, item_line, item_query, session_lines, session_query,
)
from labbook.billing.models import (
    Adjustment, BillingPeriod, BillingPolicy, ChargeLine, CustomerClass,
)
from labbook.billing.money import fmt, money
from labbook.billing.periods import month_bounds, next_month
from labbook.bookings.errors import BookingRefused
from labbook.extensions import db
from labbook.instruments.models import Instrument
from labbook.teams.models import Account, Team

HOLDING = ("pending", "confirmed", "in_use")
POLICY_COLUMNS = ("basis", "increment_minutes", "minimum_minutes", "cap_from", "cap_to",
                  "cap_max_minutes", "late_cancel_fraction", "no_show_fraction")


@dataclass
class Balance:
    limit: Decimal | None
    committed: Decimal          # before tax
    committed_with_tax: Decimal
    tax_rate: Decimal

    @property
    def remaining(self) -> Decimal | None:
        return None if self.limit is None else self.limit - self.committed_with_tax

    def as_dict(self) -> dict[str, str | None]:
        return {"spending_limit": fmt(self.limit), "committed": fmt(self.committed),
                "committed_with_tax": fmt(self.committed_with_tax),
                "remaining": fmt(self.remaining)}


def _open_from() -> datetime:
    """The start of the first month after the last closed period."""
    latest = db.session.scalar(sa.select(sa.func.max(BillingPeriod.month)).where(
        BillingPeriod.closed_at.is_not(None)))
    if latest is None:
        return datetime(1970, 1, 1, tzinfo=timezone.utc)
    return month_bounds(next_month(latest))[0]


def committed(account: Account, exclude_booking_id: int | None = None) -> Decimal:
    """Everything charged or to be charged to ``account``, before tax."""
    frozen = db.session.scalars(sa.select(ChargeLine.amount).where(
        ChargeLine.account_id == account.id, ChargeLine.statement_id.is_not(None))).all()
    total = sum(frozen, Decimal(0))
    start = _open_from()
    book = ratebook.load()
    sessions = session_query(start, states=CHARGED_STATES + HOLDING).where(
        sa.literal_column("reservations.account_id") == account.id)
    for row in db.session.execute(sessions):
        if row.id != exclude_booking_id:
            total += sum((spec["amount"] for spec in session_lines(row, book)), Decimal(0))
    items = item_query(start).where(sa.literal_column("usage_items.account_id") == account.id)
    for row in db.session.execute(items):
        total += item_line(row, book)["amount"]
    adjustments = db.session.scalars(
        sa.select(Adjustment.amount).join(Adjustment.line).join(
            BillingPeriod, BillingPeriod.id == Adjustment.period_id).where(
            ChargeLine.account_id == account.id, Adjustment.state == "approved",
            BillingPeriod.closed_at.is_(None))).all()
    return total + sum(adjustments, Decimal(0))


def _tax_rate(account: Account) -> Decimal:
    return db.session.scalar(sa.select(CustomerClass.tax_rate).join(
        Team, Team.customer_class_code == CustomerClass.code).where(Team.id == account.team_id))


def balance(account: Account) -> Balance:
    rate = _tax_rate(account)
    spent = committed(account)
    return Balance(account.spending_limit, spent, money(spent * (1 + rate)), rate)


def estimate(account: Account, instrument: Instrument, start: datetime, end: datetime,
             assisted: bool) -> Decimal:
    """The price of booking ``instrument`` from ``start`` to ``end`` on ``account``: the
    lines a confirmed booking would get, priced by the same functions as real ones."""
    policy = db.session.get(BillingPolicy, instrument.id)
    row = SimpleNamespace(
        id=0, instrument_id=instrument.id, user_id=None, team_id=account.team_id,
        account_id=account.id, start_at=start, end_at=end, assisted=assisted,
        checked_in_at=None, checked_out_at=None, state="confirmed", late_cancel=False,
        customer_class_code=account.team.customer_class_code,
        instrument_name=instrument.name, asset_code=instrument.asset_code,
        timezone=instrument.facility.timezone,
        **{name: getattr(policy, name, None) for name in POLICY_COLUMNS},
    )
    return sum((s["amount"] for s in session_lines(row, ratebook.load())), Decimal(0))


def check_limit(account: Account, instrument: Instrument, start: datetime, end: datetime,
                assisted: bool = False, exclude_booking_id: int | None = None) -> None:
    """:raises BookingRefused: (rule ``spending_limit``) when the booking's estimate, tax
    included, would take the account past its limit."""
    if account.spending_limit is None:
        return
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(sa.select(Account.id).where(Account.id == account.id)
                           .with_for_update())
    rate = _tax_rate(account)
    spent = committed(account, exclude_booking_id)
    price = estimate(account, instrument, start, end, assisted)
    if money((spent + price) * (1 + rate)) <= account.spending_limit:
        return
    remaining = max(account.spending_limit - money(spent * (1 + rate)), Decimal(0))
    raise BookingRefused("spending_limit", _(
        "This booking (about %(price)s incl. tax) would exceed the spending limit of account "
        "%(code)s: %(left)s left.", price=fmt(money(price * (1 + rate))), code=account.code,
        left=fmt(remaining)), "account_id")
