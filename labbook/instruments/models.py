"""The catalog: research fields, platforms, facilities with opening hours and managers,
and instruments with their booking policy.

Policy defaults follow SPEC section 3; check constraints keep every policy coherent
whichever path writes it (UI, API, CSV import).
"""
from __future__ import annotations

import enum
from datetime import datetime, time
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from labbook.db import now_utc
from labbook.extensions import db

if TYPE_CHECKING:
    from labbook.auth.models import User


class InstrumentStatus(str, enum.Enum):
    AVAILABLE = "available"
    LIMITED = "limited"
    DOWN = "down"
    RETIRED = "retired"


INSTRUMENT_STATUSES = tuple(s.value for s in InstrumentStatus)

instrument_fields = sa.Table(
    "instrument_fields",
    db.metadata,
    sa.Column(
        "instrument_id", sa.ForeignKey("instruments.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column(
        "field_id", sa.ForeignKey("research_fields.id", ondelete="CASCADE"), primary_key=True
    ),
)

facility_managers = sa.Table(
    "facility_managers",
    db.metadata,
    sa.Column(
        "facility_id", sa.ForeignKey("facilities.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("user_id", sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
)


class LocalizedName:
    """Mixin for rows that carry an English ``name`` and an optional ``name_zh``."""

    name: str
    name_zh: str | None

    def display_name(self, locale: str | None) -> str:
        if locale and locale.startswith("zh") and self.name_zh:
            return self.name_zh
        return self.name


class ResearchField(LocalizedName, db.Model):
    __tablename__ = "research_fields"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(40), unique=True)
    name: Mapped[str] = mapped_column(sa.String(120), unique=True)
    name_zh: Mapped[str | None] = mapped_column(sa.String(120))


class Platform(LocalizedName, db.Model):
    __tablename__ = "platforms"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(40), unique=True)
    name: Mapped[str] = mapped_column(sa.String(120), unique=True)
    name_zh: Mapped[str | None] = mapped_column(sa.String(120))

    facilities: Mapped[list[Facility]] = relationship(
        back_populates="platform", order_by="Facility.name"
    )


class Facility(LocalizedName, db.Model):
    __tablename__ = "facilities"

    id: Mapped[int] = mapped_column(primary_key=True)
    platform_id: Mapped[int] = mapped_column(sa.ForeignKey("platforms.id"), index=True)
    code: Mapped[str] = mapped_column(sa.String(40), unique=True)
    name: Mapped[str] = mapped_column(sa.String(160), unique=True)
    name_zh: Mapped[str | None] = mapped_column(sa.String(160))
    location: Mapped[str] = mapped_column(sa.String(200), default="")
    timezone: Mapped[str] = mapped_column(sa.String(64), default="Asia/Shanghai")
    description: Mapped[str] = mapped_column(sa.Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=now_utc)

    platform: Mapped[Platform] = relationship(back_populates="facilities")
    instruments: Mapped[list[Instrument]] = relationship(
        back_populates="facility", order_by="Instrument.name"
    )
    managers: Mapped[list[User]] = relationship(
        secondary=facility_managers, back_populates="managed_facilities", order_by="User.name"
    )
    opening_hours: Mapped[list[OpeningHours]] = relationship(
        back_populates="facility",
        cascade="all, delete-orphan",
        order_by="(OpeningHours.weekday, OpeningHours.opens)",
    )


class OpeningHours(db.Model):
    """A staffed interval on one weekday (0 = Monday), in the facility's local time."""

    __tablename__ = "opening_hours"
    __table_args__ = (
        sa.CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday_range"),
        sa.CheckConstraint("opens < closes", name="opens_before_closes"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    facility_id: Mapped[int] = mapped_column(
        sa.ForeignKey("facilities.id", ondelete="CASCADE"), index=True
    )
    weekday: Mapped[int]
    opens: Mapped[time] = mapped_column(sa.Time)
    closes: Mapped[time] = mapped_column(sa.Time)

    facility: Mapped[Facility] = relationship(back_populates="opening_hours")


class Instrument(db.Model):
    __tablename__ = "instruments"
    __table_args__ = (
        sa.CheckConstraint(
            "status IN ('available', 'limited', 'down', 'retired')", name="status_known"
        ),
        sa.CheckConstraint("slot_minutes BETWEEN 1 AND 1440", name="slot_positive"),
        sa.CheckConstraint(
            "min_minutes >= slot_minutes AND min_minutes % slot_minutes = 0",
            name="min_aligned",
        ),
        sa.CheckConstraint(
            "max_minutes >= min_minutes AND max_minutes % slot_minutes = 0",
            name="max_aligned",
        ),
        sa.CheckConstraint("lead_minutes >= 0", name="lead_not_negative"),
        sa.CheckConstraint("horizon_days BETWEEN 1 AND 3660", name="horizon_range"),
        sa.CheckConstraint("buffer_minutes >= 0", name="buffer_not_negative"),
        sa.CheckConstraint("late_cancel_notice_hours >= 0", name="notice_not_negative"),
        sa.CheckConstraint("no_show_grace_minutes >= 0", name="grace_not_negative"),
        sa.CheckConstraint(
            "user_weekly_quota_minutes IS NULL OR user_weekly_quota_minutes > 0",
            name="user_quota_positive",
        ),
        sa.CheckConstraint(
            "team_weekly_quota_minutes IS NULL OR team_weekly_quota_minutes > 0",
            name="team_quota_positive",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    facility_id: Mapped[int] = mapped_column(sa.ForeignKey("facilities.id"), index=True)
    name: Mapped[str] = mapped_column(sa.String(160))
    asset_code: Mapped[str] = mapped_column(sa.String(64), unique=True)
    category: Mapped[str] = mapped_column(sa.String(80), index=True)
    make: Mapped[str] = mapped_column(sa.String(120), default="")
    model: Mapped[str] = mapped_column(sa.String(120), default="")
    location: Mapped[str] = mapped_column(sa.String(200), default="")
    description: Mapped[str] = mapped_column(sa.Text, default="")
    status: Mapped[str] = mapped_column(
        sa.String(16), default=InstrumentStatus.AVAILABLE.value, index=True
    )
    # Booking policy (SPEC section 3); defaults in brackets there.
    requires_approval: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    requires_qualification: Mapped[bool] = mapped_column(default=True, server_default=sa.true())
    slot_minutes: Mapped[int] = mapped_column(default=15, server_default="15")
    min_minutes: Mapped[int] = mapped_column(default=15, server_default="15")
    max_minutes: Mapped[int] = mapped_column(default=480, server_default="480")
    lead_minutes: Mapped[int] = mapped_column(default=0, server_default="0")
    horizon_days: Mapped[int] = mapped_column(default=90, server_default="90")
    buffer_minutes: Mapped[int] = mapped_column(default=0, server_default="0")
    late_cancel_notice_hours: Mapped[int] = mapped_column(default=24, server_default="24")
    no_show_grace_minutes: Mapped[int] = mapped_column(default=15, server_default="15")
    user_weekly_quota_minutes: Mapped[int | None]
    team_weekly_quota_minutes: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=now_utc)
    updated_at: Mapped[datetime] = mapped_column(default=now_utc, onupdate=now_utc)

    facility: Mapped[Facility] = relationship(back_populates="instruments")
    fields: Mapped[list[ResearchField]] = relationship(
        secondary=instrument_fields, order_by="ResearchField.id"
    )

    def __repr__(self) -> str:
        return f"<Instrument {self.asset_code}>"

    @property
    def field_ids(self) -> list[int]:
        return [f.id for f in self.fields]


POLICY_FIELDS = (
    "requires_approval",
    "requires_qualification",
    "slot_minutes",
    "min_minutes",
    "max_minutes",
    "lead_minutes",
    "horizon_days",
    "buffer_minutes",
    "late_cancel_notice_hours",
    "no_show_grace_minutes",
    "user_weekly_quota_minutes",
    "team_weekly_quota_minutes",
)
