"""Outages and maintenance windows (SPEC sections 2 and 4; issue 7 item 1): time on an
instrument that nobody may book (preventive maintenance, repair, calibration, closure).

An outage is a row of ``reservations`` (kind ``outage``, state ``scheduled``), so it holds
its window under the same guarantee as a booking: the instrument lock, the overlap check and
a SAVEPOINT flush that lets the exclusion constraint have the last word
(labbook/bookings/slots.py). ``end`` None is an unplanned outage whose end is not known
yet: it blocks everything after its start.

Managers may schedule over existing bookings. The slot-holding bookings inside the window
are cancelled first (reason ``instrument unavailable``, never late, never charged: the
facility cancelled them, not the user) and only then is the outage written. A booking that
merely ends before the window but whose turnaround buffer reaches into it keeps its time:
its blocked tail is trimmed to the outage's start (there is no next user to turn around for).
Two outages never overlap (409), and a running session must be checked out first (409).
Owners of cancelled bookings are told with ``outage_affects_booking``, carrying the outage
and up to three free alternatives of the same length. Services flush and audit; the caller
commits.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _

from labbook import audit
from labbook.auth.models import User
from labbook.bookings import holding, slots
from labbook.bookings.errors import BookingConflict, NotAllowed
from labbook.bookings.models import Booking, Outage, OutageKind, Reservation
from labbook.bookings.notices import notify_owner
from labbook.bookings.services import transition
from labbook.db import now_utc
from labbook.errors import Conflict, ValidationError
from labbook.extensions import db
from labbook.instruments.models import Instrument

# The reason every displaced booking carries; billing never charges it (SPEC section 4).
UNAVAILABLE = "instrument unavailable"
OUTAGE_KINDS = tuple(k.value for k in OutageKind)
AUDITED = ("state", "start_at", "end_at", "outage_kind", "title", "external_uid")
TITLE_MAX = 200
UID_MAX = 255
UNIQUE_VIOLATION = "23505"


@dataclass
class OutageResult:
    """What scheduling (or previewing) an outage did: the outage (None on a dry run), the
    bookings cancelled (or that would be) and those whose buffer was trimmed."""

    outage: Outage | None
    affected: list[Booking] = field(default_factory=list)
    trimmed: list[Booking] = field(default_factory=list)
    dry_run: bool = False


# -- checks -----------------------------------------------------------------------------------


def authorize(actor: User | None, instrument: Instrument) -> None:
    """Managers of the instrument's facility and admins; ``actor`` None is the system (CLI).

    :raises NotAllowed: for anyone else.
    """
    if actor is not None and not actor.manages_facility(instrument.facility_id):
        raise NotAllowed(
            "manager", _("Only managers of this facility may schedule outages.")
        )


def clean(
    start: datetime, end: datetime | None, kind: str, title: str | None,
    external_uid: str | None = None,
) -> tuple[str, str | None]:
    """The kind and the trimmed title. :raises ValidationError: naming the bad fields."""
    errors: dict[str, list[str]] = {}
    if external_uid is not None and len(external_uid) > UID_MAX:
        errors["external_uid"] = [_("At most %(n)d characters.", n=UID_MAX)]
    if start.tzinfo is None or (end is not None and end.tzinfo is None):
        errors["start"] = [_("Times must carry their time zone.")]
    elif end is not None and end <= start:
        errors["end"] = [_("The end must be after the start.")]
    if kind not in OUTAGE_KINDS:
        errors["kind"] = [_("Unknown kind of outage.")]
    title = (title or "").replace("\x00", "").strip() or None
    if title is not None and len(title) > TITLE_MAX:
        errors["title"] = [_("At most %(n)d characters.", n=TITLE_MAX)]
    if errors:
        raise ValidationError(_("The outage could not be scheduled."), errors)
    return kind, title


def _describe(rows: list[Reservation]) -> list[dict[str, Any]]:
    """Clashing slot holders, with details: only managers and the system get here."""
    out = []
    for row in rows:
        end = row.block_end
        item: dict[str, Any] = {
            "start": holding.local_iso(row.instrument, row.start_at),
            "end": holding.local_iso(row.instrument, end) if end is not None else None,
            "kind": row.kind,
        }
        if isinstance(row, Booking):
            item.update(booking_id=row.id, user=row.user.name, purpose=row.purpose,
                        state=row.state)
        else:
            item.update(outage_id=row.id, outage_kind=row.outage_kind, title=row.title)
        out.append(item)
    return out


def refuse_blockers(instrument: Instrument, rows: list[Reservation]) -> None:
    """What an outage may not displace: another outage, or a session that is running.

    :raises BookingConflict: naming them (409).
    """
    outages = [r for r in rows if r.kind == "outage"]
    if outages:
        raise BookingConflict(
            _("This time overlaps another outage on %(name)s.", name=instrument.name),
            _describe(outages), [],
        )
    running = [r for r in rows if r.state == "in_use"]
    if running:
        raise BookingConflict(
            _("A session is running on %(name)s during this time: check it out before "
              "scheduling the outage over it.", name=instrument.name),
            _describe(running), [],
        )


def _split(rows: list[Reservation], start: datetime) -> tuple[list[Booking], list[Booking]]:
    """Bookings inside the window (to cancel) and those only whose buffer reaches into it
    (to trim)."""
    bookings = [r for r in rows if isinstance(r, Booking)]
    inside = [b for b in bookings if b.end_at is not None and b.end_at > start]
    return inside, [b for b in bookings if b not in inside]


# -- holding the window -----------------------------------------------------------------------


def _displace(
    actor: User | None, rows: list[Reservation], start: datetime, now: datetime
) -> tuple[list[Booking], list[Booking]]:
    """Cancel the bookings inside the window and trim the buffers reaching into it."""
    cancel, trim = _split(rows, start)
    for booking in cancel:
        booking.late_cancel = False  # the facility cancelled: never charged
        transition(booking, "cancelled", actor, now, UNAVAILABLE)
    for booking in trim:
        before = {"block_end": booking.block_end}
        booking.block_end = start
        db.session.flush()
        audit.record(actor, "booking.buffer_trimmed", booking, before=before,
                     after={"block_end": start})
    return cancel, trim


def _flush_window(outage: Outage, start: datetime, end: datetime | None) -> bool:
    """Apply and flush in a SAVEPOINT; False when the database refused it in a way that
    calls for checking again (a writer that skipped the lock got in first).

    :raises Conflict: when the instrument already has a closure with this external UID.
    """
    try:
        with db.session.begin_nested():
            outage.start_at, outage.end_at, outage.block_end = start, end, end
            outage.state = "scheduled"
            db.session.add(outage)
            db.session.flush()
        return True
    except (sa.exc.IntegrityError, sa.exc.OperationalError) as error:
        state = getattr(error.orig, "sqlstate", None)
        if state == UNIQUE_VIOLATION or "UNIQUE" in str(error.orig):
            raise Conflict(_("This calendar event is already imported on %(name)s.",
                             name=outage.instrument.name)) from error
        if state not in holding.RECHECK_STATES:
            raise
        return False


def hold_window(
    actor: User | None, outage: Outage, start: datetime, end: datetime | None, now: datetime
) -> OutageResult:
    """Give ``outage`` the window ``[start, end)``, displacing bookings, under the
    instrument lock the caller took.

    :raises BookingConflict: another outage or a running session is in the way.
    """
    result = OutageResult(outage)
    instrument = outage.instrument
    for _attempt in range(holding.FLUSH_ATTEMPTS):
        rows = slots.overlapping(instrument.id, start, end, outage.id)
        refuse_blockers(instrument, rows)
        cancelled, trimmed = _displace(actor, rows, start, now)
        result.affected += cancelled
        result.trimmed += trimmed
        if _flush_window(outage, start, end):
            return result
    rows = slots.overlapping(instrument.id, start, end, outage.id)
    refuse_blockers(instrument, rows)
    raise BookingConflict(_("This time is already taken on %(name)s.", name=instrument.name),
                          _describe(rows), [])


def preview(instrument: Instrument, start: datetime, end: datetime | None,
            exclude_id: int | None = None) -> OutageResult:
    """The bookings an outage over ``[start, end)`` would cancel; writes nothing.

    :raises BookingConflict: as scheduling would.
    """
    rows = slots.overlapping(instrument.id, start, end, exclude_id)
    refuse_blockers(instrument, rows)
    cancel, trim = _split(rows, start)
    return OutageResult(None, cancel, trim, dry_run=True)


def notify_affected(bookings: list[Booking], outage: Outage, now: datetime) -> None:
    """Tell each displaced booking's owner, with up to three free times of the same length
    (computed once the outage holds its window, so none falls inside it)."""
    instrument = outage.instrument
    for booking in bookings:
        assert booking.end_at is not None
        offers = holding.alternatives(
            booking.instrument, booking.user, booking.start_at, booking.end_at, now,
            exclude_id=booking.id,
        )
        notify_owner(
            booking, "outage_affects_booking", now=now,
            outage_id=outage.id, outage_kind=outage.outage_kind, outage_title=outage.title or "",
            outage_start=holding.local_iso(instrument, outage.start_at),
            outage_end=holding.local_iso(instrument, outage.end_at) if outage.end_at else "",
            alternatives=offers,
        )


# -- services ---------------------------------------------------------------------------------


def _sync_status(instrument: Instrument, now: datetime, actor: User | None) -> None:
    """Keep the stored instrument status (down while an outage runs) in step."""
    from labbook.care.status import sync_status  # care builds on bookings, not back

    sync_status(instrument, now, actor)


def schedule_outage(
    actor: User | None,
    instrument: Instrument,
    start: datetime,
    end: datetime | None,
    kind: str,
    title: str | None,
    *,
    external_uid: str | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
    notify: bool = True,
) -> OutageResult:
    """Make ``instrument`` unavailable from ``start`` to ``end`` (None: until further
    notice). Bookings in the window are cancelled and their owners told (unless
    ``notify`` is False: the caller then calls ``notify_affected`` itself, as the closure
    import does once every closure is in place). ``dry_run`` only lists them.

    :raises NotAllowed: unless a manager of the facility or an admin.
    :raises ValidationError: bad times, kind or title.
    :raises BookingConflict: another outage or a running session is in the way (409).
    """
    now = now or now_utc()
    authorize(actor, instrument)
    kind, title = clean(start, end, kind, title, external_uid)
    if dry_run:
        return preview(instrument, start, end)
    slots.lock_instrument(instrument.id)
    outage = Outage(
        instrument=instrument, state="scheduled", outage_kind=kind, title=title,
        external_uid=external_uid, sequence=0,
        created_by_id=actor.id if actor is not None else None,
    )
    if outage in db.session:  # never autoflush a half-built row during the checks
        db.session.expunge(outage)
    result = hold_window(actor, outage, start, end, now)
    audit.record(actor, "outage.create", outage, after=audit.snapshot(outage, AUDITED))
    if notify:
        notify_affected(result.affected, outage, now)
    _sync_status(instrument, now, actor)
    return result


def update_outage(
    actor: User | None,
    outage: Outage,
    start: datetime,
    end: datetime | None,
    *,
    title: str | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
    notify: bool = True,
) -> OutageResult:
    """Move, extend, shorten or retitle an outage (a cancelled one is scheduled again),
    under the same guarantee as scheduling it. Unchanged values change nothing.

    :raises NotAllowed, ValidationError, BookingConflict: as ``schedule_outage``.
    """
    now = now or now_utc()
    instrument = outage.instrument
    authorize(actor, instrument)
    _kind, title = clean(start, end, outage.outage_kind or "", title)
    if dry_run:
        return preview(instrument, start, end, outage.id)
    same = (outage.start_at, outage.end_at, outage.title, outage.state) == (
        start, end, title, "scheduled")
    if same:
        return OutageResult(outage)
    slots.lock_instrument(instrument.id)
    before = audit.snapshot(outage, AUDITED)
    outage.title = title  # the state and times change in hold_window's SAVEPOINT
    outage.sequence += 1
    result = hold_window(actor, outage, start, end, now)
    audit.record(actor, "outage.update", outage, before=before,
                 after=audit.snapshot(outage, AUDITED))
    if notify:
        notify_affected(result.affected, outage, now)
    _sync_status(instrument, now, actor)
    return result


def cancel_outage(actor: User | None, outage: Outage, *, now: datetime | None = None) -> Outage:
    """Give the window back (bookings cancelled by the outage stay cancelled: their owners
    were told and may have booked elsewhere). Cancelling twice changes nothing.

    :raises NotAllowed: unless a manager of the facility or an admin.
    """
    authorize(actor, outage.instrument)
    if outage.state == "cancelled":
        return outage
    outage.state = "cancelled"
    outage.sequence += 1
    db.session.flush()
    audit.record(actor, "outage.cancel", outage, before={"state": "scheduled"},
                 after={"state": "cancelled"})
    _sync_status(outage.instrument, now or now_utc(), actor)
    return outage


def end_outage(
    actor: User | None, outage: Outage, end: datetime, *, now: datetime | None = None
) -> OutageResult:
    """Set the end of an outage, typically an unplanned one when the instrument is fixed
    (``end`` = now): the time after it is free again.

    :raises NotAllowed: unless a manager of the facility or an admin.
    :raises ValidationError: the end is not after the start, or the outage was cancelled.
    :raises BookingConflict: a later end would run into another outage.
    """
    authorize(actor, outage.instrument)
    if outage.state != "scheduled":
        raise ValidationError(_("The outage could not be changed."),
                              {"end": [_("A cancelled outage has no end to set.")]})
    return update_outage(actor, outage, outage.start_at, end, title=outage.title, now=now)


def schedule_facility_outage(
    actor: User | None,
    instruments: list[Instrument],
    start: datetime,
    end: datetime | None,
    kind: str,
    title: str | None,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
) -> list[OutageResult]:
    """One outage per instrument (e.g. a whole facility's closure): all or nothing, as the
    caller rolls back when any instrument refuses.

    :raises NotAllowed, ValidationError, BookingConflict: as ``schedule_outage``.
    """
    if not instruments:
        raise ValidationError(_("The outage could not be scheduled."),
                              {"instrument": [_("This facility has no instruments.")]})
    if not dry_run:
        slots.lock_instruments(i.id for i in instruments)
    return [
        schedule_outage(actor, instrument, start, end, kind, title, now=now, dry_run=dry_run)
        for instrument in instruments
    ]
