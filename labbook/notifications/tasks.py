"""Scheduled jobs of labbook.notifications (run by labbook/scheduler in an app context)."""

from __future__ import annotations

from datetime import datetime

from labbook.db import now_utc
from labbook.extensions import db
from labbook.notifications.delivery import deliver_due


def deliver_outbox(now: datetime | None = None) -> int:
    """Compose the notifications marked for mail, then send the mail that is due (job
    ``deliver_outbox``, every 30 s). Safe to run twice or concurrently: each notification
    and each message is claimed atomically before it is composed or sent, and a message
    whose send failed waits for its backoff. Commits its own work, batch by batch.

    :returns: how many messages were delivered.
    :raises sqlalchemy.exc.SQLAlchemyError: when the database fails (after a rollback;
        messages claimed and not settled are retried once their lease runs out).
    """
    try:
        return deliver_due(now or now_utc()).sent
    except Exception:
        db.session.rollback()
        raise
