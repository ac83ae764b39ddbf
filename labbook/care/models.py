"""Equipment care: preventive-maintenance plans, fault reports with their triage notes,
and kiosk links (a tablet beside an instrument).

Maintenance windows and the outage a *down* fault opens are ``Outage`` rows in
``reservations`` (labbook/bookings/models/reservations.py), so they hold the instrument's
time under the same no-overlap guarantee as bookings; a plan's window carries ``plan_id``.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from labbook.db import now_utc
from labbook.extensions import db

if TYPE_CHECKING:
    from labbook.auth.models import User
    from labbook.bookings.models import Outage
    from labbook.instruments.models import Instrument


class PlanUnit(str, enum.Enum):
    DAYS = "days"
    WEEKS = "weeks"
    MONTHS = "months"
    USAGE_HOURS = "usage_hours"


class FaultSeverity(str, enum.Enum):
    COSMETIC = "cosmetic"
    DEGRADED = "degraded"
    DOWN = "down"


class FaultStatus(str, enum.Enum):
    OPEN = "open"
    INVESTIGATING = "investigating"
    WAITING_PARTS = "waiting_parts"
    RESOLVED = "resolved"


PLAN_UNITS = tuple(u.value for u in PlanUnit)
FAULT_SEVERITIES = tuple(s.value for s in FaultSeverity)
FAULT_STATUSES = tuple(s.value for s in FaultStatus)
OPEN_FAULT_STATUSES = ("open", "investigating", "waiting_parts")


class MaintenancePlan(db.Model):
    """Recurring preventive maintenance: every ``interval_count`` ``interval_unit`` (or
    every so many hours of use) a window of ``duration_minutes``, starting from
    ``first_start``; the scheduler materialises upcoming windows as outages."""

    __tablename__ = "maintenance_plans"
    __table_args__ = (
        sa.CheckConstraint(
            "interval_unit IN ('days', 'weeks', 'months', 'usage_hours')", name="unit_known"
        ),
        sa.CheckConstraint("interval_count > 0", name="interval_positive"),
        sa.CheckConstraint("duration_minutes > 0", name="duration_positive"),
        sa.CheckConstraint(
            "outage_kind IN ('preventive', 'calibration')", name="kind_known"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    instrument_id: Mapped[int] = mapped_column(
        sa.ForeignKey("instruments.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str] = mapped_column(sa.String(200))
    outage_kind: Mapped[str] = mapped_column(sa.String(16), default="preventive")
    interval_count: Mapped[int]
    interval_unit: Mapped[str] = mapped_column(sa.String(16))
    duration_minutes: Mapped[int]
    # The first window's start (UTC); later ones follow in the facility's zone.
    first_start: Mapped[datetime]
    checklist: Mapped[list[Any]] = mapped_column(sa.JSON, default=list)
    active: Mapped[bool] = mapped_column(default=True, server_default=sa.true())
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=now_utc)
    updated_at: Mapped[datetime] = mapped_column(default=now_utc, onupdate=now_utc)

    instrument: Mapped[Instrument] = relationship()


class FaultReport(db.Model):
    __tablename__ = "fault_reports"
    __table_args__ = (
        sa.CheckConstraint(
            "severity IN ('cosmetic', 'degraded', 'down')", name="severity_known"
        ),
        sa.CheckConstraint(
            "status IN ('open', 'investigating', 'waiting_parts', 'resolved')",
            name="status_known",
        ),
        sa.CheckConstraint(
            "(status = 'resolved') = (resolved_at IS NOT NULL)", name="resolved_when_resolved"
        ),
        sa.Index("ix_fault_reports_instrument_status", "instrument_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    instrument_id: Mapped[int] = mapped_column(sa.ForeignKey("instruments.id", ondelete="CASCADE"))
    reporter_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    severity: Mapped[str] = mapped_column(sa.String(16))
    status: Mapped[str] = mapped_column(sa.String(16), default=FaultStatus.OPEN.value)
    description: Mapped[str] = mapped_column(sa.Text)
    photo: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    photo_type: Mapped[str | None] = mapped_column(sa.String(60))
    # The unplanned outage a "down" report opened.
    outage_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("reservations.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=now_utc)
    updated_at: Mapped[datetime] = mapped_column(default=now_utc, onupdate=now_utc)
    resolved_at: Mapped[datetime | None]
    resolved_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))

    instrument: Mapped[Instrument] = relationship()
    reporter: Mapped[User | None] = relationship(foreign_keys=[reporter_id])
    outage: Mapped[Outage | None] = relationship()
    notes: Mapped[list[FaultNote]] = relationship(
        back_populates="fault", order_by="FaultNote.created_at", cascade="all, delete-orphan"
    )


class FaultNote(db.Model):
    """A triage step: a note and, when it changed, the new status."""

    __tablename__ = "fault_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    fault_id: Mapped[int] = mapped_column(
        sa.ForeignKey("fault_reports.id", ondelete="CASCADE"), index=True
    )
    author_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    status: Mapped[str | None] = mapped_column(sa.String(16))
    note: Mapped[str] = mapped_column(sa.Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=now_utc)

    fault: Mapped[FaultReport] = relationship(back_populates="notes")
    author: Mapped[User | None] = relationship()


class KioskToken(db.Model):
    """A kiosk link for an instrument's tablet: a secret URL (only its SHA-256 stored),
    created and revoked by the facility's managers. Users identify on it with their email
    and personal PIN."""

    __tablename__ = "kiosk_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    instrument_id: Mapped[int] = mapped_column(
        sa.ForeignKey("instruments.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(80), default="")
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    hint: Mapped[str] = mapped_column(sa.String(12))
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=now_utc)
    revoked_at: Mapped[datetime | None]

    instrument: Mapped[Instrument] = relationship()
