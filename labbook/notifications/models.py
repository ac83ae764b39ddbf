"""Notification data.

* ``Notification``: one per recipient and event, shown in the in-app list. It stores the
  event's *kind* and parameters, not text, so it is rendered in the reader's language.
* ``Notification.mail_pending``: set in the same transaction as the change that caused
  the notification, so a rolled-back change sends nothing and a committed one is never
  lost. The delivery job composes it (labbook/notifications/compose.py) into an
  ``OutboxMessage`` before sending, which keeps rendering off the request.
* ``OutboxMessage``: the rendered mail (recipient's locale). The delivery job claims a
  message by a lease
  (``claimed_until``), marks it ``sent`` only after the SMTP server accepted it, and on
  failure schedules a retry with backoff until it gives up (``failed``, kept for admins).
* ``NotificationPreference``: which kinds a user gets by mail (no row: by mail).
* ``OnceMark``: "this was done for this object" (a reminder at an offset, a warning
  n days before expiry); the unique key makes a job's claim atomic, so a job that runs
  twice or concurrently acts once.
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


class OutboxState(str, enum.Enum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


OUTBOX_STATES = tuple(s.value for s in OutboxState)


class Notification(db.Model):
    __tablename__ = "notifications"
    __table_args__ = (
        sa.Index("ix_notifications_user_created", "user_id", "created_at"),
        # The delivery job's composing step looks only at the few rows still to be mailed.
        sa.Index(
            "ix_notifications_mail_pending", "id",
            sqlite_where=sa.text("mail_pending = 1"),
            postgresql_where=sa.text("mail_pending"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(sa.String(40))
    params: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    # The booking (or outage) the event is about, for a link; NULL for other events.
    reservation_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("reservations.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=now_utc)
    read_at: Mapped[datetime | None]
    # Still to be composed into mail (the recipient's preferences are checked then).
    mail_pending: Mapped[bool] = mapped_column(default=False, server_default=sa.false())

    user: Mapped[User] = relationship()


class OutboxMessage(db.Model):
    __tablename__ = "outbox_messages"
    __table_args__ = (
        sa.CheckConstraint("state IN ('pending', 'sent', 'failed')", name="state_known"),
        sa.CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        # The delivery job's claim looks only at pending rows that are due.
        sa.Index(
            "ix_outbox_messages_due", "next_attempt_at",
            sqlite_where=sa.text("state = 'pending'"),
            postgresql_where=sa.text("state = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    notification_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("notifications.id", ondelete="SET NULL"), index=True
    )
    recipient_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    to_address: Mapped[str] = mapped_column(sa.String(254))
    subject: Mapped[str] = mapped_column(sa.String(300))
    body_text: Mapped[str] = mapped_column(sa.Text)
    body_html: Mapped[str | None] = mapped_column(sa.Text)
    # An iCalendar attachment (the booking's .ics) when the event concerns one booking.
    ics: Mapped[str | None] = mapped_column(sa.Text)
    ics_filename: Mapped[str | None] = mapped_column(sa.String(120))
    # Globally unique Message-ID, fixed at creation: a retried delivery carries the same one.
    message_id: Mapped[str] = mapped_column(sa.String(255), unique=True)
    state: Mapped[str] = mapped_column(sa.String(16), default=OutboxState.PENDING.value)
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(default=now_utc)
    claimed_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(sa.String(1000))
    created_at: Mapped[datetime] = mapped_column(default=now_utc)
    sent_at: Mapped[datetime | None]

    recipient: Mapped[User | None] = relationship()
    notification: Mapped[Notification | None] = relationship()


class NotificationPreference(db.Model):
    """A user's choice for one kind of notification; no row means "send me mail"."""

    __tablename__ = "notification_preferences"

    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    by_email: Mapped[bool] = mapped_column(default=True, server_default=sa.true())


class OnceMark(db.Model):
    """``(kind, object_id, tag)`` happened once, e.g. ``("reminder", booking.id, "1440")``."""

    __tablename__ = "once_marks"
    __table_args__ = (sa.UniqueConstraint("kind", "object_id", "tag"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(40))
    object_id: Mapped[int]
    tag: Mapped[str] = mapped_column(sa.String(40))
    created_at: Mapped[datetime] = mapped_column(default=now_utc)
