"""An instrument's condition (issue 7 items 4 and 9): its status derived from open faults
and running outages, its service log, and its downtime per month.

Status: ``retired`` is set by hand and stays; otherwise ``down`` while an open fault says
*down* or an outage runs (start <= now < end, or no end yet), ``limited`` while an open
fault says *degraded*, else ``available``. ``Instrument.status`` keeps the derived value
(``sync_status``) so lists and the booking pages read it without recomputing; every change
is audited, and the audit entries are the service log's status history.

Downtime: the hours of outages inside a month of the facility's calendar (its zone decides
where the month starts and ends), counted on the UTC time line, so a month with a daylight
saving change has its real number of hours; nothing counts beyond ``now`` (an open outage
counts up to now, a future window not yet). Planned: preventive, calibration, closure;
unplanned: repair. Mean time to repair: faults resolved in the month, report to resolution.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask_babel import gettext as _

from labbook import audit
from labbook.audit import AuditEntry
from labbook.auth.models import User
from labbook.bookings.models import Outage
from labbook.care.models import OPEN_FAULT_STATUSES, FaultNote, FaultReport
from labbook.extensions import db
from labbook.instruments.models import Instrument

PLANNED = ("preventive", "calibration", "closure")
UNPLANNED = ("repair",)
STATUS_ACTION = "instrument.status"
HOUR = Decimal(3600)


# -- status ------------------------------------------------------------------------------------


def _open_severities(instrument_id: int) -> set[str]:
    return set(db.session.scalars(
        sa.select(FaultReport.severity).distinct().where(
            FaultReport.instrument_id == instrument_id,
            FaultReport.status.in_(OPEN_FAULT_STATUSES),
        )
    ))


def outage_running(instrument_id: int, now: datetime) -> bool:
    return db.session.scalar(
        sa.select(sa.func.count()).select_from(Outage).where(
            Outage.instrument_id == instrument_id,
            Outage.state == "scheduled",
            Outage.start_at <= now,
            sa.or_(Outage.end_at.is_(None), Outage.end_at > now),
        )
    ) > 0


def derived_status(instrument: Instrument, now: datetime) -> str:
    """What the instrument's status is at ``now`` (see the module's docstring)."""
    if instrument.status == "retired":
        return "retired"
    severities = _open_severities(instrument.id)
    if "down" in severities or outage_running(instrument.id, now):
        return "down"
    if "degraded" in severities:
        return "limited"
    return "available"


def sync_status(instrument: Instrument, now: datetime, actor: User | None = None) -> str:
    """Store the derived status; a change is audited (at ``now``) for the service log."""
    status = derived_status(instrument, now)
    if status != instrument.status:
        before = instrument.status
        instrument.status = status
        db.session.flush()
        entry = audit.record(actor, STATUS_ACTION, instrument, before={"status": before},
                             after={"status": status})
        entry.at = now
    return status


# -- service log -------------------------------------------------------------------------------


@dataclass
class LogEntry:
    """One line of the service log. ``person`` is None where the viewer may not know it."""

    at: datetime
    kind: str  # outage_kind, "completed", "fault", "fault_note", "status"
    title: str
    detail: str = ""
    person: str | None = None
    end: datetime | None = None
    fault_id: int | None = None
    outage_id: int | None = None

    def to_dict(self, zone: ZoneInfo) -> dict[str, Any]:
        return {
            "at": self.at.astimezone(zone).isoformat(),
            "end": self.end.astimezone(zone).isoformat() if self.end else None,
            "kind": self.kind,
            "title": self.title,
            "detail": self.detail,
            "person": self.person,
            "fault_id": self.fault_id,
            "outage_id": self.outage_id,
        }


def _names(ids: set[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return dict(db.session.execute(sa.select(User.id, User.name).where(User.id.in_(wanted))).all())


def _outage_entries(instrument: Instrument, now: datetime) -> list[tuple[LogEntry, Any]]:
    rows = db.session.scalars(
        sa.select(Outage).where(Outage.instrument_id == instrument.id,
                                Outage.state == "scheduled", Outage.start_at <= now)
    ).all()
    out: list[tuple[LogEntry, Any]] = []
    for o in rows:
        out.append((LogEntry(o.start_at, o.outage_kind or "", o.title or "", end=o.end_at,
                             outage_id=o.id), o.created_by_id))
        if o.completed_at is not None:
            out.append((LogEntry(o.completed_at, "completed", o.title or "",
                                 detail=o.completion_notes or "", outage_id=o.id),
                        o.completed_by_id))
    return out


def _fault_entries(instrument: Instrument) -> list[tuple[LogEntry, Any]]:
    faults = db.session.scalars(
        sa.select(FaultReport).where(FaultReport.instrument_id == instrument.id)
    ).all()
    out: list[tuple[LogEntry, Any]] = [
        (LogEntry(f.created_at, "fault", f.severity, detail=f.description, fault_id=f.id),
         f.reporter_id) for f in faults
    ]
    notes = db.session.scalars(
        sa.select(FaultNote).join(FaultReport).where(FaultReport.instrument_id == instrument.id)
    ).all()
    out += [(LogEntry(n.created_at, "fault_note", n.status or "", detail=n.note,
                      fault_id=n.fault_id), n.author_id) for n in notes]
    return out


def _status_entries(instrument: Instrument) -> list[tuple[LogEntry, Any]]:
    rows = db.session.scalars(
        sa.select(AuditEntry).where(AuditEntry.object_type == "Instrument",
                                    AuditEntry.object_id == str(instrument.id),
                                    AuditEntry.action == STATUS_ACTION)
    ).all()
    return [(LogEntry(a.at, "status", str((a.after or {}).get("status", "")),
                      detail=str((a.before or {}).get("status", ""))), a.actor_id)
            for a in rows]


def service_log(instrument: Instrument, viewer: User, now: datetime) -> list[LogEntry]:
    """Everything that happened to the instrument up to ``now``, newest first: outages
    (and their completion), faults and their triage notes, status changes. Names of people
    only for the facility's managers and admins (others see what, not who)."""
    raw = _outage_entries(instrument, now) + _fault_entries(instrument) + _status_entries(
        instrument)
    show = viewer.manages_facility(instrument.facility_id)
    names = _names({who for _entry, who in raw}) if show else {}
    entries = []
    for entry, who in raw:
        if show:
            entry.person = names.get(who) or (_("the system") if who is None else "")
        entries.append(entry)
    order = {"status": 0, "fault_note": 1, "completed": 2, "fault": 3}
    entries.sort(key=lambda e: (e.at, -order.get(e.kind, 4)), reverse=True)
    return entries


# -- downtime ----------------------------------------------------------------------------------


def month_bounds(instrument: Instrument, year: int, month: int) -> tuple[datetime, datetime]:
    """The month in the facility's zone, as a UTC half-open interval."""
    zone = ZoneInfo(instrument.facility.timezone)
    first = datetime(year, month, 1, tzinfo=zone)
    nxt = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=zone)
    return first.astimezone(ZoneInfo("UTC")), nxt.astimezone(ZoneInfo("UTC"))


def _hours(delta: timedelta) -> Decimal:
    return (Decimal(delta.total_seconds()) / HOUR).quantize(Decimal("0.01"), ROUND_HALF_UP)


def _outage_seconds(
    instrument: Instrument, start: datetime, stop: datetime
) -> dict[str, timedelta]:
    """Outage time inside ``[start, stop)`` per kind group."""
    totals = {"planned": timedelta(), "unplanned": timedelta()}
    if stop <= start:
        return totals
    rows = db.session.scalars(
        sa.select(Outage).where(
            Outage.instrument_id == instrument.id, Outage.state == "scheduled",
            Outage.start_at < stop, sa.or_(Outage.end_at.is_(None), Outage.end_at > start),
        )
    ).all()
    for o in rows:
        begin, end = max(o.start_at, start), min(o.end_at or stop, stop)
        if end > begin:
            totals["planned" if o.outage_kind in PLANNED else "unplanned"] += end - begin
    return totals


def downtime(instrument: Instrument, year: int, month: int, now: datetime) -> dict[str, Any]:
    """Planned and unplanned outage hours of the month up to ``now``, and the mean time to
    repair of the faults resolved in it (hours, None without any). Hours are decimal
    strings with two places."""
    start, end = month_bounds(instrument, year, month)
    totals = _outage_seconds(instrument, start, min(end, now))
    resolved = db.session.execute(
        sa.select(FaultReport.created_at, FaultReport.resolved_at).where(
            FaultReport.instrument_id == instrument.id, FaultReport.status == "resolved",
            FaultReport.resolved_at >= start, FaultReport.resolved_at < end,
        )
    ).all()
    reported = db.session.scalar(
        sa.select(sa.func.count()).select_from(FaultReport).where(
            FaultReport.instrument_id == instrument.id,
            FaultReport.created_at >= start, FaultReport.created_at < end,
        )
    )
    mttr = (sum((r - c for c, r in resolved), timedelta()) / len(resolved)) if resolved else None
    return {
        "instrument_id": instrument.id,
        "month": f"{year:04d}-{month:02d}",
        "planned_hours": str(_hours(totals["planned"])),
        "unplanned_hours": str(_hours(totals["unplanned"])),
        "total_hours": str(_hours(totals["planned"] + totals["unplanned"])),
        "faults_reported": reported,
        "faults_resolved": len(resolved),
        "mean_time_to_repair_hours": str(_hours(mttr)) if mttr is not None else None,
    }
