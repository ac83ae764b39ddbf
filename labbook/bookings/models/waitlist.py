"""The waitlist: users waiting for a taken interval. When it frees, the first waiter gets
an offer held for a while (``LABBOOK_WAITLIST_HOLD_MINUTES``); unanswered offers expire and
pass to the next waiter (the timed part runs in the scheduler)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from labbook.db import now_utc
from labbook.extensions import db

if TYPE_CHECKING:
    from labbook.auth.models import User
    from labbook.instruments.models import Instrument


class WaitlistState(str, enum.Enum):
    WAITING = "waiting"
    OFFERED = "offered"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class WaitlistEntry(db.Model):
    __tablename__ = "waitlist_entries"
    __table_args__ = (
        sa.CheckConstraint("end_at > start_at", name="end_after_start"),
        sa.CheckConstraint(
            "state IN ('waiting', 'offered', 'accepted', 'declined', 'expired', 'cancelled')",
            name="state_known",
        ),
        sa.Index("ix_waitlist_entries_instrument_state", "instrument_id", "state", "created_at"),
        sa.Index(
            "uq_waitlist_entries_live", "instrument_id", "user_id", "start_at", "end_at",
            unique=True,
            sqlite_where=sa.text("state IN ('waiting', 'offered')"),
            postgresql_where=sa.text("state IN ('waiting', 'offered')"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    instrument_id: Mapped[int] = mapped_column(sa.ForeignKey("instruments.id"))
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("accounts.id"))
    start_at: Mapped[datetime]
    end_at: Mapped[datetime]
    purpose: Mapped[str] = mapped_column(sa.String(500), default="")
    state: Mapped[str] = mapped_column(sa.String(16), default=WaitlistState.WAITING.value)
    created_at: Mapped[datetime] = mapped_column(default=now_utc)
    offered_at: Mapped[datetime | None]
    offer_expires_at: Mapped[datetime | None]
    booking_id: Mapped[int | None] = mapped_column(sa.ForeignKey("reservations.id"))

    user: Mapped[User] = relationship()
    instrument: Mapped[Instrument] = relationship()
