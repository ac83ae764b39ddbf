"""Qualifications: a user may use an instrument (or every instrument of a category).

``advanced`` holders may also book outside the facility's staffed hours. At most one live
(unrevoked) qualification exists per user and instrument, and per user and category:
partial unique indexes, so the database refuses duplicates.
"""

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


class QualificationLevel(str, enum.Enum):
    BASIC = "basic"
    ADVANCED = "advanced"


class Qualification(db.Model):
    __tablename__ = "qualifications"
    __table_args__ = (
        sa.CheckConstraint(
            "(instrument_id IS NULL) <> (category IS NULL)", name="instrument_or_category"
        ),
        sa.CheckConstraint("level IN ('basic', 'advanced')", name="level_known"),
        sa.Index(
            "uq_qualifications_live_instrument",
            "user_id",
            "instrument_id",
            unique=True,
            sqlite_where=sa.text("revoked_at IS NULL AND instrument_id IS NOT NULL"),
            postgresql_where=sa.text("revoked_at IS NULL AND instrument_id IS NOT NULL"),
        ),
        sa.Index(
            "uq_qualifications_live_category",
            "user_id",
            "category",
            unique=True,
            sqlite_where=sa.text("revoked_at IS NULL AND category IS NOT NULL"),
            postgresql_where=sa.text("revoked_at IS NULL AND category IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    instrument_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("instruments.id", ondelete="CASCADE"), index=True
    )
    category: Mapped[str | None] = mapped_column(sa.String(80))
    level: Mapped[str] = mapped_column(sa.String(16), default=QualificationLevel.BASIC.value)
    granted_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    granted_at: Mapped[datetime] = mapped_column(default=now_utc)
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    revoked_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    note: Mapped[str | None] = mapped_column(sa.String(500))

    user: Mapped[User] = relationship(foreign_keys=[user_id])
    instrument: Mapped[Instrument | None] = relationship()

    def is_live(self, at: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or at < self.expires_at)


class QualificationRequest(db.Model):
    """A researcher asks to be trained on / qualified for an instrument."""

    __tablename__ = "qualification_requests"
    __table_args__ = (
        sa.CheckConstraint("state IN ('open', 'granted', 'declined')", name="state_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    instrument_id: Mapped[int] = mapped_column(
        sa.ForeignKey("instruments.id", ondelete="CASCADE"), index=True
    )
    message: Mapped[str] = mapped_column(sa.String(1000), default="")
    state: Mapped[str] = mapped_column(sa.String(16), default="open")
    created_at: Mapped[datetime] = mapped_column(default=now_utc)
    decided_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    decided_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(foreign_keys=[user_id])
    instrument: Mapped[Instrument] = relationship()
