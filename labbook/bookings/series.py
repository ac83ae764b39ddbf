"""Recurring bookings: a ``BookingSeries`` expanded into one booking row per occurrence.

Every occurrence goes through ``services.create_booking`` (so every policy rule and the
no-overlap guarantee apply to each one) inside its own SAVEPOINT, so one refused occurrence
does not poison the others. The user chooses what happens when some occurrences fail:

* ``all_or_nothing``: nothing is written (no series row, no booking, no audit entry: the
  enclosing SAVEPOINT is rolled back) and ``SeriesNotBooked`` lists every occurrence with
  its outcome;
* ``fit``: what fits is booked and the result lists every failure with its reason. When
  nothing at all fits, nothing is written and ``SeriesNotBooked`` is raised as well.

When every occurrence fails for the same reason that has nothing to do with its time (not
qualified, unknown account, purpose too long...), that error itself is raised, so the
caller gets its usual status (403, 422 with the field) instead of 200 identical lines.

Like every service: flush and audit, never commit; the caller commits once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask_babel import gettext as _

from labbook import audit
from labbook.auth.models import User
from labbook.bookings import notices, recurrence, services
from labbook.bookings.errors import BookingConflict, NotAllowed
from labbook.bookings.models import Booking, BookingSeries
from labbook.db import now_utc
from labbook.errors import LabbookError, ValidationError
from labbook.extensions import db
from labbook.instruments.models import Instrument

MODES = ("all_or_nothing", "fit")
CANCELLABLE = ("pending", "confirmed")
OVERLAP_RULE = "overlap"
NONEXISTENT_RULE = "nonexistent_time"


class SeriesNotBooked(LabbookError):
    """A series was not created; nothing was written. 409 ``conflict`` when every failed
    occurrence clashed with another slot holder, else 422 ``validation``. ``occurrences``
    lists every occurrence with its outcome (``bookable`` or ``failed`` with ``rule``,
    ``message`` and, for clashes, ``conflicts`` and ``alternatives``)."""

    def __init__(self, message: str, occurrences: list[dict[str, Any]], mode: str) -> None:
        failed = [o for o in occurrences if o["outcome"] == "failed"]
        only_conflicts = all(o["rule"] == OVERLAP_RULE for o in failed)
        extra: dict[str, Any] = {"mode": mode, "occurrences": occurrences, "failed": failed}
        if not only_conflicts:
            extra["fields"] = {"recurrence": [message]}
        super().__init__(message, **extra)
        self.status = 409 if only_conflicts else 422
        self.code = "conflict" if only_conflicts else "validation"
        self.occurrences = occurrences
        self.failed = failed
        self.fields: dict[str, list[str]] = extra.get("fields", {})


@dataclass
class SeriesResult:
    """What ``create_series`` booked. ``occurrences`` has every occurrence in order with its
    outcome (``booked`` with ``booking_id``, or ``failed``); ``failed`` only the failures."""

    series: BookingSeries
    mode: str
    bookings: list[Booking] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    occurrences: list[dict[str, Any]] = field(default_factory=list)

    @property
    def series_id(self) -> int:
        return self.series.id

    @property
    def booked(self) -> list[int]:
        return [b.id for b in self.bookings]

    def to_dict(self) -> dict[str, Any]:
        return {
            "series_id": self.series_id,
            "mode": self.mode,
            "booked": self.booked,
            "failed": self.failed,
            "occurrences": self.occurrences,
        }


# -- create -------------------------------------------------------------------------------------


def _describe(occurrence: recurrence.Occurrence) -> dict[str, Any]:
    return {
        "index": occurrence.index,
        "local_start": occurrence.local_start.isoformat(timespec="minutes"),
        "start": occurrence.start.isoformat() if occurrence.start else None,
        "end": occurrence.end.isoformat() if occurrence.end else None,
    }


def _failure(item: dict[str, Any], error: LabbookError) -> dict[str, Any]:
    if isinstance(error, BookingConflict):
        rule = OVERLAP_RULE
        item.update(conflicts=error.conflicts, alternatives=error.alternatives)
    else:
        rule = getattr(error, "rule", None) or error.code
    item.update(outcome="failed", rule=rule, message=error.message, status=error.status)
    return item


def _book_one(
    user: User,
    instrument: Instrument,
    occurrence: recurrence.Occurrence,
    series: BookingSeries,
    options: dict[str, Any],
) -> tuple[dict[str, Any], Booking | None, LabbookError | None]:
    """Book one occurrence in its own SAVEPOINT: (description, booking, error)."""
    item = _describe(occurrence)
    if occurrence.start is None or occurrence.end is None:
        message = _(
            "%(time)s does not exist on that day in %(zone)s (the clocks change); "
            "book this occurrence separately.",
            time=item["local_start"].replace("T", " "),
            zone=series.timezone,
        )
        item.update(outcome="failed", rule=NONEXISTENT_RULE, message=message, status=422)
        return item, None, None
    try:
        with db.session.begin_nested():
            booking = services.create_booking(
                user, instrument, occurrence.start, occurrence.end, series_id=series.id, **options
            )
    except LabbookError as error:
        return _failure(item, error), None, error
    item.update(outcome="booked", booking_id=booking.id, state=booking.state)
    return item, booking, None


def _common_error(errors: list[LabbookError | None], total: int) -> LabbookError | None:
    """The error every occurrence failed with, when it is one and the same and not a clash
    or a time that does not exist."""
    if len(errors) != total or any(e is None for e in errors):
        return None
    first = errors[0]
    assert first is not None
    if isinstance(first, BookingConflict):
        return None
    same = all(type(e) is type(first) and e.message == first.message for e in errors)
    return first if same else None


def _refusal(result: SeriesResult, total: int) -> SeriesNotBooked:
    for item in result.occurrences:
        if item["outcome"] == "booked":
            item["outcome"] = "bookable"
            item.pop("booking_id", None)
            item.pop("state", None)
    if result.mode == "all_or_nothing":
        message = _(
            "%(failed)d of %(total)d occurrences cannot be booked, so none was booked.",
            failed=len(result.failed),
            total=total,
        )
    else:
        message = _("None of the %(total)d occurrences can be booked.", total=total)
    return SeriesNotBooked(message, result.occurrences, result.mode)


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValidationError(
            _("Choose all-or-nothing or book-what-fits."),
            {"mode": [_("Choose all-or-nothing or book-what-fits.")]},
        )


def create_series(
    user: User,
    instrument: Instrument,
    first_start: datetime,
    first_end: datetime,
    rule: Any,
    *,
    mode: str = "all_or_nothing",
    purpose: str | None = None,
    account_id: int | None = None,
    assisted: bool = False,
    now: datetime | None = None,
) -> SeriesResult:
    """Book ``instrument`` for ``user`` on every occurrence of ``rule`` (see
    labbook/bookings/recurrence.py), the first being ``[first_start, first_end)``.

    :raises ValidationError: a malformed rule (fields ``recurrence.*``) or mode.
    :raises SeriesNotBooked: some occurrences fail in ``all_or_nothing`` mode, or all in
        ``fit`` mode (nothing written).
    :raises BookingRefused, NotAllowed, ValidationError: when every occurrence fails for
        one and the same reason (nothing written).
    """
    now = now or now_utc()
    _check_mode(mode)
    zone = ZoneInfo(instrument.facility.timezone)
    parsed = recurrence.parse_rule(rule, first_start.astimezone(zone).date())
    occurrences = recurrence.expand(parsed, first_start, first_end, zone)
    options = dict(purpose=purpose, account_id=account_id, assisted=assisted, now=now)
    outer = db.session.begin_nested()
    try:
        result = SeriesResult(_new_series(user, instrument, parsed, now), mode)
        with notices.series_batch():
            errors = _book_all(user, instrument, occurrences, result, options)
    except BaseException:
        outer.rollback()
        raise
    if result.failed and (mode == "all_or_nothing" or not result.bookings):
        outer.rollback()
        raise _common_error(errors, len(occurrences)) or _refusal(result, len(occurrences))
    series = result.series
    after = {"rule": series.rule, "timezone": series.timezone, "mode": mode}
    after.update(booked=result.booked, failed=len(result.failed))
    audit.record(user, "series.create", series, after=after)
    outer.commit()
    privileged = user.manages_facility(instrument.facility_id)
    notices.series_created(user, series, result.bookings, privileged, now)
    return result


def _new_series(
    user: User, instrument: Instrument, rule: recurrence.Rule, now: datetime
) -> BookingSeries:
    series = BookingSeries(
        user_id=user.id,
        instrument_id=instrument.id,
        rule=rule.to_json(),
        timezone=instrument.facility.timezone,
        created_at=now,
    )
    db.session.add(series)
    db.session.flush()
    return series


def _book_all(
    user: User,
    instrument: Instrument,
    occurrences: list[recurrence.Occurrence],
    result: SeriesResult,
    options: dict[str, Any],
) -> list[LabbookError | None]:
    """Try every occurrence in order; collect the outcomes and the errors of the failures."""
    errors: list[LabbookError | None] = []
    for occurrence in occurrences:
        item, booking, error = _book_one(user, instrument, occurrence, result.series, options)
        result.occurrences.append(item)
        if booking is not None:
            result.bookings.append(booking)
        else:
            result.failed.append(item)
            errors.append(error)
    return errors


# -- cancel -------------------------------------------------------------------------------------


def _authorize(actor: User, series: BookingSeries, instrument: Instrument) -> None:
    if actor.id != series.user_id and not actor.manages_facility(instrument.facility_id):
        raise NotAllowed(
            "owner", _("Only the series' owner or a facility manager may cancel it.")
        )


def _cancel_each(
    actor: User, bookings: list[Booking], reason: str | None, now: datetime
) -> list[Booking]:
    """Cancel every booking, all or none (one SAVEPOINT around them)."""
    with db.session.begin_nested():
        for booking in bookings:
            services.cancel_booking(actor, booking, reason, now)
    return bookings


def _upcoming(series_id: int, since: datetime) -> list[Booking]:
    return list(
        db.session.scalars(
            sa.select(Booking)
            .where(
                Booking.series_id == series_id,
                Booking.state.in_(CANCELLABLE),
                Booking.start_at >= since,
            )
            .order_by(Booking.start_at)
        )
    )


def cancel_occurrence(
    actor: User, booking: Booking, reason: str | None = None, now: datetime | None = None
) -> list[Booking]:
    """Cancel one occurrence of a series (the others stay), like any single booking.

    :raises NotAllowed, BookingRefused: as ``services.cancel_booking``.
    """
    return _cancel_each(actor, [booking], reason, now or now_utc())


def cancel_following(
    actor: User, booking: Booking, now: datetime | None = None, reason: str | None = None
) -> list[Booking]:
    """Cancel ``booking`` and the later occurrences of its series that are still pending or
    confirmed and have not started. Running it twice cancels nothing more.

    :raises NotAllowed: unless owner or facility manager.
    :raises ValidationError: when ``booking`` is not part of a series.
    """
    now = now or now_utc()
    series = booking.series
    if series is None:
        raise ValidationError(
            _("This booking is not part of a series."), {"series": [_("Not a series.")]}
        )
    _authorize(actor, series, booking.instrument)
    since = max(booking.start_at, now)
    bookings = [b for b in _upcoming(series.id, since) if b.start_at > now]
    with notices.series_batch():
        cancelled = _cancel_each(actor, bookings, reason, now)
    notices.series_cancelled(actor, series, cancelled, now)
    after = {"from": booking.start_at, "cancelled": [b.id for b in cancelled]}
    audit.record(actor, "series.cancel_following", series, after=after)
    return cancelled


def cancel_series(
    actor: User, series: BookingSeries, now: datetime | None = None, reason: str | None = None
) -> list[Booking]:
    """Cancel every occurrence of ``series`` that is still pending or confirmed and has not
    started (past and running ones are history and stay). Running it twice cancels nothing
    more.

    :raises NotAllowed: unless owner or facility manager.
    """
    now = now or now_utc()
    instrument = db.session.get(Instrument, series.instrument_id)
    assert instrument is not None
    _authorize(actor, series, instrument)
    bookings = [b for b in _upcoming(series.id, now) if b.start_at > now]
    with notices.series_batch():
        cancelled = _cancel_each(actor, bookings, reason, now)
    notices.series_cancelled(actor, series, cancelled, now)
    audit.record(actor, "series.cancel", series, after={"cancelled": [b.id for b in cancelled]})
    return cancelled


CANCEL_SCOPES = ("occurrence", "following", "series")


def cancel_in_scope(
    actor: User, booking: Booking, scope: str, reason: str | None, now: datetime
) -> list[Booking]:
    """Cancel ``booking`` alone (``occurrence``), with the later occurrences of its series
    (``following``) or every upcoming occurrence of its series (``series``); the bookings
    cancelled now, in order.

    :raises ValidationError: a series scope for a booking outside any series (field
        ``scope``). :raises NotAllowed, BookingRefused: as the series and booking services.
    """
    if scope not in CANCEL_SCOPES:
        raise ValidationError(_("The request has invalid values."),
                              {"scope": [_("Choose what to cancel.")]})
    if scope == "occurrence":
        return [services.cancel_booking(actor, booking, reason, now)]
    if booking.series_id is None:
        raise ValidationError(_("This booking is not part of a series."),
                              {"scope": [_("Only bookings of a series can be cancelled "
                                           "with this choice.")]})
    if scope == "following":
        return cancel_following(actor, booking, now=now, reason=reason)
    return cancel_series(actor, booking.series, now=now, reason=reason)
