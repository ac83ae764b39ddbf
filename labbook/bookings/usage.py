"""Using a booking: check-in and check-out, expiring unapproved bookings, and changing a
booking's purpose. The state machine and locking are those of labbook/bookings/services.py."""
from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _

from labbook import audit
from labbook.auth.models import User
from labbook.bookings import notices
from labbook.bookings.errors import BookingRefused, NotAllowed
from labbook.bookings.models import Booking, Reservation
from labbook.bookings.models.reservations import HOLDING_BOOKING_STATES
from labbook.bookings.services import clean_purpose, lock_booking, transition
from labbook.bookings.slots import overlapping
from labbook.db import now_utc
from labbook.extensions import db


def check_in(actor: User, booking: Booking, now: datetime | None = None) -> Booking:
    """Start using a confirmed booking, from a few minutes before its start until its end.

    :raises NotAllowed: unless owner or manager. :raises BookingRefused: outside the window.
    """
    lock_booking(booking)
    now = now or now_utc()
    if not (booking.is_owner(actor) or booking.can_manage(actor)):
        raise NotAllowed("owner", _("Only the booking's owner or a facility manager may check in."))
    early = timedelta(minutes=current_app.config["LABBOOK_CHECKIN_EARLY_MINUTES"])
    if booking.state == "confirmed" and not (booking.start_at - early <= now < booking.end_at):
        raise BookingRefused(
            "check_in_window",
            _(
                "Check-in opens %(n)d minutes before the start and closes at the end.",
                n=int(early.total_seconds() // 60),
            ),
            "state",
        )
    transition(booking, "in_use", actor, now)
    booking.checked_in_at = now
    return booking


def check_out(actor: User, booking: Booking, now: datetime | None = None) -> Booking:
    """Finish a running booking; the rest of its slot is free again. The real end is
    recorded even when the session ran past its booked end; when it ran over into the next
    slot holder, the transition's reason says so (see ``overrun_into``), for the message
    and for the facility's review of usage.

    :raises NotAllowed: unless owner or manager. :raises BookingRefused: when not running.
    """
    lock_booking(booking)
    now = now or now_utc()
    if not (booking.is_owner(actor) or booking.can_manage(actor)):
        raise NotAllowed(
            "owner", _("Only the booking's owner or a facility manager may check out.")
        )
    reason = OVERRUN_REASON if overrun_into(booking, now) is not None else None
    transition(booking, "completed", actor, now, reason)
    booking.checked_out_at = now
    return booking


OVERRUN_REASON = "ran over into the next booking"


def overrun_into(booking: Booking, end: datetime) -> Reservation | None:
    """The first slot holder (booking or outage) that started after ``booking``'s booked end
    and before ``end``, the session's real end: what the session ran over into, if any."""
    if end <= booking.end_at:
        return None
    clash = overlapping(booking.instrument_id, booking.end_at, end, booking.id)
    started = [r for r in clash if booking.end_at <= r.start_at < end]
    return started[0] if started else None


def expire_pending(now: datetime | None = None) -> list[Booking]:
    """Pending bookings whose start has come without approval become ``expired``. Safe to
    run twice: only still-pending rows are touched."""
    now = now or now_utc()
    rows = db.session.scalars(
        sa.select(Booking)
        .where(Booking.state == "pending", Booking.start_at <= now)
        .with_for_update(skip_locked=True)
    ).all()
    for booking in rows:
        expire_booking(booking, now)
    return list(rows)


def expire_booking(booking: Booking, now: datetime) -> Booking:
    """Mark one pending booking ``expired`` (its start came without approval) and tell its
    owner. The caller has locked the row."""
    transition(booking, "expired", None, now, "not approved before the start")
    notices.booking_expired(booking, now)
    return booking


def change_purpose(actor: User, booking: Booking, purpose: str) -> Booking:
    """Change what an upcoming or running booking is for (owner or facility manager);
    audited, and ``sequence`` increases so calendars pick the change up.

    :raises NotAllowed: for anyone else. :raises BookingRefused: for a finished booking.
    """
    if not (booking.is_owner(actor) or booking.can_manage(actor)):
        raise NotAllowed("owner", _("Only the booking's owner or a facility manager may "
                                    "change it."))
    if booking.state not in HOLDING_BOOKING_STATES:
        raise BookingRefused("state", _("Only upcoming or running bookings can be changed."),
                             "state")
    purpose = clean_purpose(purpose)
    if purpose != (booking.purpose or ""):
        before = {"purpose": booking.purpose}
        booking.purpose = purpose
        booking.sequence += 1
        db.session.flush()
        audit.record(actor, "booking.update", booking, before=before, after={"purpose": purpose})
    return booking
