"""Teams (research groups, start-ups, companies), their members and their accounts.

A team has exactly one customer class (billing). An account is a cost centre, grant or
purchase order; at most one account per team is its default (a partial unique index).
"""
from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from labbook.db import now_utc
from labbook.extensions import db

if TYPE_CHECKING:
    from labbook.auth.models import User
    from labbook.billing.models import CustomerClass


class AccountKind(str, enum.Enum):
    COST_CENTRE = "cost_centre"
    GRANT = "grant"
    PURCHASE_ORDER = "purchase_order"


ACCOUNT_KINDS = tuple(k.value for k in AccountKind)


class Team(db.Model):
    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(120), unique=True)
    customer_class_code: Mapped[str] = mapped_column(
        sa.ForeignKey("customer_classes.code"), default="internal"
    )
    invoice_title: Mapped[str | None] = mapped_column(sa.String(200))
    tax_id: Mapped[str | None] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(default=now_utc)

    customer_class: Mapped[CustomerClass] = relationship()
    memberships: Mapped[list[Membership]] = relationship(
        back_populates="team", cascade="all, delete-orphan"
    )
    accounts: Mapped[list[Account]] = relationship(
        back_populates="team", cascade="all, delete-orphan", order_by="Account.code"
    )

    def __repr__(self) -> str:
        return f"<Team {self.name}>"

    @property
    def default_account(self) -> Account | None:
        return next((a for a in self.accounts if a.is_default), None)

    @property
    def leads(self) -> list[User]:
        return [m.user for m in self.memberships if m.is_lead]


class Membership(db.Model):
    __tablename__ = "memberships"

    team_id: Mapped[int] = mapped_column(
        sa.ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    is_lead: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    joined_at: Mapped[datetime] = mapped_column(default=now_utc)

    team: Mapped[Team] = relationship(back_populates="memberships")
    user: Mapped[User] = relationship(back_populates="memberships")


account_members = sa.Table(
    "account_members",
    db.metadata,
    sa.Column("account_id", sa.ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("user_id", sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
)


class Account(db.Model):
    """Something a booking can be charged to. ``all_members`` lets every member of the team
    charge it; otherwise only the users in ``authorised_users`` may."""

    __tablename__ = "accounts"
    __table_args__ = (
        sa.CheckConstraint(
            "kind IN ('cost_centre', 'grant', 'purchase_order')", name="kind_known"
        ),
        sa.CheckConstraint(
            "valid_until IS NULL OR valid_until >= valid_from", name="validity_ordered"
        ),
        sa.CheckConstraint(
            "spending_limit IS NULL OR spending_limit >= 0", name="limit_not_negative"
        ),
        sa.Index(
            "uq_accounts_default_per_team",
            "team_id",
            unique=True,
            sqlite_where=sa.text("is_default"),
            postgresql_where=sa.text("is_default"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[int] = mapped_column(sa.ForeignKey("teams.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(sa.String(64), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    kind: Mapped[str] = mapped_column(sa.String(20), default=AccountKind.COST_CENTRE.value)
    valid_from: Mapped[date] = mapped_column(sa.Date)
    valid_until: Mapped[date | None] = mapped_column(sa.Date)
    spending_limit: Mapped[Decimal | None] = mapped_column(sa.Numeric(14, 2))
    active: Mapped[bool] = mapped_column(default=True, server_default=sa.true())
    is_default: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    all_members: Mapped[bool] = mapped_column(default=True, server_default=sa.true())
    created_at: Mapped[datetime] = mapped_column(default=now_utc)

    team: Mapped[Team] = relationship(back_populates="accounts")
    authorised_users: Mapped[list[User]] = relationship(secondary=account_members)

    def __repr__(self) -> str:
        return f"<Account {self.code}>"

    def is_valid_on(self, day: date) -> bool:
        return (
            self.active
            and self.valid_from <= day
            and (self.valid_until is None or day <= self.valid_until)
        )

    def may_be_charged_by(self, user: User) -> bool:
        if not any(m.user_id == user.id for m in self.team.memberships):
            return False
        return self.all_members or any(u.id == user.id for u in self.authorised_users)
