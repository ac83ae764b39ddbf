"""Preventive-maintenance plans (issue 7 item 2): per instrument, a window of
``duration_minutes`` every N days, weeks or months from ``first_start`` (expanded on the
facility's wall clock, so a 09:00 window stays at 09:00 across daylight-saving changes;
monthly windows keep the day of month, clamped to the month's last day), or after every
N hours of actual use.

``materialise_plan`` writes the upcoming windows as outages through ``schedule_outage``
(bookings in the way are cancelled and their owners told). Each window carries
``external_uid = "plan-<id>-<start ISO>"``: the unique (instrument, external_uid) index
is the claim, so running twice, or in two processes at once, writes each window once. A
window that collides with another outage (or a running session) is skipped and logged.
Services flush and audit; the caller commits.
"""
from __future__ import annotations

import calendar
import logging
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _

from labbook import audit
from labbook.auth.models import User
from labbook.bookings import outages, slots
from labbook.bookings.errors import BookingConflict
from labbook.bookings.models import Booking, Outage, Reservation
from labbook.bookings.models.reservations import ACTIVE_STATES
from labbook.care.models import PLAN_UNITS, MaintenancePlan
from labbook.errors import Conflict, ValidationError
from labbook.extensions import db
from labbook.instruments.models import Instrument

log = logging.getLogger(__name__)

PLAN_KINDS = ("preventive", "calibration")
PLAN_FIELDS = ("title", "outage_kind", "interval_count", "interval_unit", "duration_minutes",
               "first_start", "checklist", "active")
DEFAULT_HORIZON_DAYS = 56
USAGE_LOOKAHEAD = timedelta(days=7)
MAX_DURATION = 7 * 24 * 60
MAX_COUNT = 10000
CHECKLIST_MAX = 50
ITEM_MAX = 200


# -- plans ------------------------------------------------------------------------------------


def _authorize(actor: User, instrument: Instrument) -> None:
    """:raises NotAllowed: unless the actor manages the instrument's facility."""
    outages.authorize(actor, instrument)


def clean_checklist(items: Any) -> list[str]:
    """Non-empty, trimmed, distinct items. :raises ValidationError: too many or too long."""
    if isinstance(items, str):
        items = items.splitlines()
    cleaned = list(dict.fromkeys(i.strip() for i in items or [] if i and i.strip()))
    if len(cleaned) > CHECKLIST_MAX or any(len(i) > ITEM_MAX for i in cleaned):
        raise ValidationError(_("The plan could not be saved."), {"checklist": [
            _("At most %(n)d items of at most %(m)d characters.", n=CHECKLIST_MAX, m=ITEM_MAX)]})
    return cleaned


def _check(values: dict[str, Any]) -> None:
    """:raises ValidationError: naming every bad value."""
    errors: dict[str, list[str]] = {}
    title = (values.get("title") or "").strip()
    if not title or len(title) > outages.TITLE_MAX:
        errors["title"] = [_("Give a title of at most %(n)d characters.", n=outages.TITLE_MAX)]
    if values.get("outage_kind") not in PLAN_KINDS:
        errors["outage_kind"] = [_("Must be one of: %(choices)s.", choices=", ".join(PLAN_KINDS))]
    if values.get("interval_unit") not in PLAN_UNITS:
        errors["interval_unit"] = [_("Must be one of: %(choices)s.",
                                     choices=", ".join(PLAN_UNITS))]
    if not isinstance(values.get("interval_count"), int) or not (
            0 < values["interval_count"] <= MAX_COUNT):
        errors["interval_count"] = [_("Must be between %(low)d and %(high)d.",
                                      low=1, high=MAX_COUNT)]
    if not isinstance(values.get("duration_minutes"), int) or not (
            0 < values["duration_minutes"] <= MAX_DURATION):
        errors["duration_minutes"] = [_("Must be between %(low)d and %(high)d.",
                                        low=1, high=MAX_DURATION)]
    first = values.get("first_start")
    if not isinstance(first, datetime) or first.tzinfo is None:
        errors["first_start"] = [_("Times must carry their time zone.")]
    if errors:
        raise ValidationError(_("The plan could not be saved."), errors)


def create_plan(actor: User, instrument: Instrument, **values: Any) -> MaintenancePlan:
    """A new plan on ``instrument``; its windows appear at the next materialisation.

    :raises NotAllowed: unless a manager of the facility or an admin.
    :raises ValidationError: bad values.
    """
    _authorize(actor, instrument)
    values["checklist"] = clean_checklist(values.get("checklist"))
    values.setdefault("outage_kind", "preventive")
    _check(values)
    values["title"] = values["title"].strip()
    plan = MaintenancePlan(instrument=instrument, created_by_id=actor.id,
                           **{k: v for k, v in values.items() if k in PLAN_FIELDS})
    db.session.add(plan)
    db.session.flush()
    audit.record(actor, "maintenance_plan.create", plan, after=audit.snapshot(plan, PLAN_FIELDS))
    return plan


def update_plan(actor: User, plan: MaintenancePlan, **values: Any) -> MaintenancePlan:
    """Change a plan. Windows already written keep their times (edit or cancel them as
    outages); later ones follow the new rule.

    :raises NotAllowed, ValidationError: as ``create_plan``.
    """
    _authorize(actor, plan.instrument)
    if "checklist" in values:
        values["checklist"] = clean_checklist(values["checklist"])
    merged = {name: getattr(plan, name) for name in PLAN_FIELDS} | values
    _check(merged)
    before = audit.snapshot(plan, PLAN_FIELDS)
    for name in PLAN_FIELDS:
        setattr(plan, name, merged[name].strip() if name == "title" else merged[name])
    db.session.flush()
    audit.record(actor, "maintenance_plan.update", plan, before=before,
                 after=audit.snapshot(plan, PLAN_FIELDS))
    return plan


def delete_plan(actor: User, plan: MaintenancePlan, now: datetime) -> int:
    """Stop a plan: it is deactivated and its windows that have not started are cancelled
    (past windows stay, with their completion records). Returns how many were cancelled.

    :raises NotAllowed: unless a manager of the facility or an admin.
    """
    _authorize(actor, plan.instrument)
    update_plan(actor, plan, active=False)
    future = db.session.scalars(sa.select(Outage).where(
        Outage.plan_id == plan.id, Outage.state == "scheduled", Outage.start_at > now))
    count = 0
    for window in future:
        outages.cancel_outage(actor, window, now=now)
        count += 1
    return count


# -- recurrence -------------------------------------------------------------------------------


def add_months(day: date, months: int, anchor_day: int) -> date:
    """``day`` moved by ``months`` on the calendar, on ``anchor_day`` clamped to the month."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(anchor_day, last))


def _nth_local(plan: MaintenancePlan, first: datetime, k: int) -> datetime:
    """The ``k``-th occurrence on the wall clock (naive local time)."""
    n = plan.interval_count * k
    if plan.interval_unit == "days":
        return first + timedelta(days=n)
    if plan.interval_unit == "weeks":
        return first + timedelta(weeks=n)
    return datetime.combine(add_months(first.date(), n, first.day), first.time())


def _first_index(plan: MaintenancePlan, first_utc: datetime, since: datetime) -> int:
    """An occurrence index at or before the first one that ends after ``since`` (skips
    the far past quickly; one step early covers daylight-saving shifts)."""
    gap = since - first_utc - timedelta(minutes=plan.duration_minutes)
    if gap <= timedelta(0):
        return 0
    if plan.interval_unit == "months":
        return max(0, int(gap.days // 31 // plan.interval_count) - 1)
    days = plan.interval_count * (7 if plan.interval_unit == "weeks" else 1)
    return max(0, int(gap.days // days) - 1)


def occurrences(plan: MaintenancePlan, since: datetime, until: datetime
                ) -> Iterator[tuple[datetime, datetime]]:
    """Calendar windows ``(start, end)`` (aware UTC) that end after ``since`` and start
    before ``until``. A start that falls in a daylight-saving gap moves forward with it."""
    zone = ZoneInfo(plan.instrument.facility.timezone)
    first = plan.first_start.astimezone(zone).replace(tzinfo=None)
    length = timedelta(minutes=plan.duration_minutes)
    k = _first_index(plan, plan.first_start, since)
    while True:
        start = _nth_local(plan, first, k).replace(tzinfo=zone).astimezone(ZoneInfo("UTC"))
        if start >= until:
            return
        if start + length > since:
            yield start, start + length
        k += 1


def window_uid(plan: MaintenancePlan, start: datetime) -> str:
    return f"plan-{plan.id}-{start.astimezone(ZoneInfo('UTC')).isoformat()}"


# -- usage-hours plans ------------------------------------------------------------------------


def _last_window(plan: MaintenancePlan) -> Outage | None:
    return db.session.scalar(sa.select(Outage).where(
        Outage.plan_id == plan.id, Outage.state == "scheduled"
    ).order_by(Outage.start_at.desc()).limit(1))


def hours_used(instrument_id: int, since: datetime) -> float:
    """Hours of actual use (check-in to check-out) of sessions started since ``since``."""
    rows = db.session.execute(sa.select(Booking.checked_in_at, Booking.checked_out_at).where(
        Booking.instrument_id == instrument_id, Booking.checked_in_at >= since,
        Booking.checked_out_at.is_not(None)))
    return sum((out - start).total_seconds() for start, out in rows) / 3600


def _align(moment: datetime, minutes: int) -> datetime:
    step = minutes * 60
    seconds = int(moment.timestamp())
    return datetime.fromtimestamp(-(-seconds // step) * step, tz=ZoneInfo("UTC"))


def first_free(instrument: Instrument, now: datetime, length: timedelta,
               within: timedelta = USAGE_LOOKAHEAD) -> datetime | None:
    """The earliest slot-aligned start from ``now`` where ``length`` is free of every slot
    holder, starting within ``within``; None when there is none."""
    candidate = _align(now, instrument.slot_minutes)
    limit = now + within
    rows = db.session.scalars(sa.select(Reservation).where(
        Reservation.instrument_id == instrument.id, Reservation.state.in_(ACTIVE_STATES),
        Reservation.start_at < limit + length,
        sa.or_(Reservation.block_end.is_(None), Reservation.block_end > candidate),
    ).order_by(Reservation.start_at))
    for row in rows:
        if row.start_at >= candidate + length:
            break
        if row.block_end is None:
            return None
        candidate = max(candidate, _align(row.block_end, instrument.slot_minutes))
    return candidate if candidate < limit else None


def _usage_window(plan: MaintenancePlan, now: datetime) -> tuple[datetime, datetime, str] | None:
    """The next window of a usage-hours plan, once enough hours were used since the last
    window (its completion, or its end) or since ``first_start``."""
    last = _last_window(plan)
    if last is not None and (last.end_at is None or last.end_at > now):
        return None  # a window is still to come or running
    anchor = plan.first_start if last is None else (last.completed_at or last.end_at)
    assert anchor is not None
    if hours_used(plan.instrument_id, anchor) < plan.interval_count:
        return None
    length = timedelta(minutes=plan.duration_minutes)
    start = first_free(plan.instrument, now, length)
    if start is None:
        log.warning("maintenance plan %s: no free slot in the next week", plan.id)
        return None
    uid = f"plan-{plan.id}-usage-{anchor.astimezone(ZoneInfo('UTC')).isoformat()}"
    return start, start + length, uid


# -- materialising ----------------------------------------------------------------------------


def horizon() -> timedelta:
    return timedelta(days=int(current_app.config.get(
        "LABBOOK_MAINTENANCE_HORIZON_DAYS", DEFAULT_HORIZON_DAYS)))


def _exists(instrument_id: int, uid: str) -> bool:
    return db.session.scalar(sa.select(Reservation.id).where(
        Reservation.instrument_id == instrument_id, Reservation.external_uid == uid)) is not None


def _write(plan: MaintenancePlan, start: datetime, end: datetime, uid: str,
           now: datetime) -> bool:
    """Schedule one window; False when it exists already or collides (logged)."""
    if _exists(plan.instrument_id, uid):
        return False
    try:
        with db.session.begin_nested():
            result = outages.schedule_outage(
                None, plan.instrument, start, end, plan.outage_kind, plan.title,
                external_uid=uid, now=now)
            assert result.outage is not None
            result.outage.plan_id = plan.id
            db.session.flush()
    except Conflict as error:  # BookingConflict included: another outage, a running session
        kind = "collides" if isinstance(error, BookingConflict) else "exists"
        log.warning("maintenance plan %s: window %s %s, skipped", plan.id, uid, kind)
        return False
    return True


def materialise_plan(plan: MaintenancePlan, now: datetime) -> int:
    """Write the plan's missing windows up to the horizon; returns how many were written."""
    if not plan.active or plan.instrument.status == "retired":
        return 0
    if plan.interval_unit == "usage_hours":
        window = _usage_window(plan, now)
        return int(window is not None and _write(plan, *window, now))
    written = 0
    slots.lock_instrument(plan.instrument_id)
    for start, end in occurrences(plan, now, now + horizon()):
        written += _write(plan, start, end, window_uid(plan, start), now)
    return written


# -- completion -------------------------------------------------------------------------------


def complete_window(actor: User, outage: Outage, notes: str | None, ticked: list[str],
                    now: datetime) -> Outage:
    """Record that a maintenance window's work was done: who, when, notes and the checklist
    items ticked. A window still running ends now (the instrument is free again).

    :raises NotAllowed: unless a manager of the facility or an admin.
    :raises ValidationError: not started yet, cancelled, or unknown checklist items.
    """
    outages.authorize(actor, outage.instrument)
    errors: dict[str, list[str]] = {}
    if outage.state != "scheduled" or outage.start_at > now:
        errors["notes"] = [_("Only a window that has started can be completed.")]
    plan = db.session.get(MaintenancePlan, outage.plan_id) if outage.plan_id else None
    allowed = set(plan.checklist if plan is not None else [])
    if any(item not in allowed for item in ticked):
        errors["checklist_done"] = [_("Tick only items of the plan's checklist.")]
    if errors:
        raise ValidationError(_("The completion could not be recorded."), errors)
    if outage.end_at is None or outage.end_at > now:
        outages.end_outage(actor, outage, now, now=now)
    before = audit.snapshot(outage, ("completed_at", "completion_notes", "checklist_done"))
    outage.completed_at, outage.completed_by_id = now, actor.id
    outage.completion_notes = (notes or "").strip() or None
    outage.checklist_done = list(dict.fromkeys(ticked))
    db.session.flush()
    audit.record(actor, "outage.complete", outage, before=before, after=audit.snapshot(
        outage, ("completed_at", "completion_notes", "checklist_done")))
    return outage
