"""Usage records: what was really used, derived from ``reservations`` (no table of its own).

One record per session: a booking that was used (``in_use``, ``completed``) and, for the
reconciliation, the ``no_show`` rows. Each has its booked interval (``start_at``..``end_at``)
and its actual one (``checked_in_at``..``checked_out_at``, open while it runs). Facility
managers correct the actual times with a reason (audited ``usage.correct``); a correction
never touches ``sequence`` (calendars show the booked time, which does not change), and is
refused when the billing period of the old or the new times is closed (SPEC section 6:
closing locks the period).

Read functions take the month as its first day (``date``) on the facility's wall clock.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask_babel import gettext as _
from sqlalchemy.orm import selectinload

from labbook import audit
from labbook.auth.models import User
from labbook.billing.lock import PeriodClosed, ensure_open
from labbook.bookings.errors import NotAllowed
from labbook.bookings.models import Booking
from labbook.bookings.services import lock_booking
from labbook.errors import ValidationError
from labbook.extensions import db
from labbook.instruments.models import Facility, Instrument

SESSION_STATES = ("in_use", "completed", "no_show")
USED_STATES = ("in_use", "completed")
REASON_MAX = 500
_MONTH_TEXT = re.compile(r"([0-9]{4})-([0-9]{2})")
AUDITED = ("checked_in_at", "checked_out_at", "needs_review")


def _minutes(span: timedelta) -> int:
    return int(span.total_seconds() // 60)


@dataclass(frozen=True)
class UsageRow:
    """One session as the reconciliation shows it."""

    booking: Booking

    @property
    def booked_minutes(self) -> int:
        return self.booking.minutes

    @property
    def is_open(self) -> bool:
        return self.booking.state == "in_use"

    @property
    def no_show(self) -> bool:
        return self.booking.state == "no_show"

    @property
    def actual_minutes(self) -> int | None:
        """Minutes between check-in and check-out; None for a no-show or an open session."""
        b = self.booking
        if b.checked_in_at is None or b.checked_out_at is None:
            return None
        return _minutes(b.checked_out_at - b.checked_in_at)

    @property
    def difference(self) -> int | None:
        """Actual minus booked minutes (negative: used less than booked)."""
        actual = self.actual_minutes
        return None if actual is None else actual - self.booked_minutes

    @property
    def overrun(self) -> bool:
        """The session ended (or, still running, is now) after the booked end."""
        b = self.booking
        return b.checked_out_at is not None and b.checked_out_at > b.end_at

    @property
    def needs_review(self) -> bool:
        return bool(self.booking.needs_review)

    @property
    def walk_in(self) -> bool:
        return bool(self.booking.walk_in)


@dataclass
class InstrumentTotals:
    instrument: Instrument
    sessions: int = 0
    booked_minutes: int = 0
    actual_minutes: int = 0
    no_shows: int = 0
    overruns: int = 0
    open: int = 0
    needs_review: int = 0

    def add(self, row: UsageRow) -> None:
        self.sessions += 0 if row.no_show else 1
        self.booked_minutes += row.booked_minutes
        self.actual_minutes += row.actual_minutes or 0
        self.no_shows += row.no_show
        self.overruns += row.overrun
        self.open += row.is_open
        self.needs_review += row.needs_review


# -- months -------------------------------------------------------------------------------------


def parse_month(text: str | None) -> date | None:
    """``YYYY-MM`` as the month's first day; None when missing or malformed."""
    match = _MONTH_TEXT.fullmatch(text or "")
    if match is None or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 1900:
        return None
    return date(int(match.group(1)), int(match.group(2)), 1)


def current_month(zone: ZoneInfo, now: datetime) -> date:
    return now.astimezone(zone).date().replace(day=1)


def shift_month(month: date, months: int) -> date:
    index = month.year * 12 + month.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def month_bounds(month: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The month's first instant and the next month's, on ``zone``'s wall clock."""
    return (datetime.combine(month, time(), tzinfo=zone),
            datetime.combine(shift_month(month, 1), time(), tzinfo=zone))


# -- reading ------------------------------------------------------------------------------------


def sessions_query(facility: Facility, month: date) -> sa.Select:
    """Sessions of ``facility`` whose booked start falls in ``month`` (its local wall clock),
    by start; user, team, account and instrument loaded in bulk (no N+1)."""
    begin, end = month_bounds(month, ZoneInfo(facility.timezone))
    return (
        sa.select(Booking)
        .join(Instrument, Instrument.id == Booking.instrument_id)
        .where(
            Instrument.facility_id == facility.id,
            Booking.state.in_(SESSION_STATES),
            Booking.start_at >= begin,
            Booking.start_at < end,
        )
        .options(
            selectinload(Booking.user), selectinload(Booking.team),
            selectinload(Booking.account),
            selectinload(Booking.instrument).selectinload(Instrument.facility),
        )
        .order_by(Booking.start_at, Booking.id)
    )


def usage_rows(facility: Facility, month: date) -> list[UsageRow]:
    return [UsageRow(b) for b in db.session.scalars(sessions_query(facility, month))]


def totals(rows: list[UsageRow]) -> list[InstrumentTotals]:
    """Per instrument (by name) the sums of ``rows``."""
    per: OrderedDict[int, InstrumentTotals] = OrderedDict()
    for row in rows:
        instrument = row.booking.instrument
        per.setdefault(instrument.id, InstrumentTotals(instrument)).add(row)
    return sorted(per.values(), key=lambda t: t.instrument.name.lower())


# -- correcting ---------------------------------------------------------------------------------


def _check_start(start: datetime | None, now: datetime) -> list[str]:
    if start is None:
        return [_("Give the time the session started.")]
    return [_("Must not be in the future.")] if start > now else []


def _check_end(
    booking: Booking, start: datetime | None, end: datetime | None, now: datetime
) -> list[str]:
    if booking.state == "in_use":
        return [] if end is None else [
            _("The session is still running: check it out first, then correct its end.")]
    if end is None:
        return [_("Give the time the session ended.")]
    if end > now:
        return [_("Must not be in the future.")]
    if start is not None and end <= start:
        return [_("Must be after the start.")]
    return []


def _check_times(
    booking: Booking, start: datetime | None, end: datetime | None, now: datetime
) -> dict[str, list[str]]:
    errors = {"checked_in_at": _check_start(start, now),
              "checked_out_at": _check_end(booking, start, end, now)}
    return {name: messages for name, messages in errors.items() if messages}


def _clashing_session(booking: Booking, start: datetime, end: datetime) -> Booking | None:
    """Another session on the same instrument whose actual time overlaps [start, end)."""
    stmt = sa.select(Booking).where(
        Booking.instrument_id == booking.instrument_id,
        Booking.id != booking.id,
        Booking.state.in_(USED_STATES),
        Booking.checked_in_at.is_not(None),
        sa.or_(Booking.checked_out_at.is_(None), Booking.checked_out_at > start),
        Booking.checked_in_at < end,
    )
    return db.session.scalars(stmt.order_by(Booking.checked_in_at).limit(1)).first()


def _check_periods(moments: list[datetime | None]) -> None:
    """Takes the period rows' share lock against a concurrent close (PostgreSQL).

    :raises PeriodClosed: (409, ``reason: "period_closed"``, as every write the closing
        locks) when any of ``moments`` lies in a closed billing period.
    """
    try:
        ensure_open(*moments)
    except PeriodClosed as closed:
        raise PeriodClosed(closed.month, _(
            "The billing period of this session is closed: its usage can no longer change. "
            "Ask finance for an adjustment in the next open period.")) from None


def _authorize(actor: User, booking: Booking) -> None:
    """:raises NotAllowed: unless ``actor`` manages the booking's facility."""
    if not booking.can_manage(actor):
        raise NotAllowed("manager", _("Only managers of this facility may correct usage."))
    if booking.state not in USED_STATES:
        raise ValidationError(_("Only sessions that were used have times to correct."),
                              {"state": [_("Only sessions that were used have times to "
                                           "correct.")]})


def correct_times(
    actor: User, booking: Booking, checked_in_at: datetime | None,
    checked_out_at: datetime | None, reason: str | None, now: datetime,
) -> Booking:
    """Set a session's actual times (and mark it reviewed), saying why. A running session
    only has its start corrected. The booked interval and ``sequence`` stay as they are.

    :raises NotAllowed: unless a manager of the facility (admins too).
    :raises ValidationError: not a used session, no reason, a start or end in the future,
        an end not after the start, or an overlap with another session on the instrument.
    :raises PeriodClosed: the billing period of the old or the new times is closed.
    """
    lock_booking(booking)
    _authorize(actor, booking)
    reason = (reason or "").replace("\x00", "").strip()
    errors = _check_times(booking, checked_in_at, checked_out_at, now)
    if not reason:
        errors["reason"] = [_("Say why the times are corrected.")]
    elif len(reason) > REASON_MAX:
        errors["reason"] = [_("At most %(n)d characters.", n=REASON_MAX)]
    if errors:
        raise ValidationError(_("The correction has invalid values."), errors)
    assert checked_in_at is not None
    clash = _clashing_session(booking, checked_in_at, checked_out_at or now)
    if clash is not None:
        message = _("This overlaps the session of %(name)s (booking #%(id)d) on the "
                    "instrument.", name=clash.user.name, id=clash.id)
        raise ValidationError(message, {"checked_in_at": [message]})
    _check_periods([booking.checked_in_at, booking.checked_out_at, checked_in_at,
                    checked_out_at])
    before = audit.snapshot(booking, AUDITED)
    booking.checked_in_at, booking.checked_out_at = checked_in_at, checked_out_at
    booking.needs_review = False
    db.session.flush()
    audit.record(actor, "usage.correct", booking, before=before,
                 after={**audit.snapshot(booking, AUDITED), "reason": reason})
    return booking


def confirm_session(actor: User, booking: Booking, now: datetime) -> Booking:
    """A manager confirms the times of a session the system closed (auto check-out): it no
    longer needs review. Audited ``usage.confirm``; refused in a closed period.

    :raises NotAllowed: unless a manager of the facility.
    :raises ValidationError: not a used session. :raises PeriodClosed: its period is closed.
    """
    lock_booking(booking)
    _authorize(actor, booking)
    if not booking.needs_review:
        return booking
    _check_periods([booking.checked_in_at, booking.checked_out_at])
    booking.needs_review = False
    db.session.flush()
    audit.record(actor, "usage.confirm", booking, before={"needs_review": True},
                 after={"needs_review": False})
    return booking
