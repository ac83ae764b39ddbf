"""Notify people. ``notify`` is called by the services *inside* the transaction of the
change that causes the notification: the in-app row and the outbox message commit or roll
back with that change, so nothing is sent for a change that did not happen and nothing is
lost for one that did. Delivery is the scheduler's job (labbook/notifications/tasks.py).

Like every service: flush, never commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from flask import current_app

from labbook.db import now_utc
from labbook.extensions import db
from labbook.notifications import render
from labbook.notifications.kinds import KINDS
from labbook.notifications.models import Notification, NotificationPreference, OutboxMessage

if TYPE_CHECKING:
    from labbook.auth.models import User
    from labbook.bookings.models import Reservation


def wants_mail(user: User, kind: str) -> bool:
    """Mail unless the user turned this kind off (the in-app list always gets it)."""
    choice = db.session.scalar(
        sa.select(NotificationPreference.by_email).where(
            NotificationPreference.user_id == user.id, NotificationPreference.kind == kind
        )
    )
    return True if choice is None else bool(choice)


def notify(
    recipient: User,
    kind: str,
    *,
    reservation: Reservation | None = None,
    params: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> Notification:
    """Record a ``kind`` notification for ``recipient`` and queue its mail (in the
    recipient's language, with the booking's ``.ics`` where the kind carries one) unless the
    recipient is inactive or turned mail for this kind off.

    :raises ValueError: for an unknown kind (a programming error, not user input).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}")
    now = now or now_utc()
    note = Notification(
        user_id=recipient.id,
        kind=kind,
        params=dict(params or {}),
        reservation_id=reservation.id if reservation is not None else None,
        created_at=now,
    )
    db.session.add(note)
    db.session.flush()
    if recipient.active and recipient.email and wants_mail(recipient, kind):
        queue_mail(recipient, note, reservation, now)
    return note


def notify_all(
    recipients: Iterable[User], kind: str, **kwargs: Any
) -> list[Notification]:
    """``notify`` each distinct recipient once."""
    seen: set[int] = set()
    notes = []
    for user in recipients:
        if user.id not in seen:
            seen.add(user.id)
            notes.append(notify(user, kind, **kwargs))
    return notes


def queue_mail(
    recipient: User, note: Notification, reservation: Reservation | None, now: datetime
) -> OutboxMessage:
    mail = render.render_mail(recipient, note, reservation)
    domain = current_app.config["LABBOOK_SMTP_SENDER"].rpartition("@")[2] or "labbook"
    message = OutboxMessage(
        notification_id=note.id,
        recipient_id=recipient.id,
        to_address=recipient.email,
        subject=mail.subject[:300],
        body_text=mail.text,
        body_html=mail.html,
        ics=mail.ics,
        ics_filename=mail.ics_filename,
        message_id=f"<{uuid.uuid4().hex}.{note.id}@{domain}>",
        state="pending",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    db.session.add(message)
    db.session.flush()
    return message
