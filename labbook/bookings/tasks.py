"""The booking engine's scheduled jobs (SPEC section 5): thin functions the scheduler runs
inside an app context. Each lists what is due (labbook/bookings/timed.py), then handles
one item per transaction: one bad row is rolled back and logged and the others go on
(the next run retries it). Each returns how many items it handled.

Safe to run twice or in several processes at once (the units claim their work, see
timed.py) and catching up after downtime (they select "due and not done"). See
docs/jobs.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime

from labbook.bookings import timed
from labbook.db import now_utc, run_with_retry
from labbook.extensions import db

log = logging.getLogger(__name__)


def _listed(find: Callable[[datetime], list[int]], now: datetime) -> list[int]:
    """What is due, read in a transaction of its own (ended at once: the units lock).

    :raises Exception: when the query fails (the job fails and the scheduler records it).
    """
    try:
        due = find(now)
    except Exception:
        db.session.rollback()
        raise
    db.session.commit()
    return due


def _unit(job: str, item: object, work: Callable[[], bool | int]) -> int:
    """Run ``work`` in its own committed transaction (run again when PostgreSQL picks it
    as a deadlock victim); on any error roll it back, log it and count nothing."""
    try:
        return int(run_with_retry(work))
    except Exception:  # noqa: BLE001 - one bad item must not stop the others
        db.session.rollback()
        log.exception("%s: item %s failed; the next run tries again", job, item)
        return 0


def _each(
    job: str, items: Iterable[int], unit: Callable[[int, datetime], bool | int], now: datetime
) -> int:
    """``unit`` for every item, one transaction each; how many it handled."""
    return sum(_unit(job, item, lambda item=item: unit(item, now)) for item in items)


def send_reminders(now: datetime | None = None) -> int:
    """Booking reminders at ``LABBOOK_REMINDER_OFFSETS`` minutes before the start."""
    now = now or now_utc()
    return _each("booking_reminders", _listed(timed.due_reminders, now), timed.send_reminder, now)


def mark_no_shows(now: datetime | None = None) -> int:
    """Confirmed bookings not checked in within the grace period become ``no_show``."""
    now = now or now_utc()
    return _each("no_shows", _listed(timed.due_no_shows, now), timed.mark_no_show, now)


def auto_check_out(now: datetime | None = None) -> int:
    """Close sessions left open past their end plus ``LABBOOK_AUTO_CHECKOUT_MARGIN_MINUTES``."""
    now = now or now_utc()
    return _each(
        "auto_check_out", _listed(timed.due_check_outs, now), timed.auto_check_out, now
    )


def expire_pending(now: datetime | None = None) -> int:
    """Pending bookings not approved by their start become ``expired``."""
    now = now or now_utc()
    return _each("expire_pending", _listed(timed.due_expiries, now), timed.expire_booking, now)


def remind_approvers(now: datetime | None = None) -> int:
    """Remind managers of pending bookings starting within ``LABBOOK_APPROVAL_NOTICE_HOURS``."""
    now = now or now_utc()
    return _each(
        "approval_reminders", _listed(timed.due_approval_notices, now),
        timed.remind_approvers, now,
    )


def process_waitlists(now: datetime | None = None) -> int:
    """Expire unanswered offers, then offer freed time on each instrument with waiters;
    the count is expired entries plus new offers."""
    now = now or now_utc()
    expired = _unit("waitlists", "offers", lambda: timed.expire_waitlist_offers(now))
    instruments = _listed(timed.waitlisted_instruments, now)
    return expired + _each("waitlists", instruments, timed.offer_waitlist, now)


def qualification_expiry(now: datetime | None = None) -> int:
    """Warnings ``LABBOOK_QUALIFICATION_WARNING_DAYS`` days before a qualification expires,
    and one notice when it has expired."""
    now = now or now_utc()
    warned = _each(
        "qualification_expiry", _listed(timed.due_expiry_warnings, now), timed.warn_expiring, now
    )
    return warned + _each(
        "qualification_expiry", _listed(timed.due_expired_qualifications, now),
        timed.tell_expired, now,
    )
