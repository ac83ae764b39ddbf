"""What a facility manager's dashboard shows, computed outside the view: today and tomorrow
per instrument, pending approvals, open faults, upcoming maintenance, instruments down,
open sessions and sessions needing review.

Read-only: nothing here writes. One query per section, related rows loaded in bulk.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import selectinload

from labbook.bookings.models import Booking, Outage, Reservation
from labbook.bookings.pages import facility_schedule
from labbook.care.models import OPEN_FAULT_STATUSES, FaultReport
from labbook.extensions import db
from labbook.instruments.models import Facility, Instrument

MAINTENANCE_DAYS = 14
MAINTENANCE_KINDS = ("preventive", "calibration")


@dataclass
class Dashboard:
    facility: Facility
    schedule: list[tuple[date, list[tuple[Instrument, list[Reservation]]]]]
    pending: list[Booking]
    faults: list[FaultReport]
    maintenance: list[Outage]
    down: list[tuple[Instrument, Outage | None]]
    open_sessions: list[Booking]
    review: list[Booking]
    counts: dict[str, int] = field(default_factory=dict)


def _in_facility(facility: Facility) -> sa.Select:
    return sa.select(Instrument.id).where(Instrument.facility_id == facility.id)


def _bookings(facility: Facility, *where: sa.ColumnElement[bool]) -> list[Booking]:
    return list(db.session.scalars(
        sa.select(Booking)
        .where(Booking.instrument_id.in_(_in_facility(facility)), *where)
        .options(selectinload(Booking.user), selectinload(Booking.instrument),
                 selectinload(Booking.team))
        .order_by(Booking.start_at, Booking.id)
    ))


def open_faults(facility: Facility) -> list[FaultReport]:
    """Faults not yet resolved, most severe first, then oldest."""
    severity = sa.case({"down": 0, "degraded": 1}, value=FaultReport.severity, else_=2)
    return list(db.session.scalars(
        sa.select(FaultReport)
        .where(FaultReport.instrument_id.in_(_in_facility(facility)),
               FaultReport.status.in_(OPEN_FAULT_STATUSES))
        .options(selectinload(FaultReport.instrument), selectinload(FaultReport.reporter))
        .order_by(severity, FaultReport.created_at, FaultReport.id)
    ))


def upcoming_maintenance(facility: Facility, now: datetime) -> list[Outage]:
    """Scheduled maintenance (from a plan, or preventive/calibration) that runs now or
    starts within the next ``MAINTENANCE_DAYS`` days."""
    return list(db.session.scalars(
        sa.select(Outage)
        .where(
            Outage.instrument_id.in_(_in_facility(facility)),
            Outage.state == "scheduled",
            sa.or_(Outage.plan_id.is_not(None), Outage.outage_kind.in_(MAINTENANCE_KINDS)),
            Outage.start_at < now + timedelta(days=MAINTENANCE_DAYS),
            sa.or_(Outage.end_at.is_(None), Outage.end_at > now),
        )
        .options(selectinload(Outage.instrument))
        .order_by(Outage.start_at, Outage.id)
    ))


def instruments_down(facility: Facility, now: datetime) -> list[tuple[Instrument, Outage | None]]:
    """Instruments marked down or under a running outage, with that outage (if any)."""
    running = {
        o.instrument_id: o
        for o in db.session.scalars(
            sa.select(Outage)
            .where(
                Outage.instrument_id.in_(_in_facility(facility)),
                Outage.state == "scheduled",
                Outage.start_at <= now,
                sa.or_(Outage.end_at.is_(None), Outage.end_at > now),
            )
            .order_by(Outage.start_at.desc())
        )
    }
    instruments = sorted(facility.instruments, key=lambda i: i.name.lower())
    return [(i, running.get(i.id)) for i in instruments
            if i.status == "down" or i.id in running]


def facility_dashboard(facility: Facility, now: datetime) -> Dashboard:
    """Everything the dashboard shows for ``facility`` at ``now``."""
    board = Dashboard(
        facility=facility,
        schedule=facility_schedule(facility, now),
        pending=_bookings(facility, Booking.state == "pending"),
        faults=open_faults(facility),
        maintenance=upcoming_maintenance(facility, now),
        down=instruments_down(facility, now),
        open_sessions=_bookings(facility, Booking.state == "in_use"),
        review=_bookings(facility, Booking.needs_review.is_(True),
                         Booking.state.in_(("in_use", "completed"))),
    )
    board.counts = {
        "pending": len(board.pending), "faults": len(board.faults),
        "maintenance": len(board.maintenance), "down": len(board.down),
        "open_sessions": len(board.open_sessions), "review": len(board.review),
    }
    return board
