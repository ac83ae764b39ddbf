"""Compose mail: turn notifications marked ``mail_pending`` into outbox messages.

``notify`` (services.py) only marks a notification for mail, inside the transaction of the
change that caused it; rendering (templates, the recipient's language, the booking's
``.ics``) would otherwise cost a request about as much as the rest of a booking. The
delivery job (delivery.py) calls ``compose_pending`` before it sends. Each batch:

1. **claims** notifications in one statement and clears their mark::

       UPDATE notifications SET mail_pending = false
       WHERE id IN (SELECT id FROM notifications WHERE mail_pending
                    ORDER BY id LIMIT :batch [FOR UPDATE SKIP LOCKED])
         AND mail_pending
       RETURNING id

   (PostgreSQL: concurrent runs skip each other's rows and re-check the mark on rows
   committed meanwhile; SQLite: ``BEGIN IMMEDIATE`` serializes them), so each notification
   is composed once;
2. checks what the recipient wants *now*: active, with an address, and this kind not
   turned off (``NotificationPreference``); the in-app notification stays either way;
3. renders the mail in the recipient's language, with the booking's ``.ics`` as the
   booking is at that moment (a booking changed again before its mail went out is
   described as it now is, with its current ``SEQUENCE``), and writes the
   ``OutboxMessage`` (Message-ID fixed here, dated when the notification was made);
4. commits claim and messages together: a crash before the commit composes them again.

A notification whose mail cannot be rendered (a programming error) is logged and skipped,
so it never blocks the others; it stays in the in-app list.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import joinedload

from labbook.auth.models import User
from labbook.extensions import db
from labbook.notifications import render
from labbook.notifications.models import Notification, NotificationPreference, OutboxMessage

log = logging.getLogger(__name__)


def claim_pending(batch: int) -> list[int]:
    """Clear the mark of up to ``batch`` notifications (oldest first); their ids."""
    due = (
        sa.select(Notification.id)
        .where(Notification.mail_pending == sa.true())
        .order_by(Notification.id)
        .limit(batch)
    )
    if db.session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    chosen = due.cte("due").prefix_with("MATERIALIZED")  # chosen once (see delivery.claim)
    stmt = (
        sa.update(Notification)
        .where(Notification.id.in_(sa.select(chosen.c.id)),
               Notification.mail_pending == sa.true())
        .values(mail_pending=False)
        .returning(Notification.id)
        .execution_options(synchronize_session=False)
    )
    return sorted(db.session.scalars(stmt).all())


def _turned_off(notes: list[Notification]) -> set[tuple[int, str]]:
    """``(user_id, kind)`` pairs whose mail the recipient turned off."""
    users = {note.user_id for note in notes}
    rows = db.session.execute(
        sa.select(NotificationPreference.user_id, NotificationPreference.kind).where(
            NotificationPreference.user_id.in_(users),
            NotificationPreference.by_email == sa.false(),
        )
    ).all()
    return {(user_id, kind) for user_id, kind in rows}


def wants_mail(recipient: User, note: Notification, off: set[tuple[int, str]]) -> bool:
    return bool(recipient.active and recipient.email) and (recipient.id, note.kind) not in off


def reservations_of(notes: list[Notification]) -> dict[int, Any]:
    """The bookings and outages the notes are about, with their instruments and facilities
    (what the mail and its ``.ics`` show), in one query for the whole batch."""
    from labbook.bookings.models import Reservation  # bookings imports notifications
    from labbook.instruments.models import Instrument

    ids = {note.reservation_id for note in notes if note.reservation_id is not None}
    if not ids:
        return {}
    return {row.id: row for row in db.session.scalars(
        sa.select(Reservation).where(Reservation.id.in_(ids))
        .options(joinedload(Reservation.instrument).joinedload(Instrument.facility)))}


def outbox_message(recipient: User, note: Notification, reservation: Any,
                   now: datetime) -> OutboxMessage:
    """The rendered mail for ``note`` about ``reservation`` (not added to the session)."""
    mail = render.render_mail(recipient, note, reservation)
    domain = current_app.config["LABBOOK_SMTP_SENDER"].rpartition("@")[2] or "labbook"
    return OutboxMessage(
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
        created_at=note.created_at,
    )


def compose_batch(now: datetime, batch: int) -> tuple[int, int]:
    """Claim, render and queue one batch, and commit.

    :returns: ``(claimed, queued)``: notifications taken, messages written.
    """
    ids = claim_pending(batch)
    if not ids:
        db.session.commit()
        return 0, 0
    notes = db.session.scalars(
        sa.select(Notification).where(Notification.id.in_(ids)).order_by(Notification.id)
        .options(joinedload(Notification.user))
    ).all()
    off = _turned_off(list(notes))
    reservations = reservations_of(list(notes))
    queued = 0
    for note in notes:
        if not wants_mail(note.user, note, off):
            continue
        try:
            message = outbox_message(note.user, note, reservations.get(note.reservation_id), now)
        except Exception:  # noqa: BLE001 - see the module docstring
            log.exception("could not compose the mail of notification %s (%s)",
                          note.id, note.kind)
            continue
        db.session.add(message)
        queued += 1
    db.session.commit()
    return len(ids), queued


def compose_pending(now: datetime, batch: int, max_batches: int = 20) -> int:
    """Compose batch after batch until none is left (or ``max_batches`` went; the next run
    goes on). :returns: how many outbox messages were written."""
    queued = 0
    for _round in range(max_batches):
        claimed, written = compose_batch(now, batch)
        queued += written
        if claimed < batch:
            break
    return queued
