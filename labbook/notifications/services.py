"""Notify people. ``notify`` is called by the services *inside* the transaction of the
change that causes the notification: the in-app row, marked for mail, commits or rolls
back with that change, so nothing is sent for a change that did not happen and nothing is
lost for one that did. Composing and delivering the mail is the scheduler's job
(labbook/notifications/compose.py, delivery.py, tasks.py).

The in-app list, the per-kind mail preferences and the admin's retry of an outbox message
live here too. Like every service: flush (and audit), never commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from flask_babel import gettext as _

from labbook import audit
from labbook.db import now_utc
from labbook.errors import ValidationError
from labbook.extensions import db
from labbook.notifications.kinds import KINDS
from labbook.notifications.models import (
    OUTBOX_STATES,
    Notification,
    NotificationPreference,
    OutboxMessage,
)

if TYPE_CHECKING:
    from labbook.auth.models import User
    from labbook.bookings.models import Reservation


def notify(
    recipient: User,
    kind: str,
    *,
    reservation: Reservation | None = None,
    params: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> Notification:
    """Record a ``kind`` notification for ``recipient``, marked for mail when the recipient
    is active and has an address. Nothing is rendered here: the delivery job composes the
    mail (labbook/notifications/compose.py) in the recipient's language, with the booking's
    ``.ics`` where the kind carries one, unless the recipient turned this kind off.

    :raises ValueError: for an unknown kind (a programming error, not user input).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}")
    note = Notification(
        user_id=recipient.id,
        kind=kind,
        params=dict(params or {}),
        reservation_id=reservation.id if reservation is not None else None,
        created_at=now or now_utc(),
        mail_pending=bool(recipient.active and recipient.email),
    )
    db.session.add(note)
    db.session.flush()
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


# -- the in-app list -----------------------------------------------------------------------


def notifications_for(user: User, unread_only: bool = False) -> sa.Select:
    """The user's notifications, newest first."""
    stmt = sa.select(Notification).where(Notification.user_id == user.id)
    if unread_only:
        stmt = stmt.where(Notification.read_at.is_(None))
    return stmt.order_by(Notification.created_at.desc(), Notification.id.desc())


def unread_count(user: User) -> int:
    """One COUNT query (the header's badge)."""
    return db.session.scalar(
        sa.select(sa.func.count(Notification.id)).where(
            Notification.user_id == user.id, Notification.read_at.is_(None)
        )
    ) or 0


def mark_read(note: Notification, now: datetime, read: bool = True) -> Notification:
    """Mark one notification read (keeping the first reading time) or unread again. The
    caller has checked that it is the user's own."""
    if not read:
        note.read_at = None
    elif note.read_at is None:
        note.read_at = now
    db.session.flush()
    return note


def mark_all_read(user: User, now: datetime) -> int:
    """Mark every unread notification of ``user`` read; returns how many."""
    result = db.session.execute(
        sa.update(Notification)
        .where(Notification.user_id == user.id, Notification.read_at.is_(None))
        .values(read_at=now)
        .execution_options(synchronize_session="fetch")
    )
    return int(result.rowcount or 0)


# -- preferences ---------------------------------------------------------------------------


def preferences(user: User) -> dict[str, bool]:
    """Every kind → "send me mail" (no row: yes)."""
    rows = db.session.execute(
        sa.select(NotificationPreference.kind, NotificationPreference.by_email).where(
            NotificationPreference.user_id == user.id
        )
    ).all()
    chosen = {kind: bool(by_email) for kind, by_email in rows}
    return {kind: chosen.get(kind, True) for kind in KINDS}


def set_preferences(user: User, choices: Mapping[str, bool]) -> dict[str, bool]:
    """Save the user's mail choice for each kind in ``choices`` (audited).

    :raises ValidationError: for a kind that does not exist (nothing is saved).
    """
    unknown = sorted(set(choices) - set(KINDS))
    if unknown:
        raise ValidationError(_("Unknown kind of notification."),
                              {kind: [_("Unknown kind of notification.")] for kind in unknown})
    before = preferences(user)
    for kind, by_email in choices.items():
        row = db.session.get(NotificationPreference, (user.id, kind))
        if row is None:
            db.session.add(NotificationPreference(user_id=user.id, kind=kind,
                                                  by_email=bool(by_email)))
        else:
            row.by_email = bool(by_email)
    db.session.flush()
    after = preferences(user)
    if after != before:
        changed = [kind for kind in KINDS if after[kind] != before[kind]]
        audit.record(user, "notifications.preferences", user,
                     before={k: before[k] for k in changed}, after={k: after[k] for k in changed})
    return after


# -- the outbox, for admins ----------------------------------------------------------------


def to_compose() -> int:
    """Notifications whose mail the delivery job has not composed yet."""
    return db.session.scalar(
        sa.select(sa.func.count(Notification.id)).where(Notification.mail_pending == sa.true())
    ) or 0


def outbox_counts() -> dict[str, int]:
    """How many messages are in each state."""
    rows = db.session.execute(
        sa.select(OutboxMessage.state, sa.func.count(OutboxMessage.id)).group_by(
            OutboxMessage.state
        )
    ).all()
    counts = {state: 0 for state in OUTBOX_STATES}
    counts.update({state: int(n) for state, n in rows})
    return counts


def outbox_messages(states: Iterable[str]) -> sa.Select:
    """Messages in ``states``: pending in the order they will go, others newest first."""
    states = list(states)
    stmt = sa.select(OutboxMessage).where(OutboxMessage.state.in_(states))
    if states == ["pending"]:
        return stmt.order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
    return stmt.order_by(OutboxMessage.id.desc())


def retry_message(actor: User, message: OutboxMessage, now: datetime) -> OutboxMessage:
    """Put a failed (or waiting) message back in the queue, due now, with its attempts
    reset (audited). A claim held by a delivery run in progress is left alone, so that run
    still decides the outcome of its own send and the message is never sent twice at once.

    :raises ValidationError: for a message that was already sent.
    """
    if message.state == "sent":
        raise ValidationError(_("This message was already sent."),
                              {"state": [_("This message was already sent.")]})
    fields = ("state", "attempts", "next_attempt_at", "last_error")
    before = audit.snapshot(message, fields)
    message.state = "pending"
    message.attempts = 0
    message.next_attempt_at = now
    message.last_error = None
    db.session.flush()
    audit.record(actor, "outbox.retry", message, before=before,
                 after=audit.snapshot(message, fields))
    return message
