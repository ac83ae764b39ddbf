"""A calendar feed is a secret URL. Only the SHA-256 of its token is stored (like API
tokens); revoking sets ``revoked_at`` and the URL then answers 404. Regenerating revokes
the old feed and creates a new one with the same scope."""

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


class FeedScope(str, enum.Enum):
    USER = "user"
    TEAM = "team"
    INSTRUMENT = "instrument"
    FACILITY = "facility"


FEED_SCOPES = tuple(s.value for s in FeedScope)


class CalendarFeed(db.Model):
    __tablename__ = "calendar_feeds"
    __table_args__ = (
        sa.CheckConstraint(
            "scope IN ('user', 'team', 'instrument', 'facility')", name="scope_known"
        ),
        sa.Index("ix_calendar_feeds_owner", "owner_id", "revoked_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Who created the feed; the feed shows what this user may see, and dies with the account.
    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(sa.String(16))
    # users.id / teams.id / instruments.id / facilities.id according to ``scope``.
    target_id: Mapped[int]
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    hint: Mapped[str] = mapped_column(sa.String(12))
    created_at: Mapped[datetime] = mapped_column(default=now_utc)
    revoked_at: Mapped[datetime | None]

    owner: Mapped[User] = relationship()

    @property
    def active(self) -> bool:
        return self.revoked_at is None
