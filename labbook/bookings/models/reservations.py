"""Slot holders: bookings and outages in ONE table, ``reservations``.

Why one table: the no-double-booking guarantee (SPEC section 4) must cover bookings *and*
outages. With both in one table a single PostgreSQL exclusion constraint enforces it:

    EXCLUDE USING gist (instrument_id WITH =, tstzrange(start_at, block_end, '[)') WITH &&)
    WHERE (state IN ('pending', 'confirmed', 'in_use', 'scheduled'))

``block_end`` is the end of the *blocked* interval: the booking's end plus the instrument's
buffer (stored, because ``timestamptz + interval`` is not immutable and so cannot appear in
a constraint), or an outage's end, or NULL for an unplanned outage whose end is not known
yet (an unbounded range). The constraint is created by a hand-written migration, because
autogenerate cannot see exclusion constraints; on SQLite the same rule is enforced by the
service's check-then-insert inside a ``BEGIN IMMEDIATE`` transaction (see labbook/db.py).
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from labbook.db import now_utc
from labbook.extensions import db

if TYPE_CHECKING:
    from labbook.auth.models import User
    from labbook.instruments.models import Instrument
    from labbook.teams.models import Account, Team


class BookingState(str, enum.Enum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    IN_USE = "in_use"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    NO_SHOW = "no_show"
    EXPIRED = "expired"


class OutageKind(str, enum.Enum):
    PREVENTIVE = "preventive"
    REPAIR = "repair"
    CALIBRATION = "calibration"
    CLOSURE = "closure"


BOOKING_STATES = tuple(s.value for s in BookingState)
HOLDING_BOOKING_STATES = ("pending", "confirmed", "in_use")
OUTAGE_STATES = ("scheduled", "cancelled")
# States that hold the slot; the exclusion constraint's WHERE clause lists exactly these.
ACTIVE_STATES = HOLDING_BOOKING_STATES + ("scheduled",)
EXCLUSION_NAME = "ex_reservations_no_overlap"


class BookingSeries(db.Model):
    """A recurring booking: the rule as entered, expanded in the facility's zone into one
    booking row per occurrence."""

    __tablename__ = "booking_series"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    instrument_id: Mapped[int] = mapped_column(sa.ForeignKey("instruments.id"), index=True)
    rule: Mapped[dict] = mapped_column(sa.JSON)
    timezone: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(default=now_utc)

    bookings: Mapped[list[Booking]] = relationship(
        back_populates="series", order_by="Booking.start_at"
    )


class Reservation(db.Model):
    """Common part of everything that can hold an instrument's time."""

    __tablename__ = "reservations"
    __table_args__ = (
        sa.CheckConstraint("kind IN ('booking', 'outage')", name="kind_known"),
        sa.CheckConstraint("end_at IS NULL OR end_at > start_at", name="end_after_start"),
        sa.CheckConstraint(
            "block_end IS NULL OR (end_at IS NOT NULL AND block_end >= end_at)",
            name="block_covers_booking",
        ),
        sa.CheckConstraint(
            "(kind = 'booking' AND state IN ('pending', 'confirmed', 'in_use', 'completed', "
            "'cancelled', 'rejected', 'no_show', 'expired') AND end_at IS NOT NULL "
            "AND block_end IS NOT NULL AND user_id IS NOT NULL AND team_id IS NOT NULL "
            "AND account_id IS NOT NULL) OR "
            "(kind = 'outage' AND state IN ('scheduled', 'cancelled') AND outage_kind IN "
            "('preventive', 'repair', 'calibration', 'closure'))",
            name="kind_columns",
        ),
        sa.Index("ix_reservations_instrument_span", "instrument_id", "start_at", "block_end"),
        # The overlap check only looks at slot holders; this partial index keeps it flat however
        # long an instrument's history grows (SQLite needs the states as literals to use it).
        sa.Index(
            "ix_reservations_active_span", "instrument_id", "start_at",
            sqlite_where=sa.text("state IN ('pending', 'confirmed', 'in_use', 'scheduled')"),
            postgresql_where=sa.text("state IN ('pending', 'confirmed', 'in_use', 'scheduled')"),
        ),
        sa.Index("ix_reservations_user_start", "user_id", "start_at"),
        # An imported closure is updated, not duplicated, when its calendar is re-imported.
        sa.Index(
            "uq_reservations_instrument_external_uid", "instrument_id", "external_uid",
            unique=True,
            sqlite_where=sa.text("external_uid IS NOT NULL"),
            postgresql_where=sa.text("external_uid IS NOT NULL"),
        ),
    )
    __mapper_args__ = {"polymorphic_on": "kind"}

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(16))
    instrument_id: Mapped[int] = mapped_column(sa.ForeignKey("instruments.id"))
    start_at: Mapped[datetime]
    end_at: Mapped[datetime | None]
    block_end: Mapped[datetime | None]
    state: Mapped[str] = mapped_column(sa.String(16), index=True)
    # Increases on every change; calendar clients use it to replace their copy.
    sequence: Mapped[int] = mapped_column(default=0, server_default="0")
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=now_utc)
    updated_at: Mapped[datetime] = mapped_column(default=now_utc, onupdate=now_utc)

    # -- booking columns (NULL for outages) ----------------------------------------------
    user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    team_id: Mapped[int | None] = mapped_column(sa.ForeignKey("teams.id"), index=True)
    account_id: Mapped[int | None] = mapped_column(sa.ForeignKey("accounts.id"), index=True)
    series_id: Mapped[int | None] = mapped_column(sa.ForeignKey("booking_series.id"), index=True)
    purpose: Mapped[str | None] = mapped_column(sa.String(500))
    assisted: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    buffer_minutes: Mapped[int] = mapped_column(default=0, server_default="0")
    late_cancel: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    state_changed_at: Mapped[datetime | None]
    state_changed_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    state_reason: Mapped[str | None] = mapped_column(sa.String(500))
    checked_in_at: Mapped[datetime | None]
    checked_out_at: Mapped[datetime | None]
    # Set when the system, not a person, closed the session (auto check-out): a facility
    # manager should look at it (real end time, billing).
    needs_review: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    # A walk-in: started on the spot at the instrument (kiosk or web), not booked ahead.
    walk_in: Mapped[bool] = mapped_column(default=False, server_default=sa.false())

    # -- outage columns (NULL for bookings) ----------------------------------------------
    outage_kind: Mapped[str | None] = mapped_column(sa.String(16))
    title: Mapped[str | None] = mapped_column(sa.String(200))
    # The UID of the iCalendar event an imported closure came from.
    external_uid: Mapped[str | None] = mapped_column(sa.String(255))
    # A preventive-maintenance window materialised from a plan, and its completion record.
    plan_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("maintenance_plans.id", ondelete="SET NULL"), index=True
    )
    completed_at: Mapped[datetime | None]
    completed_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    completion_notes: Mapped[str | None] = mapped_column(sa.Text)
    checklist_done: Mapped[list | None] = mapped_column(sa.JSON)

    instrument: Mapped[Instrument] = relationship()

    @property
    def holds_slot(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def duration(self) -> timedelta | None:
        return None if self.end_at is None else self.end_at - self.start_at


class Booking(Reservation):
    __mapper_args__ = {"polymorphic_identity": "booking"}

    user: Mapped[User] = relationship(foreign_keys=[Reservation.user_id])
    team: Mapped[Team] = relationship()
    account: Mapped[Account] = relationship()
    series: Mapped[BookingSeries | None] = relationship(back_populates="bookings")
    state_changed_by: Mapped[User | None] = relationship(
        foreign_keys=[Reservation.state_changed_by_id]
    )

    def __repr__(self) -> str:
        return f"<Booking {self.id} {self.state} {self.start_at:%Y-%m-%d %H:%M}>"

    @property
    def minutes(self) -> int:
        assert self.end_at is not None
        return int((self.end_at - self.start_at).total_seconds() // 60)

    def is_owner(self, user: User) -> bool:
        return user.id == self.user_id

    def can_see_details(self, user: User) -> bool:
        """Who booked and why is visible to the owner, the leads of the booking's team
        (SPEC: a PI sees the team's bookings), the facility's managers and admins."""
        return (
            self.is_owner(user)
            or (self.team_id is not None and user.leads_team(self.team_id))
            or user.manages_facility(self.instrument.facility_id)
        )

    def can_manage(self, user: User) -> bool:
        return user.manages_facility(self.instrument.facility_id)


class Outage(Reservation):
    __mapper_args__ = {"polymorphic_identity": "outage"}

    def __repr__(self) -> str:
        return f"<Outage {self.id} {self.outage_kind} {self.start_at:%Y-%m-%d %H:%M}>"
