"""What is free when: an instrument's busy and free intervals in a window, and "find a
slot" across instruments. Read-only; details of other people's bookings only for those who
may see them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import selectinload

from labbook.auth.models import User
from labbook.bookings import rules, slots
from labbook.bookings.models import Booking, Reservation
from labbook.db import now_utc
from labbook.extensions import db
from labbook.instruments.models import Instrument
from labbook.instruments.services import search_instruments

MAX_WINDOW = timedelta(days=62)


def availability(
    instrument: Instrument, start: datetime, end: datetime, viewer: User
) -> dict[str, list[dict[str, Any]]]:
    """Busy items (bookings and outages holding the slot, with their blocked end) and the
    free gaps between them, inside ``[start, end)``."""
    rows = slots.overlapping(instrument.id, start, end)
    busy = [_busy_item(row, viewer) for row in rows]
    free, cursor = [], start
    for span in slots.busy_intervals(instrument.id, start, end):
        if span.start > cursor:
            free.append({"start": cursor.isoformat(), "end": span.start.isoformat()})
        cursor = max(cursor, span.end)
    if cursor < end:
        free.append({"start": cursor.isoformat(), "end": end.isoformat()})
    return {"busy": busy, "free": free}


def _busy_item(row: Reservation, viewer: User) -> dict[str, Any]:
    item: dict[str, Any] = {
        "kind": row.kind,
        "state": row.state,
        "start": row.start_at.isoformat(),
        "end": row.end_at.isoformat() if row.end_at else None,
        "blocked_until": row.block_end.isoformat() if row.block_end else None,
    }
    if isinstance(row, Booking):
        item["mine"] = row.user_id == viewer.id
        if row.can_see_details(viewer):
            item.update(booking_id=row.id, user=row.user.name, purpose=row.purpose)
    else:
        item.update(outage_kind=row.outage_kind, title=row.title)
    return item


@dataclass(frozen=True)
class SlotQuery:
    minutes: int
    start: datetime
    end: datetime
    field_id: int | None = None
    category: str | None = None
    facility_id: int | None = None
    limit: int = 10


def may_book(user: User, instrument: Instrument, now: datetime) -> bool:
    if instrument.status in ("down", "retired"):
        return False
    if user.manages_facility(instrument.facility_id) or not instrument.requires_qualification:
        return True
    return rules.live_qualification(user, instrument, now) is not None


def find_slots(user: User, query: SlotQuery, now: datetime | None = None) -> list[dict[str, Any]]:
    """The earliest free interval of ``query.minutes`` on each matching instrument the user
    may book, earliest first, at most ``query.limit``."""
    now = now or now_utc()
    stmt = search_instruments(
        field_id=query.field_id, category=query.category, facility_id=query.facility_id
    )
    instruments = db.session.scalars(
        stmt.options(selectinload(Instrument.facility), selectinload(Instrument.fields))
    ).all()
    found: list[tuple[datetime, int, datetime, Instrument]] = []
    for instrument in instruments:
        if not may_book(user, instrument, now):
            continue
        slot = earliest_free(instrument, user, query, now)
        if slot is not None:
            found.append((slot[0], instrument.id, slot[1], instrument))
    found.sort(key=lambda item: (item[0], item[1]))  # by instant, not by text
    return [
        {"instrument_id": i.id, "instrument": i.name, "start": s.isoformat(), "end": e.isoformat()}
        for s, _id, e, i in found[: query.limit]
    ]


def earliest_free(
    instrument: Instrument, user: User, query: SlotQuery, now: datetime
) -> tuple[datetime, datetime] | None:
    length = timedelta(minutes=query.minutes)
    if (
        not instrument.min_minutes <= query.minutes <= instrument.max_minutes
        or query.minutes % instrument.slot_minutes
    ):
        return None
    privileged = user.manages_facility(instrument.facility_id)
    earliest = max(
        query.start, now + timedelta(minutes=0 if privileged else instrument.lead_minutes)
    )
    latest = min(query.end - length, now + timedelta(days=instrument.horizon_days))
    step = timedelta(minutes=instrument.slot_minutes)
    candidate = _align_up(instrument, earliest)
    buffer = timedelta(minutes=instrument.buffer_minutes)
    busy = slots.busy_intervals(instrument.id, candidate, query.end + buffer)
    qualification = rules.live_qualification(user, instrument, now)
    advanced = privileged or (qualification is not None and qualification.level == "advanced")
    while candidate <= latest:
        end = candidate + length
        blocker = slots.first_blocker(busy, candidate, end + buffer)
        if blocker is not None:  # jump past the busy interval instead of stepping through it
            candidate = max(candidate + step, _align_up(instrument, blocker.end))
            continue
        if advanced or rules.within_staffed_hours(instrument, candidate, end):
            return candidate, end
        candidate += step
    return None


def _align_up(instrument: Instrument, moment: datetime) -> datetime:
    here = rules.local(instrument, moment).replace(second=0, microsecond=0)
    if here < rules.local(instrument, moment):
        here += timedelta(minutes=1)
    slot = instrument.slot_minutes
    extra = (-(here.hour * 60 + here.minute)) % slot
    return (here + timedelta(minutes=extra)).astimezone(moment.tzinfo)
