"""The timed rules of the booking engine, as services with an explicit ``now``: what the
scheduler's jobs (labbook/bookings/tasks.py) do, one unit at a time.

Each job has two halves:

* ``due_*(now)`` lists the ids of what is due and not done yet ("due", never "due in the
  last few minutes"), so a job that did not run for hours catches up on its next run;
* a unit function handles one id and returns True when it acted. It re-reads its row under
  ``FOR UPDATE SKIP LOCKED`` with the state it expects (on PostgreSQL a row another worker
  or a request holds is skipped and picked up by the next run) and claims one-off work by
  inserting a unique ``OnceMark`` in the same transaction as the notification it sends.
  Running a unit twice, or in two processes at once, acts once.

Like every service: flush, never commit; the task commits each unit.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TypeVar

import sqlalchemy as sa
from flask import current_app

from labbook.bookings import notices, usage
from labbook.bookings.models import Booking, Qualification, WaitlistEntry
from labbook.bookings.services import transition
from labbook.bookings.waitlist import expire_offers, offer_freed_slots
from labbook.extensions import db
from labbook.instruments.models import Instrument
from labbook.notifications.models import OnceMark

T = TypeVar("T", Booking, Qualification)
AUTO_CHECKOUT_REASON = "closed automatically"


def _locked(model: type[T], object_id: int, *where: sa.ColumnElement[bool]) -> T | None:
    """The row, locked, if it still matches ``where`` and nobody else holds it."""
    return db.session.scalar(
        sa.select(model)
        .where(model.id == object_id, *where)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )


def _not_marked(kind: str, column: sa.ColumnElement[int], tag: str) -> sa.ColumnElement[bool]:
    return ~sa.exists().where(
        OnceMark.kind == kind, OnceMark.object_id == column, OnceMark.tag == tag
    )


def _claim_nearest(
    kind: str, object_id: int, due: Sequence[int], now: datetime
) -> int | None:
    """Claim every overdue step ``due`` (ascending) of one object; return the nearest one
    when this call claimed it, else None. Steps further away that are overdue too are
    marked done silently: after a gap only the nearest message goes out."""
    claimed = [step for step in due if notices.claim_once(kind, object_id, str(step), now)]
    return due[0] if claimed and claimed[0] == due[0] else None


# -- reminders ------------------------------------------------------------------------------


def reminder_offsets() -> list[int]:
    return sorted({int(o) for o in current_app.config["LABBOOK_REMINDER_OFFSETS"] if int(o) > 0})


def due_reminders(now: datetime) -> list[int]:
    """Confirmed, not started bookings with a reminder offset passed and not marked."""
    ids: set[int] = set()
    for offset in reminder_offsets():
        ids.update(db.session.scalars(
            sa.select(Booking.id).where(
                Booking.state == "confirmed",
                Booking.start_at > now,
                Booking.start_at <= now + timedelta(minutes=offset),
                _not_marked(notices.REMINDER, Booking.id, str(offset)),
            )
        ))
    return sorted(ids)


def send_reminder(booking_id: int, now: datetime) -> bool:
    """Remind the owner of one booking at the nearest overdue offset, once.

    No reminder for an offset whose moment had passed when the booking was confirmed (a
    booking made 30 minutes ahead gets neither the 24-hour nor the 1-hour reminder: its
    confirmation just told the owner); such offsets are marked done all the same.
    """
    booking = _locked(Booking, booking_id, Booking.state == "confirmed", Booking.start_at > now)
    if booking is None:
        return False
    due = [o for o in reminder_offsets() if booking.start_at - timedelta(minutes=o) <= now]
    if not due:
        return False
    nearest = _claim_nearest(notices.REMINDER, booking.id, due, now)
    confirmed_at = booking.state_changed_at or booking.created_at
    if nearest is None or booking.start_at - timedelta(minutes=nearest) < confirmed_at:
        return False
    notices.booking_reminder(booking, nearest, now)
    return True


# -- no-shows, forgotten check-outs, expiry -------------------------------------------------


def due_no_shows(now: datetime) -> list[int]:
    """Confirmed bookings whose start plus the instrument's no-show grace has passed."""
    rows = db.session.execute(
        sa.select(Booking.id, Booking.start_at, Instrument.no_show_grace_minutes)
        .join(Instrument, Instrument.id == Booking.instrument_id)
        .where(Booking.state == "confirmed", Booking.start_at <= now)
        .order_by(Booking.start_at, Booking.id)
    ).all()
    return [id_ for id_, start, grace in rows if start + timedelta(minutes=grace) <= now]


def mark_no_show(booking_id: int, now: datetime) -> bool:
    """A confirmed booking nobody checked in to by the end of the grace period becomes
    ``no_show``; that state does not hold the slot, so the rest of it is free again."""
    booking = _locked(Booking, booking_id, Booking.state == "confirmed")
    if booking is None:
        return False
    grace = booking.instrument.no_show_grace_minutes
    if booking.start_at + timedelta(minutes=grace) > now:
        return False
    transition(booking, "no_show", None, now, f"not checked in within {grace} minutes")
    notices.booking_no_show(booking, now)
    return True


def _checkout_margin() -> timedelta:
    return timedelta(minutes=current_app.config["LABBOOK_AUTO_CHECKOUT_MARGIN_MINUTES"])


def due_check_outs(now: datetime) -> list[int]:
    """Running sessions whose booked end plus the margin has passed."""
    return list(db.session.scalars(
        sa.select(Booking.id)
        .where(Booking.state == "in_use", Booking.end_at <= now - _checkout_margin())
        .order_by(Booking.end_at, Booking.id)
    ))


def auto_check_out(booking_id: int, now: datetime) -> bool:
    """Close a forgotten session at its *booked* end (not now: the user most likely left
    then), flag it for a manager's review and tell the owner and the managers."""
    booking = _locked(
        Booking, booking_id, Booking.state == "in_use", Booking.end_at <= now - _checkout_margin()
    )
    if booking is None:
        return False
    booking.checked_out_at = booking.end_at
    booking.needs_review = True
    transition(booking, "completed", None, now, AUTO_CHECKOUT_REASON)
    notices.booking_auto_checked_out(booking, now)
    return True


def due_expiries(now: datetime) -> list[int]:
    """Pending bookings whose start has come without approval."""
    return list(db.session.scalars(
        sa.select(Booking.id)
        .where(Booking.state == "pending", Booking.start_at <= now)
        .order_by(Booking.start_at, Booking.id)
    ))


def expire_booking(booking_id: int, now: datetime) -> bool:
    booking = _locked(Booking, booking_id, Booking.state == "pending", Booking.start_at <= now)
    if booking is None:
        return False
    usage.expire_booking(booking, now)
    return True


# -- approvers ------------------------------------------------------------------------------


def _approval_window() -> timedelta:
    return timedelta(hours=current_app.config["LABBOOK_APPROVAL_NOTICE_HOURS"])


def due_approval_notices(now: datetime) -> list[int]:
    """Pending bookings starting within the notice window, not reminded about yet."""
    return list(db.session.scalars(
        sa.select(Booking.id)
        .where(
            Booking.state == "pending",
            Booking.start_at > now,
            Booking.start_at <= now + _approval_window(),
            _not_marked(notices.APPROVAL_NOTICE, Booking.id, "1"),
        )
        .order_by(Booking.start_at, Booking.id)
    ))


def remind_approvers(booking_id: int, now: datetime) -> bool:
    """One more ``approval_needed`` to the facility's managers when a pending booking comes
    within the window, once; not when it became pending inside the window (the managers
    were asked at that moment)."""
    booking = _locked(Booking, booking_id, Booking.state == "pending", Booking.start_at > now)
    if booking is None or booking.start_at - _approval_window() > now:
        return False
    if not notices.claim_once(notices.APPROVAL_NOTICE, booking.id, "1", now):
        return False
    pending_since = booking.state_changed_at or booking.created_at
    if pending_since >= booking.start_at - _approval_window():
        return False
    notices.approval_reminder(booking, now)
    return True


# -- waitlists ------------------------------------------------------------------------------


def expire_waitlist_offers(now: datetime) -> int:
    """End unanswered offers (their users are told) and entries whose time has begun."""
    return len(expire_offers(now))


def waitlisted_instruments(now: datetime) -> list[int]:
    return list(db.session.scalars(
        sa.select(WaitlistEntry.instrument_id)
        .where(WaitlistEntry.state == "waiting", WaitlistEntry.start_at > now)
        .distinct()
        .order_by(WaitlistEntry.instrument_id)
    ))


def offer_waitlist(instrument_id: int, now: datetime) -> int:
    """Offer the instrument's freed time to its waiters (each offer is notified)."""
    instrument = db.session.get(Instrument, instrument_id)
    return 0 if instrument is None else len(offer_freed_slots(instrument, now))


# -- qualifications -------------------------------------------------------------------------


def warning_days() -> list[int]:
    days = current_app.config["LABBOOK_QUALIFICATION_WARNING_DAYS"]
    return sorted({int(d) for d in days if int(d) > 0})


def _live_at(now: datetime) -> tuple[sa.ColumnElement[bool], ...]:
    return (Qualification.revoked_at.is_(None), Qualification.expires_at > now)


def due_expiry_warnings(now: datetime) -> list[int]:
    """Live qualifications with a warning moment passed and not marked."""
    ids: set[int] = set()
    for days in warning_days():
        ids.update(db.session.scalars(
            sa.select(Qualification.id).where(
                *_live_at(now),
                Qualification.expires_at <= now + timedelta(days=days),
                _not_marked(notices.QUALIFICATION_EXPIRING, Qualification.id, str(days)),
            )
        ))
    return sorted(ids)


def warn_expiring(qualification_id: int, now: datetime) -> bool:
    """Warn the holder at the nearest overdue warning, once; not for a warning moment that
    had passed when the qualification was granted (such warnings are marked done)."""
    qualification = _locked(Qualification, qualification_id, *_live_at(now))
    if qualification is None or qualification.expires_at is None:
        return False
    expires = qualification.expires_at
    due = [d for d in warning_days() if expires - timedelta(days=d) <= now]
    if not due:
        return False
    nearest = _claim_nearest(notices.QUALIFICATION_EXPIRING, qualification.id, due, now)
    if nearest is None or expires - timedelta(days=nearest) < qualification.granted_at:
        return False
    notices.qualification_expiring(qualification, nearest, now)
    return True


def due_expired_qualifications(now: datetime) -> list[int]:
    return list(db.session.scalars(
        sa.select(Qualification.id).where(
            Qualification.revoked_at.is_(None),
            Qualification.expires_at <= now,
            _not_marked(notices.QUALIFICATION_EXPIRED, Qualification.id, "1"),
        ).order_by(Qualification.expires_at, Qualification.id)
    ))


def tell_expired(qualification_id: int, now: datetime) -> bool:
    """Tell the holder once that the qualification has expired. Nothing else changes:
    ``Qualification.is_live`` already ignores it, new bookings are refused, and the
    holder's upcoming bookings stay (the message counts them; managers see the lapse among
    the approval warnings)."""
    qualification = _locked(
        Qualification, qualification_id,
        Qualification.revoked_at.is_(None), Qualification.expires_at <= now,
    )
    if qualification is None:
        return False
    if not notices.claim_once(notices.QUALIFICATION_EXPIRED, qualification.id, "1", now):
        return False
    notices.qualification_expired(qualification, upcoming_bookings(qualification, now), now)
    return True


def upcoming_bookings(qualification: Qualification, now: datetime) -> int:
    """The holder's pending or confirmed bookings after ``now`` that this qualification
    covered (on its instrument, or on any instrument of its category)."""
    stmt = sa.select(sa.func.count(Booking.id)).where(
        Booking.user_id == qualification.user_id,
        Booking.state.in_(("pending", "confirmed")),
        Booking.start_at > now,
    )
    if qualification.instrument_id is not None:
        stmt = stmt.where(Booking.instrument_id == qualification.instrument_id)
    else:
        stmt = stmt.join(Instrument, Instrument.id == Booking.instrument_id).where(
            Instrument.category == qualification.category
        )
    return int(db.session.scalar(stmt) or 0)
