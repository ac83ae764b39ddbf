"""What the booking pages show, computed outside the views: the week grid of an instrument,
a facility's schedule for today and tomorrow, the actions a user may take on a booking, and
conflicts and alternatives turned into local times.

Read-only: nothing here writes. Times arrive as aware UTC and are laid out on the
facility's wall clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from babel.dates import format_skeleton
from flask import current_app
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l

from labbook.auth.models import User
from labbook.bookings import rules
from labbook.bookings.availability import availability
from labbook.bookings.forms import local_to_utc

from labbook.bookings.models import Booking, QualificationRequest, Reservation
from labbook.extensions import db
from labbook.instruments.models import Facility, Instrument

CELL_LABELS = {
    "free": _l("Free"),
    "closed": _l("Outside staffed hours"),
    "past": _l("Past"),
    "busy": _l("Busy"),
    "pending": _l("Pending approval"),
    "maintenance": _l("Maintenance"),
    "yours": _l("Your booking"),
    "none": _l("Does not exist (clock change)"),
}
# Which state wins when several items meet one cell.
CELL_PRIORITY = ("maintenance", "yours", "pending", "busy")
DAY_HOURS = (time(7, 0), time(22, 0))  # the grid's rows unless the whole day is shown
SCHEDULE_STATES = ("pending", "confirmed", "in_use", "completed", "no_show", "scheduled")


def zone_of(instrument: Instrument) -> ZoneInfo:
    return ZoneInfo(instrument.facility.timezone)


def local_today(zone: ZoneInfo, now: datetime) -> date:
    return now.astimezone(zone).date()


def day_label(day: date) -> str:
    """Weekday and date in the reader's language: "Mon, Jan 7" / "1月7日周一"."""
    return format_skeleton("MMMEd", day, locale=str(get_locale() or "en"))


def time_span(start: datetime, end: datetime | None, tz: str) -> str:
    """An interval on the wall clock of ``tz``: "2030-01-07 10:00–11:00 CST", with the end's
    date when it ends on another day, and "open-ended" without an end."""
    zone = ZoneInfo(tz)
    here = start.astimezone(zone)
    if end is None:
        return f"{here:%Y-%m-%d %H:%M} {here.tzname()} – …"
    there = end.astimezone(zone)
    if there.date() == here.date():
        return f"{here:%Y-%m-%d %H:%M}–{there:%H:%M} {there.tzname()}"
    return f"{here:%Y-%m-%d %H:%M} – {there:%Y-%m-%d %H:%M} {there.tzname()}"


# -- what a user may do with a booking --------------------------------------------------------


@dataclass(frozen=True)
class Actions:
    cancel: bool = False
    late: bool = False  # cancelling now would count as late
    edit: bool = False
    check_in: bool = False
    check_out: bool = False
    decide: bool = False  # approve / reject


def booking_actions(booking: Booking, user: User, now: datetime) -> Actions:
    """The buttons to offer; the services still decide (this only hides useless ones)."""
    manager, owner = booking.can_manage(user), booking.is_owner(user)
    if not (manager or owner):
        return Actions()
    early = timedelta(minutes=current_app.config["LABBOOK_CHECKIN_EARLY_MINUTES"])
    upcoming = booking.state in ("pending", "confirmed")
    notice = timedelta(hours=booking.instrument.late_cancel_notice_hours)
    return Actions(
        cancel=upcoming and (manager or now < booking.start_at),
        late=owner and not manager and now > booking.start_at - notice,
        edit=booking.state in ("pending", "confirmed", "in_use") and booking.end_at > now,
        check_in=booking.state == "confirmed"
        and booking.start_at - early <= now < booking.end_at,
        check_out=booking.state == "in_use",
        decide=manager and booking.state == "pending",
    )


def booking_access(instrument: Instrument, user: User, now: datetime) -> str:
    """How ``user`` stands towards booking ``instrument``: ``manager``, ``open`` (no
    qualification needed), ``qualified``, ``requested`` (an open request) or
    ``unqualified``."""
    if user.manages_facility(instrument.facility_id):
        return "manager"
    if not instrument.requires_qualification:
        return "open"
    if rules.live_qualification(user, instrument, now) is not None:
        return "qualified"
    request = db.session.scalar(
        sa.select(QualificationRequest.id).where(
            QualificationRequest.user_id == user.id,
            QualificationRequest.instrument_id == instrument.id,
            QualificationRequest.state == "open",
        )
    )
    return "requested" if request is not None else "unqualified"


def may_book_anytime(instrument: Instrument, user: User, now: datetime) -> bool:
    """Managers and advanced-qualified users may book outside staffed hours."""
    if user.manages_facility(instrument.facility_id):
        return True
    qualification = rules.live_qualification(user, instrument, now)
    return qualification is not None and qualification.level == "advanced"


# -- conflicts and alternatives ---------------------------------------------------------------


def _instant(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def conflict_rows(conflicts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The service's clashing intervals with datetimes instead of ISO strings."""
    return [{**c, "start": _instant(c["start"]), "end": _instant(c.get("end"))} for c in conflicts]


def alternative_rows(alternatives: list[dict[str, str]], zone: ZoneInfo) -> list[dict[str, Any]]:
    """Each alternative with its datetimes and the local form values that book it."""
    rows = []
    for alt in alternatives:
        start, end = _instant(alt["start"]), _instant(alt["end"])
        assert start is not None and end is not None
        here, there = start.astimezone(zone), end.astimezone(zone)
        same_or_overnight = there.date() == here.date() or (
            there.date() == here.date() + timedelta(days=1) and there.time() < here.time()
        )
        values = {
            "date": here.date().isoformat(),
            "start_time": f"{here:%H:%M}",
            "end_time": f"{there:%H:%M}",
            "end_date": "" if same_or_overnight else there.date().isoformat(),
        }
        rows.append({"start": start, "end": end, "values": values})
    return rows


# -- the week grid ----------------------------------------------------------------------------


@dataclass
class Cell:
    start: datetime | None  # aware UTC; None when the wall-clock time does not exist
    state: str
    bookable: bool = False
    detail: str = ""
    booking_id: int | None = None  # set where the viewer may open the booking
    first: bool = True  # the first cell of a run of equal cells in its day's column

    @property
    def label(self) -> str:
        return str(CELL_LABELS[self.state])


@dataclass
class WeekGrid:
    monday: date
    days: list[date]
    rows: list[tuple[time, list[Cell]]] = field(default_factory=list)
    full_day: bool = False


def _row_times(slot: int, full_day: bool) -> list[time]:
    """Row start times, aligned to the slot grid (counted from local midnight)."""
    first, last = (0, 1440) if full_day else (DAY_HOURS[0].hour * 60, DAY_HOURS[1].hour * 60)
    minute = -(-first // slot) * slot
    times = []
    while minute < last:
        times.append(time(minute // 60, minute % 60))
        minute += slot
    return times


def _busy_items(instrument: Instrument, begin: datetime, end: datetime, viewer: User) -> list:
    """(start, blocked until, cell state, detail, booking id or None) of every slot holder
    in the window; detail and id only where the viewer may see them."""
    items = []
    for item in availability(instrument, begin, end, viewer)["busy"]:
        start = _instant(item["start"])
        until = _instant(item["blocked_until"]) or end
        if item["kind"] == "outage":
            state, detail = "maintenance", item.get("title") or ""
        elif item.get("mine"):
            state, detail = "yours", item.get("purpose") or ""
        else:
            state = "pending" if item["state"] == "pending" else "busy"
            detail = item.get("user") or ""
        items.append((start, until, state, detail, item.get("booking_id")))
    return items


def _cell(
    start: datetime | None, length: timedelta, items: list, now: datetime, bookable: Any
) -> Cell:
    if start is None:
        return Cell(None, "none")
    end = start + length
    hits = [item for item in items if item[0] < end and item[1] > start]
    if hits:
        hit = min(hits, key=lambda item: CELL_PRIORITY.index(item[2]))
        return Cell(start, hit[2], detail=hit[3], booking_id=hit[4])
    if start < now:
        return Cell(start, "past")
    if not bookable(start, end):
        return Cell(start, "closed")
    return Cell(start, "free", bookable=True)


def week_grid(
    instrument: Instrument, viewer: User, monday: date, now: datetime, full_day: bool
) -> WeekGrid:
    """Seven local days from ``monday`` × the instrument's slots (07:00–22:00 unless
    ``full_day``), each cell free, busy, pending, maintenance or yours, from
    ``availability``. Free cells outside staffed hours are ``closed`` unless the viewer may
    book then; free cells in the past are ``past``."""
    zone = zone_of(instrument)
    days = [monday + timedelta(days=n) for n in range(7)]
    begin = datetime.combine(monday, time(), tzinfo=zone)
    end = datetime.combine(monday + timedelta(days=7), time(), tzinfo=zone)
    items = _busy_items(instrument, begin, end, viewer)
    anytime = may_book_anytime(instrument, viewer, now)

    def bookable(start: datetime, stop: datetime) -> bool:
        return anytime or rules.within_staffed_hours(instrument, start, stop)

    length = timedelta(minutes=instrument.slot_minutes)
    grid = WeekGrid(monday=monday, days=days, full_day=full_day)
    for clock in _row_times(instrument.slot_minutes, full_day):
        starts = [local_to_utc(day, clock, zone) for day in days]
        cells = [_cell(start, length, items, now, bookable) for start in starts]
        grid.rows.append((clock, cells))
    _mark_runs(grid)
    return grid


def _mark_runs(grid: WeekGrid) -> None:
    """A run of equal busy cells shows its label once, in its first cell."""
    for above, below in zip(grid.rows, grid.rows[1:]):
        for upper, cell in zip(above[1], below[1]):
            cell.first = (upper.state, upper.detail) != (cell.state, cell.detail)


def monday_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


# -- a facility's schedule --------------------------------------------------------------------


def facility_schedule(
    facility: Facility, now: datetime
) -> list[tuple[date, list[tuple[Instrument, list[Reservation]]]]]:
    """Today and tomorrow (the facility's local dates): for each instrument, the bookings
    and outages that meet the day, by start. Cancelled, rejected and expired bookings are
    left out."""
    zone = ZoneInfo(facility.timezone)
    today = local_today(zone, now)
    days = [today, today + timedelta(days=1)]
    bounds = [datetime.combine(d, time(), tzinfo=zone) for d in (*days, today + timedelta(days=2))]
    instruments = sorted(facility.instruments, key=lambda i: i.name.lower())
    rows = db.session.scalars(
        sa.select(Reservation)
        .where(
            Reservation.instrument_id.in_([i.id for i in instruments]),
            Reservation.state.in_(SCHEDULE_STATES),
            Reservation.start_at < bounds[2],
            sa.or_(Reservation.end_at.is_(None), Reservation.end_at > bounds[0]),
        )
        .order_by(Reservation.start_at)
    ).all()
    schedule = []
    for index, day in enumerate(days):
        begin, finish = bounds[index], bounds[index + 1]
        meets = [r for r in rows if r.start_at < finish and (r.end_at is None or r.end_at > begin)]
        schedule.append(
            (day, [(i, [r for r in meets if r.instrument_id == i.id]) for i in instruments])
        )
    return schedule
