"""Scheduled jobs of equipment care. ``maintenance``: write the upcoming windows of every
active plan as outages. Idempotent (each window's ``external_uid`` is
its claim) and catches up after downtime (it looks for every window not yet written up
to the horizon, not for those due in the last minutes)."""
from __future__ import annotations

import logging
from datetime import datetime

import sqlalchemy as sa

from labbook.bookings.models import Outage
from labbook.care import maintenance, status
from labbook.care.models import MaintenancePlan
from labbook.db import now_utc
from labbook.extensions import db
from labbook.instruments.models import Instrument

log = logging.getLogger(__name__)


def materialise_maintenance(now: datetime | None = None) -> int:
    """Materialise every active plan, committing per plan (one failing plan is logged and
    does not hold up the others). Returns how many windows were written."""
    now = now or now_utc()
    plan_ids = db.session.scalars(
        sa.select(MaintenancePlan.id).where(MaintenancePlan.active.is_(True))
        .order_by(MaintenancePlan.id)
    ).all()
    db.session.rollback()
    written = 0
    for plan_id in plan_ids:
        try:
            plan = db.session.get(MaintenancePlan, plan_id)
            count = maintenance.materialise_plan(plan, now) if plan is not None else 0
            db.session.commit()
            written += count
        except Exception:  # noqa: BLE001 - one bad plan must not block the rest
            db.session.rollback()
            log.exception("maintenance plan %s could not be materialised", plan_id)
    return written


def sync_instrument_statuses(now: datetime | None = None) -> int:
    """Keep the stored instrument status in step with the clock (job ``instrument_status``):
    a planned window that has started makes its instrument ``down``, one that has ended
    gives it back. Looks at every instrument whose stored status is not ``available`` or
    ``retired`` and every instrument with an outage running now — not at "what changed in
    the last minutes" — so it catches up after downtime; running it twice changes nothing.
    Commits per instrument; returns how many statuses changed."""
    now = now or now_utc()
    running = sa.select(Outage.instrument_id).where(
        Outage.state == "scheduled", Outage.start_at <= now,
        sa.or_(Outage.end_at.is_(None), Outage.end_at > now))
    ids = db.session.scalars(
        sa.select(Instrument.id).where(sa.or_(
            Instrument.status.in_(("down", "limited")), Instrument.id.in_(running)))
        .order_by(Instrument.id)
    ).all()
    db.session.rollback()
    changed = 0
    for instrument_id in ids:
        try:
            instrument = db.session.get(Instrument, instrument_id)
            if instrument is not None and instrument.status != "retired":
                before = instrument.status
                changed += status.sync_status(instrument, now) != before
            db.session.commit()
        except Exception:  # noqa: BLE001 - one instrument must not block the rest
            db.session.rollback()
            log.exception("status of instrument %s could not be synchronised", instrument_id)
    return changed
