"""Who hears about what happens to a booking. The booking services call these inside
their transaction; labbook/notifications/services.py queues the mail in the same one, so a
change that rolls back tells nobody and a committed one is never lost.

The rules, in one place:

* nobody is told about their own action (an owner who cancels or moves their booking, a
  manager acting on their own booking), except the receipt a researcher gets for a booking
  they create (``booking_confirmed``/``booking_pending``, with the ``.ics``);
* the facility's managers (``Facility.managers`` holding the facility-manager role; the
  admins when a facility has none) hear about bookings that need their approval and about
  sessions the system closed;
* a recurring series is one event: inside ``series_batch()`` the per-booking notices are
  held back and the series code sends one notice for the whole series.

The "done once" marks of the timed jobs (``OnceMark``) are claimed here too, because a
booking moved to another time must have its reminders armed again.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from labbook.auth.models import Role, User, UserRole
from labbook.bookings.models import Booking, Reservation
from labbook.extensions import db
from labbook.notifications.models import Notification, OnceMark
from labbook.notifications.services import notify, notify_all

if TYPE_CHECKING:
    from labbook.bookings.models import BookingSeries, Qualification, WaitlistEntry
    from labbook.instruments.models import Instrument

REMINDER = "reminder"
APPROVAL_NOTICE = "approval_notice"
QUALIFICATION_EXPIRING = "qualification_expiring"
QUALIFICATION_EXPIRED = "qualification_expired"
LOCAL_FORMAT = "%Y-%m-%d %H:%M"

_in_series: ContextVar[bool] = ContextVar("labbook_series_notices", default=False)


@contextmanager
def series_batch() -> Iterator[None]:
    """Hold back per-booking notices while a whole series is created or cancelled; the
    caller sends one notice for the series afterwards (``series_created``,
    ``series_cancelled``)."""
    token = _in_series.set(True)
    try:
        yield
    finally:
        _in_series.reset(token)


def in_series() -> bool:
    return _in_series.get()


# -- parameters -----------------------------------------------------------------------------


def local_time(moment: datetime | None, zone: str) -> str:
    """``moment`` on the facility's clock, as messages show it ("" for none)."""
    return moment.astimezone(ZoneInfo(zone)).strftime(LOCAL_FORMAT) if moment else ""


def booking_params(reservation: Reservation, **extra: Any) -> dict[str, Any]:
    """What a message about ``reservation`` needs, frozen at the time of the event (local
    times in the facility's zone, so the text reads as the facility's clock)."""
    instrument = reservation.instrument
    zone = instrument.facility.timezone
    params: dict[str, Any] = {
        "booking_id": reservation.id,
        "instrument": instrument.name,
        "instrument_id": instrument.id,
        "facility": instrument.facility.name,
        "timezone": zone,
        "start": local_time(reservation.start_at, zone),
        "end": local_time(reservation.end_at, zone),
        "state": reservation.state,
    }
    if isinstance(reservation, Booking):
        params["user"] = reservation.user.name
    if getattr(reservation, "state_reason", None):
        params["reason"] = reservation.state_reason
    params.update(extra)
    return params


def notify_owner(
    reservation: Reservation, kind: str, now: datetime | None = None, **extra: Any
) -> Notification:
    """Tell the booking's owner about ``kind``."""
    return notify(
        reservation.user, kind, reservation=reservation,
        params=booking_params(reservation, **extra), now=now,
    )


def tell_owner(
    booking: Booking, kind: str, actor: User | None, now: datetime, **extra: Any
) -> Notification | None:
    """``notify_owner`` unless the owner did it themself or a series speaks for it."""
    if in_series() or (actor is not None and booking.is_owner(actor)):
        return None
    return notify_owner(booking, kind, now, **extra)


def managers_of(instrument: Instrument, exclude: User | None = None) -> list[User]:
    """The active managers of the instrument's facility (those holding the role), or the
    active admins when the facility has none: someone must be able to decide."""
    people = [
        u for u in instrument.facility.managers
        if u.active and u.has_role(Role.FACILITY_MANAGER)
    ]
    if not people:
        people = list(db.session.scalars(
            sa.select(User).join(UserRole)
            .where(UserRole.role == Role.ADMIN.value, User.active.is_(True))
            .order_by(User.id)
        ))
    return [u for u in people if exclude is None or u.id != exclude.id]


def tell_managers(
    booking: Booking, kind: str, actor: User | None, now: datetime, **extra: Any
) -> list[Notification]:
    """Notify the facility's managers about ``booking`` (not the one who acted)."""
    return notify_all(
        managers_of(booking.instrument, exclude=actor), kind, reservation=booking,
        params=booking_params(booking, **extra), now=now,
    )


# -- booking events (called by the services) -------------------------------------------------


def booking_created(booking: Booking, privileged: bool, now: datetime) -> None:
    """A receipt for the owner; a pending booking also goes to the managers. A manager
    booking on their own facility (``privileged``, always confirmed) is told nothing."""
    if in_series():
        return
    if booking.state == "pending":
        notify_owner(booking, "booking_pending", now)
        tell_managers(booking, "approval_needed", booking.user, now)
    elif not privileged:
        notify_owner(booking, "booking_confirmed", now)


def booking_approved(actor: User, booking: Booking, now: datetime) -> None:
    tell_owner(booking, "booking_confirmed", actor, now)


def booking_rejected(actor: User, booking: Booking, now: datetime) -> None:
    tell_owner(booking, "booking_rejected", actor, now)


def booking_cancelled(actor: User, booking: Booking, now: datetime) -> None:
    """Only a cancellation by someone else (a manager) is news to the owner."""
    tell_owner(booking, "booking_cancelled", actor, now)


def booking_rescheduled(
    actor: User, booking: Booking, before: tuple[datetime, datetime | None], now: datetime,
    back_to_pending: bool,
) -> None:
    """Tell the owner when someone else moved the booking; ask the managers again when the
    owner's change sent it back to approval; re-arm the timers when the start moved.

    ``before``: the (start, end) the booking had.
    """
    old_start, old_end = before
    if booking.start_at != old_start:
        restart_timers(booking, now)
    zone = booking.instrument.facility.timezone
    tell_owner(
        booking, "booking_rescheduled", actor, now,
        old_start=local_time(old_start, zone), old_end=local_time(old_end, zone),
    )
    if back_to_pending:
        tell_managers(booking, "approval_needed", actor, now)


def booking_expired(booking: Booking, now: datetime) -> None:
    notify_owner(booking, "booking_expired", now)


def booking_no_show(booking: Booking, now: datetime) -> None:
    notify_owner(booking, "no_show", now)


def booking_auto_checked_out(booking: Booking, now: datetime) -> None:
    """The owner learns their session was closed at its booked end; the managers, who must
    review it (``needs_review``: real end time, billing), get the same notice."""
    notify_owner(booking, "auto_checkout", now)
    tell_managers(booking, "auto_checkout", booking.user, now)


def booking_reminder(booking: Booking, offset: int, now: datetime) -> Notification:
    return notify_owner(booking, "reminder", now, minutes_before=offset)


def approval_reminder(booking: Booking, now: datetime) -> list[Notification]:
    return tell_managers(booking, "approval_needed", None, now, reminder=True)


# -- series ---------------------------------------------------------------------------------


def _series_params(series: BookingSeries, bookings: list[Booking], **extra: Any) -> dict:
    first, last = bookings[0], bookings[-1]
    zone = first.instrument.facility.timezone
    return booking_params(
        first, series_id=series.id, count=len(bookings),
        first_start=local_time(first.start_at, zone), last_start=local_time(last.start_at, zone),
        **extra,
    )


def series_created(
    user: User, series: BookingSeries, bookings: list[Booking], privileged: bool, now: datetime
) -> None:
    """One receipt (and one approval request) for a whole series. It carries no ``.ics``:
    one occurrence's event would misstate a series (calendar feeds show them all)."""
    if not bookings:
        return
    params = _series_params(series, bookings)
    if bookings[0].state == "pending":
        notify(user, "booking_pending", params=params, now=now)
        notify_all(managers_of(bookings[0].instrument, exclude=user), "approval_needed",
                   params=params, now=now)
    elif not privileged:
        notify(user, "booking_confirmed", params=params, now=now)


def bookings_approved(actor: User, bookings: list[Booking], now: datetime) -> None:
    """After a bulk approval held back per-booking notices (``series_batch``): one
    ``booking_confirmed`` per single booking, one per series for its approved occurrences."""
    groups: dict[tuple[str, int], list[Booking]] = {}
    for booking in sorted(bookings, key=lambda b: b.start_at):
        key = ("series", booking.series_id) if booking.series_id else ("booking", booking.id)
        groups.setdefault(key, []).append(booking)
    for (kind, _id), members in groups.items():
        first = members[0]
        if actor.id == first.user_id:
            continue
        if kind == "booking" or first.series is None:
            for booking in members:
                tell_owner(booking, "booking_confirmed", actor, now)
        else:
            notify(first.user, "booking_confirmed",
                   params=_series_params(first.series, members), now=now)


def series_cancelled(
    actor: User, series: BookingSeries, bookings: list[Booking], now: datetime
) -> None:
    """One notice when someone else cancelled (part of) the owner's series."""
    if not bookings or actor.id == series.user_id:
        return
    owner = bookings[0].user
    notify(owner, "booking_cancelled", params=_series_params(series, bookings), now=now)


# -- waitlist and qualifications --------------------------------------------------------------


def _entry_params(entry: WaitlistEntry) -> dict[str, Any]:
    instrument = entry.instrument
    zone = instrument.facility.timezone
    return {
        "entry_id": entry.id,
        "instrument": instrument.name,
        "instrument_id": instrument.id,
        "facility": instrument.facility.name,
        "timezone": zone,
        "start": local_time(entry.start_at, zone),
        "end": local_time(entry.end_at, zone),
        "offer_expires": local_time(entry.offer_expires_at, zone),
    }


def waitlist_offered(entry: WaitlistEntry, now: datetime) -> Notification:
    return notify(entry.user, "waitlist_offer", params=_entry_params(entry), now=now)


def waitlist_offer_expired(entry: WaitlistEntry, now: datetime) -> Notification:
    return notify(entry.user, "waitlist_expired", params=_entry_params(entry), now=now)


def qualification_params(qualification: Qualification, **extra: Any) -> dict[str, Any]:
    instrument = qualification.instrument
    zone = (
        instrument.facility.timezone if instrument is not None
        else current_app.config["LABBOOK_TIMEZONE"]
    )
    params: dict[str, Any] = {
        "qualification_id": qualification.id,
        "instrument": instrument.name if instrument is not None else qualification.category,
        "instrument_id": instrument.id if instrument is not None else None,
        "category": qualification.category,
        "level": qualification.level,
        "timezone": zone,
        "start": "",
        "expires": local_time(qualification.expires_at, zone),
    }
    params.update(extra)
    return params


def qualification_granted(actor: User, qualification: Qualification, now: datetime) -> None:
    """Tell the user (unless they granted it themself), and forget the expiry warnings of a
    previous grant: a renewed qualification is warned about again before its new expiry."""
    forget_marks((QUALIFICATION_EXPIRING, QUALIFICATION_EXPIRED), qualification.id)
    if actor.id != qualification.user_id:
        notify(qualification.user, "qualification_granted",
               params=qualification_params(qualification), now=now)


def qualification_expiring(qualification: Qualification, days: int, now: datetime) -> Notification:
    return notify(qualification.user, "qualification_expiring",
                  params=qualification_params(qualification, days_before=days), now=now)


def qualification_expired(
    qualification: Qualification, upcoming_bookings: int, now: datetime
) -> Notification:
    """``upcoming_bookings``: the holder's bookings the qualification covered; they stay."""
    return notify(
        qualification.user, "qualification_expired",
        params=qualification_params(qualification, upcoming_bookings=upcoming_bookings),
        now=now,
    )


# -- "done once" marks ------------------------------------------------------------------------


def claim_once(kind: str, object_id: int, tag: str, now: datetime) -> bool:
    """Insert the mark ``(kind, object_id, tag)``; True when this call inserted it. The
    unique key decides between concurrent claimers (the loser waits for the winner's
    commit on PostgreSQL and then finds the row); nothing is raised on a duplicate."""
    dialect = db.session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = (
        insert(OnceMark)
        .values(kind=kind, object_id=object_id, tag=tag, created_at=now)
        .on_conflict_do_nothing(index_elements=["kind", "object_id", "tag"])
        .returning(OnceMark.id)
    )
    return db.session.execute(stmt).first() is not None


def forget_marks(kinds: Iterable[str], object_id: int) -> None:
    db.session.execute(
        sa.delete(OnceMark).where(OnceMark.kind.in_(tuple(kinds)), OnceMark.object_id == object_id)
    )


def restart_timers(booking: Booking, now: datetime) -> None:
    """The booking starts at another time: its reminders and the approvers' notice count
    again, as for a booking made ``now`` (moments already past are marked done, so a move
    to the near future does not set off the 24-hour reminder at once)."""
    forget_marks((REMINDER, APPROVAL_NOTICE), booking.id)
    for offset in current_app.config["LABBOOK_REMINDER_OFFSETS"]:
        if booking.start_at - timedelta(minutes=offset) <= now:
            claim_once(REMINDER, booking.id, str(offset), now)
    hours = current_app.config["LABBOOK_APPROVAL_NOTICE_HOURS"]
    if booking.start_at - timedelta(hours=hours) <= now:
        claim_once(APPROVAL_NOTICE, booking.id, "1", now)
