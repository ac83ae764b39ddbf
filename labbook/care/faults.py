"""Fault reports (issue 7 item 3): anyone reports a problem on an instrument; a *down*
report opens an unplanned outage at once (the system acts, not the reporter, who is not a
manager); the facility's managers triage it with notes until it is resolved.

Who sees a fault: its reporter, the managers of the instrument's facility and admins;
to anyone else it does not exist (404). Who is told: the managers when a fault is reported
(``fault_reported``), the reporter and the owners of the bookings its outage displaced when
its status changes (``fault_updated``). Services flush, audit and notify; the caller commits.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _

from labbook import audit
from labbook.auth.models import User
from labbook.bookings import outages
from labbook.bookings.errors import BookingConflict, NotAllowed
from labbook.bookings.models import Booking, Outage, Reservation
from labbook.bookings.models.reservations import ACTIVE_STATES
from labbook.bookings.notices import local_time, managers_of
from labbook.care import status as care_status
from labbook.care.models import (
    FAULT_SEVERITIES,
    FAULT_STATUSES,
    OPEN_FAULT_STATUSES,
    FaultNote,
    FaultReport,
)
from labbook.db import now_utc
from labbook.errors import ValidationError
from labbook.extensions import db
from labbook.instruments.models import Instrument
from labbook.notifications.services import notify_all

MAX_PHOTO_BYTES = 5 * 1024 * 1024
DESCRIPTION_MAX = 5000
NOTE_MAX = 5000
AUDITED = ("status", "severity", "outage_id", "resolved_at", "resolved_by_id")


# -- checks -------------------------------------------------------------------------------------


def sniff_image(data: bytes) -> str | None:
    """The image type the bytes really are (JPEG, PNG or WebP), whatever the file is
    called or claims to be; None for anything else."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def can_see(user: User, fault: FaultReport) -> bool:
    """The reporter, the facility's managers and admins."""
    return (fault.reporter_id is not None and fault.reporter_id == user.id) or (
        user.manages_facility(fault.instrument.facility_id)
    )


def visible_faults(user: User) -> sa.Select:
    """The faults ``user`` may see, as a query to refine."""
    stmt = sa.select(FaultReport)
    if user.is_admin:
        return stmt
    managed = [f.id for f in user.managed_facilities] if user.manages_any_facility() else []
    return stmt.join(Instrument, Instrument.id == FaultReport.instrument_id).where(
        sa.or_(FaultReport.reporter_id == user.id, Instrument.facility_id.in_(managed))
    )


def _clean_report(severity: Any, description: Any, photo: bytes | None) -> tuple[str, str | None]:
    """The trimmed description and the photo's real type.

    :raises ValidationError: naming every bad field.
    """
    errors: dict[str, list[str]] = {}
    if severity not in FAULT_SEVERITIES:
        errors["severity"] = [_("Choose how bad it is: cosmetic, degraded or down.")]
    text = (description or "").replace("\x00", "").strip() if isinstance(description, str) else ""
    if not text:
        errors["description"] = [_("Describe the problem.")]
    elif len(text) > DESCRIPTION_MAX:
        errors["description"] = [_("At most %(n)d characters.", n=DESCRIPTION_MAX)]
    kind = None
    if photo:
        kind = sniff_image(photo)
        if len(photo) > MAX_PHOTO_BYTES:
            errors["photo"] = [_("The photo may be at most 5 MB.")]
        elif kind is None:
            errors["photo"] = [_("The photo must be a JPEG, PNG or WebP image.")]
    if errors:
        raise ValidationError(_("The fault report could not be saved."), errors)
    return text, kind


# -- the outage of a down report ------------------------------------------------------------------


def _outage_window(
    instrument: Instrument, now: datetime
) -> tuple[datetime, datetime | None] | None:
    """When an unplanned outage can hold the instrument: from now, or from the end of what
    already runs now (an outage, a session in use: a repair starts once it is over), until
    the next outage already scheduled (which keeps its own window). None when the time is
    already held with no end."""
    start = now
    rows = db.session.scalars(
        sa.select(Reservation).where(
            Reservation.instrument_id == instrument.id,
            Reservation.state.in_(ACTIVE_STATES),
            sa.or_(Reservation.block_end.is_(None), Reservation.block_end > now),
        ).order_by(Reservation.start_at)
    ).all()
    for row in rows:
        running = row.start_at <= start and (row.kind == "outage" or row.state == "in_use")
        if running:
            if row.block_end is None:
                return None
            start = max(start, row.block_end)
    later = [r.start_at for r in rows if r.kind == "outage" and r.start_at > start]
    return start, (min(later) if later else None)


def _open_outage(fault: FaultReport, now: datetime) -> Outage | None:
    """Open the repair outage of a *down* report as the system; None when the time is
    already held by an open-ended outage (that outage covers the repair)."""
    window = _outage_window(fault.instrument, now)
    if window is None:
        return None
    title = _("Fault #%(id)d: %(text)s", id=fault.id, text=fault.description)[:outages.TITLE_MAX]
    try:
        result = outages.schedule_outage(None, fault.instrument, window[0], window[1], "repair",
                                         title, now=now)
    except BookingConflict:  # taken in between: the derived status still says "down"
        return None
    return result.outage


# -- notices -----------------------------------------------------------------------------------


def fault_params(fault: FaultReport, **extra: Any) -> dict[str, Any]:
    instrument = fault.instrument
    zone = instrument.facility.timezone
    params: dict[str, Any] = {
        "fault_id": fault.id,
        "instrument": instrument.name,
        "instrument_id": instrument.id,
        "facility": instrument.facility.name,
        "timezone": zone,
        "start": local_time(fault.created_at, zone),
        "severity": fault.severity,
        "fault_status": fault.status,
        "description": fault.description,
        "reporter": fault.reporter.name if fault.reporter is not None else "",
    }
    params.update(extra)
    return params


def affected_owners(fault: FaultReport) -> list[User]:
    """Owners of the bookings the fault's outage cancelled (the system cancelled them with
    the outage's reason, at or after the report, inside the outage's window)."""
    outage = fault.outage
    if outage is None:
        return []
    stmt = sa.select(Booking).where(
        Booking.instrument_id == fault.instrument_id,
        Booking.state == "cancelled",
        Booking.state_reason == outages.UNAVAILABLE,
        Booking.state_changed_at >= fault.created_at,
        Booking.end_at > outage.start_at,
    )
    if outage.end_at is not None:
        stmt = stmt.where(Booking.start_at < outage.end_at)
    owners: dict[int, User] = {}
    for booking in db.session.scalars(stmt.order_by(Booking.id)):
        owners.setdefault(booking.user_id, booking.user)
    return list(owners.values())


def _tell_followers(actor: User, fault: FaultReport, note: str, now: datetime) -> None:
    """``fault_updated`` to the reporter and the displaced owners (not the one who acted)."""
    people = {u.id: u for u in affected_owners(fault)}
    if fault.reporter is not None:
        people[fault.reporter.id] = fault.reporter
    people.pop(actor.id, None)
    notify_all(list(people.values()), "fault_updated", params=fault_params(fault, note=note),
               now=now)


# -- services ----------------------------------------------------------------------------------


def report_fault(
    reporter: User,
    instrument: Instrument,
    severity: str,
    description: str,
    *,
    photo: bytes | None = None,
    now: datetime | None = None,
) -> FaultReport:
    """Record a problem. A *down* report opens an unplanned repair outage from now (its
    bookings cancelled and their owners told); the facility's managers are notified and the
    instrument's status follows.

    :raises ValidationError: unknown severity, empty or long description, bad photo.
    """
    now = now or now_utc()
    text, photo_type = _clean_report(severity, description, photo)
    fault = FaultReport(
        instrument=instrument, reporter=reporter, severity=severity, status="open",
        description=text, photo=photo or None, photo_type=photo_type,
        created_at=now, updated_at=now,
    )
    db.session.add(fault)
    db.session.flush()
    if severity == "down":
        outage = _open_outage(fault, now)
        fault.outage_id = outage.id if outage is not None else None
        db.session.flush()
    audit.record(reporter, "fault.report", fault, after=audit.snapshot(fault, AUDITED))
    notify_all(managers_of(instrument, exclude=reporter), "fault_reported",
               params=fault_params(fault), now=now)
    care_status.sync_status(instrument, now, reporter)
    return fault


def _close_outage(actor: User, fault: FaultReport, now: datetime) -> None:
    """End the fault's outage now (or drop it when it has not started yet)."""
    outage = fault.outage
    if outage is None or outage.state != "scheduled":
        return
    if outage.end_at is not None and outage.end_at <= now:
        return
    if outage.start_at >= now:
        outages.cancel_outage(actor, outage, now=now)
    else:
        outages.update_outage(actor, outage, outage.start_at, now, title=outage.title, now=now)


def _clean_triage(status: Any, note: Any, fault: FaultReport) -> tuple[str, str]:
    """:raises ValidationError: unknown status, long note, or nothing to record."""
    errors: dict[str, list[str]] = {}
    status = fault.status if status is None or status == "" else status
    if status not in FAULT_STATUSES:
        errors["status"] = [_("Unknown status.")]
    text = (note or "").replace("\x00", "").strip() if isinstance(note, str) else ""
    if len(text) > NOTE_MAX:
        errors["note"] = [_("At most %(n)d characters.", n=NOTE_MAX)]
    elif not text and status == fault.status and "status" not in errors:
        errors["note"] = [_("Write a note or change the status.")]
    if errors:
        raise ValidationError(_("The fault could not be updated."), errors)
    return status, text


def triage_fault(
    actor: User,
    fault: FaultReport,
    status: str | None,
    note: str | None,
    *,
    now: datetime | None = None,
) -> FaultNote:
    """A triage step by a manager: a note and/or a new status. Resolving ends the fault's
    outage now; reopening a resolved fault clears its resolution. The reporter and the
    owners of displaced bookings hear of status changes.

    :raises NotAllowed: unless a manager of the facility or an admin.
    :raises ValidationError: unknown status, long note, or neither note nor change.
    """
    now = now or now_utc()
    if not actor.manages_facility(fault.instrument.facility_id):
        raise NotAllowed("manager", _("Only managers of this facility may triage faults."))
    status, text = _clean_triage(status, note, fault)
    before = audit.snapshot(fault, AUDITED)
    changed = status != fault.status
    entry = FaultNote(fault=fault, author=actor, status=status if changed else None, note=text,
                      created_at=now)
    db.session.add(entry)
    if changed:
        fault.status = status
        fault.resolved_at = now if status == "resolved" else None
        fault.resolved_by_id = actor.id if status == "resolved" else None
        fault.updated_at = now
        if status == "resolved":
            _close_outage(actor, fault, now)
    db.session.flush()
    audit.record(actor, "fault.triage", fault, before=before,
                 after={**audit.snapshot(fault, AUDITED), "note": text})
    if changed:
        _tell_followers(actor, fault, text, now)
        care_status.sync_status(fault.instrument, now, actor)
    return entry


def open_faults(instrument: Instrument, viewer: User) -> list[FaultReport]:
    """The instrument's unresolved faults the viewer may see, worst and newest first."""
    stmt = visible_faults(viewer).where(
        FaultReport.instrument_id == instrument.id,
        FaultReport.status.in_(OPEN_FAULT_STATUSES),
    ).order_by(FaultReport.created_at.desc(), FaultReport.id.desc())
    rank = {"down": 0, "degraded": 1, "cosmetic": 2}
    return sorted(db.session.scalars(stmt), key=lambda f: rank.get(f.severity, 3))
