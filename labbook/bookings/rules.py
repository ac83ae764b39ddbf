"""The booking policy of an instrument (SPEC section 3) as small checks. Each raises a
refusal that names its rule and says in plain words what is wrong. Times are aware UTC;
alignment, staffed hours and quota weeks are computed in the facility's local zone."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
import sqlalchemy.orm  # noqa: F401 - sa.orm.Session for the listeners
from flask_babel import gettext as _

from labbook.auth.models import User
from labbook.bookings.errors import BookingRefused, NotAllowed
from labbook.bookings.models import Booking, Qualification
from labbook.extensions import db
from labbook.instruments.models import Instrument
from labbook.teams.models import Account

QUOTA_STATES = ("pending", "confirmed", "in_use", "completed")


def local(instrument: Instrument, moment: datetime) -> datetime:
    return moment.astimezone(ZoneInfo(instrument.facility.timezone))


def check_instrument_open(instrument: Instrument) -> None:
    """:raises BookingRefused: when the instrument is down or retired."""
    if instrument.status == "down":
        message = _("This instrument is down and cannot be booked until it is repaired.")
    elif instrument.status == "retired":
        message = _("This instrument is retired and can no longer be booked.")
    else:
        return
    raise BookingRefused("instrument_unavailable", message, field="instrument_id")


def check_shape(instrument: Instrument, start: datetime, end: datetime) -> None:
    """End after start, both on the slot grid, duration within min and max.

    :raises BookingRefused: naming the broken rule.
    """
    if end <= start:
        raise BookingRefused("end_after_start", _("The end must be after the start."), "end")
    slot = instrument.slot_minutes
    for name, moment in (("start", start), ("end", end)):
        here = local(instrument, moment)
        if here.second or here.microsecond or (here.hour * 60 + here.minute) % slot:
            raise BookingRefused(
                "granularity",
                _("Bookings on this instrument start and end on %(n)d-minute steps.", n=slot),
                name,
            )
    minutes = (end - start).total_seconds() / 60
    if minutes < instrument.min_minutes:
        raise BookingRefused(
            "min_duration",
            _("Bookings on this instrument last at least %(n)d minutes.", n=instrument.min_minutes),
            "end",
        )
    if minutes > instrument.max_minutes:
        raise BookingRefused(
            "max_duration",
            _("Bookings on this instrument last at most %(n)d minutes.", n=instrument.max_minutes),
            "end",
        )


def check_window(instrument: Instrument, start: datetime, now: datetime) -> None:
    """Not in the past, not sooner than the lead time, not beyond the horizon.

    :raises BookingRefused: naming the broken rule.
    """
    if start < now:
        raise BookingRefused("past", _("The start is in the past."))
    if start < now + timedelta(minutes=instrument.lead_minutes):
        raise BookingRefused(
            "lead_time",
            _(
                "This instrument must be booked at least %(n)d minutes ahead.",
                n=instrument.lead_minutes,
            ),
        )
    if start > now + timedelta(days=instrument.horizon_days):
        raise BookingRefused(
            "horizon",
            _("This instrument can be booked at most %(n)d days ahead.", n=instrument.horizon_days),
        )


# Qualifications read together with the instrument (services.instrument_for_booking), so a
# booking's checks need no query of their own: {(user_id, instrument_id): [rows]} in the
# session's info. Forgotten at every flush and at the end of every transaction (savepoints
# included), so a grant or revocation is never missed: between the read and the checks of
# one booking neither happens.
PREFETCHED = "labbook.prefetched_qualifications"


def covering(user_id: int, instrument: type[Instrument] | Instrument) -> sa.ColumnElement[bool]:
    """The user's unrevoked qualifications for this instrument or its category."""
    return sa.and_(
        Qualification.user_id == user_id,
        Qualification.revoked_at.is_(None),
        sa.or_(
            Qualification.instrument_id == instrument.id,
            Qualification.category == instrument.category,
        ),
    )


def remember_qualifications(user_id: int, instrument_id: int, rows: list[Qualification]) -> None:
    db.session.info.setdefault(PREFETCHED, {})[(user_id, instrument_id)] = list(rows)


@sa.event.listens_for(sa.orm.Session, "after_flush")
@sa.event.listens_for(sa.orm.Session, "after_transaction_end")
def _forget_qualifications(session: sa.orm.Session, *_args: object) -> None:
    session.info.pop(PREFETCHED, None)


def live_qualification(user: User, instrument: Instrument, at: datetime) -> Qualification | None:
    """The user's best live qualification for this instrument or its category."""
    rows = db.session.info.get(PREFETCHED, {}).get((user.id, instrument.id))
    if rows is None:
        rows = db.session.scalars(
            sa.select(Qualification).where(covering(user.id, instrument))
        ).all()
    live = [q for q in rows if q.is_live(at)]
    live.sort(key=lambda q: q.level != "advanced")
    return live[0] if live else None


def check_qualified(instrument: Instrument, qualification: Qualification | None) -> None:
    """:raises NotAllowed: when the instrument requires a qualification the user lacks."""
    if instrument.requires_qualification and qualification is None:
        raise NotAllowed(
            "qualification",
            _(
                "You are not qualified on this instrument (or your qualification has expired). "
                "Ask the facility for training."
            ),
        )


def within_staffed_hours(instrument: Instrument, start: datetime, end: datetime) -> bool:
    """True when the facility has no opening hours at all, or when the whole booking lies
    inside one staffed interval of its local day."""
    hours = instrument.facility.opening_hours
    if not hours:
        return True
    zone = ZoneInfo(instrument.facility.timezone)
    begin, finish = start.astimezone(zone), end.astimezone(zone)
    day = begin.date()
    for row in hours:
        if row.weekday != day.weekday():
            continue
        opens = datetime.combine(day, row.opens, tzinfo=zone)
        closes = datetime.combine(day, row.closes, tzinfo=zone)
        if opens <= begin and finish <= closes:
            return True
    return False


def check_staffed(
    instrument: Instrument, start: datetime, end: datetime, qualification: Qualification | None
) -> None:
    """:raises BookingRefused: outside staffed hours without an advanced qualification."""
    if within_staffed_hours(instrument, start, end):
        return
    if qualification is None or qualification.level != "advanced":
        raise BookingRefused(
            "staffed_hours",
            _(
                "This time is outside the facility's staffed hours; only users with an advanced "
                "qualification may book it."
            ),
        )


def check_account(
    user: User, account: Account, instrument: Instrument, start: datetime, end: datetime
) -> None:
    """Chargeable by the user (checked first, so nobody learns about other teams' accounts),
    active, and valid on every local day of the booking.

    :raises BookingRefused: naming what is wrong with the account.
    """
    if not account.may_be_charged_by(user):
        raise BookingRefused("account", _("Unknown account."), "account_id")
    first: date = local(instrument, start).date()
    last: date = local(instrument, end - timedelta(microseconds=1)).date()
    if not account.active:
        message = _("The account %(code)s is not active.", code=account.code)
    elif not (account.is_valid_on(first) and account.is_valid_on(last)):
        message = _("The account %(code)s is not valid on the booking's dates.", code=account.code)
    else:
        return
    raise BookingRefused("account", message, "account_id")


def week_bounds(instrument: Instrument, moment: datetime) -> tuple[datetime, datetime]:
    """Monday 00:00 to the next Monday 00:00, local time, as aware datetimes."""
    here = local(instrument, moment)
    monday = (here - timedelta(days=here.weekday())).date()
    zone = ZoneInfo(instrument.facility.timezone)
    begin = datetime(monday.year, monday.month, monday.day, tzinfo=zone)
    nxt = monday + timedelta(days=7)
    return begin, datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone)


def _booked_minutes(
    instrument: Instrument,
    column: sa.ColumnElement,
    value: int,
    begin: datetime,
    finish: datetime,
    exclude_id: int | None,
) -> float:
    stmt = sa.select(Booking.start_at, Booking.end_at).where(
        Booking.instrument_id == instrument.id,
        column == value,
        Booking.state.in_(QUOTA_STATES),
        Booking.start_at >= begin,
        Booking.start_at < finish,
    )
    if exclude_id is not None:
        stmt = stmt.where(Booking.id != exclude_id)
    return sum((e - s).total_seconds() / 60 for s, e in db.session.execute(stmt))


def check_quotas(
    instrument: Instrument,
    user: User,
    team_id: int,
    start: datetime,
    end: datetime,
    exclude_id: int | None = None,
) -> None:
    """Weekly hours per user and per team on this instrument, counted by start week.
    Call it under the instrument lock, so two bookings cannot both squeeze in.

    :raises BookingRefused: when the booking would exceed a quota.
    """
    begin, finish = week_bounds(instrument, start)
    minutes = (end - start).total_seconds() / 60
    limits = (
        ("user_quota", instrument.user_weekly_quota_minutes, Booking.user_id, user.id),
        ("team_quota", instrument.team_weekly_quota_minutes, Booking.team_id, team_id),
    )
    for rule, limit, column, value in limits:
        if limit is None:
            continue
        used = _booked_minutes(instrument, column, value, begin, finish, exclude_id)
        if used + minutes > limit:
            raise BookingRefused(rule, _quota_message(rule, limit, int(used)))


def _quota_message(rule: str, limit: int, used: int) -> str:
    if rule == "user_quota":
        return _(
            "This booking would exceed your weekly quota on this instrument "
            "(%(limit)d minutes; %(used)d already booked that week).",
            limit=limit,
            used=used,
        )
    return _(
        "This booking would exceed your team's weekly quota on this instrument "
        "(%(limit)d minutes; %(used)d already booked that week).",
        limit=limit,
        used=used,
    )
