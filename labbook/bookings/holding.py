"""Holding an instrument's time: the overlap check, the flush where the database has the
last word, and the conflict answer (the clashing intervals and nearby alternatives). See
labbook/bookings/slots.py for the two-layer guarantee."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask_babel import gettext as _

from labbook.auth.models import User
from labbook.billing.lock import ensure_open
from labbook.bookings import rules, slots
from labbook.bookings.errors import BookingConflict
from labbook.bookings.models import Booking, Reservation
from labbook.extensions import db
from labbook.instruments.models import Instrument

EXCLUSION_VIOLATION = "23P01"
# Outages (outages.py) still flush in a SAVEPOINT, because an imported closure may also hit
# the unique external UID: on these states they roll it back and check again.
RECHECK_STATES = {EXCLUSION_VIOLATION, "40P01", "40001"}
FLUSH_ATTEMPTS = 3


def local_iso(instrument: Instrument, moment: datetime) -> str:
    """ISO 8601 with the facility's offset, as every answer about an instrument's time."""
    return rules.local(instrument, moment).isoformat()


def describe_conflicts(rows: list[Reservation], viewer: User) -> list[dict[str, Any]]:
    """The clashing blocked intervals; who and why only where ``viewer`` may see them."""
    out = []
    for row in rows:
        item: dict[str, Any] = {
            "start": local_iso(row.instrument, row.start_at),
            "end": local_iso(row.instrument, row.block_end) if row.block_end else None,
            "kind": row.kind,
        }
        if isinstance(row, Booking) and row.can_see_details(viewer):
            item.update(booking_id=row.id, user=row.user.name, purpose=row.purpose, state=row.state)
        elif row.kind == "outage":
            item.update(outage_kind=row.outage_kind, title=row.title)
        out.append(item)
    return out


def alternatives(
    instrument: Instrument,
    user: User,
    start: datetime,
    end: datetime,
    now: datetime,
    exclude_id: int | None = None,
    privileged: bool = False,
) -> list[dict[str, str]]:
    """Up to three free intervals of the same length, nearest to ``start`` first, that this
    user could book (lead time, horizon, staffed hours)."""
    step = timedelta(minutes=instrument.slot_minutes)
    buffer = timedelta(minutes=instrument.buffer_minutes)
    earliest = now + timedelta(minutes=0 if privileged else instrument.lead_minutes)
    latest = now + timedelta(days=instrument.horizon_days)
    window = timedelta(days=14)
    busy = slots.busy_intervals(instrument.id, start - window, end + window + buffer, exclude_id)
    qualification = rules.live_qualification(user, instrument, now)
    advanced = privileged or (qualification is not None and qualification.level == "advanced")

    def acceptable(s: datetime, e: datetime) -> bool:
        return advanced or rules.within_staffed_hours(instrument, s, e)

    found = slots.nearest_free(
        busy,
        start,
        end - start,
        buffer,
        step,
        earliest,
        latest,
        acceptable,
        max_steps=int(window / step),
    )
    return [{"start": local_iso(instrument, s), "end": local_iso(instrument, e)} for s, e in found]


def refuse_conflict(
    instrument: Instrument,
    user: User,
    start: datetime,
    end: datetime,
    now: datetime,
    rows: list[Reservation],
    exclude_id: int | None,
    privileged: bool,
) -> None:
    raise BookingConflict(
        _("This time is already taken on %(name)s.", name=instrument.name),
        describe_conflicts(rows, user),
        alternatives(instrument, user, start, end, now, exclude_id, privileged),
    )


def hold_slot(
    booking: Booking, start: datetime, end: datetime, user: User, now: datetime, privileged: bool
) -> None:
    """Give ``booking`` the interval ``[start, end)`` (plus its buffer) if it is free.

    The overlap check runs under the instrument lock taken by the caller (PostgreSQL) or
    the database's write lock (SQLite, ``BEGIN IMMEDIATE``), so it sees every committed
    slot holder and none can be added before this transaction ends: when it finds nothing,
    the flush succeeds. The exclusion constraint stays the backstop on PostgreSQL: should a
    writer that skipped the lock get in first, the flush fails with 23P01 and aborts the
    transaction, and the caller's unit runner (``labbook.db.run_with_retry``, the views'
    ``attempt``) runs the whole request again, when this check sees the other row and
    answers with a conflict. No SAVEPOINT is needed for that, which keeps a booking to
    one round trip for the check and one for the insert.

    :raises BookingConflict: when the time is taken. :raises PeriodClosed: when the old or
        the new start lies in a closed billing period. :raises sqlalchemy.exc.DBAPIError:
        23P01 / 40P01 / 40001 against a writer that skipped the lock (run again).
    """
    ensure_open(booking.start_at if booking.id is not None else None, start, now=now)
    instrument = booking.instrument
    block_end = end + timedelta(minutes=booking.buffer_minutes)
    clash = slots.overlapping(instrument.id, start, block_end, booking.id)
    if clash:
        refuse_conflict(instrument, user, start, end, now, clash, booking.id, privileged)
    if booking.id is not None:
        booking.sequence += 1
    booking.start_at, booking.end_at, booking.block_end = start, end, block_end
    db.session.add(booking)
    db.session.flush()
