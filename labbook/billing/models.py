"""Billing data. The foundation holds only customer classes, which every team needs;
rate cards, charges, periods and statements arrive with the billing issue."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from labbook.extensions import db

DEFAULT_CUSTOMER_CLASSES = (
    # code, English name, Chinese name, tax rate as a fraction
    ("internal", "Internal", "内部", Decimal("0.00")),
    ("external_academic", "External academic", "校外学术", Decimal("0.06")),
    ("startup", "Start-up", "初创企业", Decimal("0.06")),
    ("industry", "Industry", "企业", Decimal("0.06")),
)


class CustomerClass(db.Model):
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


class BillingPeriod(db.Model):
    """A calendar month (its first day, in the centre's zone). A row with ``closed_at``
    set is closed: nothing that would change its charges may happen any more."""

    __tablename__ = "billing_periods"

    id: Mapped[int] = mapped_column(primary_key=True)
    month: Mapped[date] = mapped_column(sa.Date, unique=True)
    closed_at: Mapped[datetime | None]
    closed_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
