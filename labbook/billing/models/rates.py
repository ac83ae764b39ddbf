"""What things cost: customer classes (with their tax rate), consumables, rate cards and
each instrument's billing policy (SPEC section 6).

Rate rows are never edited in place: a new row supersedes the previous one from its
``effective_from`` day, so the rate of any past day stays computable. A rate is a draft
until it is published; drafts never price anything, but finance can preview a month
under them (labbook/billing/rates.py).
"""
from __future__ import annotations

import enum
from datetime import date, datetime, time
from decimal import Decimal
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from labbook.db import now_utc
from labbook.extensions import db
from labbook.instruments.models import LocalizedName

if TYPE_CHECKING:
    from labbook.instruments.models import Facility, Instrument

DEFAULT_CUSTOMER_CLASSES = (
    # code, English name, Chinese name, tax rate as a fraction
    ("internal", "Internal", "内部", Decimal("0.00")),
    ("external_academic", "External academic", "校外学术", Decimal("0.06")),
    ("startup", "Start-up", "初创企业", Decimal("0.06")),
    ("industry", "Industry", "企业", Decimal("0.06")),
)


class ChargeType(str, enum.Enum):
    INSTRUMENT_HOUR = "instrument_hour"
    ASSISTED_HOUR = "assisted_hour"
    SESSION = "session"
    SAMPLE = "sample"
    UNIT = "unit"


CHARGE_TYPES = tuple(t.value for t in ChargeType)
INSTRUMENT_CHARGE_TYPES = CHARGE_TYPES[:4]


class BillingBasis(str, enum.Enum):
    BOOKED = "booked"
    ACTUAL = "actual"
    MAX = "max"


BILLING_BASES = tuple(b.value for b in BillingBasis)


class CustomerClass(LocalizedName, db.Model):
    __tablename__ = "customer_classes"
    __table_args__ = (
        sa.CheckConstraint("tax_rate >= 0 AND tax_rate < 1", name="tax_rate_fraction"),
    )

    code: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(80))
    name_zh: Mapped[str | None] = mapped_column(sa.String(80))
    tax_rate: Mapped[Decimal] = mapped_column(sa.Numeric(5, 4), default=Decimal("0"))

    def __repr__(self) -> str:
        return f"<CustomerClass {self.code}>"


class Consumable(LocalizedName, db.Model):
    """Something sold by the unit (gas, a wafer, a reagent kit), priced by ``unit`` rates."""

    __tablename__ = "consumables"

    id: Mapped[int] = mapped_column(primary_key=True)
    facility_id: Mapped[int] = mapped_column(sa.ForeignKey("facilities.id"), index=True)
    code: Mapped[str] = mapped_column(sa.String(64), unique=True)
    name: Mapped[str] = mapped_column(sa.String(160))
    name_zh: Mapped[str | None] = mapped_column(sa.String(160))
    unit: Mapped[str] = mapped_column(sa.String(20), default="unit")
    active: Mapped[bool] = mapped_column(default=True, server_default=sa.true())
    created_at: Mapped[datetime] = mapped_column(default=now_utc)

    facility: Mapped[Facility] = relationship()

    def __repr__(self) -> str:
        return f"<Consumable {self.code}>"


class Rate(db.Model):
    """One price: for an instrument (hour, assisted hour, session, sample) or a consumable
    (unit), for one customer class, from ``effective_from`` (a local date) until the next
    published row of the same key."""

    __tablename__ = "rates"
    __table_args__ = (
        sa.CheckConstraint(
            "(instrument_id IS NULL AND consumable_id IS NOT NULL AND charge_type = 'unit') OR "
            "(instrument_id IS NOT NULL AND consumable_id IS NULL AND charge_type IN "
            "('instrument_hour', 'assisted_hour', 'session', 'sample'))",
            name="target_matches_type",
        ),
        sa.CheckConstraint("amount >= 0", name="amount_not_negative"),
        sa.Index(
            "uq_rates_instrument_key", "instrument_id", "customer_class_code", "charge_type",
            "effective_from", unique=True,
            sqlite_where=sa.text("instrument_id IS NOT NULL"),
            postgresql_where=sa.text("instrument_id IS NOT NULL"),
        ),
        sa.Index(
            "uq_rates_consumable_key", "consumable_id", "customer_class_code", "effective_from",
            unique=True,
            sqlite_where=sa.text("consumable_id IS NOT NULL"),
            postgresql_where=sa.text("consumable_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    instrument_id: Mapped[int | None] = mapped_column(sa.ForeignKey("instruments.id"))
    consumable_id: Mapped[int | None] = mapped_column(sa.ForeignKey("consumables.id"))
    customer_class_code: Mapped[str] = mapped_column(sa.ForeignKey("customer_classes.code"))
    charge_type: Mapped[str] = mapped_column(sa.String(20))
    amount: Mapped[Decimal] = mapped_column(sa.Numeric(14, 4))
    effective_from: Mapped[date] = mapped_column(sa.Date)
    note: Mapped[str] = mapped_column(sa.String(200), default="")
    published_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=now_utc)
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))

    instrument: Mapped[Instrument | None] = relationship()
    consumable: Mapped[Consumable | None] = relationship()
    customer_class: Mapped[CustomerClass] = relationship()

    def __repr__(self) -> str:
        return f"<Rate {self.id} {self.charge_type} {self.amount} from {self.effective_from}>"

    @property
    def is_draft(self) -> bool:
        return self.published_at is None


class BillingPolicy(db.Model):
    """How an instrument's time is billed. One row per instrument; an instrument without
    a row bills with the defaults below (``policy_for`` in labbook/billing/charges.py)."""

    __tablename__ = "billing_policies"
    __table_args__ = (
        sa.CheckConstraint("basis IN ('booked', 'actual', 'max')", name="basis_known"),
        sa.CheckConstraint("increment_minutes BETWEEN 1 AND 1440", name="increment_range"),
        sa.CheckConstraint("minimum_minutes BETWEEN 0 AND 10080", name="minimum_range"),
        sa.CheckConstraint(
            "(cap_from IS NULL AND cap_to IS NULL AND cap_max_minutes IS NULL) OR "
            "(cap_from IS NOT NULL AND cap_to IS NOT NULL AND cap_max_minutes > 0)",
            name="cap_complete",
        ),
        sa.CheckConstraint(
            "late_cancel_fraction >= 0 AND late_cancel_fraction <= 1", name="late_fraction"
        ),
        sa.CheckConstraint("no_show_fraction >= 0 AND no_show_fraction <= 1", name="no_show"),
    )

    instrument_id: Mapped[int] = mapped_column(
        sa.ForeignKey("instruments.id", ondelete="CASCADE"), primary_key=True
    )
    basis: Mapped[str] = mapped_column(sa.String(8), default="booked")
    increment_minutes: Mapped[int] = mapped_column(default=15)
    minimum_minutes: Mapped[int] = mapped_column(default=0)
    cap_from: Mapped[time | None] = mapped_column(sa.Time)
    cap_to: Mapped[time | None] = mapped_column(sa.Time)
    cap_max_minutes: Mapped[int | None]
    late_cancel_fraction: Mapped[Decimal] = mapped_column(
        sa.Numeric(5, 4), default=Decimal("0.5")
    )
    no_show_fraction: Mapped[Decimal] = mapped_column(sa.Numeric(5, 4), default=Decimal("1"))
    updated_at: Mapped[datetime] = mapped_column(default=now_utc, onupdate=now_utc)
