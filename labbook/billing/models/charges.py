"""What was charged: usage items (consumables, samples), charge lines, adjustments,
billing periods and the statements a period's close freezes (SPEC section 6).

A charge line is derived data for an *open* period: ``refresh_period`` recomputes it
idempotently from its source (a booking, a usage item, an approved adjustment), keyed by
``source_key`` so that its id survives recomputation. Closing a period freezes its lines
(``statement_id`` set) and writes one ``Statement`` per team with its number, class, tax
rate and totals; after that nothing may change them (labbook/billing/lock.py).
"""
from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from labbook.db import now_utc
from labbook.extensions import db

if TYPE_CHECKING:
    from labbook.auth.models import User
    from labbook.billing.models.rates import Consumable, Rate
    from labbook.instruments.models import Instrument
    from labbook.teams.models import Account, Team


class LineKind(str, enum.Enum):
    TIME = "time"
    SESSION = "session"
    LATE_CANCEL = "late_cancel"
    NO_SHOW = "no_show"
    SAMPLE = "sample"
    UNIT = "unit"
    ADJUSTMENT = "adjustment"


LINE_KINDS = tuple(k.value for k in LineKind)
ADJUSTMENT_STATES = ("pending", "approved", "rejected")


class BillingPeriod(db.Model):
    """A calendar month (its first day, in the centre's zone). A row with ``closed_at``
    set is closed: nothing that would change its charges may happen any more."""

    __tablename__ = "billing_periods"

    id: Mapped[int] = mapped_column(primary_key=True)
    month: Mapped[date] = mapped_column(sa.Date, unique=True)
    closed_at: Mapped[datetime | None]
    closed_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    refreshed_at: Mapped[datetime | None]
    # Closed although the pre-close checklist listed something (the list is kept).
    close_warnings: Mapped[list | None] = mapped_column(sa.JSON)

    closed_by: Mapped[User | None] = relationship()

    def __repr__(self) -> str:
        return f"<BillingPeriod {self.month:%Y-%m}{' closed' if self.closed_at else ''}>"

    @property
    def label(self) -> str:
        return f"{self.month:%Y-%m}"

    @property
    def is_closed(self) -> bool:
        return self.closed_at is not None


class Statement(db.Model):
    """A team's frozen statement for a closed period. Numbers are sequential across
    periods and never reused (statements are never deleted)."""

    __tablename__ = "statements"
    __table_args__ = (
        sa.UniqueConstraint("period_id", "team_id", name="uq_statements_period_team"),
        sa.CheckConstraint("total = subtotal + tax", name="total_adds_up"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[int] = mapped_column(unique=True)
    period_id: Mapped[int] = mapped_column(sa.ForeignKey("billing_periods.id"), index=True)
    team_id: Mapped[int] = mapped_column(sa.ForeignKey("teams.id"), index=True)
    team_name: Mapped[str] = mapped_column(sa.String(120))
    customer_class_code: Mapped[str] = mapped_column(sa.String(32))
    invoice_title: Mapped[str | None] = mapped_column(sa.String(200))
    tax_id: Mapped[str | None] = mapped_column(sa.String(64))
    currency: Mapped[str] = mapped_column(sa.String(3))
    tax_rate: Mapped[Decimal] = mapped_column(sa.Numeric(5, 4))
    subtotal: Mapped[Decimal] = mapped_column(sa.Numeric(14, 2))
    tax: Mapped[Decimal] = mapped_column(sa.Numeric(14, 2))
    total: Mapped[Decimal] = mapped_column(sa.Numeric(14, 2))
    issued_at: Mapped[datetime]

    period: Mapped[BillingPeriod] = relationship()
    team: Mapped[Team] = relationship()

    @property
    def display_number(self) -> str:
        return f"LB-{self.number:06d}"


class UsageItem(db.Model):
    """Consumables sold (``unit``) or samples measured on an instrument (``sample``)."""

    __tablename__ = "usage_items"
    __table_args__ = (
        sa.CheckConstraint(
            "(charge_type = 'unit' AND consumable_id IS NOT NULL AND instrument_id IS NULL) OR "
            "(charge_type = 'sample' AND instrument_id IS NOT NULL AND consumable_id IS NULL)",
            name="target_matches_type",
        ),
        sa.CheckConstraint("quantity > 0", name="quantity_positive"),
        sa.Index("ix_usage_items_occurred", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    charge_type: Mapped[str] = mapped_column(sa.String(20))
    consumable_id: Mapped[int | None] = mapped_column(sa.ForeignKey("consumables.id"))
    instrument_id: Mapped[int | None] = mapped_column(sa.ForeignKey("instruments.id"))
    reservation_id: Mapped[int | None] = mapped_column(sa.ForeignKey("reservations.id"))
    team_id: Mapped[int] = mapped_column(sa.ForeignKey("teams.id"), index=True)
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("accounts.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    quantity: Mapped[Decimal] = mapped_column(sa.Numeric(12, 3))
    occurred_at: Mapped[datetime]
    note: Mapped[str] = mapped_column(sa.String(300), default="")
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=now_utc)

    consumable: Mapped[Consumable | None] = relationship()
    instrument: Mapped[Instrument | None] = relationship()
    team: Mapped[Team] = relationship()
    account: Mapped[Account] = relationship()
    user: Mapped[User | None] = relationship(foreign_keys=[user_id])


class ChargeLine(db.Model):
    __tablename__ = "charge_lines"
    __table_args__ = (
        sa.CheckConstraint(
            "kind IN ('time', 'session', 'late_cancel', 'no_show', 'sample', 'unit', "
            "'adjustment')", name="kind_known",
        ),
        sa.Index("ix_charge_lines_period_team", "period_id", "team_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    period_id: Mapped[int] = mapped_column(sa.ForeignKey("billing_periods.id"))
    # "booking:<id>:<kind>", "item:<id>" or "adjustment:<id>": one line per source.
    source_key: Mapped[str] = mapped_column(sa.String(64), unique=True)
    kind: Mapped[str] = mapped_column(sa.String(16))
    charge_type: Mapped[str | None] = mapped_column(sa.String(20))
    team_id: Mapped[int] = mapped_column(sa.ForeignKey("teams.id"))
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("accounts.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    instrument_id: Mapped[int | None] = mapped_column(sa.ForeignKey("instruments.id"))
    consumable_id: Mapped[int | None] = mapped_column(sa.ForeignKey("consumables.id"))
    reservation_id: Mapped[int | None] = mapped_column(sa.ForeignKey("reservations.id"),
                                                       index=True)
    usage_item_id: Mapped[int | None] = mapped_column(sa.ForeignKey("usage_items.id"))
    # The adjustment this line books (no foreign key: adjustments reference lines).
    adjustment_id: Mapped[int | None]
    rate_id: Mapped[int | None] = mapped_column(sa.ForeignKey("rates.id"))
    occurred_at: Mapped[datetime]
    description: Mapped[str] = mapped_column(sa.String(300))
    quantity: Mapped[Decimal] = mapped_column(sa.Numeric(14, 4))
    unit_amount: Mapped[Decimal | None] = mapped_column(sa.Numeric(14, 4))
    amount: Mapped[Decimal] = mapped_column(sa.Numeric(14, 2))
    missing_rate: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    explanation: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    # A hash of the computed values (labbook/billing/statements.py ``digest_of``): a refresh
    # compares it instead of every column, so an unchanged month reads three columns a line.
    digest: Mapped[str | None] = mapped_column(sa.String(40))
    statement_id: Mapped[int | None] = mapped_column(sa.ForeignKey("statements.id"), index=True)
    updated_at: Mapped[datetime] = mapped_column(default=now_utc, onupdate=now_utc)

    period: Mapped[BillingPeriod] = relationship()
    team: Mapped[Team] = relationship()
    account: Mapped[Account] = relationship()
    instrument: Mapped[Instrument | None] = relationship()
    rate: Mapped[Rate | None] = relationship()
    user: Mapped[User | None] = relationship()

    def __repr__(self) -> str:
        return f"<ChargeLine {self.source_key} {self.amount}>"


class Adjustment(db.Model):
    """A credit (negative) or debit correcting a charge line, requested with a reason and
    approved by finance or a manager of the line's facility. Approved, it becomes a charge
    line of ``period`` (the line's own period while open, else the next open one)."""

    __tablename__ = "adjustments"
    __table_args__ = (
        sa.CheckConstraint("amount <> 0", name="amount_not_zero"),
        sa.CheckConstraint("state IN ('pending', 'approved', 'rejected')", name="state_known"),
        sa.CheckConstraint(
            "state <> 'approved' OR (period_id IS NOT NULL AND decided_at IS NOT NULL)",
            name="approved_lands",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    line_id: Mapped[int] = mapped_column(
        sa.ForeignKey("charge_lines.id"), index=True
    )
    amount: Mapped[Decimal] = mapped_column(sa.Numeric(14, 2))
    reason: Mapped[str] = mapped_column(sa.String(500))
    state: Mapped[str] = mapped_column(sa.String(16), default="pending", index=True)
    requested_by_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    requested_at: Mapped[datetime] = mapped_column(default=now_utc)
    decided_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    decided_at: Mapped[datetime | None]
    decision_note: Mapped[str | None] = mapped_column(sa.String(500))
    period_id: Mapped[int | None] = mapped_column(sa.ForeignKey("billing_periods.id"))

    line: Mapped[ChargeLine] = relationship(foreign_keys=[line_id])
    period: Mapped[BillingPeriod | None] = relationship()
    requested_by: Mapped[User] = relationship(foreign_keys=[requested_by_id])
    decided_by: Mapped[User | None] = relationship(foreign_keys=[decided_by_id])
